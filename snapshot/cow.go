package snapshot

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"path/filepath"
	"slices"
	"sync"
	"syscall"

	"github.com/seqmirror/seqmirror/internal/cow"
	"github.com/seqmirror/seqmirror/internal/export"
	"github.com/seqmirror/seqmirror/internal/fsys"
	"github.com/seqmirror/seqmirror/internal/tree"
	"github.com/seqmirror/seqmirror/manifest"
)

// The copy-on-write path (docs/operating.md section 20): when the root is
// on btrfs and the source is a subvolume of the same filesystem without
// nested subvolumes, an attempt first takes a snapshot of the source,
// ROOT/.work/source (cowSourceName; writable, but only this run, which
// holds the root's lock, writes below .work): the source as it was at one
// instant, so the listing needs no confirmation and no file can change
// while it is hashed. The attempt lists that snapshot; if nothing changed
// it deletes it and nothing else is written (the listing stats only the
// inodes btrfs says changed since the served snapshot: cowlist.go). Otherwise the snapshot
// becomes the new snapshot's tree (export.Update.WorkAdopt renames it to
// ROOT/.work/N): what the listing leaves out (excludes, seq/, git's
// transient files) is deleted from it, and only the files the served
// snapshot cannot vouch for (unchanged) are read, to hash them. Install
// makes it read-only in snapshots/. Nothing is linked or copied.

// cowSourceName is the snapshot of the source in ROOT/.work.
const cowSourceName = "source"

// snapshotSource takes the snapshot of the source if the
// copy-on-write path can be taken, and says at debug level which path the
// attempt takes and why. ok false: the hard-link farm. An error other than
// the filesystem's refusal (cow.ErrUnsupported) fails the attempt.
func (a *attempt) snapshotSource() (snap string, ok bool, err error) {
	root := a.u.Root()
	why := cowRefusal(root.Dir, a.source)
	if why == "" {
		snap = filepath.Join(root.WorkDir(), cowSourceName)
		if err := fsys.RemoveAll(a.f, snap); err != nil {
			return "", false, fmt.Errorf("remove an old snapshot of the source: %w", err)
		}
		err := cow.Snapshot(a.source, snap, false)
		if err == nil {
			a.opt.Log.Debug("publishing copy-on-write: a btrfs snapshot of the source", "snapshot", snap)
			return snap, true, nil
		}
		if !errors.Is(err, cow.ErrUnsupported) {
			return "", false, err
		}
		why = err.Error()
	}
	a.opt.Log.Debug("publishing with hard links from the served snapshot (no copy-on-write)", "why", why)
	return "", false, nil
}

// cowRefusal says why the copy-on-write path cannot be taken for source
// and root ("" if it can).
func cowRefusal(root, source string) string {
	c, err := cow.Probe(root)
	switch {
	case err != nil:
		return err.Error()
	case !c.Snapshots:
		return "the root is on " + c.FS + ", not btrfs"
	}
	sub, err := cow.IsSubvolume(source)
	switch {
	case err != nil:
		return err.Error()
	case !sub:
		return "the source is not a btrfs subvolume"
	}
	nested, err := cow.HasNested(source)
	switch {
	case err != nil:
		return err.Error()
	case nested:
		return "the source holds other subvolumes, which a snapshot leaves out"
	}
	return ""
}

// runCow is run on the copy-on-write path, with a.source the snapshot of
// the source (removed at the end unless it became the new snapshot).
func (a *attempt) runCow() (_ PublishResult, err error) {
	defer func() {
		if rerr := fsys.RemoveAll(a.f, a.source); rerr != nil && err == nil {
			err = fmt.Errorf("remove the snapshot of the source: %w", rerr)
		}
	}()
	if served := a.u.Served(); served > 0 {
		a.prevDir = a.u.Root().SnapshotDir(served)
	}
	fresh, err := a.list()
	if err != nil || !fresh {
		return a.res, err
	}
	a.actx = a.ctx
	if err := a.buildCow(); err != nil {
		return a.res, err
	}
	if err := a.commit(); err != nil {
		return a.res, err
	}
	return a.res, nil
}

// skipRecorder wraps the listing's skip function to remember what it left
// out (top-most paths only: the walk does not descend into them), for
// buildCow to delete from the snapshot.
type skipRecorder struct {
	mu      sync.Mutex
	skipped []string
}

func (r *skipRecorder) wrap(skip func(string) bool) func(string) bool {
	return func(rel string) bool {
		if !skip(rel) {
			return false
		}
		r.mu.Lock()
		r.skipped = append(r.skipped, rel)
		r.mu.Unlock()
		return true
	}
}

// buildCow makes the snapshot of the source ROOT/.work/N, deletes from it
// what the listing left out (restoring the directories' mtimes) and hashes
// the files the served snapshot cannot vouch for.
func (a *attempt) buildCow() error {
	root := a.u.Root()
	n, err := root.NextNumber()
	if err != nil {
		return err
	}
	if a.work, err = a.u.WorkAdopt(n, a.source); err != nil {
		return err
	}
	a.n, a.manPath = n, a.work+export.ManifestExt
	if err := a.f.Chmod(a.work, 0o755); err != nil { // as Work makes it
		return fmt.Errorf("chmod %s: %w", a.work, err)
	}
	if err := a.leaveOut(); err != nil {
		return err
	}
	a.clock.phase("leave out")
	if err := a.hashChanged(); err != nil {
		return err
	}
	a.clock.phase("hash changed")
	return nil
}

// leaveOut deletes the skipped paths from the work tree and gives their
// directories back the mtimes (and modes) listed.
func (a *attempt) leaveOut() error {
	skipped := a.skips.skipped
	slices.Sort(skipped)
	parents := map[string]bool{}
	for _, rel := range skipped {
		if err := fsys.RemoveAll(a.f, filepath.Join(a.work, filepath.FromSlash(rel))); err != nil {
			return fmt.Errorf("leave out %s: %w", rel, err)
		}
		parents[path.Dir(rel)] = true
	}
	if len(parents) == 0 {
		return nil
	}
	var dirs []manifest.Entry // the parents' records, deepest last
	it := a.dirs.records(a.spool)
	for {
		e, err := it.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		if e.Type == manifest.Dir && parents[e.Path] {
			dirs = append(dirs, e)
		}
	}
	for i := len(dirs) - 1; i >= 0; i-- {
		if err := tree.SetMeta(a.f, a.dst(&dirs[i]), dirs[i]); err != nil {
			return err
		}
	}
	return nil
}

// hashChanged hashes, in parallel, the files of the work tree that the
// served snapshot cannot vouch for (unchanged), while the manifest records
// every entry in order (files); with Force, every file. They count as
// copied, the others as linked (they share the served snapshot's data on
// disk).
func (a *attempt) hashChanged() error {
	return a.files(a.hashFiles)
}

// hashFiles hashes the files of b (of directory dir) in the work tree
// that are not unchanged, and records their Sums. A file the prehasher
// hashed is one walkChanged found not unchanged: its sum is taken as is.
func (a *attempt) hashFiles(b []*fileItem, _ string) error {
	for _, it := range b {
		e := &it.e
		p, pre := a.pre.sum(e.Path)
		if !pre && !a.opt.Force && it.linkable && a.unchanged(it) {
			a.linked.Add(1)
			continue
		}
		if !pre {
			var err error
			if p.sum, p.size, err = tree.HashFile(a.f, a.dst(e), manifest.Current); err != nil {
				return fmt.Errorf("hash %s: %w", e.Path, err)
			}
		}
		if p.size != e.Size {
			return fmt.Errorf("%s: %w: %d bytes in the snapshot, %d listed", e.Path, errSnapshotMoved, p.size, e.Size)
		}
		e.SetSum(p.sum)
		a.copied.Add(1)
		a.bytes.Add(p.size)
	}
	return nil
}

// unchanged reports whether e, which the pairer paired with the served
// snapshot's record by the quick check (size, mtime, mode), is the very
// file of the served snapshot: the same inode with the same ctime, which
// every write, chmod and rename moves and no one can set back. It holds
// when the served snapshot is an earlier btrfs snapshot of the same source
// subvolume and the file was not touched since. Otherwise (a content
// edited with its mtime put back, the first copy-on-write publish after
// hard-linked ones) the file is hashed: what the snapshot holds is the
// source's data, not the served snapshot's, so the hash must be its own.
//
// After walkChanged, an entry whose inode btrfs says did not change
// (settled) is unchanged without a look; one that changed is still checked so, as an
// inode item also changes when only its atime moves (a read of the source
// under relatime), which leaves the ctime alone.
func (a *attempt) unchanged(it *fileItem) bool {
	if it.settled {
		return true
	}
	now, err := fsys.Lstat(a.f, a.dst(&it.e))
	return err == nil && a.servedFile(now, it.e.Path)
}

// servedFile is unchanged's look at now, the lstat of the file at rel:
// the served snapshot's very file.
func (a *attempt) servedFile(now fs.FileInfo, rel string) bool {
	if a.prevDir == "" {
		return false
	}
	was, err := fsys.Lstat(a.f, filepath.Join(a.prevDir, filepath.FromSlash(rel)))
	if err != nil {
		return false
	}
	n, ok1 := now.Sys().(*syscall.Stat_t)
	w, ok2 := was.Sys().(*syscall.Stat_t)
	return ok1 && ok2 && n.Ino == w.Ino && n.Ctim == w.Ctim && n.Size == w.Size && n.Mtim == w.Mtim
}

// errSnapshotMoved means a file of a point-in-time snapshot is not what
// its listing said: something wrote into ROOT/.work, which only the
// lock's holder does.
var errSnapshotMoved = errors.New("snapshot of the source changed under publish")
