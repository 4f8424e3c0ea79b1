package snapshot

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"sync"
	"syscall"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/seqmirror/seqmirror/fsys"
	"github.com/seqmirror/seqmirror/manifest"
	"golang.org/x/sync/errgroup"
)

var (
	// ErrUnsupportedType means the source holds a device, socket or fifo.
	ErrUnsupportedType = errors.New("unsupported file type")
	// ErrHashMismatch means a file's content does not match its manifest.
	ErrHashMismatch = errors.New("content does not match manifest")

	errSourceMissing = errors.New("cannot read source tree")
)

// Workers is the default parallelism for hashing, copying and linking.
func Workers() int { return max(2, runtime.GOMAXPROCS(0)) }

// EntryFromInfo converts an lstat result to a record (without hash).
func EntryFromInfo(f fsys.FS, full, rel string, fi fs.FileInfo) (manifest.Entry, error) {
	e := manifest.Entry{Path: filepath.ToSlash(rel), Mode: fi.Mode().Perm()}
	switch m := fi.Mode(); {
	case m.IsRegular():
		e.Type, e.Size, e.MTime = manifest.File, fi.Size(), fi.ModTime().UnixNano()
	case m.IsDir():
		e.Type, e.MTime = manifest.Dir, fi.ModTime().UnixNano()
	case m&fs.ModeSymlink != 0:
		t, err := f.ReadlinkIfPossible(full)
		if err != nil {
			return e, fmt.Errorf("read symlink %s: %w", full, err)
		}
		e.Type, e.Target, e.Size, e.Mode = manifest.Symlink, t, int64(len(t)), 0o777
	default:
		return e, fmt.Errorf("%w: %s is a %s; a snapshot holds only files, directories and symlinks: remove it from the source or move it elsewhere", ErrUnsupportedType, full, typeName(m))
	}
	return e, nil
}

func typeName(m fs.FileMode) string {
	switch {
	case m&fs.ModeNamedPipe != 0:
		return "fifo"
	case m&fs.ModeSocket != 0:
		return "socket"
	case m&fs.ModeDevice != 0:
		return "device"
	}
	return "special file"
}

// Walk lists the tree at dir in canonical order, without file hashes. skip,
// if not nil, is asked about each relative path and prunes it when true.
func Walk(ctx context.Context, f fsys.FS, dir string, skip func(rel string) bool) ([]manifest.Entry, error) {
	var out []manifest.Entry
	var walk func(rel string) error
	walk = func(rel string) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		full := filepath.Join(dir, rel)
		d, err := f.Open(full)
		if err != nil {
			return fmt.Errorf("walk %s: %w", full, err)
		}
		names, err := d.Readdirnames(-1)
		d.Close()
		if err != nil {
			return fmt.Errorf("walk %s: %w", full, err)
		}
		sort.Strings(names)
		for _, name := range names {
			r := name
			if rel != "" {
				r = rel + "/" + name
			}
			if skip != nil && skip(r) {
				continue
			}
			p := filepath.Join(dir, r)
			fi, err := fsys.Lstat(f, p)
			if err != nil {
				return fmt.Errorf("walk: lstat %s: %w", p, err)
			}
			e, err := EntryFromInfo(f, p, r, fi)
			if err != nil {
				return err
			}
			if err := manifest.CheckPath(e.Path); err != nil {
				return fmt.Errorf("walk %s: %w", p, err)
			}
			out = append(out, e)
			if e.Type == manifest.Dir {
				if err := walk(r); err != nil {
					return err
				}
			}
		}
		return nil
	}
	fi, err := f.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("%w %s: %w (give an existing directory)", errSourceMissing, dir, err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("%w: %s is not a directory", errSourceMissing, dir)
	}
	err = walk("") // before reading out: operand order in a return is unspecified
	return out, err
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 1<<20); return &b }}

// CopyFile copies src to a new file dst (which must not exist), hashing the
// bytes as they pass. It refuses to copy more than limit bytes (limit < 0: no
// limit) and returns the hash and length of what it wrote. dst is created
// 0600; the caller sets mode and times.
func CopyFile(srcFS fsys.FS, src string, dstFS fsys.FS, dst string, limit int64) (uint64, int64, error) {
	in, err := srcFS.OpenFile(src, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return 0, 0, fmt.Errorf("open %s: %w", src, err)
	}
	defer in.Close()
	return CopyFrom(in, dstFS, dst, limit)
}

// CopyFrom is CopyFile from an open reader.
func CopyFrom(in io.Reader, dstFS fsys.FS, dst string, limit int64) (uint64, int64, error) {
	out, err := dstFS.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return 0, 0, fmt.Errorf("create %s: %w", dst, err)
	}
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	h := xxhash.New()
	var r io.Reader = in
	if limit >= 0 {
		r = io.LimitReader(in, limit+1)
	}
	n, err := io.CopyBuffer(io.MultiWriter(out, h), readerOnly{r}, *bp)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return 0, n, fmt.Errorf("copy to %s: %w", dst, err)
	}
	if limit >= 0 && n > limit {
		return 0, n, fmt.Errorf("copy to %s: %w: more than the %d bytes the manifest claims", dst, ErrHashMismatch, limit)
	}
	return h.Sum64(), n, nil
}

// readerOnly hides WriterTo/ReaderFrom so io.CopyBuffer uses our buffer.
type readerOnly struct{ io.Reader }

// HashFile returns the xxhash64 and size of the file at name (not following a
// final symlink).
func HashFile(f fsys.FS, name string) (uint64, int64, error) {
	in, err := f.OpenFile(name, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return 0, 0, err
	}
	defer in.Close()
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	h := xxhash.New()
	n, err := io.CopyBuffer(h, readerOnly{in}, *bp)
	return h.Sum64(), n, err
}

// SetMeta applies e's permission bits and mtime to the file or directory at
// full. Symlinks carry neither.
func SetMeta(f fsys.FS, full string, e manifest.Entry) error {
	if e.Type == manifest.Symlink {
		return nil
	}
	if err := f.Chmod(full, e.Mode); err != nil {
		return fmt.Errorf("chmod %s: %w", full, err)
	}
	t := time.Unix(0, e.MTime)
	if err := f.Chtimes(full, t, t); err != nil {
		return fmt.Errorf("set mtime %s: %w", full, err)
	}
	return nil
}

// Pool runs file jobs on a fixed number of goroutines; the first error
// cancels the rest.
type Pool struct {
	g    *errgroup.Group
	ctx  context.Context
	jobs chan func(context.Context) error
}

// NewPool starts n workers.
func NewPool(ctx context.Context, n int) *Pool {
	g, ctx := errgroup.WithContext(ctx)
	p := &Pool{g: g, ctx: ctx, jobs: make(chan func(context.Context) error, 4*n)}
	for i := 0; i < n; i++ {
		g.Go(func() error {
			for job := range p.jobs {
				if err := p.ctx.Err(); err != nil {
					continue // drain
				}
				if err := job(p.ctx); err != nil {
					return err
				}
			}
			return nil
		})
	}
	return p
}

// Go queues job; it returns the pool's error if the pool has failed.
func (p *Pool) Go(job func(context.Context) error) error {
	select {
	case p.jobs <- job:
		return nil
	case <-p.ctx.Done():
		return context.Cause(p.ctx)
	}
}

// Wait waits for all queued jobs and returns the first error.
func (p *Pool) Wait() error {
	close(p.jobs)
	return p.g.Wait()
}

// FinishDirs applies directory modes and mtimes deepest first, after all
// their contents are in place (adding an entry changes a directory's mtime).
func FinishDirs(f fsys.FS, base string, dirs []manifest.Entry) error {
	for i := len(dirs) - 1; i >= 0; i-- {
		if err := SetMeta(f, filepath.Join(base, filepath.FromSlash(dirs[i].Path)), dirs[i]); err != nil {
			return err
		}
	}
	return nil
}

// Problem is one difference found by Verify.
type Problem struct {
	Path   string `json:"path"`
	Reason string `json:"reason"`
}

func (p Problem) String() string { return p.Path + ": " + p.Reason }

// Verify re-reads the tree at dir and compares it with m: every record must
// exist with the same type, mode, size, mtime, content hash and target, and
// nothing else may exist. It returns the differences, sorted by path.
func Verify(ctx context.Context, f fsys.FS, dir string, m *manifest.Manifest, workers int) ([]Problem, error) {
	var mu sync.Mutex
	var probs []Problem
	add := func(p, why string) {
		mu.Lock()
		probs = append(probs, Problem{p, why})
		mu.Unlock()
	}
	got, err := Walk(ctx, f, dir, nil)
	if err != nil && !errors.Is(err, ErrUnsupportedType) {
		return nil, err
	}
	if err != nil {
		add(".", err.Error())
	}
	pool := NewPool(ctx, workers)
	err = manifest.Diff(&manifest.SliceIterator{Entries: got}, m.Iter(), func(c manifest.Change) error {
		switch {
		case c.New == nil:
			add(c.Old.Path, "not in manifest")
		case c.Old == nil:
			add(c.New.Path, "missing")
		default:
			have, want := *c.Old, *c.New
			switch {
			case have.Type != want.Type:
				add(want.Path, fmt.Sprintf("is type %c, manifest says %c", have.Type, want.Type))
			case have.Type == manifest.Symlink && have.Target != want.Target:
				add(want.Path, fmt.Sprintf("symlink target %q, manifest says %q", have.Target, want.Target))
			case have.Mode != want.Mode && have.Type != manifest.Symlink:
				add(want.Path, fmt.Sprintf("mode %04o, manifest says %04o", have.Mode, want.Mode))
			case have.Size != want.Size:
				add(want.Path, fmt.Sprintf("size %d, manifest says %d", have.Size, want.Size))
			case have.Type == manifest.File:
				if have.MTime != want.MTime {
					add(want.Path, fmt.Sprintf("mtime %d, manifest says %d", have.MTime, want.MTime))
					return nil
				}
				full := filepath.Join(dir, filepath.FromSlash(want.Path))
				return pool.Go(func(context.Context) error {
					h, _, err := HashFile(f, full)
					if err != nil {
						add(want.Path, err.Error())
					} else if h != want.Hash {
						add(want.Path, fmt.Sprintf("content hash %016x, manifest says %016x", h, want.Hash))
					}
					return nil
				})
			}
		}
		return nil
	})
	if werr := pool.Wait(); err == nil {
		err = werr
	}
	if err != nil {
		return nil, err
	}
	sort.Slice(probs, func(i, j int) bool { return manifest.Compare(probs[i].Path, probs[j].Path) < 0 })
	return probs, nil
}
