package mirror

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strconv"
	"time"

	"github.com/seqmirror/seqmirror/export"
	"github.com/seqmirror/seqmirror/fsys"
	"github.com/seqmirror/seqmirror/manifest"
	"github.com/seqmirror/seqmirror/seqfile"
	"github.com/seqmirror/seqmirror/snapshot"
	"github.com/seqmirror/seqmirror/transport"
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
		o.Workers = snapshot.Workers()
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
}

// Sync brings root up to the snapshot up serves.
func Sync(ctx context.Context, root *export.Root, up transport.Upstream, opt Options) (Result, error) {
	opt.defaults()
	var res Result
	if err := root.Init(); err != nil {
		return res, err
	}
	lock, err := root.Lock()
	if err != nil {
		return res, err
	}
	defer lock.Unlock()
	cur, err := root.Current()
	if err != nil {
		return res, fmt.Errorf("%w: fix or remove %s, then sync again", err, root.Path(export.CurrentName))
	}
	if cur > 0 && !root.Complete(cur) {
		opt.Log.Warn("current points to an incomplete snapshot; rebuilding from the upstream", "snapshot", cur)
		cur = 0
	}
	res.Previous, res.Snapshot = cur, cur
	var begin uint64
	for round := 0; round < opt.Rounds; round++ {
		e1, err := up.Seq(ctx, seqfile.End)
		if err != nil {
			return res, err
		}
		n, _, err := up.Current(ctx)
		if err != nil {
			return res, err
		}
		if n == 0 {
			return res, fmt.Errorf("%w: %s (publish there first)", ErrNoSnapshot, up)
		}
		if n == res.Snapshot {
			break // level: the O(1) no-op
		}
		if n < res.Snapshot && !opt.AllowRollback {
			return res, fmt.Errorf("%w: %s serves snapshot %d, %s serves %d; pass --allow-rollback to follow it", ErrRollback, up, n, root.Dir, res.Snapshot)
		}
		if begin == 0 {
			if err := root.Cleanup(); err != nil {
				return res, err
			}
			if begin, err = seqfile.StartUpdate(root.FS, root.SeqDir()); err != nil {
				return res, err
			}
		}
		st, err := syncSnapshot(ctx, root, up, n, e1, res.Snapshot, opt)
		res.Attempts += st.Attempts
		if err != nil {
			return res, err
		}
		res.Snapshot, res.Changed = st.Snapshot, true
		res.Entries, res.Deleted = st.Entries, st.Deleted
		res.Linked += st.Linked
		res.Fetched += st.Fetched
		res.Bytes += st.Bytes
	}
	if !res.Changed {
		opt.Log.Info("already serving the upstream's snapshot", "snapshot", res.Snapshot)
		if settled, err := root.Settle(); err != nil {
			return res, err
		} else if settled {
			opt.Log.Info("completed the counters of an interrupted run", "snapshot", res.Snapshot)
		}
		return res, nil
	}
	if err := seqfile.FinishUpdate(root.FS, root.SeqDir(), begin); err != nil {
		return res, err
	}
	st, err := root.Status()
	if err == nil {
		st.Upstream = up.String()
		err = root.WriteStatus(st)
	}
	if err != nil {
		return res, fmt.Errorf("write status: %w", err)
	}
	if res.Pruned, err = root.Prune(opt.Keep, opt.MinAge, opt.Now()); err != nil {
		return res, err
	}
	return res, nil
}

// syncSnapshot makes snapshot n (first seen when upstream end was e1) served.
func syncSnapshot(ctx context.Context, root *export.Root, up transport.Upstream, n, e1, cur uint64, opt Options) (Result, error) {
	res := Result{Snapshot: cur}
	backoff := opt.Backoff
	for attempt := 0; ; attempt++ {
		res.Attempts++
		r, err := buildOnce(ctx, root, up, n, cur, opt)
		retry := ""
		switch {
		case errors.Is(err, transport.ErrVanished), errors.Is(err, transport.ErrUnavailable):
			retry = err.Error()
		case err != nil:
			return res, err
		default:
			b2, err := up.Seq(ctx, seqfile.Begin)
			if err != nil {
				return res, err
			}
			if b2 != e1 {
				// The upstream started an update after we read end. Our copy is
				// still good if snapshot n is intact (its files all verified);
				// make sure it was not pruned or replaced under us.
				now, _, err := up.Current(ctx)
				if err != nil {
					return res, err
				}
				if now < n && !opt.AllowRollback {
					retry = fmt.Sprintf("upstream went back to snapshot %d during the copy", now)
				} else if err := stillThere(ctx, root, up, n); err != nil {
					retry = err.Error()
				}
			}
			if retry == "" {
				r.Attempts = res.Attempts
				return r, nil
			}
		}
		fsys.RemoveAll(root.FS, root.WorkDir())
		root.FS.MkdirAll(root.WorkDir(), 0o755)
		if attempt >= opt.Retries {
			return res, fmt.Errorf("%w: snapshot %d from %s: %s (gave up after %d attempts; try again later)", ErrUpstreamBusy, n, up, retry, attempt+1)
		}
		opt.Log.Warn("upstream changed during the copy; retrying", "snapshot", n, "why", retry, "attempt", attempt+1, "wait", backoff)
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

func buildOnce(ctx context.Context, root *export.Root, up transport.Upstream, n, cur uint64, opt Options) (Result, error) {
	f := root.FS
	res := Result{Snapshot: cur}
	name := strconv.FormatUint(n, 10)
	manPath := filepath.Join(root.WorkDir(), name+export.ManifestExt)
	work := filepath.Join(root.WorkDir(), name)
	// The served snapshot's manifest is decoded while the new one downloads.
	type decoded struct {
		m   *manifest.Manifest
		err error
	}
	oldc := make(chan decoded, 1)
	go func() {
		var d decoded
		if cur > 0 {
			d.m, d.err = root.ReadManifest(cur)
		}
		oldc <- d
	}()
	if err := up.FetchManifest(ctx, n, manPath); err != nil {
		return res, err
	}
	newMan, err := readManifest(f, manPath, n)
	if err != nil {
		return res, fmt.Errorf("upstream %s: %w", up, err)
	}
	od := <-oldc
	old := od.m
	if od.err != nil {
		return res, fmt.Errorf("served snapshot: %w (run `mirror-sync verify --repair`)", od.err)
	}
	// Delete guard.
	if old != nil && !opt.Force && opt.MaxDelete < 1 {
		del, total := 0, 0
		manifest.Diff(old.Iter(), newMan.Iter(), func(c manifest.Change) error {
			if c.Old != nil && c.Old.Type == manifest.File {
				total++
				if c.New == nil {
					del++
				}
			}
			return nil
		})
		if total > 0 && float64(del) > opt.MaxDelete*float64(total) {
			return res, fmt.Errorf("%w: snapshot %d deletes %d of %d files (more than --max-delete %.0f%%); check the upstream, then pass --force to accept",
				ErrTooManyDeletes, n, del, total, opt.MaxDelete*100)
		}
	}
	if fi, err := f.Stat(root.SnapshotDir(n)); err == nil && fi.IsDir() {
		// A complete snapshot n already exists (e.g. a crash after the rename
		// but before the flip, or a rollback): reuse it if it is the same.
		if have, err := root.ReadManifest(n); err == nil && sameManifest(have, newMan) {
			opt.Log.Info("snapshot already present; flipping to it", "snapshot", n)
			return flip(root, n, manPath, "", newMan, res, opt)
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
	var oldIt manifest.Iterator
	oldDir := ""
	if old != nil {
		oldIt, oldDir = old.Iter(), root.SnapshotDir(cur)
	}
	var dirs, fetch, linkedFiles []manifest.Entry
	if sf, ok := up.(transport.SnapshotFetcher); ok && old == nil {
		// Nothing to link from: the upstream copies the whole snapshot at
		// once and checks it against the manifest.
		for _, e := range newMan.Entries {
			switch e.Type {
			case manifest.Dir:
				dirs = append(dirs, e)
			case manifest.File:
				fetch = append(fetch, e)
			}
		}
		if err := sf.FetchSnapshot(ctx, n, newMan, work); err != nil {
			return res, err
		}
		return finish(root, n, manPath, work, newMan, dirs, fetch, nil, false, res, opt)
	}
	err = manifest.Diff(oldIt, newMan.Iter(), func(c manifest.Change) error {
		if c.New == nil {
			res.Deleted++
			return nil
		}
		e := *c.New
		dst := filepath.Join(work, filepath.FromSlash(e.Path))
		switch e.Type {
		case manifest.Dir:
			dirs = append(dirs, e)
			if err := f.Mkdir(dst, 0o700); err != nil {
				return fmt.Errorf("mkdir %s: %w", dst, err)
			}
		case manifest.Symlink:
			if err := f.SymlinkIfPossible(e.Target, dst); err != nil {
				return fmt.Errorf("symlink %s: %w", dst, err)
			}
		case manifest.File:
			if c.Old != nil && c.Same {
				linkedFiles = append(linkedFiles, e)
			} else {
				fetch = append(fetch, e)
			}
		}
		return nil
	})
	if err != nil {
		return res, err
	}
	if err := linkAndFetch(ctx, f, up, n, oldDir, work, linkedFiles, fetch, opt); err != nil {
		return res, err
	}
	return finish(root, n, manPath, work, newMan, dirs, fetch, linkedFiles, true, res, opt)
}

// linkAndFetch hard-links the unchanged files from oldDir into work while
// the upstream fetches the others: the one waits on the local disk, the
// other on the network and the upstream. The first error stops both.
func linkAndFetch(ctx context.Context, f fsys.FS, up transport.Upstream, n uint64, oldDir, work string, linked, fetch []manifest.Entry, opt Options) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	fetched := make(chan error, 1)
	go func() {
		var err error
		if len(fetch) > 0 {
			if err = up.Fetch(ctx, n, fetch, work); err != nil {
				cancel()
			}
		}
		fetched <- err
	}()
	pool := snapshot.NewPool(ctx, opt.Workers)
	var lerr error
	for _, e := range linked {
		rel := filepath.FromSlash(e.Path)
		src, dst := filepath.Join(oldDir, rel), filepath.Join(work, rel)
		if lerr = pool.Go(func(context.Context) error { return f.Link(src, dst) }); lerr != nil {
			break
		}
	}
	if werr := pool.Wait(); werr != nil {
		lerr = werr
	}
	if lerr != nil {
		cancel()
	}
	ferr := <-fetched
	// Whichever failed first cancelled the other: report that one.
	if ferr != nil && (lerr == nil || (errors.Is(lerr, context.Canceled) && !errors.Is(ferr, context.Canceled))) {
		return ferr
	}
	return lerr
}

// finish sets the metadata of the fetched files (if setMeta; a
// SnapshotFetcher has) and of the directories in work, then flips to it.
func finish(root *export.Root, n uint64, manPath, work string, newMan *manifest.Manifest, dirs, fetch, linkedFiles []manifest.Entry, setMeta bool, res Result, opt Options) (Result, error) {
	f := root.FS
	for _, e := range fetch {
		if setMeta {
			if err := snapshot.SetMeta(f, filepath.Join(work, filepath.FromSlash(e.Path)), e); err != nil {
				return res, err
			}
		}
		res.Bytes += e.Size
	}
	if err := snapshot.FinishDirs(f, work, dirs); err != nil {
		return res, err
	}
	res.Entries, res.Linked, res.Fetched = len(newMan.Entries), len(linkedFiles), len(fetch)
	return flip(root, n, manPath, work, newMan, res, opt)
}

func sameManifest(a, b *manifest.Manifest) bool {
	if a.Snapshot != b.Snapshot || len(a.Entries) != len(b.Entries) {
		return false
	}
	for i := range a.Entries {
		if a.Entries[i] != b.Entries[i] {
			return false
		}
	}
	return true
}

func readManifest(f fsys.FS, p string, n uint64) (*manifest.Manifest, error) {
	h, err := f.Open(p)
	if err != nil {
		return nil, err
	}
	defer h.Close()
	m, err := manifest.Decode(h)
	if err != nil {
		return nil, fmt.Errorf("manifest of snapshot %d: %w", n, err)
	}
	if m.Snapshot != n {
		return nil, fmt.Errorf("manifest of snapshot %d: %w: it records snapshot %d", n, manifest.ErrCorrupt, m.Snapshot)
	}
	return m, nil
}

// flip makes work (if not "") snapshots/n, with the manifest at manPath, and
// points current at it.
func flip(root *export.Root, n uint64, manPath, work string, m *manifest.Manifest, res Result, opt Options) (Result, error) {
	f := root.FS
	if work != "" {
		if err := f.Chmod(manPath, 0o644); err != nil {
			return res, fmt.Errorf("chmod manifest: %w", err)
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
	if err := root.Flip(n); err != nil {
		return res, err
	}
	res.Snapshot = n
	res.Entries = len(m.Entries)
	opt.Log.Info("now serving", "snapshot", n, "entries", res.Entries, "linked", res.Linked, "fetched", res.Fetched, "bytes", res.Bytes, "deleted", res.Deleted)
	return res, nil
}
