package fsys

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/seqmirror/seqmirror/internal/cow"
	"github.com/spf13/afero"
	"golang.org/x/sys/unix"
)

// FS is the filesystem seqmirror works on.
type FS interface {
	afero.Fs
	afero.Lstater
	afero.Linker
	afero.LinkReader
	// Link makes newname a hard link to oldname.
	Link(oldname, newname string) error
	// SyncFS flushes the whole filesystem that holds path to stable storage
	// (syncfs(2)); one call replaces an fsync per file of a large tree.
	SyncFS(path string) error
}

// OS returns the real filesystem.
func OS() FS { return osFS{afero.NewOsFs().(*afero.OsFs)} }

type osFS struct{ *afero.OsFs }

// IsOS reports whether f is the real filesystem itself (not a wrapper such
// as a test's fault injector), so that a hot path may use system calls that
// do exactly what f's methods would, e.g. fstatat(2) relative to an open
// directory instead of lstat(2) of a full path.
func IsOS(f FS) bool { _, ok := f.(osFS); return ok }

func (osFS) Link(oldname, newname string) error { return os.Link(oldname, newname) }

func (osFS) SyncFS(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := unix.Syncfs(int(f.Fd())); err != nil {
		return &fs.PathError{Op: "syncfs", Path: path, Err: err}
	}
	return nil
}

// LinkAll hard-links srcDir/name to dstDir/name for each name. On the real
// filesystem it opens the two directories once and uses linkat(2) relative
// to them, which saves two path walks per file; other filesystems (test
// wrappers) get one Link call per name, so fault injection sees each link.
func LinkAll(fsys FS, srcDir, dstDir string, names []string) error {
	if o, ok := fsys.(osFS); ok {
		return o.linkAll(srcDir, dstDir, names)
	}
	for _, n := range names {
		if err := fsys.Link(filepath.Join(srcDir, n), filepath.Join(dstDir, n)); err != nil {
			return err
		}
	}
	return nil
}

func (osFS) linkAll(srcDir, dstDir string, names []string) error {
	const flags = unix.O_RDONLY | unix.O_DIRECTORY | unix.O_PATH | unix.O_CLOEXEC
	sfd, err := unix.Open(srcDir, flags, 0)
	if err != nil {
		return &fs.PathError{Op: "open", Path: srcDir, Err: err}
	}
	defer unix.Close(sfd)
	dfd, err := unix.Open(dstDir, flags, 0)
	if err != nil {
		return &fs.PathError{Op: "open", Path: dstDir, Err: err}
	}
	defer unix.Close(dfd)
	for _, n := range names {
		if err := unix.Linkat(sfd, n, dfd, n, 0); err != nil {
			return &os.LinkError{Op: "link", Old: filepath.Join(srcDir, n), New: filepath.Join(dstDir, n), Err: err}
		}
	}
	return nil
}

// Lstat lstats name on fsys.
func Lstat(fsys FS, name string) (fs.FileInfo, error) {
	fi, _, err := fsys.LstatIfPossible(name)
	return fi, err
}

// TempMarker is part of every temp name this package makes; see RemoveTemps.
const TempMarker = ".tmp-"

// SyncDir fsyncs directory dir so that renames and creations in it are durable.
func SyncDir(fsys FS, dir string) error {
	d, err := fsys.Open(dir)
	if err != nil {
		return fmt.Errorf("open dir for fsync %s: %w", dir, err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("fsync dir %s: %w", dir, err)
	}
	return nil
}

func tempName(name string) string {
	return filepath.Join(filepath.Dir(name), "."+filepath.Base(name)+TempMarker+fmt.Sprint(os.Getpid()))
}

// WriteFile durably replaces name with data: temp file in the same directory,
// write, fsync, close, rename, fsync the directory.
func WriteFile(fsys FS, name string, data []byte, perm fs.FileMode) error {
	return WriteStream(fsys, name, perm, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// WriteStream is WriteFile for content produced by write, which may be large.
func WriteStream(fsys FS, name string, perm fs.FileMode, write func(io.Writer) error) (err error) {
	tmp := tempName(name)
	_ = fsys.Remove(tmp)
	f, err := fsys.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return fmt.Errorf("create temp for %s: %w", name, err)
	}
	defer func() {
		if err != nil {
			_ = fsys.Remove(tmp)
		}
	}()
	if err = write(f); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err = f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("fsync %s: %w", tmp, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", tmp, err)
	}
	if err = fsys.Chmod(tmp, perm); err != nil { // umask-proof
		return fmt.Errorf("chmod %s: %w", tmp, err)
	}
	if err = fsys.Rename(tmp, name); err != nil {
		return fmt.Errorf("rename %s to %s: %w", tmp, name, err)
	}
	return SyncDir(fsys, filepath.Dir(name))
}

// RemoveAll removes path and everything below it, first making read-only
// directories writable so that a non-root user can delete a snapshot whose
// directories have mode 0555. On btrfs, a subvolume at path or directly
// below it (a snapshot, a work tree) is deleted whole (cow.DeleteSubvolumes).
func RemoveAll(fsys FS, path string) error {
	if cow.DeleteSubvolumes(path) {
		return nil
	}
	err := fsys.RemoveAll(path)
	if err == nil || !errors.Is(err, fs.ErrPermission) {
		return err
	}
	_ = afero.Walk(fsys, path, func(p string, fi fs.FileInfo, err error) error {
		if err == nil && fi.IsDir() && fi.Mode().Perm()&0o700 != 0o700 {
			_ = fsys.Chmod(p, fi.Mode().Perm()|0o700)
		}
		return nil
	})
	return fsys.RemoveAll(path)
}

// Symlink durably makes (or atomically replaces) the symlink name -> target.
func Symlink(fsys FS, target, name string) (err error) {
	tmp := tempName(name)
	_ = fsys.Remove(tmp)
	if err = fsys.SymlinkIfPossible(target, tmp); err != nil {
		return fmt.Errorf("symlink %s: %w", tmp, err)
	}
	if err = fsys.Rename(tmp, name); err != nil {
		_ = fsys.Remove(tmp)
		return fmt.Errorf("rename %s to %s: %w", tmp, name, err)
	}
	return SyncDir(fsys, filepath.Dir(name))
}

// RemoveTemps removes the temp files WriteFile and Symlink leave in dir when
// a process dies between create and rename. Call it only under the lock that
// serialises writers of dir.
func RemoveTemps(fsys FS, dir string) error {
	ents, err := afero.ReadDir(fsys, dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".") && strings.Contains(e.Name(), TempMarker) {
			if err := fsys.Remove(filepath.Join(dir, e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
		}
	}
	return nil
}

// FreeSpacer is a filesystem that reports the space free for new files
// below dir (tests wrap OS() with one to simulate a small disk).
type FreeSpacer interface {
	FreeSpace(dir string) (int64, error)
}

// FreeSpace is the space an unprivileged writer may still use on the
// filesystem of dir (statfs(2) f_bavail), asked of f if it knows.
func FreeSpace(f FS, dir string) (int64, error) {
	if fs, ok := f.(FreeSpacer); ok {
		return fs.FreeSpace(dir)
	}
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, fmt.Errorf("statfs %s: %w", dir, err)
	}
	return int64(min(st.Bavail*uint64(st.Bsize), uint64(1)<<62)), nil
}

// CloneAll is LinkAll for a dstDir in another btrfs subvolume than srcDir,
// where a hard link cannot go: each srcDir/name becomes a new file
// dstDir/name sharing its data (a reflink, cow.Clone; the bytes copied
// where the filesystem cannot clone) with its permission bits and mtime.
// On a test's wrapper every step goes through it.
func CloneAll(fsys FS, srcDir, dstDir string, names []string) error {
	for _, n := range names {
		if err := cloneOne(fsys, filepath.Join(srcDir, n), filepath.Join(dstDir, n)); err != nil {
			return err
		}
	}
	return nil
}

func cloneOne(fsys FS, src, dst string) (err error) {
	in, err := OpenRegular(fsys, src)
	if err != nil {
		return fmt.Errorf("clone %s: %w", src, err)
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return fmt.Errorf("clone %s: %w", src, err)
	}
	out, err := fsys.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return fmt.Errorf("clone to %s: %w", dst, err)
	}
	err = cloneData(in, out)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = fsys.Chmod(dst, fi.Mode().Perm())
	}
	if err == nil {
		err = fsys.Chtimes(dst, fi.ModTime(), fi.ModTime())
	}
	if err != nil {
		return fmt.Errorf("clone %s to %s: %w", src, dst, err)
	}
	return nil
}

// cloneData makes out share in's data, or copies it.
func cloneData(in, out afero.File) error {
	if si, ok := in.(cow.File); ok {
		if so, ok := out.(cow.File); ok {
			err := cow.Clone(so, si)
			if err == nil || !errors.Is(err, cow.ErrUnsupported) {
				return err
			}
		}
	}
	_, err := io.Copy(out, in)
	return err
}

// OpenDir opens directory path (with flags beside O_RDONLY, O_DIRECTORY
// and O_CLOEXEC, e.g. O_NOFOLLOW) to read its entries without moving its
// access time (O_NOATIME, which only the owner or CAP_FOWNER may ask for;
// anyone else opens it plainly): a listing leaves the directory's inode
// as it was, so a copy-on-write snapshot being listed stays unchanged
// where nothing else changed it.
func OpenDir(path string, flags int) (int, error) {
	flags |= unix.O_RDONLY | unix.O_DIRECTORY | unix.O_CLOEXEC
	fd, err := retryEINTR(func() (int, error) { return unix.Open(path, flags|unix.O_NOATIME, 0) })
	if errors.Is(err, unix.EPERM) {
		fd, err = retryEINTR(func() (int, error) { return unix.Open(path, flags, 0) })
	}
	if err != nil {
		return -1, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	return fd, nil
}
