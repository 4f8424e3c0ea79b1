package quorum

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"time"

	"github.com/seqmirror/seqmirror/internal/fsys"
	"github.com/seqmirror/seqmirror/internal/retry"
	"github.com/seqmirror/seqmirror/internal/transport"
	"github.com/spf13/afero"
)

// ErrNotReached means fewer than K mirrors served the snapshot by the
// deadline (or when the wait was interrupted). The snapshot stays
// published: nothing here can un-publish it.
var ErrNotReached = errors.New("quorum not reached")

// ErrSpec means the Spec cannot be waited for (K out of range, no target).
var ErrSpec = errors.New("bad quorum specification")

// Defaults of the zero fields of a Spec.
const (
	DefaultTimeout        = 60 * time.Second
	DefaultInterval       = 100 * time.Millisecond
	DefaultMaxInterval    = 2 * time.Second
	DefaultRequestTimeout = 10 * time.Second
)

// Spec is what Wait waits for.
type Spec struct {
	K          int      // mirrors that must serve Target (1 to len(Mirrors))
	Mirrors    []string // their addresses, in the order the Result lists them
	Target     uint64   // the snapshot the master flipped to
	ManifestID string   // export.ManifestID of the master's manifest of Target
	// Timeout bounds the whole wait (0: DefaultTimeout).
	Timeout time.Duration
	// Interval is the wait before a mirror's second check, doubled before
	// each next one up to MaxInterval (0: the defaults).
	Interval, MaxInterval time.Duration
	// RequestTimeout bounds each check of one mirror (0: the default).
	RequestTimeout time.Duration
	// Open opens a mirror's address (transport.Open with the caller's
	// options); it is called for every check, from several goroutines.
	Open func(addr string) (transport.Upstream, error)
	// FS is the local filesystem the upstreams were opened with, and
	// ScratchDir a directory on it below which Wait keeps fetched
	// manifests ("": the system's temp directory).
	FS         fsys.FS
	ScratchDir string
	Now        func() time.Time // the clock of the Result (nil: time.Now)
	Log        *slog.Logger     // nil: discard
}

// Mirror is one mirror's state at the end of the wait: what its last
// complete check found.
type Mirror struct {
	Addr     string
	Snapshot uint64        // what its current named (0: none, or not read)
	Counted  bool          // it served Target (or newer) with the master's manifest
	After    time.Duration // when it was counted, since the wait began
	Why      string        // why it does not count ("" if it does)
}

// Result is the outcome of a wait.
type Result struct {
	Wanted, Got int
	Target      uint64
	Counted     []Mirror // the mirrors that count, in Spec order
	Behind      []Mirror // the others, in Spec order: the late mirrors
	Started     time.Time
	Deadline    time.Time
	Waited      time.Duration
}

// Wait polls s.Mirrors until s.K of them serve s.Target (nil error) or
// until s.Timeout or ctx ends the wait (an error wrapping ErrNotReached,
// and ctx's cause if it was ctx). The Result is filled either way.
func Wait(ctx context.Context, s Spec) (Result, error) {
	s, err := s.withDefaults()
	if err != nil {
		return Result{}, err
	}
	dir, err := afero.TempDir(s.FS, s.ScratchDir, "quorum-")
	if err != nil {
		return Result{}, fmt.Errorf("quorum: scratch directory: %w", err)
	}
	defer s.FS.RemoveAll(dir)
	res := Result{Wanted: s.K, Target: s.Target, Started: s.Now()}
	res.Deadline = res.Started.Add(s.Timeout)
	wctx, cancel := context.WithTimeout(ctx, s.Timeout)
	defer cancel()
	states := pollAll(wctx, cancel, s, dir, res.Started)
	for _, m := range states {
		if m.Counted {
			res.Counted = append(res.Counted, m)
		} else {
			res.Behind = append(res.Behind, m)
		}
	}
	res.Got, res.Waited = len(res.Counted), s.Now().Sub(res.Started)
	switch {
	case res.Got >= s.K:
		return res, nil
	case ctx.Err() != nil:
		return res, fmt.Errorf("%w: %w", ErrNotReached, context.Cause(ctx))
	}
	return res, fmt.Errorf("%w within %s", ErrNotReached, s.Timeout)
}

func (s Spec) withDefaults() (Spec, error) {
	switch {
	case s.K < 1 || s.K > len(s.Mirrors):
		return s, fmt.Errorf("%w: %d of %d mirrors", ErrSpec, s.K, len(s.Mirrors))
	case s.Target == 0 || s.ManifestID == "" || s.Open == nil || s.FS == nil:
		return s, fmt.Errorf("%w: no snapshot, manifest identity, opener or filesystem", ErrSpec)
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&s.Timeout, DefaultTimeout)
	def(&s.Interval, DefaultInterval)
	def(&s.MaxInterval, DefaultMaxInterval)
	def(&s.RequestTimeout, DefaultRequestTimeout)
	if s.Now == nil {
		s.Now = time.Now
	}
	if s.Log == nil {
		s.Log = slog.New(slog.DiscardHandler)
	}
	return s, nil
}

// pollAll polls every mirror in its own goroutine and returns their
// states, in Spec order, once all have returned: when K counted (it then
// calls cancel to stop the others) or when ctx ended.
func pollAll(ctx context.Context, cancel context.CancelFunc, s Spec, dir string, start time.Time) []Mirror {
	type report struct {
		i int
		m Mirror
	}
	ch := make(chan report, len(s.Mirrors))
	for i, addr := range s.Mirrors {
		go func() {
			p := poller{s: s, addr: addr, manifest: fmt.Sprintf("%s/mirror-%d.manifest", dir, i), start: start}
			ch <- report{i, p.poll(ctx)}
		}()
	}
	states := make([]Mirror, len(s.Mirrors))
	got := 0
	for range s.Mirrors {
		r := <-ch
		states[r.i] = r.m
		if r.m.Counted {
			if got++; got == s.K {
				cancel()
			}
		}
	}
	return states
}

// poller polls one mirror.
type poller struct {
	s        Spec
	addr     string
	manifest string // where its manifest of Target is fetched to
	start    time.Time
}

// poll checks the mirror until it counts or ctx ends, and returns its last
// complete check (a check that ctx cut short does not replace it).
func (p poller) poll(ctx context.Context) Mirror {
	last := Mirror{Addr: p.addr, Why: "not checked: the wait ended first"}
	checked := false
	policy := retry.Policy{Retries: math.MaxInt, Backoff: p.s.Interval, MaxBackoff: p.s.MaxInterval}
	_ = retry.Do(ctx, policy, func(int) error {
		m := p.check(ctx)
		if ctx.Err() != nil && !m.Counted && checked {
			return ctx.Err() // cut short: keep the last complete check
		}
		last, checked = m, true
		if m.Counted {
			m.After = p.s.Now().Sub(p.start)
			last = m
			p.s.Log.Info("mirror serves the snapshot", "mirror", p.addr, "snapshot", m.Snapshot, "after", m.After.Round(time.Millisecond))
			return nil
		}
		p.s.Log.Debug("mirror does not count yet", "mirror", p.addr, "why", m.Why)
		return retry.Again(m.Why)
	})
	return last
}
