package snapshot

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/seqmirror/seqmirror/internal/fsys"
	"github.com/seqmirror/seqmirror/internal/retry"
	"github.com/seqmirror/seqmirror/internal/tree"
	"github.com/seqmirror/seqmirror/manifest"
)

// fileBatch bounds the files of one pool job.
const fileBatch = 64

// build makes the new snapshot's tree in ROOT/.work/N (the update starts
// here: seq/begin is bumped before the first write): directories, then
// files (linked or copied) and symlinks, then the directories' metadata.
func (a *attempt) build() error {
	root := a.u.Root()
	n, err := root.NextNumber()
	if err != nil {
		return err
	}
	if a.work, err = a.u.Work(n); err != nil {
		return err
	}
	a.n = n
	if served := a.u.Served(); served > 0 {
		a.prevDir = root.SnapshotDir(served)
	}
	for _, e := range a.entries {
		if e.Type == manifest.Dir {
			a.dirs = append(a.dirs, e)
		}
	}
	if err := tree.MakeDirs(a.actx, a.f, a.work, a.dirs, a.opt.Workers); err != nil {
		return err
	}
	a.clock.phase("mkdirs")
	if err := a.files(); err != nil {
		return err
	}
	a.clock.phase("files")
	if err := tree.FinishDirsParallel(a.actx, a.f, a.work, a.dirs, a.opt.Workers); err != nil {
		return err
	}
	a.clock.phase("finish dirs")
	return nil
}

// files makes the symlinks here and has a pool link or copy the files.
//
// Directories are made before, in canonical order (a directory comes
// before everything in it), while the pool already links and copies the
// files of the directories made before: mkdir on ext4 hardly scales
// across cores, linking does. Files go to the pool in batches of one
// directory's files, so workers work in different directories (creations
// in one directory serialise on its lock) and a job costs one channel send
// per batch.
func (a *attempt) files() error {
	pool := tree.NewPool(a.actx, a.opt.Workers)
	batches := &tree.Batcher[int]{Pool: pool, Max: fileBatch, Job: func(_ context.Context, dir string, b []int) error {
		return a.batch(b, dir)
	}}
	for i := range a.entries {
		e := &a.entries[i]
		switch e.Type {
		case manifest.Dir:
			continue
		case manifest.Symlink:
			dst := a.dst(e)
			if err := a.f.SymlinkIfPossible(e.Target, dst); err != nil {
				pool.Wait()
				return fmt.Errorf("symlink %s: %w", dst, err)
			}
			continue
		}
		if batches.Add(e.Path, i) != nil {
			break // the pool is stopping: Wait says why
		}
	}
	batches.Flush()
	return pool.Wait()
}

// batch links or copies the files (indexes of entries) of directory dir
// into the work tree. Unchanged files of the served snapshot are linked in
// one go, relative to the two directories (fsys.LinkAll); if that fails
// part way (e.g. too many links), each file takes the slow path (file).
func (a *attempt) batch(b []int, dir string) error {
	if !a.opt.Force && a.prevDir != "" {
		b = a.linkAll(b, dir)
	}
	for _, i := range b {
		if a.fromServed(i) {
			if _, err := fsys.Lstat(a.f, a.dst(&a.entries[i])); err == nil {
				a.linked.Add(1) // linked by the LinkAll that failed later
				continue
			}
		}
		if err := a.file(i); err != nil {
			return err
		}
	}
	return nil
}

// fromServed reports whether entries[i] is to be linked from the served
// snapshot without a check (not a forced republish).
func (a *attempt) fromServed(i int) bool {
	_, o := a.older[i]
	return a.linkable[i] && !o && !a.opt.Force
}

// linkAll links the files of b that come from the served snapshot in one
// go and returns the rest, or all of b if that failed.
func (a *attempt) linkAll(b []int, dir string) []int {
	var names []string
	var rest []int
	for _, i := range b {
		if a.fromServed(i) {
			names = append(names, tree.Base(a.entries[i].Path))
		} else {
			rest = append(rest, i)
		}
	}
	from, to := filepath.Join(a.prevDir, filepath.FromSlash(dir)), filepath.Join(a.work, filepath.FromSlash(dir))
	if err := fsys.LinkAll(a.f, from, to, names); err != nil {
		return b
	}
	a.linked.Add(int64(len(names)))
	return rest
}

// file links or copies entries[i] into the work tree.
func (a *attempt) file(i int) error {
	if a.linkable[i] {
		linked, err := a.link(i)
		if err != nil || linked {
			return err
		}
	}
	return a.copy(i)
}

// link links entries[i] from the retained snapshot that holds it. It
// reports false, for a copy instead, when the link failed (e.g. too many
// links) or a forced republish found the source or the old file differ
// from the record (forceLinkable).
func (a *attempt) link(i int) (bool, error) {
	e := &a.entries[i]
	from, ok := a.older[i]
	if !ok {
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

// copy copies entries[i] from the source, hashing it for the manifest
// (SHA-256: manifest.Current) in the same pass, and checks that the
// source file did not change while copied (a retry.Error if it did).
func (a *attempt) copy(i int) error {
	e := &a.entries[i]
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
