package snapshot

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"sync/atomic"

	"github.com/seqmirror/seqmirror/internal/export"
	"github.com/seqmirror/seqmirror/internal/fsys"
	"github.com/seqmirror/seqmirror/internal/retry"
	"github.com/seqmirror/seqmirror/internal/tree"
	"github.com/seqmirror/seqmirror/manifest"
)

// fileBatch bounds the files of one pool job.
const fileBatch = 64

// dirsKept is how many directories the listing keeps in memory for the
// directory passes; over that, they read the spooled listing again.
const dirsKept = 16384

// build makes the new snapshot's tree in ROOT/.work/N and its manifest
// (the update starts here: seq/begin is bumped before the first write):
// directories, then files (linked or copied) and symlinks, with the
// manifest written as they are done, then the directories' metadata.
func (a *attempt) build() error {
	root := a.u.Root()
	n, err := root.NextNumber()
	if err != nil {
		return err
	}
	if a.work, err = a.u.Work(n); err != nil {
		return err
	}
	a.n, a.manPath = n, a.work+export.ManifestExt
	if served := a.u.Served(); served > 0 {
		a.prevDir = root.SnapshotDir(served)
	}
	a.older.open()
	if err := tree.MakeDirsStream(a.actx, a.f, a.work, a.dirs.records(a.spool), a.opt.Workers); err != nil {
		return err
	}
	a.clock.phase("mkdirs")
	if err := a.files(a.batch); err != nil {
		return err
	}
	a.clock.phase("files")
	if err := tree.FinishDirsStream(a.actx, a.f, a.work, a.dirs.records(a.spool), a.opt.Workers); err != nil {
		return err
	}
	a.clock.phase("finish dirs")
	return nil
}

// dirList keeps the listing's directories while there are at most max.
type dirList struct {
	max  int
	dirs []manifest.Entry
	over bool
}

func (d *dirList) add(e *manifest.Entry) {
	if e.Type != manifest.Dir || d.over {
		return
	}
	if len(d.dirs) == d.max {
		d.dirs, d.over = nil, true
		return
	}
	d.dirs = append(d.dirs, *e)
}

// records yields the directories (among other records, which the
// directory passes skip): the kept list, or a pass over the spool.
func (d *dirList) records(s *spool) manifest.Iterator {
	if d.over {
		return s.open()
	}
	return &manifest.SliceIterator{Entries: d.dirs}
}

// fileItem is an entry of the listing on its way to the new snapshot and
// its manifest.
type fileItem struct {
	e        manifest.Entry
	linkable bool   // a retained snapshot has its record (e's Sum is its)
	from     string // the snapshot dir to link it from, if not the served one
	settled  bool   // spooled.settled (the copy-on-write path)
	done     atomic.Bool
}

// files makes the symlinks here (not on the copy-on-write path, whose
// tree has them) and has a pool handle the files by job (batch: link or
// copy them; hashFiles: hash the changed ones), while the manifest records
// every entry in order (recorder).
//
// Files go to the pool in batches of one directory's files, so workers
// work in different directories (creations in one directory serialise on
// its lock) and a job costs one channel send per batch.
func (a *attempt) files(job func(b []*fileItem, dir string) error) error {
	pool := tree.NewPool(a.actx, a.opt.Workers)
	rec, err := newRecorder(a.actx, a.f, a.manPath, a.n, a.opt.Signer != nil)
	if err != nil {
		pool.Wait()
		return err
	}
	batches := &tree.Batcher[*fileItem]{Pool: pool, Max: fileBatch, Job: func(_ context.Context, dir string, b []*fileItem) error {
		err := job(b, dir)
		rec.finished(b, err)
		return err
	}}
	rec.flush = func() { batches.Flush() }
	err = a.lay(a.spool.open(), batches, rec)
	batches.Flush()
	if werr := pool.Wait(); werr != nil {
		err = werr // what stopped the jobs, and so the recorder
	}
	if err == nil {
		err = rec.close()
		a.manDigest = rec.digest()
	}
	rec.abort()
	return err
}

// lay hands each record of the listing to the batches or makes it here,
// and to the recorder.
func (a *attempt) lay(it *spoolReader, batches *tree.Batcher[*fileItem], rec *recorder) error {
	for {
		s, err := it.next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		item := &fileItem{e: s.Entry, linkable: s.linkable, settled: s.settled}
		switch item.e.Type {
		case manifest.Symlink:
			if a.pit {
				item.done.Store(true)
				break
			}
			dst := a.dst(&item.e)
			if err := a.f.SymlinkIfPossible(item.e.Target, dst); err != nil {
				return fmt.Errorf("symlink %s: %w", dst, err)
			}
			item.done.Store(true)
		case manifest.Dir:
			item.done.Store(true)
		default:
			if !item.linkable {
				item.from, item.linkable = a.older.find(&item.e)
			}
			if batches.Add(item.e.Path, item) != nil {
				return nil // the pool is stopping: Wait says why
			}
		}
		if err := rec.add(item); err != nil {
			return err
		}
	}
}

// batch links or copies the files of directory dir into the work tree.
// Unchanged files of the served snapshot are linked in one go, relative
// to the two directories (fsys.LinkAll); if that fails part way (e.g. too
// many links), each file takes the slow path (file).
func (a *attempt) batch(b []*fileItem, dir string) error {
	if !a.opt.Force && a.prevDir != "" {
		b = a.linkAll(b, dir)
	}
	for _, it := range b {
		if a.fromServed(it) {
			if _, err := fsys.Lstat(a.f, a.dst(&it.e)); err == nil {
				a.linked.Add(1) // linked by the LinkAll that failed later
				continue
			}
		}
		if err := a.file(it); err != nil {
			return err
		}
	}
	return nil
}

// fromServed reports whether it is to be linked from the served snapshot
// without a check (not a forced republish).
func (a *attempt) fromServed(it *fileItem) bool {
	return it.linkable && it.from == "" && !a.opt.Force
}

// linkAll links the files of b that come from the served snapshot in one
// go and returns the rest, or all of b if that failed.
func (a *attempt) linkAll(b []*fileItem, dir string) []*fileItem {
	var names []string
	var rest []*fileItem
	for _, it := range b {
		if a.fromServed(it) {
			names = append(names, tree.Base(it.e.Path))
		} else {
			rest = append(rest, it)
		}
	}
	from, to := filepath.Join(a.prevDir, filepath.FromSlash(dir)), filepath.Join(a.work, filepath.FromSlash(dir))
	if err := fsys.LinkAll(a.f, from, to, names); err != nil {
		return b
	}
	a.linked.Add(int64(len(names)))
	return rest
}

// file links or copies it into the work tree.
func (a *attempt) file(it *fileItem) error {
	if it.linkable {
		linked, err := a.link(it)
		if err != nil || linked {
			return err
		}
	}
	return a.copy(&it.e)
}

// link links it from the retained snapshot that holds it. It
// reports false, for a copy instead, when the link failed (e.g. too many
// links) or a forced republish found the source or the old file differ
// from the record (forceLinkable).
func (a *attempt) link(it *fileItem) (bool, error) {
	e, from := &it.e, it.from
	if from == "" {
		from = a.prevDir
	}
	old := filepath.Join(from, filepath.FromSlash(e.Path))
	if a.opt.Force {
		ok, err := forceLinkable(a.f, a.src(e), old, *e)
		if err != nil || !ok {
			return false, err
		}
	}
	if err := a.f.Link(old, a.dst(e)); err != nil {
		return false, nil
	}
	a.linked.Add(1)
	return true, nil
}

// copy copies e from the source, hashing it for the manifest (SHA-256:
// manifest.Current) in the same pass, and checks that the source file did
// not change while copied (a retry.Error if it did).
func (a *attempt) copy(e *manifest.Entry) error {
	src, dst := a.src(e), a.dst(e)
	h, sz, err := tree.CopyFile(a.f, src, a.f, dst, -1, manifest.Current)
	if err != nil {
		return err
	}
	fi, err := fsys.Lstat(a.f, src)
	if err != nil {
		return retry.Againf("%s: %v", e.Path, err)
	}
	if sz != e.Size || fi.Size() != e.Size || fi.ModTime().UnixNano() != e.MTime {
		return retry.Again(e.Path + " was modified while copied")
	}
	e.SetSum(h)
	a.copied.Add(1)
	a.bytes.Add(sz)
	return tree.SetMeta(a.f, dst, *e)
}

// src is e's path in the source, dst in the work tree.
func (a *attempt) src(e *manifest.Entry) string {
	return filepath.Join(a.source, filepath.FromSlash(e.Path))
}

func (a *attempt) dst(e *manifest.Entry) string {
	return filepath.Join(a.work, filepath.FromSlash(e.Path))
}
