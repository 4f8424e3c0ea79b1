package mirror

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/seqmirror/seqmirror/internal/export"
	"github.com/seqmirror/seqmirror/internal/fsys"
	"github.com/seqmirror/seqmirror/internal/transport"
	"github.com/seqmirror/seqmirror/internal/tree"
	"github.com/seqmirror/seqmirror/manifest"
	"github.com/seqmirror/seqmirror/seqfile"
)

// ClassicStateName is the file in ROOT where classic mode records the
// upstream seq/end its served snapshot was copied at, so that a poll with
// an unchanged upstream is a no-op. It is not part of any snapshot.
const ClassicStateName = ".classic-end"

// ErrUpstreamHasSnapshots means classic mode was asked to copy an upstream
// that publishes snapshots (its current points to snapshots/N): copied as a
// plain tree it would take every snapshot, none linked to the last copy.
var ErrUpstreamHasSnapshots = errors.New("upstream publishes snapshots")

// errMoved is one attempt's discovery that the upstream moved under the
// copy: discard it and copy again.
type errMoved struct{ why string }

func (e *errMoved) Error() string { return e.why }

// retryable reports whether err means "copy again" (the upstream moved,
// files vanished, or it did not answer) and why.
func retryable(err error) (string, bool) {
	var moved *errMoved
	switch {
	case errors.Is(err, transport.ErrTimedOut):
		return "", false // the timeouts bound the whole run: do not wait again
	case errors.As(err, &moved):
		return moved.why, true
	case errors.Is(err, transport.ErrVanished), errors.Is(err, transport.ErrUnavailable):
		return err.Error(), true
	}
	return "", false
}

// SyncClassic mirrors a "classic" upstream: a plain tree updated in place
// whose writer bumps seq/begin before and seq/end after each change, with no
// snapshots of its own (see docs/classic.md). Each run:
//
//  1. reads the upstream's seq/end E1 (and begin); if begin != end the
//     upstream is busy: retry later (bounded, with backoff); if E1 is what
//     the served snapshot was copied at, stop (the no-op);
//  2. copies the whole tree but seq/ into ROOT/.work/N (N = the highest
//     local number + 1), unchanged files hard-linked from the served
//     snapshot (up must implement transport.TreeFetcher);
//  3. re-reads the upstream's seq/begin B2; if B2 != E1 an update ran during
//     the copy: discard and retry;
//  4. hashes every file (re-using the hash of a file hard-linked from the
//     served snapshot), writes the manifest and flips exactly as Sync does.
//
// A copy that turns out identical to the served snapshot makes no new one.
func SyncClassic(ctx context.Context, root *export.Root, up transport.Upstream, opt Options) (res Result, err error) {
	opt.defaults()
	tf, ok := up.(transport.TreeFetcher)
	if !ok {
		return res, fmt.Errorf("classic mode: upstream %s cannot copy a whole tree (use an rsync address or a path)", up)
	}
	if err := checkUpstream(root, up); err != nil {
		return res, err
	}
	lock, cur, err := lockRoot(ctx, root, opt.LockWait)
	if err != nil {
		return res, err
	}
	defer lock.Unlock()
	defer root.RecordOutcome(up.String(), &err, opt.Now, opt.Log)
	res.Previous, res.Snapshot = cur, cur
	var old *manifest.Manifest
	if cur > 0 {
		if old, err = root.ReadManifest(cur); err != nil {
			return res, fmt.Errorf("served snapshot: %w (run `mirror-sync verify`)", err)
		}
	}
	statePath := root.Path(ClassicStateName)
	last, lastErr := seqfile.Read(root.FS, statePath)
	var begin, copiedAt uint64
	backoff := opt.Backoff
	for attempt := 0; ; attempt++ {
		res.Attempts++
		e1, _, err := poll(ctx, up, opt, false)
		if err != nil {
			return res, err
		}
		b1, err := up.Seq(ctx, seqfile.Begin)
		if err != nil {
			return res, err
		}
		if err := notSnapshotUpstream(ctx, up); err != nil {
			return res, err
		}
		var retry string
		if b1 != e1 {
			retry = fmt.Sprintf("upstream seq/begin=%d != seq/end=%d: its writer is busy", b1, e1)
		} else if cur > 0 && lastErr == nil && last == e1 {
			opt.Log.Info("upstream unchanged since the served snapshot", "snapshot", cur, "upstream_end", e1)
			// Still repair what a killed or failed run left behind.
			if err := root.Cleanup(); err != nil {
				return res, err
			}
			if _, err := root.Settle(); err != nil {
				return res, err
			}
			if err := root.ClearFailure(up.String()); err != nil {
				return res, err
			}
			res.Pruned, err = root.PruneIdle(up.String(), opt.Keep, opt.MinAge, opt.Now())
			return res, err
		} else {
			if begin == 0 {
				if err := root.Cleanup(); err != nil {
					return res, err
				}
				if begin, err = seqfile.StartUpdate(root.FS, root.SeqDir()); err != nil {
					return res, err
				}
			}
			r, err := classicOnce(ctx, root, tf, up, e1, cur, old, opt)
			var again bool
			retry, again = retryable(err)
			switch {
			case again:
			case err != nil:
				// Refused: keep nothing the upstream sent.
				_ = fsys.RemoveAll(root.FS, root.WorkDir())
				_ = root.FS.MkdirAll(root.WorkDir(), 0o755)
				return res, err
			default:
				r.Attempts, r.Previous = res.Attempts, res.Previous
				res, copiedAt = r, e1
			}
		}
		if retry == "" {
			break
		}
		_ = fsys.RemoveAll(root.FS, root.WorkDir())
		_ = root.FS.MkdirAll(root.WorkDir(), 0o755)
		if attempt >= opt.Retries {
			// As in snapshot mode, begin stays above end (an update was
			// started and did not complete) until the next run settles it.
			return res, fmt.Errorf("%w: %s: %s (gave up after %d attempts; try again later)", ErrUpstreamBusy, up, retry, attempt+1)
		}
		opt.Log.Warn("upstream moved or did not answer; retrying the copy after a wait", "why", retry, "attempt", attempt+1, "wait", backoff)
		select {
		case <-ctx.Done():
			return res, ctx.Err()
		case <-time.After(backoff):
		}
		backoff *= 2
	}
	if err := seqfile.FinishUpdate(root.FS, root.SeqDir(), begin); err != nil {
		return res, err
	}
	if err := seqfile.Write(root.FS, statePath, copiedAt); err != nil {
		return res, fmt.Errorf("record upstream seq/end: %w", err)
	}
	if !res.Changed {
		return res, nil
	}
	if err := root.RecordStatus(up.String()); err != nil {
		return res, err
	}
	res.Pruned, err = root.Prune(opt.Keep, opt.MinAge, opt.Now())
	return res, err
}

// notSnapshotUpstream fails with ErrUpstreamHasSnapshots if up serves a
// snapshot. An upstream whose current cannot be read is taken for a classic
// one (a plain tree has no current; over rsync the poll just done read it).
func notSnapshotUpstream(ctx context.Context, up transport.Upstream) error {
	if n, _, err := up.Current(ctx); err == nil && n > 0 {
		return fmt.Errorf("%w: %s serves snapshot %d", ErrUpstreamHasSnapshots, up, n)
	}
	return nil
}

// classicOnce copies the tree once and, if the upstream stayed at e1,
// makes it the served snapshot.
func classicOnce(ctx context.Context, root *export.Root, tf transport.TreeFetcher, up transport.Upstream, e1, cur uint64, old *manifest.Manifest, opt Options) (Result, error) {
	f := root.FS
	res := Result{Snapshot: cur}
	n, err := root.NextNumber()
	if err != nil {
		return res, err
	}
	name := strconv.FormatUint(n, 10)
	work := filepath.Join(root.WorkDir(), name)
	manPath := work + export.ManifestExt
	if err := fsys.RemoveAll(f, work); err != nil {
		return res, err
	}
	if err := f.Mkdir(work, 0o755); err != nil {
		return res, fmt.Errorf("make work dir: %w", err)
	}
	linkDest := ""
	if cur > 0 {
		linkDest = root.SnapshotDir(cur)
	}
	if err := tf.FetchTree(ctx, work, linkDest); err != nil {
		return res, err
	}
	b2, err := up.Seq(ctx, seqfile.Begin)
	if err != nil {
		return res, err
	}
	if b2 != e1 {
		return res, &errMoved{fmt.Sprintf("upstream seq/begin moved from %d to %d during the copy", e1, b2)}
	}
	entries, linked, fetched, err := hashTree(ctx, f, work, linkDest, old, opt.Workers)
	if err != nil {
		return res, err
	}
	m := &manifest.Manifest{Snapshot: n, Entries: entries}
	files := 0
	for _, e := range entries {
		if e.Type == manifest.File {
			files++
		}
	}
	if old != nil {
		if sameEntries(old.Entries, entries) {
			opt.Log.Info("upstream tree identical to the served snapshot; nothing new", "snapshot", cur)
			return res, fsys.RemoveAll(f, work)
		}
		del, total := countDeletes(old, m)
		if !opt.Force && opt.MaxDelete < 1 && total > 0 && float64(del) > opt.MaxDelete*float64(total) {
			return res, fmt.Errorf("%w: snapshot %d deletes %d of %d files (more than --max-delete %.0f%%); check the upstream, then pass --force to accept",
				ErrTooManyDeletes, n, del, total, opt.MaxDelete*100)
		}
		res.Deleted = del
	}
	res.Linked, res.Fetched, res.Bytes, res.Entries = linked, files-linked, fetched, len(entries)
	if err := fsys.WriteStream(f, manPath, 0o644, func(w io.Writer) error { return m.Encode(w) }); err != nil {
		return res, fmt.Errorf("write manifest of snapshot %d: %w", n, err)
	}
	r, err := flip(ctx, root, n, manPath, work, res, opt)
	r.Changed = err == nil
	return r, err
}

// hashTree lists dir and hashes its files. A file that is the same inode
// as the file at its path below linkDest takes its hash from old (snapshot
// files are immutable), and counts as linked; the others were copied, and
// their sizes add up to the bytes fetched.
func hashTree(ctx context.Context, f fsys.FS, dir, linkDest string, old *manifest.Manifest, workers int) (entries []manifest.Entry, linked int, fetched int64, err error) {
	entries, err = tree.Walk(ctx, f, dir, nil)
	if err != nil {
		return nil, 0, 0, fmt.Errorf("list copied tree: %w", err)
	}
	oldAt := map[string]manifest.Entry{}
	if old != nil {
		for _, e := range old.Entries {
			if e.Type == manifest.File {
				oldAt[e.Path] = e
			}
		}
	}
	var mu sync.Mutex
	pool := tree.NewPool(ctx, workers)
	for i := range entries {
		e := &entries[i]
		if e.Type != manifest.File {
			continue
		}
		if err := pool.Go(func(context.Context) error {
			full := filepath.Join(dir, filepath.FromSlash(e.Path))
			if o, ok := oldAt[e.Path]; ok && o.Size == e.Size && o.MTime == e.MTime {
				a, errA := f.Stat(full)
				b, errB := f.Stat(filepath.Join(linkDest, filepath.FromSlash(e.Path)))
				if errA == nil && errB == nil && os.SameFile(a, b) {
					e.Hash = o.Hash
					mu.Lock()
					linked++
					mu.Unlock()
					return nil
				}
			}
			h, sz, err := tree.HashFile(f, full)
			if err != nil {
				return fmt.Errorf("hash %s: %w", full, err)
			}
			if sz != e.Size {
				return fmt.Errorf("hash %s: size changed from %d to %d after the copy", full, e.Size, sz)
			}
			e.Hash = h
			mu.Lock()
			fetched += sz
			mu.Unlock()
			return nil
		}); err != nil {
			break
		}
	}
	if err := pool.Wait(); err != nil {
		return nil, 0, 0, err
	}
	return entries, linked, fetched, nil
}

func sameEntries(a, b []manifest.Entry) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Path != b[i].Path || !a[i].SameContent(b[i]) {
			return false
		}
	}
	return true
}

// countDeletes counts the served files that m no longer has, and all served files.
func countDeletes(old, m *manifest.Manifest) (del, total int) {
	_ = manifest.Diff(old.Iter(), m.Iter(), func(c manifest.Change) error {
		if c.Old != nil && c.Old.Type == manifest.File {
			total++
			if c.New == nil {
				del++
			}
		}
		return nil
	})
	return del, total
}
