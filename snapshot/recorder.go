package snapshot

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sync"

	"github.com/seqmirror/seqmirror/internal/fsys"
	"github.com/seqmirror/seqmirror/internal/sign"
	"github.com/seqmirror/seqmirror/manifest"
	"github.com/spf13/afero"
)

// recordWindow bounds the entries the recorder holds: those handed to the
// pool (or made) and not yet written, because they or one before them are
// not done.
const recordWindow = 8192

// errJobFailed means a pool job failed (the pool's Wait says how).
var errJobFailed = errors.New("a link or copy failed")

// recorder writes the new snapshot's manifest (ROOT/.work/N.manifest) as
// the build goes: the records in the listing's order, each once its file
// is linked or copied (a copy learns its hash), so memory is a window of
// entries in flight, not the listing. It is used by the build's goroutine;
// the pool's jobs call finished.
type recorder struct {
	h     afero.File
	w     *manifest.Writer
	dg    *sign.Digester // of what w writes, for a signature (nil: none)
	ctx   context.Context
	queue []*fileItem // added, not yet written; queue[0] is the next record
	flush func()      // hands the batch being filled to the pool
	wake  chan struct{}
	fail  chan struct{} // closed when a job failed
	once  sync.Once
}

// newRecorder starts the manifest of snapshot n at path; with digest, it
// also computes the manifest's digest (to sign it).
func newRecorder(ctx context.Context, f fsys.FS, path string, n uint64, digest bool) (*recorder, error) {
	if err := f.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("remove an earlier attempt's manifest: %w", err)
	}
	h, err := f.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("write manifest of snapshot %d: %w", n, err)
	}
	var w io.Writer = h
	var dg *sign.Digester
	if digest {
		dg = sign.NewDigester()
		w = io.MultiWriter(h, dg)
	}
	return &recorder{h: h, w: manifest.NewWriter(w, n), dg: dg, ctx: ctx, flush: func() {},
		wake: make(chan struct{}, 1), fail: make(chan struct{})}, nil
}

// finished is a pool job's report that the items of b are done (err nil)
// or that it failed.
func (r *recorder) finished(b []*fileItem, err error) {
	if err != nil {
		r.once.Do(func() { close(r.fail) })
		return
	}
	for _, it := range b {
		it.done.Store(true)
	}
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// add queues it and writes the records that are done, in order; it waits
// for the oldest while the window is full.
func (r *recorder) add(it *fileItem) error {
	r.queue = append(r.queue, it)
	if err := r.write(); err != nil {
		return err
	}
	for len(r.queue) >= recordWindow {
		if err := r.wait(); err != nil {
			return err
		}
	}
	return nil
}

// write writes the records at the head of the queue that are done.
func (r *recorder) write() error {
	k := 0
	for k < len(r.queue) && r.queue[k].done.Load() {
		if err := r.w.Add(r.queue[k].e); err != nil {
			return fmt.Errorf("write manifest: %w", err)
		}
		r.queue[k] = nil
		k++
	}
	if k > 0 {
		r.queue = append(r.queue[:0], r.queue[k:]...)
	}
	return nil
}

// wait waits until a job finished (or failed, or the build was stopped),
// then writes what is done.
func (r *recorder) wait() error {
	r.flush()
	select {
	case <-r.wake:
	case <-r.fail:
		return errJobFailed
	case <-r.ctx.Done():
		return context.Cause(r.ctx)
	}
	return r.write()
}

// close writes the rest (every job is done) and the footer, and closes
// the file (Install makes it durable, with the tree).
func (r *recorder) close() error {
	if err := r.write(); err != nil {
		return err
	}
	if len(r.queue) > 0 {
		return fmt.Errorf("write manifest: %d records not done", len(r.queue))
	}
	if err := r.w.Close(); err != nil {
		return fmt.Errorf("write manifest: %w", err)
	}
	err := r.h.Close()
	r.h = nil
	if err != nil {
		return fmt.Errorf("write manifest: %w", err)
	}
	return nil
}

// digest is the digest of the manifest written (after close; zero
// without one).
func (r *recorder) digest() sign.Digest {
	if r.dg == nil {
		return sign.Digest{}
	}
	return r.dg.Digest()
}

// abort closes the file if close did not.
func (r *recorder) abort() {
	if r.h != nil {
		r.h.Close()
		r.h = nil
	}
}
