package mirror

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/seqmirror/seqmirror/internal/export"
	"github.com/seqmirror/seqmirror/internal/fsys"
	"github.com/seqmirror/seqmirror/internal/retry"
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
//     served snapshot), writes the manifest and installs it as Sync does.
//
// A copy that turns out identical to the served snapshot makes no new one.
func SyncClassic(ctx context.Context, root *export.Root, up transport.Upstream, opt Options) (res Result, err error) {
	if err := opt.check(); err != nil {
		return res, err
	}
	tf, ok := up.(transport.TreeFetcher)
	if !ok {
		return res, fmt.Errorf("classic mode: upstream %s cannot copy a whole tree (use an rsync address or a path)", up)
	}
	if err := checkUpstream(root, up); err != nil {
		return res, err
	}
	u, err := begin(ctx, root, up, opt)
	if err != nil {
		return res, err
	}
	c := &classicRun{root: root, up: up, tf: tf, opt: opt, u: u, cur: u.Served()}
	defer func() {
		c.res.Pruned, err = u.Done(err)
		res = c.res
	}()
	c.res.Previous, c.res.Snapshot = c.cur, c.cur
	if c.cur > 0 {
		if c.old, err = root.ReadManifest(c.cur); err != nil {
			return c.res, &baseError{err}
		}
	}
	c.last, c.lastErr = seqfile.Read(root.FS, root.Path(ClassicStateName))
	policy := opt.policy(func(why string, attempt int, wait time.Duration) {
		opt.Log.Warn("upstream moved or did not answer; retrying the copy after a wait", "why", why, "attempt", attempt, "wait", wait)
	})
	err = retry.Do(ctx, policy, c.attempt(ctx))
	var ex *retry.Exhausted
	if errors.As(err, &ex) {
		// As in snapshot mode, begin stays above end (an update was
		// started and did not complete) until the next run settles it.
		return c.res, fmt.Errorf("%w: %s: %s (gave up after %d attempts; try again later)", ErrUpstreamBusy, up, ex.Why, ex.Attempts)
	}
	return c.res, err
}

// classicRun is one SyncClassic.
type classicRun struct {
	root    *export.Root
	up      transport.Upstream
	tf      transport.TreeFetcher
	opt     Options
	u       *export.Update
	cur     uint64             // the served snapshot
	old     *manifest.Manifest // its manifest (nil: none)
	last    uint64             // the upstream's seq/end it was copied at (ClassicStateName) ...
	lastErr error              // ... unless this is not nil
	res     Result
}

// attempt returns one attempt of the run, for retry.Do.
func (c *classicRun) attempt(ctx context.Context) func(int) error {
	return func(attempt int) error {
		c.res.Attempts = attempt + 1
		e1, _, err := poll(ctx, c.up, c.opt, false, nil)
		if err != nil {
			return final{err}
		}
		b1, err := c.up.Seq(ctx, seqfile.Begin)
		if err != nil {
			return final{err}
		}
		if err := notSnapshotUpstream(ctx, c.up); err != nil {
			return final{err}
		}
		if b1 != e1 {
			_ = c.u.Discard()
			return retry.Againf("upstream seq/begin=%d != seq/end=%d: its writer is busy", b1, e1)
		}
		if c.cur > 0 && c.lastErr == nil && c.last == e1 {
			// Done repairs what a killed or failed run left behind.
			c.opt.Log.Info("upstream unchanged since the served snapshot", "snapshot", c.cur, "upstream_end", e1)
			return nil
		}
		if err := c.u.Start(); err != nil {
			return final{err}
		}
		r, err := c.copyOnce(ctx, e1)
		if err != nil {
			// Retried or refused: keep nothing the upstream sent.
			_ = c.u.Discard()
			return err
		}
		r.Attempts, r.Previous = c.res.Attempts, c.res.Previous
		c.res = r
		c.u.OnDone(func() error {
			if err := seqfile.Write(c.root.FS, c.root.Path(ClassicStateName), e1); err != nil {
				return fmt.Errorf("record upstream seq/end: %w", err)
			}
			return nil
		})
		return nil
	}
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

// copyOnce copies the tree once and, if the upstream stayed at e1, makes
// it the served snapshot (unless it is the same as the served one).
func (c *classicRun) copyOnce(ctx context.Context, e1 uint64) (Result, error) {
	res := Result{Snapshot: c.cur}
	n, err := c.root.NextNumber()
	if err != nil {
		return res, err
	}
	work, err := c.u.Work(n)
	if err != nil {
		return res, err
	}
	linkDest := ""
	if c.cur > 0 {
		linkDest = c.root.SnapshotDir(c.cur)
	}
	if err := c.tf.FetchTree(ctx, work, linkDest); err != nil {
		return res, err
	}
	b2, err := c.up.Seq(ctx, seqfile.Begin)
	if err != nil {
		return res, err
	}
	if b2 != e1 {
		return res, retry.Againf("upstream seq/begin moved from %d to %d during the copy", e1, b2)
	}
	entries, linked, fetched, err := c.hashTree(ctx, work, linkDest)
	if err != nil {
		return res, err
	}
	m := &manifest.Manifest{Snapshot: n, Entries: entries}
	if c.old != nil {
		if sameEntries(c.old.Entries, entries) {
			c.opt.Log.Info("upstream tree identical to the served snapshot; nothing new", "snapshot", c.cur)
			return res, fsys.RemoveAll(c.root.FS, work)
		}
		del, total := countDeletes(c.old, m)
		if err := c.opt.tooManyDeletes(n, del, total); err != nil {
			return res, err
		}
		res.Deleted = del
	}
	res.Linked, res.Fetched, res.Bytes, res.Entries = linked, countFiles(entries)-linked, fetched, len(entries)
	if err := c.u.Install(ctx, export.Built{N: n, Tree: work, Manifest: work + export.ManifestExt, Encode: m.Encode}); err != nil {
		return res, err
	}
	res.Snapshot, res.Changed = n, true
	res.logServing(c.opt.Log)
	return res, nil
}

// countFiles counts the regular files among entries.
func countFiles(entries []manifest.Entry) int {
	files := 0
	for _, e := range entries {
		if e.Type == manifest.File {
			files++
		}
	}
	return files
}

// hashTree lists dir and hashes its files. A file that is the same inode
// as the file at its path below linkDest takes its hash from c.old (snapshot
// files are immutable), and counts as linked; the others were copied, and
// their sizes add up to the bytes fetched.
func (c *classicRun) hashTree(ctx context.Context, dir, linkDest string) (entries []manifest.Entry, linked int, fetched int64, err error) {
	f, old := c.root.FS, c.old
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
	pool := tree.NewPool(ctx, c.opt.Workers)
	for i := range entries {
		e := &entries[i]
		if e.Type != manifest.File {
			continue
		}
		if err := pool.Go(func(context.Context) error {
			full := filepath.Join(dir, filepath.FromSlash(e.Path))
			if o, ok := oldAt[e.Path]; ok && o.Size == e.Size && o.MTime == e.MTime && !o.Digest.IsZero() {
				a, errA := f.Stat(full)
				b, errB := f.Stat(filepath.Join(linkDest, filepath.FromSlash(e.Path)))
				if errA == nil && errB == nil && os.SameFile(a, b) {
					e.SetSum(o.Sum())
					mu.Lock()
					linked++
					mu.Unlock()
					return nil
				}
			}
			h, sz, err := tree.HashFile(f, full, manifest.Current)
			if err != nil {
				return fmt.Errorf("hash %s: %w", full, err)
			}
			if sz != e.Size {
				return fmt.Errorf("hash %s: size changed from %d to %d after the copy", full, e.Size, sz)
			}
			e.SetSum(h)
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
