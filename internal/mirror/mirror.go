package mirror

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/seqmirror/seqmirror/internal/export"
	"github.com/seqmirror/seqmirror/internal/fsys"
	"github.com/seqmirror/seqmirror/internal/transport"
	"github.com/seqmirror/seqmirror/internal/tree"
	"github.com/seqmirror/seqmirror/manifest"
	"github.com/seqmirror/seqmirror/seqfile"
	"github.com/seqmirror/seqmirror/snapshot"
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
)

// Options tunes Sync. The zero value is usable.
type Options struct {
	AllowRollback bool          // follow an upstream that went back to an older snapshot
	MaxDelete     float64       // refuse a snapshot deleting more than this share of files (0..1; default 0.5; 1 = no limit)
	Force         bool          // ignore MaxDelete
	Keep          int           // snapshots to keep (default 3)
	MinAge        time.Duration // grace period before pruning a superseded snapshot
	Retries       int           // attempts after the first when the upstream moves (0: default 4; negative: none)
	Backoff       time.Duration // first retry delay, doubled each time (default 2s)
	Rounds        int           // snapshots to follow in one run when the upstream keeps publishing (default 3)
	Workers       int
	LockWait      time.Duration // wait this long for a lock another run holds (0: fail at once)
	Log           *slog.Logger
	Now           func() time.Time
	// BeforeFlip, if set, runs just before current flips (tests).
	BeforeFlip func(n uint64)
}

func (o *Options) defaults() {
	if o.MaxDelete == 0 {
		o.MaxDelete = 0.5
	}
	if o.Keep == 0 {
		o.Keep = 3
	}
	if o.Retries == 0 {
		o.Retries = 4
	} else if o.Retries < 0 {
		o.Retries = 0
	}
	if o.Backoff == 0 {
		o.Backoff = 2 * time.Second
	}
	if o.Rounds == 0 {
		o.Rounds = 3
	}
	if o.Workers == 0 {
		o.Workers = tree.Workers()
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
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
	// UpstreamBehind: the upstream serves an older snapshot and is behind,
	// not rolled back (see behind); nothing was changed.
	UpstreamBehind bool `json:"upstream_behind,omitempty"`
}

// Sync brings root up to the snapshot up serves.
func Sync(ctx context.Context, root *export.Root, up transport.Upstream, opt Options) (res Result, err error) {
	opt.defaults()
	if err := checkUpstream(root, up); err != nil {
		return res, err
	}
	lock, cur, err := lockRoot(ctx, root, opt.LockWait)
	if err != nil {
		return res, err
	}
	defer lock.Unlock()
	defer root.RecordOutcome(up.String(), &err, opt.Now, opt.Log)
	var seen uint64 // what the upstream served when last read, at seenAt
	var seenAt time.Time
	defer func() { root.RecordPollOutcome(up.String(), seen, seenAt, res.Snapshot, opt.Log) }()
	if cur > 0 && !root.Complete(cur) {
		opt.Log.Warn("current points to an incomplete snapshot; rebuilding from the upstream, linking from the retained complete snapshots", "snapshot", cur)
		cur = 0
	}
	res.Previous, res.Snapshot = cur, cur
	// Always: a killed run may have left work files, temp files or an orphan
	// half-pruned snapshot even when there is nothing to sync now.
	if err := root.Cleanup(); err != nil {
		return res, err
	}
	var begin, lastEnd uint64
	for round := 0; round < opt.Rounds; round++ {
		e1, n, err := poll(ctx, up, opt, true)
		if res.Changed && ctx.Err() != nil {
			break // stopped after serving a new snapshot: complete that one
		}
		if err != nil {
			return res, err
		}
		if n == 0 {
			return res, fmt.Errorf("%w: %s (publish there first)", ErrNoSnapshot, up)
		}
		seen, seenAt = n, opt.Now()
		if n == res.Snapshot {
			if !res.Changed {
				// Level by number: the O(1) no-op, once the manifests are
				// known to be the same (checkSame).
				if err := checkSame(ctx, root, up, n, e1, opt); err != nil {
					return res, err
				}
			}
			lastEnd = e1
			break
		}
		if n < res.Snapshot && !opt.AllowRollback {
			if why, ok := behind(root, up.String(), e1); ok && !res.Changed {
				opt.Log.Warn("upstream is behind this mirror; nothing to do", "upstream", up.String(), "serves", n, "snapshot", res.Snapshot, "why", why)
				res.UpstreamBehind = true
				break
			}
			return res, fmt.Errorf("%w: %s serves snapshot %d, %s serves %d; pass --allow-rollback to follow it", ErrRollback, up, n, root.Dir, res.Snapshot)
		}
		if begin == 0 {
			if begin, err = seqfile.StartUpdate(root.FS, root.SeqDir()); err != nil {
				return res, err
			}
		}
		st, err := syncSnapshot(ctx, root, up, n, e1, res.Snapshot, opt)
		res.Attempts += st.Attempts
		if err != nil && res.Changed && ctx.Err() != nil {
			// Stopped while following a newer snapshot: complete the one
			// served (Cleanup drops the newer one's partial copy).
			opt.Log.Warn("stopped while copying a newer snapshot", "snapshot", res.Snapshot, "err", err)
			if err := root.Cleanup(); err != nil {
				return res, err
			}
			break
		}
		if err != nil {
			return res, err
		}
		res.Snapshot, res.Changed = st.Snapshot, true
		lastEnd = e1
		res.Entries, res.Deleted = st.Entries, st.Deleted
		res.Linked += st.Linked
		res.Fetched += st.Fetched
		res.Bytes += st.Bytes
	}
	if !res.Changed {
		if !res.UpstreamBehind {
			opt.Log.Info("already serving the upstream's snapshot", "snapshot", res.Snapshot)
		}
		// A run killed after its flip left begin > end: repair it.
		settled, err := root.Settle()
		if err != nil {
			return res, err
		}
		if !settled {
			err = root.ClearFailure(up.String())
		} else {
			opt.Log.Info("completed the counters of an interrupted run", "snapshot", res.Snapshot)
			err = root.RecordStatus(up.String())
		}
		if err != nil {
			return res, err
		}
		res.Pruned, err = root.PruneIdle(up.String(), opt.Keep, opt.MinAge, opt.Now())
		return res, err
	}
	res.Pruned, err = root.Finish(begin, up.String(), opt.Keep, opt.MinAge, opt.Now())
	if err == nil {
		recordUpstream(root, up.String(), res.Snapshot, lastEnd, opt)
	}
	return res, err
}

// lockRoot creates root's directories if needed, takes its writer lock and
// returns the snapshot it serves.
func lockRoot(ctx context.Context, root *export.Root, wait time.Duration) (*export.Lock, uint64, error) {
	if err := root.Init(); err != nil {
		return nil, 0, err
	}
	lock, err := root.LockWait(ctx, wait)
	if err != nil {
		return nil, 0, err
	}
	cur, err := root.Current()
	if err != nil {
		lock.Unlock()
		return nil, 0, fmt.Errorf("%w: fix or remove %s, then sync again", err, root.Path(export.CurrentName))
	}
	return lock, cur, nil
}

// syncSnapshot makes snapshot n (first seen when upstream end was e1) served.
func syncSnapshot(ctx context.Context, root *export.Root, up transport.Upstream, n, e1, cur uint64, opt Options) (Result, error) {
	res := Result{Snapshot: cur}
	backoff := opt.Backoff
	for attempt := 0; ; attempt++ {
		res.Attempts++
		// recheck is step 5 of the protocol: once nothing more comes from
		// the upstream, re-read its begin. If it moved, the upstream started
		// an update after we read end; our copy is still good if snapshot n
		// is intact (its files all verified), so make sure it was not pruned
		// or replaced under us. buildOnce runs it as soon as its last fetch
		// is done (beside the local links), and flips only if it passes.
		recheck := func() error {
			b2, err := up.Seq(ctx, seqfile.Begin)
			if err != nil || b2 == e1 {
				return err
			}
			now, _, err := up.Current(ctx)
			if err != nil {
				return err
			}
			if now < n && !opt.AllowRollback {
				return &errMoved{fmt.Sprintf("upstream went back to snapshot %d during the copy", now)}
			}
			if err := stillThere(ctx, root, up, n); err != nil {
				return &errMoved{err.Error()}
			}
			return nil
		}
		r, err := buildOnce(ctx, root, up, n, cur, opt, recheck)
		retry, again := retryable(err)
		if again {
			if berr := checkBroken(ctx, up, n, e1, err); berr != nil {
				return res, berr
			}
		}
		switch {
		case again:
		case err != nil:
			return res, err
		default:
			r.Attempts = res.Attempts
			return r, nil
		}
		if err := fsys.RemoveAll(root.FS, root.WorkDir()); err != nil {
			return res, fmt.Errorf("discard the copy: %w", err)
		}
		if err := root.FS.MkdirAll(root.WorkDir(), 0o755); err != nil {
			return res, fmt.Errorf("discard the copy: %w", err)
		}
		if attempt >= opt.Retries {
			return res, fmt.Errorf("%w: snapshot %d from %s: %s (gave up after %d attempts; try again later)", ErrUpstreamBusy, n, up, retry, attempt+1)
		}
		opt.Log.Warn("upstream moved or did not answer; retrying the copy after a wait", "snapshot", n, "why", retry, "attempt", attempt+1, "wait", backoff)
		select {
		case <-ctx.Done():
			return res, ctx.Err()
		case <-time.After(backoff):
		}
		backoff *= 2
		// Re-read the upstream: it may serve a newer snapshot by now.
		if e1, err = up.Seq(ctx, seqfile.End); err != nil {
			return res, err
		}
		if nn, _, err := up.Current(ctx); err == nil && nn > n {
			n = nn
		}
	}
}

// stillThere checks that the upstream still has snapshot n's manifest.
func stillThere(ctx context.Context, root *export.Root, up transport.Upstream, n uint64) error {
	tmp := filepath.Join(root.WorkDir(), "check.manifest")
	_ = root.FS.Remove(tmp)
	defer root.FS.Remove(tmp)
	if err := up.FetchManifest(ctx, n, tmp); err != nil {
		return err
	}
	return nil
}

// upstreamManifest opens the fetched manifest of snapshot n for one
// streaming pass; errors are worded as "manifest of snapshot N: ...".
type upstreamManifest struct {
	r *manifest.Reader
	f io.Closer
	n uint64
}

func openUpstreamManifest(f fsys.FS, p string, n uint64) (*upstreamManifest, error) {
	h, err := f.Open(p)
	if err != nil {
		return nil, err
	}
	mr, err := manifest.NewReader(h)
	if err != nil {
		h.Close()
		return nil, fmt.Errorf("manifest of snapshot %d: %w", n, err)
	}
	return &upstreamManifest{r: mr, f: h, n: n}, nil
}

func (m *upstreamManifest) Next() (manifest.Entry, error) {
	e, err := m.r.Next()
	if err != nil && err != io.EOF {
		err = fmt.Errorf("manifest of snapshot %d: %w", m.n, err)
	}
	return e, err
}

// finish checks the snapshot number once every record has been read.
func (m *upstreamManifest) finish() error {
	if m.r.Snapshot() != m.n {
		return fmt.Errorf("manifest of snapshot %d: %w: it records snapshot %d", m.n, manifest.ErrCorrupt, m.r.Snapshot())
	}
	return nil
}

func (m *upstreamManifest) Close() error { return m.f.Close() }

// checkUpstreamManifest validates the whole manifest at p in one streaming pass.
func checkUpstreamManifest(f fsys.FS, p string, n uint64) (int, error) {
	m, err := openUpstreamManifest(f, p, n)
	if err != nil {
		return 0, err
	}
	defer m.Close()
	count := 0
	for {
		_, err := m.Next()
		if err == io.EOF {
			return count, m.finish()
		}
		if err != nil {
			return 0, err
		}
		count++
	}
}

// tagged remembers the error its iterator returned, so a Diff over two
// streams can tell which one failed.
type tagged struct {
	it  manifest.Iterator
	err error
}

func (t *tagged) Next() (manifest.Entry, error) {
	e, err := t.it.Next()
	if err != nil && err != io.EOF {
		t.err = err
	}
	return e, err
}

// newAndOld opens the fetched manifest of n and (if cur > 0) the served
// manifest of cur for one Diff pass. Callers close both.
func newAndOld(root *export.Root, manPath string, n, cur uint64) (*upstreamManifest, *export.ManifestStream, error, error) {
	nm, err := openUpstreamManifest(root.FS, manPath, n)
	if err != nil {
		return nil, nil, err, nil
	}
	if cur == 0 {
		return nm, nil, nil, nil
	}
	om, err := root.OpenManifest(cur)
	if err != nil {
		nm.Close()
		return nil, nil, nil, err
	}
	return nm, om, nil, nil
}

// plan is what pass 1 learns: counts for the delete guard and, when they
// are few enough to hold, the directories to make, the files to fetch and
// the files and symlinks to make, so that pass 2 need not read the
// manifests again.
type plan struct {
	entries int   // records in the upstream's manifest
	del     int   // files of the base snapshot the upstream no longer has
	total   int   // files of the base snapshot (served, unless torn)
	removed int   // records of the base snapshot not in the upstream's
	files   int   // file records in the upstream's manifest
	bytes   int64 // and their total size
	// dirs lists the directories while there are at most dirCap of them
	// (dirsKept); over that, the directory passes read the manifest again.
	dirs     []manifest.Entry
	dirsKept bool
	// fetch lists the new and changed files while there are at most
	// fetchChunk of them; nil over that (pass 2 streams them in chunks).
	fetch []manifest.Entry
	// links (unchanged files) and symlinks are complete while together they
	// are at most planCap; over that, whole is false and pass 2 streams.
	links    []string
	symlinks []manifest.Entry
	whole    bool
}

// planCap bounds the records pass 1 keeps for pass 2 (about 100 bytes each).
var planCap = 1 << 18

// dirCap bounds the directory records pass 1 keeps for the directory
// passes (about 100 bytes each); a manifest with more is read again.
var dirCap = 1 << 14

// validate makes one streaming pass over the fetched manifest of n and the
// manifest of base, the snapshot to link from (O(depth) memory): it checks
// both completely, as decoding them would, and counts what the delete guard
// needs. An error in the upstream's manifest is reported before one in
// base's (a *baseError).
func validate(root *export.Root, up transport.Upstream, manPath string, n, base uint64) (*plan, error) {
	upErr := func(err error) error { return fmt.Errorf("upstream %s: %w", up, err) }
	servedErr := func(err error) error {
		// The upstream's manifest is checked first, as a whole.
		if _, nerr := checkUpstreamManifest(root.FS, manPath, n); nerr != nil {
			return upErr(nerr)
		}
		return &baseError{err}
	}
	nm, om, nerr, oerr := newAndOld(root, manPath, n, base)
	if nerr != nil {
		return nil, upErr(nerr)
	}
	if oerr != nil {
		return nil, servedErr(oerr)
	}
	defer nm.Close()
	// Each manifest decodes on its own goroutine (Readahead); both are
	// stopped before they are finished or closed.
	na := manifest.NewReadahead(nm)
	defer na.Stop()
	tn := &tagged{it: na}
	var to *tagged
	var oldIt manifest.Iterator
	var oa *manifest.Readahead
	if om != nil {
		defer om.Close()
		oa = manifest.NewReadahead(om)
		defer oa.Stop()
		to = &tagged{it: oa}
		oldIt = to
	}
	p := &plan{fetch: []manifest.Entry{}, whole: true, dirsKept: true}
	kept := 0
	err := manifest.Diff(oldIt, tn, func(c manifest.Change) error {
		if c.New == nil {
			p.removed++
		} else {
			p.entries++
			e := c.New
			switch {
			case e.Type == manifest.Dir:
				if p.dirsKept && len(p.dirs) < dirCap {
					p.dirs = append(p.dirs, *e)
				} else {
					p.dirs, p.dirsKept = nil, false
				}
			case e.Type == manifest.File && c.Old != nil && c.Same:
				p.files++
				p.bytes += e.Size
				if p.whole {
					p.links = append(p.links, e.Path)
					kept++
				}
			case e.Type == manifest.File:
				p.files++
				p.bytes += e.Size
				if p.fetch != nil {
					if len(p.fetch) < fetchChunk {
						p.fetch = append(p.fetch, *e)
					} else {
						p.fetch = nil // too many: pass 2 streams them
					}
				}
			case e.Type == manifest.Symlink:
				if p.whole {
					p.symlinks = append(p.symlinks, *e)
					kept++
				}
			}
			if kept > planCap {
				p.whole, p.links, p.symlinks = false, nil, nil
			}
		}
		if c.Old != nil && c.Old.Type == manifest.File {
			p.total++
			if c.New == nil {
				p.del++
			}
		}
		return nil
	})
	switch {
	case tn.err != nil:
		return nil, upErr(tn.err)
	case to != nil && to.err != nil:
		return nil, servedErr(to.err)
	case err != nil:
		return nil, err
	}
	na.Stop()
	if err := nm.finish(); err != nil {
		return nil, upErr(err)
	}
	if om != nil {
		oa.Stop()
		if err := om.Finish(); err != nil {
			return nil, servedErr(err)
		}
	}
	if p.fetch == nil {
		p.whole, p.links, p.symlinks = false, nil, nil
	}
	return p, nil
}

// baseError is an error in the manifest of the snapshot a build links from.
type baseError struct{ err error }

func (e *baseError) Error() string {
	return fmt.Sprintf("served snapshot: %v (run `mirror-sync verify --repair`)", e.err)
}

func (e *baseError) Unwrap() error { return e.err }

// linkBase returns the snapshot a build of n diffs against and links
// unchanged files from: the served snapshot cur (0 if none, or torn),
// else the newest retained complete snapshot below below other than n,
// else 0 (nothing to link from). Only a build calls it: a no-op poll
// never lists snapshots.
func linkBase(root *export.Root, cur, n, below uint64, log *slog.Logger) uint64 {
	if cur > 0 {
		return cur
	}
	snaps, err := root.Snapshots()
	if err != nil {
		log.Warn("not linking from older snapshots", "err", err)
		return 0
	}
	for k := len(snaps) - 1; k >= 0; k-- {
		if snaps[k] != n && snaps[k] < below {
			return snaps[k]
		}
	}
	return 0
}

// validateBase is validate against the base linkBase picks. A base that is
// not the served snapshot is only a link source: if its manifest is bad,
// it warns and tries the next older one. It returns the base it used.
func validateBase(root *export.Root, up transport.Upstream, manPath string, n, cur uint64, log *slog.Logger) (*plan, uint64, error) {
	base := linkBase(root, cur, n, math.MaxUint64, log)
	for {
		p, err := validate(root, up, manPath, n, base)
		var be *baseError
		if !errors.As(err, &be) || base == cur {
			return p, base, err
		}
		log.Warn("not linking from snapshot", "snapshot", base, "err", be.err)
		base = linkBase(root, 0, n, base, log)
	}
}

// buildOnce makes snapshot n in .work and, if recheck (called once nothing
// more is to come from the upstream) passes, flips to it. cur is the
// served snapshot (0 if none or torn); unchanged files are linked from the
// base linkBase picks, and files the base lacks from any other retained
// complete snapshot that has them (older).
func buildOnce(ctx context.Context, root *export.Root, up transport.Upstream, n, cur uint64, opt Options, recheck func() error) (Result, error) {
	f := root.FS
	res := Result{Snapshot: cur}
	t0 := time.Now()
	phase := func(name string) {
		t := time.Now()
		opt.Log.Debug("sync phase", "phase", name, "took", t.Sub(t0).Round(time.Microsecond))
		t0 = t
	}
	name := strconv.FormatUint(n, 10)
	manPath := filepath.Join(root.WorkDir(), name+export.ManifestExt)
	work := filepath.Join(root.WorkDir(), name)
	if err := up.FetchManifest(ctx, n, manPath); err != nil {
		return res, err
	}
	phase("fetch manifest")
	// Pass 1: check both manifests whole before acting on either.
	p, base, err := validateBase(root, up, manPath, n, cur, opt.Log)
	if err != nil {
		return res, err
	}
	entries, pre := p.entries, p.fetch
	b := &build{root: root, n: n, manPath: manPath, work: work, p: p, opt: opt, recheck: recheck}
	phase("validate")
	// Delete guard: against the served snapshot, or the base if it is torn.
	if base > 0 && !opt.Force && opt.MaxDelete < 1 {
		if p.total > 0 && float64(p.del) > opt.MaxDelete*float64(p.total) {
			return res, fmt.Errorf("%w: snapshot %d deletes %d of %d files (more than --max-delete %.0f%%); check the upstream, then pass --force to accept",
				ErrTooManyDeletes, n, p.del, p.total, opt.MaxDelete*100)
		}
	}
	if fi, err := f.Stat(root.SnapshotDir(n)); err == nil && fi.IsDir() {
		// A complete snapshot n already exists (e.g. a crash after the rename
		// but before the flip, or a rollback): reuse it if it is the same.
		if sameManifest(root, n, manPath) {
			opt.Log.Info("snapshot already present; flipping to it", "snapshot", n)
			// The fetched copy of the manifest is not needed: drop it, or it
			// stays in .work until the next run that changes something.
			if err := f.Remove(manPath); err != nil {
				return res, fmt.Errorf("remove fetched manifest: %w", err)
			}
			res.Entries = entries
			if err := recheck(); err != nil {
				return res, err
			}
			return flip(ctx, root, n, manPath, "", res, opt)
		}
		if n == cur {
			return res, fmt.Errorf("served snapshot %d differs from the upstream's snapshot %d (run `mirror-sync verify --repair`)", n, n)
		}
		if err := fsys.RemoveAll(f, root.SnapshotDir(n)); err != nil {
			return res, err
		}
		_ = f.Remove(root.ManifestPath(n))
	}
	if err := fsys.RemoveAll(f, work); err != nil {
		return res, err
	}
	if err := f.Mkdir(work, 0o755); err != nil {
		return res, fmt.Errorf("make work dir: %w", err)
	}
	if sf, ok := up.(transport.SnapshotFetcher); ok && base == 0 {
		// Nothing to link from (a first copy, or a rebuild with no complete
		// snapshot left): the upstream
		// copies the whole snapshot at once and checks it against the
		// manifest, which it reads as a stream.
		return fetchWhole(ctx, b, sf, res)
	}
	if err := b.makeDirs(ctx); err != nil {
		return res, err
	}
	phase("mkdirs")
	// Pass 2: build the tree, from what pass 1 kept if it could keep it
	// all, else streaming the diff again; memory is bounded by planCap,
	// dirCap and fetchChunk records, whatever the size of the tree.
	var oldIt, newIt manifest.Iterator
	oldDir := ""
	if base > 0 {
		oldDir = root.SnapshotDir(base)
	}
	if !p.whole {
		nm, om, nerr, oerr := newAndOld(root, manPath, n, base)
		if nerr != nil {
			return res, fmt.Errorf("upstream %s: %w", up, nerr)
		}
		if oerr != nil {
			return res, fmt.Errorf("served snapshot: %w (run `mirror-sync verify --repair`)", oerr)
		}
		defer nm.Close()
		newIt = nm
		if om != nil {
			defer om.Close()
			oldIt = om
		}
	}
	// fetchList fetches files and applies their metadata.
	var fetchedFiles, fetchedBytes atomic.Int64
	fetchList := func(files []manifest.Entry) error {
		if len(files) == 0 {
			return nil
		}
		if err := up.Fetch(ctx, n, files, work); err != nil {
			return err
		}
		if err := setMeta(ctx, f, work, files, opt.Workers); err != nil {
			return err
		}
		for _, e := range files {
			fetchedBytes.Add(e.Size)
		}
		fetchedFiles.Add(int64(len(files)))
		return nil
	}
	// When validate could list every file to fetch, the fetch runs from
	// now on, beside the links: the one waits on the upstream, the other on
	// the local disk. Otherwise pass 2 queues them and fetches them in
	// chunks as the diff streams, so memory stays bounded even when
	// everything changed, and the last chunk goes beside the last links.
	var fetch []manifest.Entry
	fetchSome := func() error {
		err := fetchList(fetch)
		fetch = fetch[:0]
		return err
	}
	pool := tree.NewPool(ctx, opt.Workers)
	others := &older{root: root, skip: [2]uint64{base, n}, pool: pool, work: work, log: opt.Log}
	defer others.close()
	var fetched chan error
	if pre != nil {
		if pre, err = others.link(pre); err != nil {
			return res, errors.Join(err, pool.Wait())
		}
		fetched = make(chan error, 1)
		go func() {
			err := fetchList(pre)
			if err == nil {
				err = recheck()
			}
			fetched <- err
		}()
	}
	links := linker{f: f, pool: pool, src: oldDir, dst: work}
	symlink := func(e *manifest.Entry) error {
		dst := join(work, e.Path)
		if err := f.SymlinkIfPossible(e.Target, dst); err != nil {
			return fmt.Errorf("symlink %s: %w", dst, err)
		}
		return nil
	}
	if p.whole {
		res.Deleted = p.removed
		for i := range p.symlinks {
			if err = symlink(&p.symlinks[i]); err != nil {
				break
			}
		}
		for _, rel := range p.links {
			if err != nil {
				break
			}
			res.Linked++
			err = links.add(rel)
		}
	} else {
		err = manifest.Diff(oldIt, newIt, func(c manifest.Change) error {
			if c.New == nil {
				res.Deleted++
				return nil
			}
			e := c.New
			switch e.Type {
			case manifest.Dir:
				// made by MakeDirs above
			case manifest.Symlink:
				return symlink(e)
			case manifest.File:
				if c.Old != nil && c.Same {
					res.Linked++
					return links.add(e.Path)
				}
				if pre != nil {
					return nil // being fetched already
				}
				fetch = append(fetch, *e)
				if len(fetch) >= fetchChunk {
					var err error
					if fetch, err = others.link(fetch); err != nil {
						return err
					}
					return fetchSome()
				}
			}
			return nil
		})
	}
	if err == nil && pre == nil {
		fetch, err = others.link(fetch)
	}
	if err == nil {
		err = links.flush()
	}
	if err == nil {
		err = others.flush()
	}
	phase("diff")
	if pre == nil {
		fetched = make(chan error, 1)
		if err == nil {
			go func() {
				err := fetchSome()
				if err == nil {
					err = recheck()
				}
				fetched <- err
			}()
		} else {
			fetched <- nil
		}
	}
	werr := pool.Wait()
	ferr := <-fetched
	res.Linked += others.linked
	res.Fetched += int(fetchedFiles.Load())
	res.Bytes += fetchedBytes.Load()
	if err == nil {
		err = werr
	}
	if err == nil {
		err = ferr
	}
	if err != nil {
		return res, err
	}
	phase("links and fetch")
	if err := b.finishDirs(ctx); err != nil {
		return res, err
	}
	phase("finish dirs")
	res.Entries = entries
	defer phase("flip")
	return flip(ctx, root, n, manPath, work, res, opt)
}

// build is one attempt at snapshot n: its fetched manifest, its work
// tree and what pass 1 learnt of them.
type build struct {
	root          *export.Root
	n             uint64
	manPath, work string
	p             *plan
	opt           Options
	recheck       func() error
}

// Open implements transport.Records: a new pass over the fetched manifest
// (validated by pass 1).
func (b *build) Open() (transport.RecordIter, error) {
	return openUpstreamManifest(b.root.FS, b.manPath, b.n)
}

// dirRecords yields the directories: pass 1's list if it kept them all,
// else a new pass over the manifest (whose other records the directory
// passes skip), so that memory does not grow with the directories.
func (b *build) dirRecords() (transport.RecordIter, error) {
	if b.p.dirsKept {
		return sliceRecords{&manifest.SliceIterator{Entries: b.p.dirs}}, nil
	}
	return b.Open()
}

type sliceRecords struct{ *manifest.SliceIterator }

func (sliceRecords) Close() error { return nil }

// makeDirs makes the directories below work, mode 0700 until finishDirs.
func (b *build) makeDirs(ctx context.Context) error {
	it, err := b.dirRecords()
	if err != nil {
		return err
	}
	defer it.Close()
	return tree.MakeDirsStream(ctx, b.root.FS, b.work, it, b.opt.Workers)
}

// finishDirs gives the directories below work their modes and mtimes.
func (b *build) finishDirs(ctx context.Context) error {
	it, err := b.dirRecords()
	if err != nil {
		return err
	}
	defer it.Close()
	return tree.FinishDirsStream(ctx, b.root.FS, b.work, it, b.opt.Workers)
}

// fetchWhole makes the directories, has sf copy the files and symlinks of
// snapshot n into them, then finishes the directories and flips to it.
func fetchWhole(ctx context.Context, b *build, sf transport.SnapshotFetcher, res Result) (Result, error) {
	if err := b.makeDirs(ctx); err != nil {
		return res, err
	}
	if err := sf.FetchSnapshot(ctx, b.n, b, b.work); err != nil {
		// Whatever came stays no longer than the run (it may be a hostile
		// upstream's, as large as the disk allows).
		rerr := fsys.RemoveAll(b.root.FS, b.work)
		if rerr == nil {
			if rerr = b.root.FS.Remove(b.manPath); errors.Is(rerr, fs.ErrNotExist) {
				rerr = nil
			}
		}
		if rerr != nil {
			b.opt.Log.Warn("could not remove the failed copy", "dir", b.work, "err", rerr)
		}
		return res, err
	}
	if err := b.recheck(); err != nil {
		return res, err
	}
	res.Fetched, res.Bytes = b.p.files, b.p.bytes
	if err := b.finishDirs(ctx); err != nil {
		return res, err
	}
	res.Entries = b.p.entries
	return flip(ctx, b.root, b.n, b.manPath, b.work, res, b.opt)
}

// join is filepath.Join for a clean base and a validated manifest path
// (relative, clean, slash-separated), without re-cleaning.
func join(base, rel string) string {
	if filepath.Separator != '/' {
		return filepath.Join(base, filepath.FromSlash(rel))
	}
	return base + "/" + rel
}

// linker hard-links unchanged files from the served snapshot, in batches of
// one directory's files, so that the pool's workers work in different
// directories (links into one directory serialise on its lock) and a job
// costs one channel send per batch rather than per file.
type linker struct {
	f        fsys.FS
	pool     *tree.Pool
	src, dst string
	dir      string
	batch    []string
}

const linkBatch = 256

// fetchChunk is how many files one Upstream.Fetch call gets at most.
var fetchChunk = 16384

func (l *linker) add(rel string) error {
	d := rel[:max(strings.LastIndexByte(rel, '/'), 0)]
	if len(l.batch) >= linkBatch || (len(l.batch) > 0 && d != l.dir) {
		if err := l.flush(); err != nil {
			return err
		}
	}
	l.dir = d
	l.batch = append(l.batch, rel)
	return nil
}

func (l *linker) flush() error {
	if len(l.batch) == 0 {
		return nil
	}
	// One directory per batch: link by name relative to the two directories.
	names := l.batch
	for i, rel := range names {
		names[i] = rel[strings.LastIndexByte(rel, '/')+1:]
	}
	l.batch = make([]string, 0, linkBatch)
	f, src, dst := l.f, join(l.src, l.dir), join(l.dst, l.dir)
	if l.dir == "" {
		src, dst = l.src, l.dst
	}
	return l.pool.Go(func(ctx context.Context) error {
		return fsys.LinkAll(f, src, dst, names)
	})
}

// setMeta applies the modes and mtimes of fetched files, in parallel.
func setMeta(ctx context.Context, f fsys.FS, work string, files []manifest.Entry, workers int) error {
	pool := tree.NewPool(ctx, workers)
	for i := 0; i < len(files); i += linkBatch {
		batch := files[i:min(i+linkBatch, len(files))]
		if err := pool.Go(func(context.Context) error {
			for _, e := range batch {
				if err := tree.SetMeta(f, join(work, e.Path), e); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			break
		}
	}
	return pool.Wait()
}

// sameManifest reports whether the complete snapshot n's manifest is valid
// and records exactly what the fetched manifest at manPath (already
// validated) records, comparing the two in one streaming pass.
func sameManifest(root *export.Root, n uint64, manPath string) bool {
	nm, om, nerr, oerr := newAndOld(root, manPath, n, n)
	if nerr != nil || oerr != nil {
		if nm != nil {
			nm.Close()
		}
		return false
	}
	defer nm.Close()
	defer om.Close()
	err := manifest.Diff(om, nm, func(c manifest.Change) error {
		if c.Old == nil || c.New == nil || *c.Old != *c.New {
			return errDiffers
		}
		return nil
	})
	return err == nil && om.Finish() == nil && nm.finish() == nil
}

var errDiffers = errors.New("manifests differ")

// flip makes work (if not "") snapshots/n, with the manifest at manPath, and
// points current at it.
func flip(ctx context.Context, root *export.Root, n uint64, manPath, work string, res Result, opt Options) (Result, error) {
	f := root.FS
	// A run stopped (SIGTERM, SIGINT) after the checks installs nothing:
	// re-checked right before each commit step.
	if err := snapshot.Stopped(ctx); err != nil {
		return res, err
	}
	if work != "" {
		if err := f.Chmod(manPath, 0o644); err != nil {
			return res, fmt.Errorf("chmod manifest: %w", err)
		}
		// The manifest's mtime says when THIS root completed snapshot n
		// (rsync -t would keep the upstream's): Prune's --min-age counts
		// from it, and a lower tier's lag (docs/protocol.md section 5).
		now := opt.Now()
		if err := f.Chtimes(manPath, now, now); err != nil {
			return res, fmt.Errorf("stamp manifest of snapshot %d: %w", n, err)
		}
		if err := f.SyncFS(work); err != nil {
			return res, fmt.Errorf("flush snapshot %d: %w", n, err)
		}
		if err := f.Rename(manPath, root.ManifestPath(n)); err != nil {
			return res, fmt.Errorf("move manifest of snapshot %d into place: %w", n, err)
		}
		if err := fsys.SyncDir(f, root.Path(export.SnapshotsName)); err != nil {
			return res, err
		}
		if err := f.Rename(work, root.SnapshotDir(n)); err != nil {
			return res, fmt.Errorf("move snapshot %d into place: %w", n, err)
		}
		if err := fsys.SyncDir(f, root.Path(export.SnapshotsName)); err != nil {
			return res, err
		}
	}
	if opt.BeforeFlip != nil {
		opt.BeforeFlip(n)
	}
	if err := snapshot.Stopped(ctx); err != nil {
		return res, err
	}
	if err := root.Flip(n); err != nil {
		return res, err
	}
	res.Snapshot = n
	opt.Log.Info("now serving", "snapshot", n, "entries", res.Entries, "linked", res.Linked, "fetched", res.Fetched, "bytes", res.Bytes, "deleted", res.Deleted)
	return res, nil
}
