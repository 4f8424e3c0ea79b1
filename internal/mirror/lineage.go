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
// snapshot, never on a no-op poll; nothing it finds there fails the run
// (the lineage then starts here, with a note saying why).
func (s *syncRun) lineage(ctx context.Context) {
	if n, _ := s.u.Installed(); n == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, statusTimeout)
	defer cancel()
	up := s.up.String()
	b, err := s.up.FetchStatus(ctx)
	var hops []export.Hop
	note := ""
	switch {
	case err != nil:
		note = "could not read the status.json of the upstream " + up + ": " + err.Error()
	case b == nil:
		note = "the upstream " + up + " serves no status.json (or one over 1 MiB); the lineage starts here"
	default:
		if hops, err = export.DecodeLineage(b); err != nil {
			note = "the lineage in the status.json of the upstream " + up + " was refused: " + err.Error()
		}
	}
	if len(note) > maxNote {
		note = note[:maxNote] + "…"
	}
	if note != "" {
		s.opt.Log.Warn("upstream lineage unknown", "why", note)
	}
	s.u.SetUpstreamLineage(hops, note)
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
