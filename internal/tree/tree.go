package tree

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
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/seqmirror/seqmirror/internal/cow"
	"github.com/seqmirror/seqmirror/internal/fsys"
	"github.com/seqmirror/seqmirror/manifest"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"
)

var (
	// ErrUnsupportedType means the source holds a device, socket or fifo.
	ErrUnsupportedType = errors.New("unsupported file type")
	// ErrHashMismatch means a file's content does not match its manifest.
	ErrHashMismatch = errors.New("content does not match manifest")
	// ErrNoTree means the directory to walk is missing or not a directory.
	ErrNoTree = errors.New("cannot read source tree")
)

// Workers is the default parallelism for hashing, copying and linking:
// one per CPU, and at least minWorkers.
func Workers() int { return max(minWorkers, runtime.GOMAXPROCS(0)) }

// minWorkers keeps the disk busy when the files are not in the page cache:
// a worker copying small files waits on one read at a time, so on 2 CPUs 2
// workers left the CPUs a third idle (a 200k-file tree read cold: publish
// took 36.7 s with 2 workers, 25-27 s with 4, 8 or 16), while with the
// tree cached 8 workers were no slower than 2 (16.0-16.3 s against
// 17.9-20.6 s).
const minWorkers = 8

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
		return e, fmt.Errorf("%w: %s is a %s; a snapshot holds only files, directories and symlinks: remove it from the source or move it elsewhere", ErrUnsupportedType, full, fsys.TypeName(m))
	}
	return e, nil
}

// Walk lists the tree at dir in canonical order, without file hashes. skip,
// if not nil, is asked about each relative path and prunes it when true; it
// may be called from several goroutines at once.
//
// Directories are read and their entries lstat'ed by up to walkWorkers
// goroutines; the result, and on error the entries listed before it and the
// error itself, are those of a sequential depth-first walk.
func Walk(ctx context.Context, f fsys.FS, dir string, skip func(rel string) bool) ([]manifest.Entry, error) {
	var out []manifest.Entry
	err := WalkWith(ctx, f, dir, WalkOptions{Skip: skip, Size: func(n int) { out = make([]manifest.Entry, 0, n) }}, func(e *manifest.Entry) {
		out = append(out, *e)
	})
	return out, err
}

// WalkEach is Walk handing each entry to fn, in order, instead of returning
// a list: fn sees exactly the entries Walk would return, then WalkEach
// returns Walk's error. fn must not keep e.
func WalkEach(ctx context.Context, f fsys.FS, dir string, skip func(rel string) bool, fn func(e *manifest.Entry)) error {
	return WalkWith(ctx, f, dir, WalkOptions{Skip: skip}, fn)
}

// A Watcher is told, during a walk of the OS filesystem, of every
// directory before it is read and of every regular file with its link
// count (publish's inotify watch of its source; see WalkOptions). Its
// methods may be called from several goroutines at once.
type Watcher interface {
	// AddDir is called with an open descriptor of the directory full.
	AddDir(dirfd int, full string)
	// NoteFile is called for each regular file listed, with its link count.
	NoteFile(e *manifest.Entry, nlink uint64)
	// Fail is called once, before the walk starts, when the walk cannot
	// tell the watcher of its directories (not the OS filesystem).
	Fail(err error)
}

// WalkOptions tunes WalkWith.
type WalkOptions struct {
	// Skip, if not nil, is asked about each relative path and prunes it
	// when true; it may be called from several goroutines at once.
	Skip func(rel string) bool
	// Watch, if not nil, is told of every directory and regular file.
	Watch Watcher
	// Size, if not nil, learns the number of entries before fn sees the first.
	Size func(n int)
}

// WalkWith is WalkEach with a watcher and a size callback (WalkOptions).
func WalkWith(ctx context.Context, f fsys.FS, dir string, opt WalkOptions, fn func(*manifest.Entry)) error {
	w, err := newWalker(ctx, f, dir, opt.Skip)
	if err != nil {
		return err
	}
	if opt.Watch != nil && !fsys.IsOS(f) {
		opt.Watch.Fail(errors.New("not the OS filesystem"))
		opt.Watch = nil
	}
	w.watch = opt.Watch
	return w.run(opt.Size, fn)
}

// newWalker checks that dir is a directory and returns a walker for it.
func newWalker(ctx context.Context, f fsys.FS, dir string, skip func(rel string) bool) (*walker, error) {
	fi, err := f.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("%w %s: %w (give an existing directory)", ErrNoTree, dir, err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("%w: %s is not a directory", ErrNoTree, dir)
	}
	prefix := filepath.Clean(dir)
	if !strings.HasSuffix(prefix, string(filepath.Separator)) {
		prefix += string(filepath.Separator)
	}
	return &walker{ctx: ctx, f: f, dir: dir, prefix: prefix, skip: skip, sem: make(chan struct{}, walkWorkers())}, nil
}

// run lists the tree (see walk).
func (w *walker) run(size func(int), fn func(*manifest.Entry)) error {
	root := &walkDir{}
	w.wg.Add(1)
	w.list(root, "")
	w.wg.Wait()
	if n := root.count(); n > 0 && size != nil {
		size(n)
	}
	return root.each(fn)
}

func walkWorkers() int { return 2 * Workers() }

// walkDir is one directory's listing: its entries in order, the listings of
// its subdirectories (at the same indexes), and the error that stopped it.
type walkDir struct {
	entries []manifest.Entry
	subs    []*walkDir
	err     error
	total   int // entries in this subtree, set by count
}

type walker struct {
	ctx    context.Context
	f      fsys.FS
	dir    string
	prefix string // dir, clean, ending in a separator
	skip   func(string) bool
	watch  Watcher // nil, or told of every directory and hard-linked file
	// special keeps the setuid, setgid and sticky bits of files and
	// directories in Entry.Mode (as fs.ModeSetuid...): Verify reports them.
	// A snapshot never has them, so other walks (publish's of its source)
	// keep only the permission bits, which is all a manifest records.
	special bool
	// unsupported, if set, is told of each entry of an unsupported type
	// (the error EntryFromInfo returns), which is then left out of the
	// listing instead of ending it: Verify reports them and goes on.
	unsupported func(error)
	sem         chan struct{} // bounds the goroutines beyond the caller's
	wg          sync.WaitGroup
}

// list fills d with the listing of rel; subdirectories are listed by new
// goroutines while the semaphore allows, else inline.
func (w *walker) list(d *walkDir, rel string) {
	defer w.wg.Done()
	d.err = w.readDir(rel, func(n int) { d.entries = make([]manifest.Entry, 0, n) }, func(e manifest.Entry) { w.add(d, e) })
}

// readDir reads the directory rel and hands each entry, lstat'ed, to add,
// in name order, stopping at the first error (which it returns); sized,
// before the first, learns how many names the directory holds. An entry
// of an unsupported type is an error, or, if w.unsupported is set, told
// to it and left out.
func (w *walker) readDir(rel string, sized func(int), add func(manifest.Entry)) error {
	if err := w.ctx.Err(); err != nil {
		return err
	}
	full := filepath.Join(w.dir, rel)
	// On the real filesystem, the directory is opened and read with plain
	// system calls (an *os.File costs a poller registration attempt and two
	// fcntl calls for Fd), and its entries are stat'ed relative to it (one
	// path component for the kernel to resolve, no FileInfo).
	dirfd := -1
	var names []string
	if fsys.IsOS(w.f) {
		fd, err := openDir(full)
		if err != nil {
			return fmt.Errorf("walk %s: %w", full, err)
		}
		defer unix.Close(fd)
		dirfd = fd
		if w.watch != nil {
			w.watch.AddDir(fd, full)
		}
		if names, err = readDirNames(fd, full); err != nil {
			return fmt.Errorf("walk %s: %w", full, err)
		}
	} else {
		h, err := w.f.Open(full)
		if err != nil {
			return fmt.Errorf("walk %s: %w", full, err)
		}
		defer h.Close()
		if names, err = h.Readdirnames(-1); err != nil {
			return fmt.Errorf("walk %s: %w", full, err)
		}
	}
	sort.Strings(names)
	sized(len(names))
	for _, name := range names {
		r := name
		if rel != "" {
			r = rel + "/" + name
		}
		if w.skip != nil && w.skip(r) {
			continue
		}
		if dirfd >= 0 {
			e, nlink, ok, err := statAt(dirfd, name, r, w.special)
			if err != nil {
				return fmt.Errorf("walk: %w", w.pathErr(err, r))
			}
			if ok {
				if w.watch != nil && e.Type == manifest.File {
					w.watch.NoteFile(&e, nlink)
				}
				// rel was checked when it was listed; a name from the
				// kernel has no '/', so checking it checks the path.
				if err := manifest.CheckPath(name); err != nil {
					return fmt.Errorf("walk %s: %w", w.prefix+filepath.FromSlash(r), err)
				}
				add(e)
				continue
			}
			// Not a file or directory: the general path below decides.
		}
		e, err := w.entry(r)
		if w.unsupported != nil && errors.Is(err, ErrUnsupportedType) {
			w.unsupported(err)
			continue
		}
		if err != nil {
			return err
		}
		add(e)
	}
	return nil
}

// entry is the record of rel, lstat'ed by path.
func (w *walker) entry(r string) (manifest.Entry, error) {
	p := w.prefix + filepath.FromSlash(r) // filepath.Join(w.dir, r), without its Clean
	fi, err := fsys.Lstat(w.f, p)
	if err != nil {
		return manifest.Entry{}, fmt.Errorf("walk: lstat %s: %w", p, err)
	}
	e, err := EntryFromInfo(w.f, p, r, fi)
	if err != nil {
		return e, err
	}
	if w.special && e.Type != manifest.Symlink {
		e.Mode |= fi.Mode() & specialBits
	}
	if err := manifest.CheckPath(e.Path); err != nil {
		return e, fmt.Errorf("walk %s: %w", p, err)
	}
	return e, nil
}

// add appends e to d and, for a directory, lists it (in a new goroutine if
// the semaphore allows).
func (w *walker) add(d *walkDir, e manifest.Entry) {
	d.entries = append(d.entries, e)
	if e.Type == manifest.Dir {
		for len(d.subs) < len(d.entries)-1 {
			d.subs = append(d.subs, nil)
		}
		sub := &walkDir{}
		d.subs = append(d.subs, sub)
		w.wg.Add(1)
		select {
		case w.sem <- struct{}{}:
			go func() {
				defer func() { <-w.sem }()
				w.list(sub, e.Path)
			}()
		default:
			w.list(sub, e.Path)
		}
	}
}

// openDir opens directory path for reading its entries, as os.Open would
// but for its access time (fsys.OpenDir).
func openDir(path string) (int, error) { return fsys.OpenDir(path, 0) }

var direntPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// readDirNames returns the names in the directory open as fd (path is for
// errors), as (*os.File).Readdirnames(-1) would.
func readDirNames(fd int, path string) ([]string, error) {
	bp := direntPool.Get().(*[]byte)
	defer direntPool.Put(bp)
	var names []string
	for {
		n, err := unix.ReadDirent(fd, *bp)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, &fs.PathError{Op: "readdirent", Path: path, Err: err}
		}
		if n <= 0 {
			return names, nil
		}
		_, _, names = unix.ParseDirent((*bp)[:n], -1, names)
	}
}

// pathErr is err, a *fs.PathError naming rel, naming the full path instead.
func (w *walker) pathErr(err error, rel string) error {
	if pe, ok := err.(*fs.PathError); ok {
		pe.Path = w.prefix + filepath.FromSlash(rel)
	}
	return err
}

// specialBits are the mode bits beyond the permissions that a snapshot
// never has.
const specialBits = fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky

// statAt is lstat of name in the directory open as dirfd, for regular files
// and directories: the entry EntryFromInfo would make from os.Lstat (with
// special, its setuid, setgid and sticky bits too), and its link count. ok
// is false for other types (the caller takes the general path). Errors are
// os.Lstat's, naming rel.
func statAt(dirfd int, name, rel string, special bool) (e manifest.Entry, nlink uint64, ok bool, err error) {
	var st unix.Stat_t
	for {
		err := unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return manifest.Entry{}, 0, false, &fs.PathError{Op: "lstat", Path: rel, Err: err}
		}
		break
	}
	e = manifest.Entry{Path: rel, Mode: fs.FileMode(st.Mode & 0o777)}
	if special {
		e.Mode |= goSpecial(st.Mode)
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		e.Type, e.Size, e.MTime = manifest.File, st.Size, time.Unix(st.Mtim.Unix()).UnixNano()
	case unix.S_IFDIR:
		e.Type, e.MTime = manifest.Dir, time.Unix(st.Mtim.Unix()).UnixNano()
	default:
		return manifest.Entry{}, 0, false, nil
	}
	return e, uint64(st.Nlink), true, nil
}

func (d *walkDir) count() int {
	d.total = len(d.entries)
	for _, s := range d.subs {
		if s != nil {
			d.total += s.count()
		}
	}
	return d.total
}

// each hands d's subtree to fn in depth-first order, stopping at the first
// error as a sequential walk would.
func (d *walkDir) each(fn func(*manifest.Entry)) error {
	for i := range d.entries {
		fn(&d.entries[i])
		if i < len(d.subs) && d.subs[i] != nil {
			if err := d.subs[i].each(fn); err != nil {
				return err
			}
		}
	}
	d.entries, d.subs = nil, nil // let the collector have what was handed out
	return d.err
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 1<<20); return &b }}

// CopyFile copies src to a new file dst (which must not exist), hashing the
// bytes as they pass as a record of manifest version v names them
// (manifest.NewHasher: the copy is the one read). It refuses to copy more
// than limit bytes (limit < 0: no limit) and returns the Sum and length of
// what it wrote. dst is created 0600; the caller sets mode and times.
func CopyFile(srcFS fsys.FS, src string, dstFS fsys.FS, dst string, limit int64, v int) (manifest.Sum, int64, error) {
	in, err := fsys.OpenRegular(srcFS, src)
	if err != nil {
		return manifest.Sum{}, 0, fmt.Errorf("open %s: %w", src, err)
	}
	defer in.Close()
	return CopyFrom(in, dstFS, dst, limit, v)
}

// CopyFrom is CopyFile from an open reader. When in is an open file at its
// start and dst on the real filesystem, it first tries a reflink (cloneFrom).
func CopyFrom(in io.Reader, dstFS fsys.FS, dst string, limit int64, v int) (manifest.Sum, int64, error) {
	if src, ok := in.(cow.File); ok && fsys.IsOS(dstFS) {
		if h, n, err, done := cloneFrom(src, in, dst, limit, v); done {
			return h, n, err
		}
	}
	out, err := dstFS.OpenFile(dst, createFlags, 0o600)
	if err != nil {
		return manifest.Sum{}, 0, fmt.Errorf("create %s: %w", dst, err)
	}
	return copyInto(in, out, dst, limit, manifest.NewHasher(v), nil)
}

// cloneFrom makes dst a reflink copy of the open file src (cow.Clone:
// btrfs and XFS share the data instead of writing it again) and hashes
// what dst then holds; where the filesystem cannot clone (another
// filesystem, no reflink, a file it will not clone) it copies the bytes
// into dst as CopyFrom does. done is false, and nothing made, if src is not
// at its start.
func cloneFrom(src cow.File, in io.Reader, dst string, limit int64, v int) (h manifest.Sum, n int64, err error, done bool) {
	if s, ok := in.(io.Seeker); !ok {
		return h, 0, nil, false
	} else if off, err := s.Seek(0, io.SeekCurrent); err != nil || off != 0 {
		return h, 0, nil, false
	}
	out, err := os.OpenFile(dst, os.O_RDWR|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return h, 0, fmt.Errorf("create %s: %w", dst, err), true
	}
	if cerr := cow.Clone(out, src); cerr != nil {
		if !errors.Is(cerr, cow.ErrUnsupported) {
			out.Close()
			return h, 0, fmt.Errorf("copy to %s: %w", dst, cerr), true
		}
		h, n, err = copyInto(in, out, dst, limit, manifest.NewHasher(v), nil)
		return h, n, err, true
	}
	h, n, err = copyInto(out, discard{}, dst, limit, manifest.NewHasher(v), nil) // hash the clone

	if cerr := out.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("close %s: %w", dst, cerr)
	}
	return h, n, err, true
}

// discard is io.Discard with a Close.
type discard struct{}

func (discard) Write(b []byte) (int, error) { return len(b), nil }
func (discard) Close() error                { return nil }

// createFlags create a file that must not exist, not following a symlink.
const createFlags = os.O_WRONLY | os.O_CREATE | os.O_EXCL | syscall.O_NOFOLLOW

// CopyEntry is CopyFrom of the file of record e (at most e.Size bytes) into
// the new file dst, which it also gives e's mode and mtime. On the real
// filesystem it works on the bare descriptor: created with open(2) (no
// os.File, whose setup costs five fcntl and epoll_ctl calls a file),
// written, given its mode and mtime with fchmod and utimensat of the
// descriptor (no path walk) and closed. On any other FS (a test's wrapper)
// it creates, copies and closes through the FS, then applies SetMeta, so
// that fault injection sees each call. It hashes as e's record does
// (e.SumVersion); the caller compares Sum and size with e (CheckHash) and
// removes dst if they differ.
func CopyEntry(in io.Reader, dstFS fsys.FS, dst string, e manifest.Entry) (manifest.Sum, int64, error) {
	if !fsys.IsOS(dstFS) {
		h, n, err := CopyFrom(in, dstFS, dst, e.Size, e.SumVersion())
		if err == nil {
			err = SetMeta(dstFS, dst, e)
		}
		return h, n, err
	}
	fd, err := unix.Open(dst, createFlags|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return manifest.Sum{}, 0, fmt.Errorf("create %s: %w", dst, &fs.PathError{Op: "open", Path: dst, Err: err})
	}
	out := fdFile{fd}
	return copyInto(in, out, dst, e.Size, manifest.NewHasher(e.SumVersion()), func() error { return out.setMeta(dst, e) })
}

// fdFile is a regular file open for writing as a bare descriptor.
type fdFile struct{ fd int }

func (f fdFile) Write(b []byte) (int, error) {
	n := 0
	for n < len(b) {
		m, err := unix.Write(f.fd, b[n:])
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return n, &fs.PathError{Op: "write", Err: err}
		}
		n += m
	}
	return n, nil
}

func (f fdFile) Close() error {
	if err := unix.Close(f.fd); err != nil {
		return &fs.PathError{Op: "close", Err: err}
	}
	return nil
}

// setMeta gives the file e's mode and mtime (name for errors).
func (f fdFile) setMeta(name string, e manifest.Entry) error {
	if err := unix.Fchmod(f.fd, uint32(e.Mode.Perm())); err != nil {
		return fmt.Errorf("chmod %s: %w", name, err)
	}
	ts := unix.NsecToTimespec(e.MTime)
	if err := unix.UtimesNanoAt(f.fd, "", []unix.Timespec{ts, ts}, unix.AT_EMPTY_PATH); err != nil {
		return fmt.Errorf("set mtime %s: %w", name, err)
	}
	return nil
}

// copyInto copies in to the new file out (dst for errors) while hashing
// with h, refuses more than limit bytes (limit < 0: no limit), runs before
// (if not nil) after the last write and before out is closed, and closes
// out.
func copyInto(in io.Reader, out io.WriteCloser, dst string, limit int64, h *manifest.Hasher, before func() error) (manifest.Sum, int64, error) {
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	var r io.Reader = in
	if limit >= 0 {
		r = io.LimitReader(in, limit+1)
	}
	n, err := io.CopyBuffer(io.MultiWriter(out, h), readerOnly{r}, *bp)
	if err == nil && limit >= 0 && n > limit {
		err = fmt.Errorf("%w: more than the %d bytes the manifest claims", ErrHashMismatch, limit)
	}
	if err == nil && before != nil {
		err = before()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return manifest.Sum{}, n, fmt.Errorf("copy to %s: %w", dst, err)
	}
	return h.Sum(), n, nil
}

// readerOnly hides WriterTo/ReaderFrom so io.CopyBuffer uses our buffer.
type readerOnly struct{ io.Reader }

// HashFile returns the Sum (as a record of manifest version v names it)
// and size of the file at name (not following a final symlink).
func HashFile(f fsys.FS, name string, v int) (manifest.Sum, int64, error) {
	in, err := fsys.OpenRegular(f, name)
	if err != nil {
		return manifest.Sum{}, 0, err
	}
	defer in.Close()
	return hashReader(in, v)
}

// hashReader hashes what in holds as a record of version v does.
func hashReader(in io.Reader, v int) (manifest.Sum, int64, error) {
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	h := manifest.NewHasher(v)
	n, err := io.CopyBuffer(h, readerOnly{in}, *bp)
	return h.Sum(), n, err
}

// CheckHash is the one "content matches its record" comparison: nil if
// size and Sum (of a file just copied or hashed as want's record names
// content: want.SumVersion) are want's, else an error wrapping
// ErrHashMismatch that gives both. A record with a digest (manifest
// version 2) is thus checked by its SHA-256, one without by its xxhash64.
// It does not name the file: callers say which record and from where.
func CheckHash(want manifest.Entry, size int64, got manifest.Sum) error {
	if size == want.Size && got == want.Sum() {
		return nil
	}
	return fmt.Errorf("%w (got %d bytes %s, manifest says %d bytes %s)", ErrHashMismatch, size, SumString(got), want.Size, SumString(want.Sum()))
}

// SumString words a Sum for messages: "sha256 <hex>" or "hash <hex16>".
func SumString(s manifest.Sum) string {
	if !s.Digest.IsZero() {
		return "sha256 " + s.Digest.String()
	}
	return fmt.Sprintf("hash %016x", s.Hash)
}

// CheckFile is the one "file matches its record" check: the file at name,
// opened without following a final symlink and without waiting on a fifo,
// must be a regular file whose size and content hash (SHA-256 for a record
// with a digest, else xxhash64) are want's (CheckHash).
// It returns the open file's info (nil if it could not be opened), so that
// a caller may compare mode and mtime too. Anything but a regular file
// wraps ErrHashMismatch and says what it got; so does a size or hash that
// differs; an error opening or reading it is returned as is (a missing
// file wraps fs.ErrNotExist). Like CheckHash, the error does not name the
// file.
func CheckFile(f fsys.FS, name string, want manifest.Entry) (fs.FileInfo, error) {
	const flags = os.O_RDONLY | syscall.O_NOFOLLOW | syscall.O_NONBLOCK
	in, err := f.OpenFile(name, flags|syscall.O_NOATIME, 0)
	if errors.Is(err, syscall.EPERM) { // O_NOATIME: not the owner, nor CAP_FOWNER
		in, err = f.OpenFile(name, flags, 0)
	}
	if errors.Is(err, syscall.ELOOP) {
		return nil, fmt.Errorf("%w: got a symlink, manifest says %c", ErrHashMismatch, manifest.File)
	}
	if err != nil {
		return nil, err
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return fi, fmt.Errorf("%w: got type %s, manifest says %c", ErrHashMismatch, fi.Mode().Type(), manifest.File)
	}
	sum, n, err := hashReader(in, want.SumVersion())
	if err != nil {
		return fi, fmt.Errorf("read %s: %w", name, err)
	}
	return fi, CheckHash(want, n, sum)
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
// cancels the rest. A job is either run or, once the pool's context is
// cancelled (a job failed, or the caller's context was cancelled), skipped;
// Wait then reports the cancellation, so that a pool that did not run every
// job it was given never looks like one that did.
type Pool struct {
	g    *errgroup.Group
	ctx  context.Context
	jobs chan func(context.Context) error
	lost atomic.Bool // a job was skipped or refused
}

// NewPool starts n workers.
func NewPool(ctx context.Context, n int) *Pool {
	g, ctx := errgroup.WithContext(ctx)
	p := &Pool{g: g, ctx: ctx, jobs: make(chan func(context.Context) error, 4*n)}
	for i := 0; i < n; i++ {
		g.Go(func() error {
			for job := range p.jobs {
				if err := p.ctx.Err(); err != nil {
					p.lost.Store(true)
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

// Go queues job; it returns the pool's error if the pool has failed (the
// job is then not run, and Wait reports it too).
func (p *Pool) Go(job func(context.Context) error) error {
	select {
	case p.jobs <- job:
		return nil
	case <-p.ctx.Done():
		p.lost.Store(true)
		return context.Cause(p.ctx)
	}
}

// Wait waits for all queued jobs and returns the first error; if no job
// failed but some were skipped or refused because the caller's context was
// cancelled, it returns that context's cause.
func (p *Pool) Wait() error {
	close(p.jobs)
	if err := p.g.Wait(); err != nil {
		return err
	}
	if p.lost.Load() {
		// No job failed, so the pool's context was cancelled by the
		// caller's: its cause says why (e.g. the signal).
		return fmt.Errorf("stopped before every job ran: %w", context.Cause(p.ctx))
	}
	return nil
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

// byDepth groups dirs (canonical order) by their number of '/'.
func byDepth(dirs []manifest.Entry) [][]manifest.Entry {
	var levels [][]manifest.Entry
	for _, d := range dirs {
		k := strings.Count(d.Path, "/")
		for len(levels) <= k {
			levels = append(levels, nil)
		}
		levels[k] = append(levels[k], d)
	}
	return levels
}

// dirBatch is how many directories one pool job handles.
const dirBatch = 16

// dirChunk is how many directories MakeDirsStream holds at a time.
const dirChunk = 4096

// eachLevel runs fn on every directory, a level at a time (shallowest
// first), with the directories of one level spread over workers goroutines.
func eachLevel(ctx context.Context, dirs []manifest.Entry, workers int, fn func(manifest.Entry) error) error {
	for _, level := range byDepth(dirs) {
		if len(level) <= dirBatch || workers < 2 {
			for _, d := range level {
				if err := fn(d); err != nil {
					return err
				}
			}
			continue
		}
		pool := NewPool(ctx, workers)
		for i := 0; i < len(level); i += dirBatch {
			if pool.Go(dirJob(level[i:min(i+dirBatch, len(level))], fn)) != nil {
				break
			}
		}
		if err := pool.Wait(); err != nil {
			return err
		}
	}
	return nil
}

// dirJob is a pool job running fn on each of batch.
func dirJob(batch []manifest.Entry, fn func(manifest.Entry) error) func(context.Context) error {
	return func(context.Context) error {
		for _, d := range batch {
			if err := fn(d); err != nil {
				return err
			}
		}
		return nil
	}
}

// MakeDirs creates the directories dirs (canonical order) below base, mode
// 0700 until FinishDirs, parents before children, in parallel across
// directories of one depth (mkdir on ext4 is costly: inode allocation).
func MakeDirs(ctx context.Context, f fsys.FS, base string, dirs []manifest.Entry, workers int) error {
	return MakeDirsStream(ctx, f, base, &manifest.SliceIterator{Entries: dirs}, workers)
}

// MakeDirsStream is MakeDirs for the directories among the records it
// yields (canonical order; other types are skipped), holding at most
// dirChunk of them at a time: a chunk's parents were made with an earlier
// chunk or come at a shallower level of this one.
func MakeDirsStream(ctx context.Context, f fsys.FS, base string, it manifest.Iterator, workers int) error {
	mkdir := func(d manifest.Entry) error {
		dst := filepath.Join(base, filepath.FromSlash(d.Path))
		if err := f.Mkdir(dst, 0o700); err != nil {
			return fmt.Errorf("mkdir %s: %w", dst, err)
		}
		return nil
	}
	chunk := make([]manifest.Entry, 0, dirChunk)
	for {
		e, err := it.Next()
		if err != nil && err != io.EOF {
			return err
		}
		if err == nil && e.Type == manifest.Dir {
			chunk = append(chunk, e)
		}
		if len(chunk) == dirChunk || (err == io.EOF && len(chunk) > 0) {
			if err := eachLevel(ctx, chunk, workers, mkdir); err != nil {
				return err
			}
			chunk = chunk[:0]
		}
		if err == io.EOF {
			return nil
		}
	}
}

// FinishDirsParallel is FinishDirs with directories done in parallel
// (setting one directory's mode and mtime changes no other's).
func FinishDirsParallel(ctx context.Context, f fsys.FS, base string, dirs []manifest.Entry, workers int) error {
	return FinishDirsStream(ctx, f, base, &manifest.SliceIterator{Entries: dirs}, workers)
}

// FinishDirsStream is FinishDirsParallel for the directories among the
// records it yields (canonical order; other types are skipped), holding
// only the directories above the current one (O(depth) memory).
//
// Directories are done in post-order, each after every directory below it:
// the order of modes and mtimes matters only for a directory whose mode
// takes away its owner's search (x) permission, after which nothing below
// it can be reached; such a directory waits until the work below it is
// done. Every other one goes to the workers as soon as it is complete.
func FinishDirsStream(ctx context.Context, f fsys.FS, base string, it manifest.Iterator, workers int) error {
	fin := &dirFinisher{ctx: ctx, f: f, base: base, workers: workers, pool: NewPool(ctx, workers)}
	for {
		e, err := it.Next()
		if err == io.EOF {
			return fin.close()
		}
		if err == nil && e.Type == manifest.Dir {
			err = fin.add(e)
		}
		if err != nil {
			fin.wait()
			return err
		}
	}
}

// dirFinisher applies directory metadata in post-order (FinishDirsStream).
type dirFinisher struct {
	ctx     context.Context
	f       fsys.FS
	base    string
	workers int
	pool    *Pool
	stack   []pendingDir // ancestors of the last directory added, and it
	batch   []manifest.Entry
}

// pendingDir is a directory whose subtree is still being read.
type pendingDir struct {
	e    manifest.Entry
	subs bool // a directory below it was seen
}

// add takes the next directory: the ones above that are not its ancestors
// are complete.
func (d *dirFinisher) add(e manifest.Entry) error {
	if err := d.popUntil(e.Path); err != nil {
		return err
	}
	if len(d.stack) > 0 {
		d.stack[len(d.stack)-1].subs = true
	}
	d.stack = append(d.stack, pendingDir{e: e})
	return nil
}

// popUntil completes the directories on the stack that are not ancestors
// of p ("" completes them all), deepest first.
func (d *dirFinisher) popUntil(p string) error {
	for len(d.stack) > 0 {
		top := d.stack[len(d.stack)-1]
		if p != "" && len(p) > len(top.e.Path) && p[len(top.e.Path)] == '/' && p[:len(top.e.Path)] == top.e.Path {
			return nil
		}
		d.stack = d.stack[:len(d.stack)-1]
		if err := d.done(top); err != nil {
			return err
		}
	}
	return nil
}

func (d *dirFinisher) set(e manifest.Entry) error {
	return SetMeta(d.f, filepath.Join(d.base, filepath.FromSlash(e.Path)), e)
}

// done queues a complete directory, or, if its mode shuts its owner out
// of what is below it, waits for the queued work and sets it at once.
func (d *dirFinisher) done(o pendingDir) error {
	if o.subs && o.e.Mode&0o100 == 0 {
		if err := d.barrier(); err != nil {
			return err
		}
		return d.set(o.e)
	}
	d.batch = append(d.batch, o.e)
	if len(d.batch) < dirBatch {
		return nil
	}
	return d.flush()
}

// flush hands the batch to the workers.
func (d *dirFinisher) flush() error {
	if len(d.batch) == 0 {
		return nil
	}
	job := dirJob(d.batch, d.set)
	d.batch = make([]manifest.Entry, 0, dirBatch)
	return d.pool.Go(job)
}

// barrier waits until everything queued is done.
func (d *dirFinisher) barrier() error {
	err := d.flush()
	if werr := d.wait(); err == nil {
		err = werr
	}
	if err == nil {
		d.pool = NewPool(d.ctx, d.workers)
	}
	return err
}

// wait waits for the workers once (nil after).
func (d *dirFinisher) wait() error {
	if d.pool == nil {
		return nil
	}
	err := d.pool.Wait()
	d.pool = nil
	return err
}

func (d *dirFinisher) close() error {
	err := d.popUntil("")
	if err == nil {
		err = d.flush()
	}
	if werr := d.wait(); err == nil {
		err = werr
	}
	return err
}

// specialPairs pairs each special mode bit of Go with stat(2)'s.
var specialPairs = [...]struct {
	goBit   fs.FileMode
	unixBit uint32
}{{fs.ModeSetuid, unix.S_ISUID}, {fs.ModeSetgid, unix.S_ISGID}, {fs.ModeSticky, unix.S_ISVTX}}

// goSpecial is the special bits of a stat(2) mode as fs.FileMode bits.
func goSpecial(mode uint32) fs.FileMode {
	var m fs.FileMode
	for _, p := range specialPairs {
		if mode&p.unixBit != 0 {
			m |= p.goBit
		}
	}
	return m
}

// unixMode is m as chmod(1) writes it: 4755 for a setuid rwxr-xr-x.
func unixMode(m fs.FileMode) uint32 {
	o := uint32(m.Perm())
	for _, p := range specialPairs {
		if m&p.goBit != 0 {
			o |= p.unixBit
		}
	}
	return o
}
