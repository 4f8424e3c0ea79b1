package mirror

import (
	"context"
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/seqmirror/seqmirror/internal/cow"
	"github.com/seqmirror/seqmirror/internal/fsys"
	"github.com/seqmirror/seqmirror/internal/tree"
	"github.com/seqmirror/seqmirror/manifest"
)

// The copy-on-write path (docs/operating.md section 20). When the root is
// on btrfs, a build makes ROOT/.work/N a subvolume: a writable snapshot of
// the base snapshot when that is a subvolume (layCow: one ioctl for the
// whole unchanged tree, then only the diff applied — deletions, new and
// changed directories, symlinks and files, the files fetched and verified
// as ever), or a new empty subvolume when there is no base (a first copy,
// laid as before) or the base is a plain directory (made by the hard-link
// farm: laid as before, its unchanged files reflinked instead of linked,
// as no hard link crosses subvolumes). Install makes it read-only in
// snapshots/.

// workMode is how a build makes its work tree.
type workMode int

const (
	workPlain    workMode = iota // a directory; unchanged files hard-linked
	workSnapshot                 // a writable snapshot of the base subvolume
	workSubvol                   // a new empty subvolume, laid as a plain one (reflinks for links)
)

// chooseWork picks the work tree's kind and says which at debug level.
func (b *build) chooseWork() workMode {
	root := b.s.root
	mode, why := workPlain, ""
	c, err := cow.Probe(root.Dir)
	switch {
	case err != nil:
		why = err.Error()
	case !c.Snapshots:
		why = "the root is on " + c.FS + ", not btrfs"
	case b.base == 0:
		mode = workSubvol
	default:
		sub, err := cow.IsSubvolume(root.SnapshotDir(b.base))
		switch {
		case err != nil:
			why = err.Error()
		case !sub:
			// Made by the hard-link farm: this snapshot becomes a new
			// subvolume, its unchanged files reflinked (newLinker), and the
			// next sync snapshots it.
			b.s.opt.Log.Debug("syncing into a new subvolume: the served snapshot is a plain directory (hard links); unchanged files are reflinked", "from", b.base)
			return workSubvol
		default:
			mode = workSnapshot
		}
	}
	if mode == workPlain {
		b.s.opt.Log.Debug("syncing with hard links (no copy-on-write)", "why", why)
	} else {
		b.s.opt.Log.Debug("syncing copy-on-write: the snapshot is a btrfs subvolume", "from", b.base)
	}
	return mode
}

// makeWork makes ROOT/.work/N as mode says; a copy-on-write mode the
// filesystem refuses falls back to a plain directory.
func (b *build) makeWork(mode workMode) (workMode, error) {
	if mode != workPlain {
		from := ""
		if mode == workSnapshot {
			from = b.s.root.SnapshotDir(b.base)
		}
		work, err := b.s.u.WorkSnapshot(b.n, from)
		if err == nil {
			b.work = work
			return mode, nil
		}
		if !errors.Is(err, cow.ErrUnsupported) {
			return mode, err
		}
		b.s.opt.Log.Debug("syncing with hard links (no copy-on-write)", "why", err.Error())
	}
	work, err := b.s.u.Work(b.n)
	b.work = work
	return workPlain, err
}

// cowLayer applies the diff from the base snapshot to its writable
// snapshot in ROOT/.work/N.
type cowLayer struct {
	b      *build
	f      fsys.FS
	dirs   []manifest.Entry          // the new manifest's directories above the current path
	marked map[string]manifest.Entry // directories whose mode or mtime to set at the end
	queue  []manifest.Entry          // files to fetch
	files  int
	bytes  int64
}

// layCow lays the tree on the copy-on-write path: the diff applied in one
// streamed pass (files fetched in chunks as it goes), then the modes and
// mtimes of the directories it touched.
func (b *build) layCow(ctx context.Context) error {
	pr, err := b.openPair(b.base)
	if err != nil {
		return err
	}
	defer pr.close()
	l := &cowLayer{b: b, f: b.s.root.FS, marked: map[string]manifest.Entry{}}
	err = manifest.Diff(pr.old(), pr.nm, func(c manifest.Change) error { return l.change(ctx, c) })
	if err == nil {
		err = l.fetch(ctx)
	}
	b.res.Fetched += l.files
	b.res.Bytes += l.bytes
	if err != nil {
		return err
	}
	b.phase("diff and fetch")
	if err := b.recheck(ctx); err != nil {
		return err
	}
	return l.finishDirs()
}

// change applies one change of the diff.
func (l *cowLayer) change(ctx context.Context, c manifest.Change) error {
	p := c.New
	if p == nil {
		p = c.Old
	}
	l.enter(p.Path)
	if c.New != nil && c.New.Type == manifest.Dir {
		l.dirs = append(l.dirs, *c.New)
	}
	if c.Old != nil && c.New != nil && c.Same {
		if c.New.Type == manifest.File {
			l.b.res.Linked++
		}
		return nil
	}
	l.touch(path.Dir(p.Path))
	if c.Old != nil && (c.New == nil || c.Old.Type != c.New.Type || c.New.Type != manifest.Dir) {
		if err := l.remove(c.Old.Path); err != nil {
			return err
		}
	}
	if c.New == nil {
		l.b.res.Deleted++
		return nil
	}
	return l.add(ctx, c)
}

// add makes the new or changed entry c.New (its old self removed, unless
// it is a directory that stays one).
func (l *cowLayer) add(ctx context.Context, c manifest.Change) error {
	e := c.New
	full := join(l.b.work, e.Path)
	switch e.Type {
	case manifest.Dir:
		l.marked[e.Path] = *e
		if c.Old != nil && c.Old.Type == manifest.Dir {
			return nil
		}
		if err := l.f.Mkdir(full, 0o700); err != nil {
			return fmt.Errorf("mkdir %s: %w", full, err)
		}
	case manifest.Symlink:
		if err := l.f.SymlinkIfPossible(e.Target, full); err != nil {
			return fmt.Errorf("symlink %s: %w", full, err)
		}
	case manifest.File:
		l.queue = append(l.queue, *e)
		if len(l.queue) >= l.b.s.opt.lim.fetchChunk {
			return l.fetch(ctx)
		}
	}
	return nil
}

// enter pops the directories that do not hold rel (canonical order: a
// directory's records follow it).
func (l *cowLayer) enter(rel string) {
	for len(l.dirs) > 0 {
		d := l.dirs[len(l.dirs)-1].Path
		if strings.HasPrefix(rel, d+"/") {
			return
		}
		l.dirs = l.dirs[:len(l.dirs)-1]
	}
}

// touch marks directory rel, where an entry is added or removed, for its
// mode and mtime to be set again (its record is on the stack; "." is the
// tree's top, which records nothing).
func (l *cowLayer) touch(rel string) {
	for i := len(l.dirs) - 1; i >= 0; i-- {
		if l.dirs[i].Path == rel {
			l.marked[rel] = l.dirs[i]
			return
		}
	}
}

// remove deletes rel from the work tree (a directory with all below it;
// already gone with a directory removed before is fine).
func (l *cowLayer) remove(rel string) error {
	full := join(l.b.work, rel)
	if _, err := fsys.Lstat(l.f, full); err != nil {
		return nil // gone with a directory removed before, or below a file now
	}
	if err := fsys.RemoveAll(l.f, full); err != nil {
		return fmt.Errorf("remove %s: %w", full, err)
	}
	return nil
}

// fetch fetches the queued files (verified against their records by the
// upstream's Fetch) and sets their metadata.
func (l *cowLayer) fetch(ctx context.Context) error {
	if len(l.queue) == 0 {
		return nil
	}
	b := l.b
	if err := b.s.up.Fetch(ctx, b.n, l.queue, b.work); err != nil {
		return err
	}
	if err := setMeta(ctx, l.f, b.work, l.queue, b.s.opt.Workers); err != nil {
		return err
	}
	for _, e := range l.queue {
		l.bytes += e.Size
	}
	l.files += len(l.queue)
	l.queue = l.queue[:0]
	return nil
}

// finishDirs sets the modes and mtimes of the marked directories, deepest
// first (a directory without its owner's x must come after all below it).
func (l *cowLayer) finishDirs() error {
	dirs := make([]manifest.Entry, 0, len(l.marked))
	for _, e := range l.marked {
		dirs = append(dirs, e)
	}
	slices.SortFunc(dirs, func(a, b manifest.Entry) int { return manifest.Compare(a.Path, b.Path) })
	return tree.FinishDirs(l.f, l.b.work, dirs)
}
