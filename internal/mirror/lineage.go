package mirror

import (
	"context"
	"slices"
	"time"

	"github.com/seqmirror/seqmirror/internal/export"
)

// statusTimeout bounds the read of the upstream's status.json, which is
// informational: a slow upstream must not hold the lock for long.
const statusTimeout = 30 * time.Second

// maxNote bounds a lineage note quoting an upstream's error.
const maxNote = 300

// lineage gives the update the lineage the upstream reports in its
// status.json for the snapshot the run installed (docs/protocol.md,
// section 9). It reads status.json once per run that installed a
// snapshot, never on a no-op poll — or takes the read statusAhead started
// while the snapshot was copied, if that one holds the lineage of the
// installed snapshot; nothing it finds there fails the run (the lineage
// then starts here, with a note saying why).
func (s *syncRun) lineage(ctx context.Context) {
	n, _ := s.u.Installed()
	if n == 0 {
		return
	}
	b, hops, ok := s.ahead.take(n)
	var err, refused error
	if !ok {
		rctx, cancel := context.WithTimeout(ctx, statusTimeout)
		defer cancel()
		if b, err = s.up.FetchStatus(rctx); err == nil && b != nil {
			if hops, refused = export.DecodeLineage(b); refused != nil {
				hops = nil
			}
		}
	}
	up := s.up.String()
	note := ""
	switch {
	case err != nil:
		note = "could not read the status.json of the upstream " + up + ": " + err.Error()
	case b == nil:
		note = "the upstream " + up + " serves no status.json (or one over 1 MiB); the lineage starts here"
	case refused != nil:
		note = "the lineage in the status.json of the upstream " + up + " was refused: " + refused.Error()
	}
	if len(note) > maxNote {
		note = note[:maxNote] + "…"
	}
	if note != "" {
		s.opt.Log.Warn("upstream lineage unknown", "why", note)
	}
	s.u.SetUpstreamLineage(hops, note)
}

// statusAhead is a read of the upstream's status.json that a sync starts
// as it starts copying a snapshot, from an upstream whose reads overlap
// (transport.Overlapping), so that the lineage costs no round trip after
// the flip. An upstream that triggers its mirrors has written its
// status.json before it sends the trigger, so the read holds the lineage
// of the snapshot being copied; one read too early (a poll that saw the
// upstream's seq/end before its status.json) is read again by lineage.
type statusAhead struct {
	done   chan struct{}
	b      []byte
	err    error
	cancel context.CancelFunc
}

// readStatusAhead starts a statusAhead if the upstream's reads overlap
// (and stops one started before).
func (s *syncRun) readStatusAhead(ctx context.Context) {
	if !overlaps(s.up) {
		return
	}
	s.ahead.stop()
	ctx, cancel := context.WithTimeout(ctx, statusTimeout)
	a := &statusAhead{done: make(chan struct{}), cancel: cancel}
	up := s.up
	go func() {
		defer close(a.done)
		a.b, a.err = up.FetchStatus(ctx)
	}()
	s.ahead = a
}

// take waits for the read and returns it, with its lineage, if it ends
// with snapshot n; ok is false if there is no such read.
func (a *statusAhead) take(n uint64) (b []byte, hops []export.Hop, ok bool) {
	if a == nil {
		return nil, nil, false
	}
	<-a.done
	if a.err != nil || a.b == nil {
		return nil, nil, false
	}
	hops, err := export.DecodeLineage(a.b)
	if err != nil || len(hops) == 0 || hops[len(hops)-1].Snapshot != n {
		return nil, nil, false
	}
	return a.b, hops, true
}

// stop ends the read (if any) and waits for it.
func (a *statusAhead) stop() {
	if a != nil {
		a.cancel()
		<-a.done
	}
}

// recordChoice records in ROOT/.upstream what the choice among several
// upstreams found about snapshot n, which ROOT serves (the chosen
// upstream at seq/end e1, and its peers), unless the record already says
// exactly that: a no-op poll writes nothing.
func (s *syncRun) recordChoice(n, e1 uint64) {
	st, ok := readUpstreamState(s.root)
	if ok && st.Upstream == s.up.String() && st.Snapshot == n && st.UpstreamSnapshot == n && st.UpstreamEnd == e1 && slices.Equal(st.Peers, s.peers) {
		return
	}
	recordUpstream(s.root, s.up.String(), n, e1, s.peers, s.opt)
}
