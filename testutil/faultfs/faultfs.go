// Package faultfs is a fault-injecting [fsys.FS] for tests.
//
// An [FS] wraps another FS, counts the operations that match its filter
// (creating or opening a file for writing, writing, fsync, rename, link,
// symlink, mkdir, remove, chmod, chtimes, syncfs, and optionally opening for
// reading and reading) and makes the k-th one fail with a chosen error
// without performing it. Files it opens are wrapped too, so File.Write and
// File.Sync (including the fsync of a directory) count and can fail.
//
// Typical use: run an operation once with no fault to learn its op count n,
// then for every k in 1..n run it again on a fresh tree with FailAt(k, ...).
// The FS is safe for concurrent use; there are no package globals.
package faultfs

import (
	"fmt"
	"io/fs"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/seqmirror/seqmirror/internal/fsys"
	"github.com/spf13/afero"
)

// Op is a set of operation kinds.
type Op uint32

// Operation kinds.
const (
	OpCreate  Op = 1 << iota // Create, or OpenFile with a write flag or O_CREATE
	OpWrite                  // File.Write, WriteAt, WriteString, Truncate
	OpSync                   // File.Sync (files and directories)
	OpRename                 // Rename
	OpLink                   // Link (hard link)
	OpSymlink                // SymlinkIfPossible
	OpMkdir                  // Mkdir, MkdirAll
	OpRemove                 // Remove, RemoveAll
	OpChmod                  // Chmod, Chown
	OpChtimes                // Chtimes
	OpSyncFS                 // SyncFS
	OpOpen                   // Open or OpenFile for reading only
	OpRead                   // File.Read, ReadAt, Readdir, Readdirnames

	// Mutating is every kind that changes the filesystem or makes it durable.
	Mutating = OpCreate | OpWrite | OpSync | OpRename | OpLink | OpSymlink | OpMkdir |
		OpRemove | OpChmod | OpChtimes | OpSyncFS
	// Reading is every kind that only reads.
	Reading = OpOpen | OpRead
	// All is every kind.
	All = Mutating | Reading
)

var opNames = []string{"create", "write", "sync", "rename", "link", "symlink", "mkdir", "remove", "chmod", "chtimes", "syncfs", "open", "read"}

func (o Op) String() string {
	var s []string
	for i, n := range opNames {
		if o&(1<<i) != 0 {
			s = append(s, n)
		}
	}
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, "|")
}

// Event is one counted operation.
type Event struct {
	N    int    // 1-based index among counted operations
	Op   Op     // exactly one kind
	Path string // the path it acted on (for Rename and Link, the old name)
}

func (e Event) String() string { return fmt.Sprintf("#%d %s %s", e.N, e.Op, e.Path) }

// FS wraps an fsys.FS and injects faults. The zero value is not usable; use New.
type FS struct {
	base fsys.FS

	mu       sync.Mutex
	filter   Op
	failAt   int   // 0: never
	sticky   bool  // fail every matching op from failAt on
	err      error // what to fail with
	count    int
	injected []Event
	trace    []Event
	tracing  bool
	callAt   int    // 0: never
	call     func() // called at the callAt-th matching operation
}

// New wraps base. Until FailAt is called it counts Mutating operations and
// fails none.
func New(base fsys.FS) *FS { return &FS{base: base, filter: Mutating} }

// FailAt resets the counter and arranges for the k-th operation matching ops
// (counted from 1) to fail with err (a syscall.Errno such as syscall.ENOSPC is
// wrapped in an *fs.PathError or *os.LinkError as the os package would). k = 0
// injects nothing but still counts.
func (f *FS) FailAt(k int, ops Op, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.filter, f.failAt, f.err, f.sticky = ops, k, err, false
	f.count, f.injected, f.trace = 0, nil, nil
	f.callAt, f.call = 0, nil
}

// CallAt is FailAt with nothing failing: fn runs once, just before the k-th
// operation matching ops, which then goes ahead (counted from 1; k = 0
// never). Tests pass a context's cancel function to stop a run at an exact
// point, as a signal would.
func (f *FS) CallAt(k int, ops Op, fn func()) {
	f.FailAt(0, ops, nil)
	f.mu.Lock()
	f.callAt, f.call = k, fn
	f.mu.Unlock()
}

// FailFrom is FailAt, but every matching operation from the k-th on fails
// (a full disk stays full).
func (f *FS) FailFrom(k int, ops Op, err error) {
	f.FailAt(k, ops, err)
	f.mu.Lock()
	f.sticky = true
	f.mu.Unlock()
}

// Disarm stops injecting faults; counting goes on.
func (f *FS) Disarm() {
	f.mu.Lock()
	f.failAt = 0
	f.mu.Unlock()
}

// Trace makes the FS record every counted operation (see Events).
func (f *FS) Trace(on bool) {
	f.mu.Lock()
	f.tracing = on
	f.mu.Unlock()
}

// Count is the number of matching operations seen since FailAt.
func (f *FS) Count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.count
}

// Injected returns the operations that were made to fail.
func (f *FS) Injected() []Event {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Event(nil), f.injected...)
}

// Events returns the operations recorded while tracing.
func (f *FS) Events() []Event {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Event(nil), f.trace...)
}

// hit counts op, runs the CallAt function if this is its operation, and
// reports the error to fail op with, or nil.
func (f *FS) hit(op Op, path string) error {
	call, err := f.count1(op, path)
	if call != nil {
		call()
	}
	return err
}

// count1 is hit under the lock, returning the function to call after it.
func (f *FS) count1(op Op, path string) (func(), error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.filter&op == 0 {
		return nil, nil
	}
	f.count++
	var call func()
	if f.callAt == f.count {
		call = f.call
	}
	ev := Event{N: f.count, Op: op, Path: path}
	if f.tracing {
		f.trace = append(f.trace, ev)
	}
	if f.failAt == 0 || f.count < f.failAt || (!f.sticky && f.count != f.failAt) {
		return call, nil
	}
	f.injected = append(f.injected, ev)
	return call, f.err
}

func pathErr(op, path string, err error) error {
	return &fs.PathError{Op: op + " (injected)", Path: path, Err: err}
}

func linkErr(op, oldname, newname string, err error) error {
	return &os.LinkError{Op: op + " (injected)", Old: oldname, New: newname, Err: err}
}

var _ fsys.FS = (*FS)(nil)

// Name implements afero.Fs.
func (f *FS) Name() string { return "faultfs(" + f.base.Name() + ")" }

// Create implements afero.Fs.
func (f *FS) Create(name string) (afero.File, error) {
	if err := f.hit(OpCreate, name); err != nil {
		return nil, pathErr("open", name, err)
	}
	h, err := f.base.Create(name)
	return f.wrap(h, err)
}

// Open implements afero.Fs.
func (f *FS) Open(name string) (afero.File, error) {
	if err := f.hit(OpOpen, name); err != nil {
		return nil, pathErr("open", name, err)
	}
	h, err := f.base.Open(name)
	return f.wrap(h, err)
}

// OpenFile implements afero.Fs.
func (f *FS) OpenFile(name string, flag int, perm os.FileMode) (afero.File, error) {
	op := OpOpen
	if flag&(os.O_WRONLY|os.O_RDWR|os.O_CREATE|os.O_TRUNC|os.O_APPEND) != 0 {
		op = OpCreate
	}
	if err := f.hit(op, name); err != nil {
		return nil, pathErr("open", name, err)
	}
	h, err := f.base.OpenFile(name, flag, perm)
	return f.wrap(h, err)
}

func (f *FS) wrap(h afero.File, err error) (afero.File, error) {
	if err != nil {
		return nil, err
	}
	return &File{File: h, fs: f}, nil
}

// Mkdir implements afero.Fs.
func (f *FS) Mkdir(name string, perm os.FileMode) error {
	if err := f.hit(OpMkdir, name); err != nil {
		return pathErr("mkdir", name, err)
	}
	return f.base.Mkdir(name, perm)
}

// MkdirAll implements afero.Fs.
func (f *FS) MkdirAll(path string, perm os.FileMode) error {
	if err := f.hit(OpMkdir, path); err != nil {
		return pathErr("mkdir", path, err)
	}
	return f.base.MkdirAll(path, perm)
}

// Remove implements afero.Fs.
func (f *FS) Remove(name string) error {
	if err := f.hit(OpRemove, name); err != nil {
		return pathErr("remove", name, err)
	}
	return f.base.Remove(name)
}

// RemoveAll implements afero.Fs.
func (f *FS) RemoveAll(path string) error {
	if err := f.hit(OpRemove, path); err != nil {
		return pathErr("unlinkat", path, err)
	}
	return f.base.RemoveAll(path)
}

// Rename implements afero.Fs.
func (f *FS) Rename(oldname, newname string) error {
	if err := f.hit(OpRename, oldname); err != nil {
		return linkErr("rename", oldname, newname, err)
	}
	return f.base.Rename(oldname, newname)
}

// Stat implements afero.Fs (never counted).
func (f *FS) Stat(name string) (os.FileInfo, error) { return f.base.Stat(name) }

// Chmod implements afero.Fs.
func (f *FS) Chmod(name string, mode os.FileMode) error {
	if err := f.hit(OpChmod, name); err != nil {
		return pathErr("chmod", name, err)
	}
	return f.base.Chmod(name, mode)
}

// Chown implements afero.Fs.
func (f *FS) Chown(name string, uid, gid int) error {
	if err := f.hit(OpChmod, name); err != nil {
		return pathErr("chown", name, err)
	}
	return f.base.Chown(name, uid, gid)
}

// Chtimes implements afero.Fs.
func (f *FS) Chtimes(name string, atime, mtime time.Time) error {
	if err := f.hit(OpChtimes, name); err != nil {
		return pathErr("chtimes", name, err)
	}
	return f.base.Chtimes(name, atime, mtime)
}

// LstatIfPossible implements afero.Lstater (never counted).
func (f *FS) LstatIfPossible(name string) (os.FileInfo, bool, error) {
	return f.base.LstatIfPossible(name)
}

// ReadlinkIfPossible implements afero.LinkReader (never counted).
func (f *FS) ReadlinkIfPossible(name string) (string, error) {
	return f.base.ReadlinkIfPossible(name)
}

// SymlinkIfPossible implements afero.Linker.
func (f *FS) SymlinkIfPossible(oldname, newname string) error {
	if err := f.hit(OpSymlink, newname); err != nil {
		return linkErr("symlink", oldname, newname, err)
	}
	return f.base.SymlinkIfPossible(oldname, newname)
}

// Link implements fsys.FS.
func (f *FS) Link(oldname, newname string) error {
	if err := f.hit(OpLink, oldname); err != nil {
		return linkErr("link", oldname, newname, err)
	}
	return f.base.Link(oldname, newname)
}

// SyncFS implements fsys.FS.
func (f *FS) SyncFS(path string) error {
	if err := f.hit(OpSyncFS, path); err != nil {
		return pathErr("syncfs", path, err)
	}
	return f.base.SyncFS(path)
}

// File is a file opened through an FS; its writes, syncs and reads count.
type File struct {
	afero.File
	fs *FS
}

// Write implements afero.File.
func (h *File) Write(p []byte) (int, error) {
	if err := h.fs.hit(OpWrite, h.Name()); err != nil {
		return 0, pathErr("write", h.Name(), err)
	}
	return h.File.Write(p)
}

// WriteAt implements afero.File.
func (h *File) WriteAt(p []byte, off int64) (int, error) {
	if err := h.fs.hit(OpWrite, h.Name()); err != nil {
		return 0, pathErr("write", h.Name(), err)
	}
	return h.File.WriteAt(p, off)
}

// WriteString implements afero.File.
func (h *File) WriteString(s string) (int, error) {
	if err := h.fs.hit(OpWrite, h.Name()); err != nil {
		return 0, pathErr("write", h.Name(), err)
	}
	return h.File.WriteString(s)
}

// Truncate implements afero.File.
func (h *File) Truncate(size int64) error {
	if err := h.fs.hit(OpWrite, h.Name()); err != nil {
		return pathErr("truncate", h.Name(), err)
	}
	return h.File.Truncate(size)
}

// Sync implements afero.File.
func (h *File) Sync() error {
	if err := h.fs.hit(OpSync, h.Name()); err != nil {
		return pathErr("sync", h.Name(), err)
	}
	return h.File.Sync()
}

// Read implements afero.File.
func (h *File) Read(p []byte) (int, error) {
	if err := h.fs.hit(OpRead, h.Name()); err != nil {
		return 0, pathErr("read", h.Name(), err)
	}
	return h.File.Read(p)
}

// ReadAt implements afero.File.
func (h *File) ReadAt(p []byte, off int64) (int, error) {
	if err := h.fs.hit(OpRead, h.Name()); err != nil {
		return 0, pathErr("read", h.Name(), err)
	}
	return h.File.ReadAt(p, off)
}

// Readdir implements afero.File.
func (h *File) Readdir(n int) ([]os.FileInfo, error) {
	if err := h.fs.hit(OpRead, h.Name()); err != nil {
		return nil, pathErr("readdirent", h.Name(), err)
	}
	return h.File.Readdir(n)
}

// Readdirnames implements afero.File.
func (h *File) Readdirnames(n int) ([]string, error) {
	if err := h.fs.hit(OpRead, h.Name()); err != nil {
		return nil, pathErr("readdirent", h.Name(), err)
	}
	return h.File.Readdirnames(n)
}

// Errno values tests commonly inject.
var (
	ENOSPC = syscall.ENOSPC
	EIO    = syscall.EIO
	EXDEV  = syscall.EXDEV
	EROFS  = syscall.EROFS
)
