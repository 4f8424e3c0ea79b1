package mirror

import (
	"context"
	"fmt"
	"path/filepath"
	"sync/atomic"

	"github.com/seqmirror/seqmirror/internal/fsys"
	"github.com/seqmirror/seqmirror/internal/tree"
	"github.com/seqmirror/seqmirror/manifest"
)

// layer is pass 2 of a build: it makes the tree in ROOT/.work/N from what
// pass 1 kept if it could keep it all, else streaming the diff again;
// memory is bounded by the limits' records, whatever the size of the tree.
// Unchanged files are linked from the base, files an older snapshot holds
// are linked from it (older), and the rest are fetched, beside the links:
// the one waits on the upstream, the other on the local disk.
type layer struct {
	b      *build
	pool   *tree.Pool
	links  *linker
	others *older
	// listed: pass 1 listed every file to fetch (b.p.fetch), which are
	// fetched from the start; otherwise the diff queues them and they are
	// fetched in chunks as it streams, and the last chunk beside the last
	// links.
	listed  bool
	queue   []manifest.Entry
	fetched chan error // the last fetch and the recheck; nil until started
	files   atomic.Int64
	bytes   atomic.Int64
}

// lay makes the directories, then the tree.
func (b *build) lay(ctx context.Context) error {
	if err := b.makeDirs(ctx); err != nil {
		return err
	}
	b.phase("mkdirs")
	root := b.s.root
	oldDir := ""
	if b.base > 0 {
		oldDir = root.SnapshotDir(b.base)
	}
	pool := tree.NewPool(ctx, b.s.opt.Workers)
	l := &layer{
		b: b, pool: pool, listed: b.p.fetch != nil,
		links:  newLinker(root.FS, pool, oldDir, b.work, b.mode == workSubvol),
		others: &older{root: root, skip: [2]uint64{b.base, b.n}, pool: pool, work: b.work, log: b.s.opt.Log, clone: b.mode == workSubvol},
	}
	defer l.others.close()
	err := l.run(ctx)
	werr := pool.Wait()
	var ferr error
	if l.fetched != nil {
		ferr = <-l.fetched
	}
	b.res.Linked += l.others.linked
	b.res.Fetched += int(l.files.Load())
	b.res.Bytes += l.bytes.Load()
	for _, e := range []error{err, werr, ferr} {
		if e != nil {
			return e
		}
	}
	b.phase("links and fetch")
	return nil
}

// run lays the links and symlinks and starts the fetches; the caller waits
// for them.
func (l *layer) run(ctx context.Context) error {
	b := l.b
	var pr pair
	if !b.p.whole {
		var err error
		if pr, err = b.openPair(b.base); err != nil {
			return err
		}
		defer pr.close()
	}
	if l.listed {
		rest, err := l.others.link(b.p.fetch)
		if err != nil {
			return err
		}
		l.startFetch(ctx, rest)
	}
	var err error
	if b.p.whole {
		err = l.fromPlan()
	} else {
		err = manifest.Diff(pr.old(), pr.nm, func(c manifest.Change) error { return l.change(ctx, c) })
	}
	if err == nil && !l.listed {
		l.queue, err = l.others.link(l.queue)
	}
	if err == nil {
		err = l.links.flush()
	}
	if err == nil {
		err = l.others.flush()
	}
	b.phase("diff")
	if err == nil && !l.listed {
		l.startFetch(ctx, l.queue)
	}
	return err
}

// fromPlan lays the symlinks and links pass 1 kept.
func (l *layer) fromPlan() error {
	p := l.b.p
	l.b.res.Deleted = p.removed
	for i := range p.symlinks {
		if err := l.symlink(&p.symlinks[i]); err != nil {
			return err
		}
	}
	for _, rel := range p.links {
		l.b.res.Linked++
		if err := l.links.add(rel); err != nil {
			return err
		}
	}
	return nil
}

// change lays one change of the streamed diff.
func (l *layer) change(ctx context.Context, c manifest.Change) error {
	if c.New == nil {
		l.b.res.Deleted++
		return nil
	}
	e := c.New
	switch e.Type {
	case manifest.Dir:
		// made by makeDirs
	case manifest.Symlink:
		return l.symlink(e)
	case manifest.File:
		if c.Old != nil && c.Same {
			l.b.res.Linked++
			return l.links.add(e.Path)
		}
		if l.listed {
			return nil // being fetched already
		}
		l.queue = append(l.queue, *e)
		if len(l.queue) >= l.b.s.opt.lim.fetchChunk {
			var err error
			if l.queue, err = l.others.link(l.queue); err != nil {
				return err
			}
			err = l.fetch(ctx, l.queue)
			l.queue = l.queue[:0]
			return err
		}
	}
	return nil
}

func (l *layer) symlink(e *manifest.Entry) error {
	dst := join(l.b.work, e.Path)
	if err := l.b.s.root.FS.SymlinkIfPossible(e.Target, dst); err != nil {
		return fmt.Errorf("symlink %s: %w", dst, err)
	}
	return nil
}

// startFetch fetches files, then rechecks the upstream, in the background.
func (l *layer) startFetch(ctx context.Context, files []manifest.Entry) {
	l.fetched = make(chan error, 1)
	go func() {
		err := l.fetch(ctx, files)
		if err == nil {
			err = l.b.recheck(ctx)
		}
		l.fetched <- err
	}()
}

// fetch fetches files and applies their metadata.
func (l *layer) fetch(ctx context.Context, files []manifest.Entry) error {
	if len(files) == 0 {
		return nil
	}
	b := l.b
	if err := b.s.up.Fetch(ctx, b.n, files, b.work); err != nil {
		return err
	}
	if err := setMeta(ctx, b.s.root.FS, b.work, files, b.s.opt.Workers); err != nil {
		return err
	}
	for _, e := range files {
		l.bytes.Add(e.Size)
	}
	l.files.Add(int64(len(files)))
	return nil
}

// join is filepath.Join for a clean base and a validated manifest path
// (relative, clean, slash-separated), without re-cleaning.
func join(base, rel string) string {
	if filepath.Separator != '/' {
		return filepath.Join(base, filepath.FromSlash(rel))
	}
	return base + "/" + rel
}

// linker hard-links unchanged files from src to dst (the served or an
// older snapshot to the work tree), in batches of one directory's files
// (tree.Batcher), each linked by name relative to the two directories.
type linker struct{ tree.Batcher[string] }

const linkBatch = 256

// With clone (dst is a new btrfs subvolume, which no hard link can
// reach), each file is a reflink copy instead (fsys.CloneAll).
func newLinker(f fsys.FS, pool *tree.Pool, src, dst string, clone bool) *linker {
	link := fsys.LinkAll
	if clone {
		link = fsys.CloneAll
	}
	return &linker{tree.Batcher[string]{Pool: pool, Max: linkBatch, Job: func(_ context.Context, dir string, names []string) error {
		if dir == "" {
			return link(f, src, dst, names)
		}
		return link(f, join(src, dir), join(dst, dir), names)
	}}}
}

func (l *linker) add(rel string) error { return l.Add(rel, tree.Base(rel)) }

func (l *linker) flush() error { return l.Flush() }

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
