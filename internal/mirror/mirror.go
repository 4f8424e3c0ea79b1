package mirror

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"time"

	"github.com/seqmirror/seqmirror/internal/export"
	"github.com/seqmirror/seqmirror/internal/filter"
	"github.com/seqmirror/seqmirror/internal/retry"
	"github.com/seqmirror/seqmirror/internal/sign"
	"github.com/seqmirror/seqmirror/internal/transport"
	"github.com/seqmirror/seqmirror/internal/tree"
	"github.com/seqmirror/seqmirror/seqfile"
)

var (
	// ErrRollback means the upstream serves an older snapshot than ROOT.
	ErrRollback = errors.New("upstream serves an older snapshot")
	// ErrTooManyDeletes means the new snapshot deletes more files than allowed.
	ErrTooManyDeletes = errors.New("new snapshot deletes too many files")
	// ErrUpstreamBusy means the upstream kept changing under every attempt.
	ErrUpstreamBusy = errors.New("upstream kept changing")
	// ErrNoSnapshot means the upstream serves no snapshot yet.
	ErrNoSnapshot = errors.New("upstream serves no snapshot")
	// ErrServedDamaged means ROOT's own served snapshot is damaged: its
	// manifest cannot be read or is bad, or the snapshot with its number is
	// not what the upstream's manifest says. Nothing was changed.
	ErrServedDamaged = errors.New("served snapshot is damaged")
	// ErrOptions means Options hold a value that makes no sense.
	ErrOptions = errors.New("invalid mirror options")
)

// Options tunes Sync and SyncClassic. Every field is taken as given: start
// from DefaultOptions and change what differs.
type Options struct {
	AllowRollback bool          // follow an upstream that went back to an older snapshot
	MaxDelete     float64       // refuse a snapshot deleting more than this share of the files (0..1; 0: any delete; 1: no limit)
	Force         bool          // ignore MaxDelete
	Keep          int           // snapshots to keep (at least 1)
	MinAge        time.Duration // grace period before pruning a superseded snapshot
	Retries       int           // attempts after the first when the upstream moves or does not answer (0: none)
	Backoff       time.Duration // first retry delay, doubled each time
	Rounds        int           // snapshots to follow in one run when the upstream keeps publishing (at least 1)
	Workers       int           // parallel link, fetch and hash workers (at least 1)
	LockWait      time.Duration // wait this long for a lock another run holds (0: fail at once)
	Name, Address string        // this server's hop in the lineage (export.ExtendLineage)
	// Filter, if it has rules, makes ROOT a partial mirror: it serves
	// only what Filter keeps of what the upstream serves (partial.go).
	Filter *filter.Filter
	Log    *slog.Logger // nil: discard
	Now    func() time.Time
	// BeforeFlip, if set, runs just before current flips (tests).
	BeforeFlip func(n uint64)
	// Served, if set, runs once a run that installed snapshot n is over,
	// before the prune (export.UpdateOptions.Served): the daemon forwards
	// its triggers from there.
	Served func(n uint64)
	// Target, if not 0, is the snapshot the run is after (a trigger's):
	// once it has made Target or a later snapshot served it stops there,
	// instead of polling the upstream once more for a newer one, which
	// costs a round trip before the run is over (an upstream that triggers
	// sends the next trigger for a newer one). 0: it follows the upstream
	// until it serves nothing newer.
	Target uint64
	// Trust, if set, are the master's keys: every snapshot's signature and
	// every timestamp is verified before anything is installed
	// (signatures). nil: nothing is verified, signatures are copied as
	// they are, and ROOT/.signed says unsigned.
	Trust *sign.Trust

	// lim bounds what one build holds in memory; the zero value means
	// defaultLimits (in-package tests shrink it, see export_test.go).
	lim limits
}

// limits bound the records a build keeps: pass 1 keeps at most planCap
// links and symlinks and dirCap directories for pass 2 (about 100 bytes
// each), and one Upstream.Fetch call gets at most fetchChunk files.
type limits struct{ planCap, dirCap, fetchChunk int }

func defaultLimits() limits { return limits{planCap: 1 << 18, dirCap: 1 << 14, fetchChunk: 16384} }

// DefaultOptions are mirror-sync's defaults.
func DefaultOptions() Options {
	return Options{
		MaxDelete: 0.5,
		Keep:      3,
		Retries:   4,
		Backoff:   2 * time.Second,
		Rounds:    3,
		Workers:   tree.Workers(),
		Log:       slog.New(slog.DiscardHandler),
		Now:       time.Now,
		lim:       defaultLimits(),
	}
}

// check refuses options that make no sense; a nil Log discards, a nil Now
// is time.Now.
func (o *Options) check() error {
	switch {
	case o.Keep < 1:
		return fmt.Errorf("%w: Keep must be at least 1 (the served snapshot is always kept), got %d", ErrOptions, o.Keep)
	case o.Rounds < 1:
		return fmt.Errorf("%w: Rounds must be at least 1, got %d", ErrOptions, o.Rounds)
	case o.Workers < 1:
		return fmt.Errorf("%w: Workers must be at least 1, got %d", ErrOptions, o.Workers)
	case o.Retries < 0 || o.Backoff < 0:
		return fmt.Errorf("%w: Retries and Backoff must not be negative, got %d and %s", ErrOptions, o.Retries, o.Backoff)
	case !(o.MaxDelete >= 0 && o.MaxDelete <= 1): // also refuses NaN
		return fmt.Errorf("%w: MaxDelete is a share from 0 to 1, got %g", ErrOptions, o.MaxDelete)
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.lim == (limits{}) {
		o.lim = defaultLimits()
	}
	return nil
}

// tooManyDeletes applies the delete guard to snapshot n, which deletes del
// of the total files of the snapshot it replaces.
func (o *Options) tooManyDeletes(n uint64, del, total int) error {
	if o.Force || o.MaxDelete >= 1 || total == 0 || float64(del) <= o.MaxDelete*float64(total) {
		return nil
	}
	return fmt.Errorf("%w: snapshot %d deletes %d of %d files (more than the %.0f%% allowed)", ErrTooManyDeletes, n, del, total, o.MaxDelete*100)
}

// policy is the retry policy of a copy from the upstream.
func (o *Options) policy(log func(why string, attempt int, wait time.Duration)) retry.Policy {
	return retry.Policy{Retries: o.Retries, Backoff: o.Backoff, Retryable: retryable, OnRetry: log}
}

// Result reports what Sync did.
type Result struct {
	Snapshot uint64   `json:"snapshot"` // served when Sync returned
	Previous uint64   `json:"previous"`
	Changed  bool     `json:"changed"` // false: already level, nothing written
	Entries  int      `json:"entries"` // records in the manifest
	Linked   int      `json:"linked"`
	Fetched  int      `json:"fetched"`
	Bytes    int64    `json:"bytes_fetched"`
	Deleted  int      `json:"deleted"`
	Attempts int      `json:"attempts"`
	Pruned   []uint64 `json:"pruned,omitempty"`
	// Filter is the filter chain of the snapshot installed (partial
	// mirrors: the upstream's, then the own filter); Missing how many
	// entries the own filter wants that the upstream does not carry.
	Filter  string `json:"filter,omitempty"`
	Missing int    `json:"missing,omitempty"`
	// UpstreamBehind: the upstream serves an older snapshot and is behind,
	// not rolled back (see behind); nothing was changed.
	UpstreamBehind bool `json:"upstream_behind,omitempty"`
	// Upstream is the upstream the run followed; Upstreams, with several,
	// what it found at each (in priority order).
	Upstream  string                  `json:"upstream,omitempty"`
	Upstreams []export.PolledUpstream `json:"upstreams,omitempty"`
}

// logServing logs the snapshot a run now serves.
func (r *Result) logServing(log *slog.Logger) {
	log.Info("now serving", "snapshot", r.Snapshot, "entries", r.Entries, "linked", r.Linked, "fetched", r.Fetched, "bytes", r.Bytes, "deleted", r.Deleted)
}

// syncRun is one Sync: the update of ROOT, what it serves so far and
// what it last saw of the upstream.
type syncRun struct {
	root    *export.Root
	up      transport.Upstream   // the upstream followed
	ups     []transport.Upstream // all of them, in priority order (several: failover.go)
	opt     Options
	u       *export.Update
	res     Result
	seen    uint64 // what the upstream served when last read, at seenAt
	seenAt  time.Time
	lastEnd uint64        // the upstream's seq/end when it served res.Snapshot
	vouched bool          // the last poll's seq/end was the one .upstream records (recorded)
	rec     upstreamState // that record, when vouched
	// With several upstreams: what the poll found at each (polled), the
	// ones level with the chosen one (peers), and whether the choice
	// already compared the chosen snapshot with ROOT's (chose).
	polled []export.PolledUpstream
	peers  []peerState
	chose  bool
	// rebuild: the served snapshot is built again (its filter chain or
	// its upstream's subset changed); noBase: and nothing is linked from
	// it (a replace of it was cut short).
	rebuild, noBase bool
	ahead           *statusAhead // the upstream's status.json, read as the copy starts (lineage.go)
	// mans are the manifests the run fetched, for the build to take
	// (ahead.go); startOnce starts the update when one is fetched ahead.
	mans      manifests
	startOnce sync.Once
	startErr  error
}

// Sync brings root up to the snapshot up serves.
func Sync(ctx context.Context, root *export.Root, up transport.Upstream, opt Options) (res Result, err error) {
	return SyncFrom(ctx, root, []transport.Upstream{up}, opt)
}

// SyncFrom brings root up to the snapshot the failover rule (choose) picks
// among ups, given in priority order. With one upstream it is Sync, and
// makes no request Sync does not.
func SyncFrom(ctx context.Context, root *export.Root, ups []transport.Upstream, opt Options) (res Result, err error) {
	if err := opt.check(); err != nil {
		return res, err
	}
	if len(ups) == 0 {
		return res, fmt.Errorf("%w: no upstream", ErrOptions)
	}
	for _, up := range ups {
		if err := checkUpstream(root, up); err != nil {
			return res, err
		}
	}
	u, err := begin(ctx, root, ups[0], opt)
	if err != nil {
		return res, err
	}
	s := &syncRun{root: root, up: ups[0], ups: ups, opt: opt, u: u, mans: manifests{root: root}}
	if len(ups) > 1 {
		u.SetUpstream("") // until one is chosen: a failure keeps the recorded one
	}
	defer func() {
		s.ahead.stop()
		s.mans.close()
		// The poll record, on every outcome, before Done records a failure.
		p := export.Poll{Upstream: s.up.String(), UpstreamSnapshot: s.seen, Snapshot: s.res.Snapshot, Upstreams: s.polled}
		root.RecordPollOutcome(p, s.seenAt, opt.Log)
		if len(ups) == 1 || s.chose {
			s.res.Upstream = s.up.String()
		}
		s.res.Upstreams = s.polled
		s.res.Pruned, err = u.Done(err)
		res = s.res
	}()
	cur := u.Served()
	if cur > 0 && !root.Complete(cur) {
		opt.Log.Warn("current points to an incomplete snapshot; rebuilding from the upstream, linking from the retained complete snapshots", "snapshot", cur)
		cur = 0
	}
	if cur > 0 && root.Replacing() == cur {
		opt.Log.Warn("a replace of the served snapshot was cut short; building it again from the upstream", "snapshot", cur)
		s.noBase = true
	}
	s.res.Previous, s.res.Snapshot = cur, cur
	if err := s.follow(ctx); err != nil {
		return s.res, err
	}
	if !s.res.Changed {
		if !s.res.UpstreamBehind {
			opt.Log.Info("already serving the upstream's snapshot", "snapshot", s.res.Snapshot)
		}
		return s.res, nil
	}
	s.lineage(ctx)
	n, e1, up := s.res.Snapshot, s.lastEnd, s.up.String()
	u.OnDone(func() error { recordUpstream(root, up, n, e1, s.peers, opt); return nil })
	return s.res, nil
}

// begin starts the update of root from up.
func begin(ctx context.Context, root *export.Root, up transport.Upstream, opt Options) (*export.Update, error) {
	u, err := root.Begin(ctx, export.UpdateOptions{
		Upstream: up.String(), Name: opt.Name, Address: opt.Address, Filter: opt.Filter.Rules(), LockWait: opt.LockWait, Keep: opt.Keep, MinAge: opt.MinAge,
		BeforeFlip: opt.BeforeFlip, Served: opt.Served, Now: opt.Now, Log: opt.Log,
	})
	if errors.Is(err, export.ErrBadCurrent) {
		err = fmt.Errorf("%w: fix or remove %s, then sync again", err, root.Path(export.CurrentName))
	}
	return u, err
}

// follow makes the snapshot the upstream serves served, following it for
// up to opt.Rounds snapshots while it keeps publishing.
func (s *syncRun) follow(ctx context.Context) error {
	for round := 0; round < s.opt.Rounds; round++ {
		more, err := s.round(ctx)
		if err != nil || !more {
			return err
		}
	}
	return nil
}

// round polls the upstream and, if it serves another snapshot, makes that
// one served. It reports whether to poll again.
func (s *syncRun) round(ctx context.Context) (bool, error) {
	e1, n, err := s.poll(ctx)
	if s.res.Changed && ctx.Err() != nil {
		return false, nil // stopped after serving a new snapshot: complete that one
	}
	if err != nil {
		return false, err
	}
	if n == 0 {
		return false, fmt.Errorf("%w: %s", ErrNoSnapshot, s.up)
	}
	s.seen, s.seenAt = n, s.opt.Now()
	if n == s.res.Snapshot {
		again, err := s.level(ctx, n, e1)
		switch {
		case err != nil:
			return false, err
		case !again && s.res.Changed:
			return false, nil
		case !again:
			return false, s.refreshTimestamp(ctx, n, e1)
		}
		s.rebuild = true // the same snapshot, with another subset
	}
	if n < s.res.Snapshot && !s.opt.AllowRollback && !s.rebuild {
		if why, ok := behind(s.root, s.up.String(), e1); ok && !s.res.Changed {
			s.opt.Log.Warn("upstream is behind this mirror; nothing to do", "upstream", s.up.String(), "serves", n, "snapshot", s.res.Snapshot, "why", why)
			s.res.UpstreamBehind = true
			return false, nil
		}
		return false, fmt.Errorf("%w: %s serves snapshot %d, %s serves %d", ErrRollback, s.up, n, s.root.Dir, s.res.Snapshot)
	}
	if err := s.u.Start(); err != nil {
		return false, err
	}
	st, err := s.syncSnapshot(ctx, n, e1)
	s.res.Attempts += st.Attempts
	if err != nil && s.res.Changed && ctx.Err() != nil {
		// Stopped while following a newer snapshot: complete the one
		// served, without the newer one's partial copy.
		s.opt.Log.Warn("stopped while copying a newer snapshot", "snapshot", s.res.Snapshot, "err", err)
		return false, s.u.Discard()
	}
	if err != nil {
		return false, err
	}
	s.res.Snapshot, s.res.Changed, s.rebuild, s.noBase = st.Snapshot, true, false, false
	s.res.Filter, s.res.Missing = st.Filter, st.Missing
	s.lastEnd = e1
	s.res.Entries, s.res.Deleted = st.Entries, st.Deleted
	s.res.Linked += st.Linked
	s.res.Fetched += st.Fetched
	s.res.Bytes += st.Bytes
	return s.opt.Target == 0 || s.res.Snapshot < s.opt.Target, nil
}

// poll reads the upstream's seq/end and current; with several upstreams,
// the first round polls them all and chooses one (chooseUpstream), which
// the later rounds follow.
func (s *syncRun) poll(ctx context.Context) (e1, n uint64, err error) {
	if len(s.ups) == 1 || s.chose {
		return poll(ctx, s.up, s.opt, true, func(e1 uint64) (uint64, bool) {
			n, ok := s.recorded(e1)
			if !ok {
				s.fetchAhead(ctx, s.up) // seq/end is read: the manifest may come beside current
			}
			return n, ok
		})
	}
	e1, n, err = s.chooseUpstream(ctx)
	s.chose = err == nil
	return e1, n, err
}

// recorded vouches for the snapshot ROOT serves when the upstream's
// seq/end is still e1, the one recorded when that snapshot was last synced
// or checked from this upstream: the upstream has completed no update since,
// so it serves the same snapshot. Only on the first round: a round after a
// new snapshot reads current again.
func (s *syncRun) recorded(e1 uint64) (uint64, bool) {
	if s.vouched = false; s.res.Changed {
		return 0, false
	}
	st, ok := readUpstreamState(s.root)
	n := s.res.Snapshot
	s.vouched = ok && n != 0 && st.Upstream == s.up.String() && st.Snapshot == n && st.UpstreamSnapshot == n && st.UpstreamEnd == e1 &&
		!s.noBase && !filterChanged(s.root, st, ok, n, s.opt.Filter)
	s.rec = st
	return n, s.vouched
}

// level handles an upstream serving the snapshot n ROOT serves: the O(1)
// no-op, once the manifests are known to be the same (checkSame; recorded
// already read the record that vouches for them when s.vouched). again
// says to build n anew all the same: a partial mirror's filter chain or
// its upstream's subset changed.
func (s *syncRun) level(ctx context.Context, n, e1 uint64) (again bool, err error) {
	switch {
	case s.res.Changed:
	case s.noBase:
		again = true
	case s.chose:
		st, ok := readUpstreamState(s.root)
		if again = filterChanged(s.root, st, ok, n, s.opt.Filter); !again {
			s.recordChoice(n, e1) // choose compared the manifests
		}
	case !s.vouched:
		again, err = s.checkSame(ctx, n, e1)
	}
	if !again {
		s.lastEnd = e1
	}
	return again, err
}

// syncSnapshot makes snapshot n (first seen when upstream end was e1)
// served, copying it again (after a wait) while the upstream moves under
// the copy.
func (s *syncRun) syncSnapshot(ctx context.Context, n, e1 uint64) (Result, error) {
	res := Result{Snapshot: s.res.Snapshot}
	policy := s.opt.policy(func(why string, attempt int, wait time.Duration) {
		s.opt.Log.Warn("upstream moved or did not answer; retrying the copy after a wait", "snapshot", n, "why", why, "attempt", attempt, "wait", wait)
	})
	s.readStatusAhead(ctx)
	err := retry.Do(ctx, policy, func(attempt int) error {
		res.Attempts = attempt + 1
		if attempt > 0 {
			var err error
			if n, e1, err = s.reread(ctx, n); err != nil {
				return final{err}
			}
		}
		r, err := s.buildOnce(ctx, n, e1)
		if err == nil {
			r.Attempts = res.Attempts
			res = r
			return nil
		}
		if _, again := retryable(err); again {
			if berr := checkBroken(ctx, s.up, n, e1, err); berr != nil {
				return berr
			}
			if derr := s.u.Discard(); derr != nil {
				return final{derr}
			}
		}
		return err
	})
	var ex *retry.Exhausted
	if errors.As(err, &ex) {
		return res, fmt.Errorf("%w: snapshot %d from %s: %s (gave up after %d attempts; try again later)", ErrUpstreamBusy, n, s.up, ex.Why, ex.Attempts)
	}
	return res, err
}

// reread reads the upstream again before another attempt at snapshot n:
// its seq/end, and the snapshot it serves if newer than n.
func (s *syncRun) reread(ctx context.Context, n uint64) (uint64, uint64, error) {
	e1, err := s.up.Seq(ctx, seqfile.End)
	if err != nil {
		return n, 0, err
	}
	if nn, _, err := s.up.Current(ctx); err == nil && nn > n {
		n = nn
	}
	return n, e1, nil
}

// final marks an error that ends the retries whatever it wraps (a failure
// to read the upstream between attempts, or to discard a copy).
type final struct{ err error }

func (f final) Error() string { return f.err.Error() }
func (f final) Unwrap() error { return f.err }

// retryable is the copies' retry.Policy.Retryable: an attempt is made
// again if the upstream moved (a *retry.Error), files vanished, or it did
// not answer.
func retryable(err error) (string, bool) {
	var f final
	switch {
	case errors.As(err, &f):
		return "", false
	case errors.Is(err, transport.ErrTimedOut):
		return "", false // the timeouts bound the whole run: do not wait again
	}
	if why, ok := retry.Reason(err); ok {
		return why, true
	}
	if errors.Is(err, transport.ErrVanished) || errors.Is(err, transport.ErrUnavailable) {
		return err.Error(), true
	}
	return "", false
}

// stillThere checks that the upstream still has snapshot n's manifest.
func stillThere(ctx context.Context, root *export.Root, up transport.Upstream, n uint64) error {
	tmp := filepath.Join(root.WorkDir(), "check.manifest")
	_ = root.FS.Remove(tmp)
	defer root.FS.Remove(tmp)
	return up.FetchManifest(ctx, n, tmp)
}
