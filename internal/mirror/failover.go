package mirror

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/seqmirror/seqmirror/internal/export"
	"github.com/seqmirror/seqmirror/internal/retry"
	"github.com/seqmirror/seqmirror/internal/transport"
	"github.com/seqmirror/seqmirror/seqfile"
)

// upstreamPoll is one upstream as a poll of several found it.
type upstreamPoll struct {
	up    transport.Upstream
	e1, n uint64 // its seq/end and the snapshot its current names
	err   error  // the poll, or the identity check, failed (state says how)
	state string // export.Polled*; "" while it is a candidate
	id    string // export.ManifestID of its snapshot n, once known
}

// chooser applies the failover rule (choose) to the polls of a run's
// upstreams, given in priority order.
type chooser struct {
	s     *syncRun
	ps    []upstreamPoll
	cur   uint64 // the snapshot ROOT serves (0: none, or torn)
	rec   upstreamState
	isRec bool
}

// pollAll polls every upstream once, in parallel, and keeps the answers
// in priority order. A round in which none answered and every failure is
// a plain unavailability is retried with the run's backoff and retries.
func (s *syncRun) pollAll(ctx context.Context) []upstreamPoll {
	var ps []upstreamPoll
	policy := retry.Policy{Retries: s.opt.Retries, Backoff: s.opt.Backoff,
		Retryable: func(err error) (string, bool) {
			return err.Error(), errors.Is(err, transport.ErrUnavailable) && !errors.Is(err, transport.ErrTimedOut)
		},
		OnRetry: func(why string, attempt int, wait time.Duration) {
			s.opt.Log.Warn("no upstream answered; retrying", "err", why, "attempt", attempt, "wait", wait)
		},
	}
	_ = retry.Do(ctx, policy, func(int) error {
		ps = make([]upstreamPoll, len(s.ups))
		var wg sync.WaitGroup
		for i, up := range s.ups {
			ps[i].up = up
			wg.Go(func() {
				p := &ps[i]
				if p.e1, p.err = up.Seq(ctx, seqfile.End); p.err == nil {
					s.fetchAhead(ctx, up)
					p.n, _, p.err = up.Current(ctx)
				}
			})
		}
		wg.Wait()
		return noneAnswered(ps)
	})
	return ps
}

// noneAnswered is nil if an upstream answered, else an error wrapping
// transport.ErrUnavailable if every upstream was unavailable (the first
// one's error otherwise), naming each upstream's failure.
func noneAnswered(ps []upstreamPoll) error {
	var why []string
	unavailable := true
	for _, p := range ps {
		if p.err == nil {
			return nil
		}
		unavailable = unavailable && errors.Is(p.err, transport.ErrUnavailable)
		why = append(why, p.up.String()+": "+p.err.Error())
	}
	if unavailable {
		return fmt.Errorf("%w: none of the %d upstreams answered (%s)", transport.ErrUnavailable, len(ps), strings.Join(why, "; "))
	}
	return fmt.Errorf("no upstream could be read: %w (and %s)", ps[0].err, strings.Join(why[1:], "; "))
}

// chooseUpstream polls every upstream and makes the one the failover rule
// picks the run's upstream; it returns that one's seq/end and snapshot.
func (s *syncRun) chooseUpstream(ctx context.Context) (e1, n uint64, err error) {
	ps := s.pollAll(ctx)
	c := &chooser{s: s, ps: ps, cur: s.res.Snapshot}
	c.markFailed()
	if err := noneAnswered(ps); err != nil {
		s.polled = report(c.ps)
		return 0, 0, err
	}
	c.rec, c.isRec = readUpstreamState(s.root)
	i, err := c.choose(ctx)
	s.polled = report(c.ps)
	if err != nil {
		return 0, 0, err
	}
	p := c.ps[i]
	s.up = p.up
	s.u.SetUpstream(p.up.String())
	s.peers = c.peers(i)
	s.opt.Log.Info("chose upstream", "upstream", p.up.String(), "serves", p.n, "of", len(ps))
	return p.e1, p.n, nil
}

// choose is the failover rule (docs/protocol.md, section 4, "Several
// upstreams"). Of the upstreams that answered and serve a snapshot, it
// picks the one that serves the highest snapshot number, the first in
// priority order among those that serve the same number; an upstream whose
// snapshot of that number has another manifest than the reference (ROOT's
// own snapshot of that number, else the one of the upstream ROOT was last
// synced from, else the first in priority) is diverged and left out, and
// so is a new upstream whose snapshot of ROOT's number (if it still has
// it) is not ROOT's. If every upstream serving the highest number is left
// out, the rule applies again to the rest. The pick may serve a lower
// snapshot than ROOT: the caller's rollback rule applies to it then.
func (c *chooser) choose(ctx context.Context) (int, error) {
	for {
		best := -1
		for i, p := range c.ps {
			if p.state == "" && (best < 0 || p.n > c.ps[best].n) {
				best = i
			}
		}
		if best < 0 {
			return -1, c.noneLeft()
		}
		n := c.ps[best].n
		i, err := c.pickAt(ctx, n)
		if err != nil {
			return -1, err
		}
		if i < 0 || !c.sameHistory(ctx, i) {
			continue
		}
		for j := range c.ps {
			if c.ps[j].state == "" {
				c.ps[j].state = export.PolledBehind
			}
		}
		c.ps[i].state = export.PolledChosen
		return i, nil
	}
}

// markFailed sets the state of the upstreams whose poll failed or that
// serve nothing.
func (c *chooser) markFailed() {
	for i := range c.ps {
		p := &c.ps[i]
		switch {
		case errors.Is(p.err, transport.ErrUnavailable):
			p.state = export.PolledUnavailable
		case p.err != nil:
			p.state = export.PolledFailed
		case p.n == 0:
			p.state = export.PolledEmpty
		}
	}
}

// pickAt checks the identity of snapshot n at every candidate serving it,
// in priority order, marking the diverged ones, and returns the first that
// has the reference's (-1 if none).
func (c *chooser) pickAt(ctx context.Context, n uint64) (int, error) {
	ref, err := c.reference(ctx, n)
	if err != nil {
		return -1, err
	}
	chosen := -1
	for i := range c.ps {
		p := &c.ps[i]
		if p.state != "" || p.n != n {
			continue
		}
		if err := c.identify(ctx, i); err != nil {
			p.state, p.err = export.PolledFailed, err
			c.s.opt.Log.Warn("could not read the upstream's manifest; leaving it out", "upstream", p.up.String(), "snapshot", n, "err", err)
			continue
		}
		if ref == "" {
			ref = p.id
		}
		if p.id != ref {
			c.diverged(i, fmt.Sprintf("its snapshot %d has another manifest than %s", n, c.refName(n)))
			continue
		}
		if chosen < 0 {
			chosen = i
		} else {
			p.state = export.PolledLevel
		}
	}
	return chosen, nil
}

// reference is the identity snapshot n must have: ROOT's own snapshot n's,
// else that of the upstream ROOT was last synced from, if it serves n;
// "" if neither (the first candidate in priority order sets it).
func (c *chooser) reference(ctx context.Context, n uint64) (string, error) {
	if c.s.root.Complete(n) {
		id, err := export.ManifestID(c.s.root.FS, c.s.root.FullManifestPath(n))
		if err != nil {
			return "", fmt.Errorf("%w: snapshot %d: %w", ErrServedDamaged, n, err)
		}
		return id, nil
	}
	for i, p := range c.ps {
		if p.state == "" && p.n == n && c.isRec && p.up.String() == c.rec.Upstream {
			if err := c.identify(ctx, i); err != nil {
				return "", nil // pickAt leaves it out; the first other one is the reference
			}
			return c.ps[i].id, nil
		}
	}
	return "", nil
}

// refName names where the reference identity of snapshot n comes from.
func (c *chooser) refName(n uint64) string {
	if c.s.root.Complete(n) {
		return c.s.root.Dir
	}
	for _, p := range c.ps {
		if p.n == n && p.id != "" && p.state != export.PolledDiverged {
			return p.up.String()
		}
	}
	return "the other upstreams"
}

// identify sets the identity of the snapshot upstream i serves: from
// ROOT/.upstream if it vouches for it (the upstream, its seq/end and the
// snapshot are the recorded ones), else by fetching its manifest.
func (c *chooser) identify(ctx context.Context, i int) error {
	p := &c.ps[i]
	if p.id != "" {
		return nil
	}
	if id, ok := c.recorded(p.up.String(), p.n, p.e1); ok {
		p.id = id
		return nil
	}
	id, err := c.s.fetchID(ctx, p.up, p.n, "choose-"+strconv.Itoa(i))
	p.id = id
	return err
}

// recorded returns the identity ROOT/.upstream records for upstream up's
// snapshot n at seq/end e1, if it does.
func (c *chooser) recorded(up string, n, e1 uint64) (string, bool) {
	if !c.isRec {
		return "", false
	}
	if c.rec.Upstream == up && c.rec.UpstreamSnapshot == n && c.rec.UpstreamEnd == e1 {
		return c.rec.Manifest, true
	}
	for _, p := range c.rec.Peers {
		if p.Upstream == up && p.UpstreamSnapshot == n && p.UpstreamEnd == e1 {
			return p.Manifest, true
		}
	}
	return "", false
}

// fetchID fetches up's manifest of snapshot n into ROOT/.work, checks it
// and returns the identity of the master's snapshot: its manifest's, or,
// for a partial snapshot (partial.go), its full manifest's, fetched and
// checked too.
func (s *syncRun) fetchID(ctx context.Context, up transport.Upstream, n uint64, name string) (string, error) {
	got, err := s.mans.get(ctx, up, n)
	if err != nil {
		return "", err
	}
	tmp, f := got.path, got.filter
	if err := checkFetched(s.root.FS, tmp, n); err != nil {
		return "", fmt.Errorf("upstream %s: %w", up, err)
	}
	if _, partial, err := f.chain(ctx, up, n); err != nil || !partial {
		if err != nil {
			return "", err
		}
		return export.ManifestID(s.root.FS, tmp)
	}
	full := filepath.Join(s.root.WorkDir(), name+export.FullExt)
	_ = s.root.FS.Remove(full)
	defer s.root.FS.Remove(full)
	if err := fetchFull(ctx, s.root, up, n, full, tmp); err != nil {
		return "", err
	}
	return export.ManifestID(s.root.FS, full)
}

// sameHistory is the guard against a new upstream that is another master:
// when candidate i serves a newer snapshot than ROOT and is not the
// upstream ROOT was last synced from, its snapshot of ROOT's number, if it
// still has it, must be ROOT's. If not, it and every candidate level with
// it are marked diverged.
func (c *chooser) sameHistory(ctx context.Context, i int) bool {
	p := c.ps[i]
	if c.cur == 0 || p.n <= c.cur || (c.isRec && c.rec.Upstream == p.up.String()) || !c.s.root.Complete(c.cur) {
		return true
	}
	theirs, err := c.s.fetchID(ctx, p.up, c.cur, "history")
	if errors.Is(err, transport.ErrVanished) {
		c.s.opt.Log.Warn("the new upstream no longer has the served snapshot; its manifest cannot be compared", "upstream", p.up.String(), "snapshot", c.cur)
		return true
	}
	ours, oerr := export.ManifestID(c.s.root.FS, c.s.root.FullManifestPath(c.cur))
	if err == nil && oerr == nil && theirs == ours {
		return true
	}
	why := fmt.Sprintf("its snapshot %d is not the one %s serves", c.cur, c.s.root.Dir)
	if err != nil {
		why = fmt.Sprintf("its snapshot %d could not be compared with the one %s serves: %v", c.cur, c.s.root.Dir, err)
	}
	for j := range c.ps {
		if j == i || (c.ps[j].n == p.n && c.ps[j].state == export.PolledLevel) {
			c.diverged(j, why)
		}
	}
	return false
}

// diverged leaves candidate i out as another master's.
func (c *chooser) diverged(i int, why string) {
	p := &c.ps[i]
	p.state = export.PolledDiverged
	p.err = fmt.Errorf("%w: %s: %s; left out", ErrDiverged, p.up, why)
	c.s.opt.Log.Warn("upstream diverged: left out", "upstream", p.up.String(), "snapshot", p.n, "why", why)
}

// noneLeft is the error when every upstream was left out: unavailable
// (every one was), diverged (one was), or the first one's failure.
func (c *chooser) noneLeft() error {
	var why []string
	for _, p := range c.ps {
		if p.state == export.PolledEmpty {
			why = append(why, p.up.String()+": serves no snapshot")
			continue
		}
		why = append(why, p.up.String()+": "+p.err.Error())
	}
	list := strings.Join(why, "; ")
	for _, p := range c.ps {
		if p.state == export.PolledDiverged {
			return fmt.Errorf("%w: no upstream left to follow (%s); nothing was changed", ErrDiverged, list)
		}
	}
	for _, p := range c.ps {
		if p.err != nil {
			return fmt.Errorf("no upstream left to follow: %w (%s)", p.err, list)
		}
	}
	return fmt.Errorf("%w: %s", ErrNoSnapshot, list)
}

// peers are the identities of the candidates level with the chosen one
// (i), for ROOT/.upstream: the next poll needs no manifest to tell them.
func (c *chooser) peers(i int) []peerState {
	var out []peerState
	for j, p := range c.ps {
		if j != i && p.state == export.PolledLevel && p.id != "" {
			out = append(out, peerState{Upstream: p.up.String(), UpstreamSnapshot: p.n, UpstreamEnd: p.e1, Manifest: p.id})
		}
	}
	return out
}

// maxPollError bounds an upstream's error in the poll record.
const maxPollError = 300

// report is the poll record's list of the upstreams.
func report(ps []upstreamPoll) []export.PolledUpstream {
	out := make([]export.PolledUpstream, len(ps))
	for i, p := range ps {
		out[i] = export.PolledUpstream{Upstream: p.up.String(), State: p.state, Snapshot: p.n}
		if p.state == "" && p.err != nil {
			out[i].State = export.PolledFailed
		}
		if p.err != nil {
			msg := p.err.Error()
			if len(msg) > maxPollError {
				msg = msg[:maxPollError] + "…"
			}
			out[i].Error = msg
		}
	}
	return out
}
