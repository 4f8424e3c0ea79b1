package web

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"

	"github.com/seqmirror/seqmirror/internal/transport/upstream"
	"github.com/seqmirror/seqmirror/internal/tree"
	"github.com/seqmirror/seqmirror/manifest"
)

// FetchSnapshot implements upstream.SnapshotFetcher (a first copy): one
// pass over m hands the files to the pool of workers as it reaches them,
// in batches of one directory's files (tree.Batcher: creations in one
// directory serialise on its lock, so the workers work in different
// ones), so the requests stream without a pause between chunks, and makes
// each symlink itself. A file is fetched as Fetch fetches it (streamed
// into its place while hashed, retried, removed if it fails), and given
// its record's mode and mtime on the open descriptor before it is closed,
// instead of by path in a pass of its own. Directories are the caller's.
func (u *Upstream) FetchSnapshot(ctx context.Context, n uint64, m upstream.Records, dir string) error {
	p, err := u.snapshotProgress(m)
	if err != nil {
		return err
	}
	it, err := m.Open()
	if err != nil {
		return err
	}
	defer it.Close()
	pool := tree.NewPool(ctx, u.workers())
	b := &tree.Batcher[manifest.Entry]{Pool: pool, Max: dirBatch, Job: func(ctx context.Context, _ string, files []manifest.Entry) error {
		for _, e := range files {
			dst := filepath.Join(dir, filepath.FromSlash(e.Path))
			if err := u.again(ctx, func() error { return u.fetchFile(ctx, n, e, dst, true) }); err != nil {
				return err
			}
			p.done(e.Size)
		}
		return nil
	}}
	for err == nil {
		var e manifest.Entry
		if e, err = it.Next(); err == nil {
			err = u.fetchRecord(b, n, e, dir)
		}
	}
	if errors.Is(err, io.EOF) {
		err = b.Flush()
	}
	if werr := pool.Wait(); werr != nil {
		return werr // a worker's error is the cause; err is then the pool's
	}
	return err
}

// dirBatch bounds the files of one directory a worker fetches in a row.
const dirBatch = 64

// fetchRecord queues the fetch of record e if it is a file, or makes the
// symlink it is.
func (u *Upstream) fetchRecord(b *tree.Batcher[manifest.Entry], n uint64, e manifest.Entry, dir string) error {
	if err := manifest.CheckPath(e.Path); err != nil {
		return fmt.Errorf("fetch snapshot %d: %w", n, err)
	}
	switch e.Type {
	case manifest.File:
		return b.Add(e.Path, e)
	case manifest.Symlink:
		dst := filepath.Join(dir, filepath.FromSlash(e.Path))
		if err := u.local.SymlinkIfPossible(e.Target, dst); err != nil {
			return fmt.Errorf("symlink %s: %w", dst, err)
		}
	}
	return nil
}

// snapshotProgress is the progress of a whole snapshot: with a reporter,
// a first pass over m sums the sizes of its files.
func (u *Upstream) snapshotProgress(m upstream.Records) (*progress, error) {
	p := &progress{report: u.opt.Progress}
	if p.report == nil {
		return p, nil
	}
	it, err := m.Open()
	if err != nil {
		return nil, err
	}
	defer it.Close()
	for {
		e, err := it.Next()
		if errors.Is(err, io.EOF) {
			return p, nil
		}
		if err != nil {
			return nil, err
		}
		if e.Type == manifest.File {
			p.total += e.Size
		}
	}
}
