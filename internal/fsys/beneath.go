package fsys

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/afero"
	"golang.org/x/sys/unix"
)

var (
	// ErrNotRegular is wrapped by OpenBeneath's error for an entry that is
	// not a regular file: a fifo, a device, a socket or a directory.
	ErrNotRegular = errors.New("not a regular file")
	// ErrSymlink is wrapped by OpenBeneath's error when the file, or a
	// directory on the way to it below the root, is a symlink.
	ErrSymlink = errors.New("refusing to follow a symlink")
)

// Refused reports whether err is OpenBeneath refusing what it found (a
// symlink, or an entry that is not a regular file), as opposed to an error
// of the filesystem such as a missing file.
func Refused(err error) bool { return errors.Is(err, ErrNotRegular) || errors.Is(err, ErrSymlink) }

// OpenBeneath opens root/rel for reading, for a reader that must not trust
// the tree below root (an upstream, or a source's own seq files): no symlink
// is followed in any component of rel (root itself is followed: the caller
// named it), and the result is a regular file, checked on the open file. It
// never blocks on a fifo and never reads a device: it opens with O_NONBLOCK
// and O_NOCTTY, checks the type with fstat, then clears O_NONBLOCK.
//
// rel must be a local path (filepath.IsLocal). The error wraps ErrSymlink or
// ErrNotRegular, saying what was found, or is the filesystem's (a missing
// file is fs.ErrNotExist). On the real filesystem it uses openat2(2) with
// RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS, or an openat(2) walk with O_NOFOLLOW
// per component where the kernel has no openat2; any other FS (a test
// wrapper) gets an Lstat per component before and after an O_NOFOLLOW open
// checked with Stat, which is not atomic (see openBeneathLstat).
func OpenBeneath(f FS, root, rel string) (afero.File, error) {
	d, err := OpenBeneathDir(f, root)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	return d.Open(rel)
}

// BeneathDir is a root for OpenBeneath opened once for many files: on the
// real filesystem it holds the root open, so that each Open costs one
// openat2 (or a walk) relative to it. It is safe for concurrent use.
type BeneathDir struct {
	f    FS
	root string
	fd   int // the root, O_PATH; -1 if f is not the real filesystem
}

// OpenBeneathDir opens root (following it if it is a symlink: the caller
// named it) for BeneathDir.Open. Close it when done.
func OpenBeneathDir(f FS, root string) (*BeneathDir, error) {
	d := &BeneathDir{f: f, root: root, fd: -1}
	if IsOS(f) {
		fd, err := openRoot(root)
		if err != nil {
			return nil, err
		}
		d.fd = fd
	}
	return d, nil
}

// Open is OpenBeneath(f, root, rel) for d's filesystem and root.
func (d *BeneathDir) Open(rel string) (afero.File, error) {
	rel, full, err := localRel(d.root, rel)
	if err != nil {
		return nil, err
	}
	if d.fd < 0 {
		return openBeneathLstat(d.f, d.root, rel, full)
	}
	return openBeneathFd(d.fd, rel, full)
}

// Close releases the root.
func (d *BeneathDir) Close() error {
	if d.fd < 0 {
		return nil
	}
	err := unix.Close(d.fd)
	d.fd = -1
	return err
}

// localRel cleans rel and checks that it names something below root.
func localRel(root, rel string) (clean, full string, err error) {
	full = filepath.Join(root, rel)
	clean = filepath.Clean(rel)
	if !filepath.IsLocal(clean) || clean == "." {
		return "", "", &fs.PathError{Op: "open", Path: full, Err: fmt.Errorf("%w: not a path below %s", fs.ErrInvalid, root)}
	}
	return clean, full, nil
}

// ReadFlags are the flags of a file opened to read it beneath a root:
// never block on a fifo, never take a terminal, never follow a symlink.
const ReadFlags = unix.O_RDONLY | unix.O_NONBLOCK | unix.O_NOCTTY | unix.O_NOFOLLOW | unix.O_CLOEXEC

func openBeneathFd(dfd int, rel, full string) (afero.File, error) {
	fd, err := openAt(dfd, rel, full, ReadFlags)
	if err != nil {
		return nil, err
	}
	return regularFile(fd, rel, full)
}

// OpenatBeneath opens rel (clean, relative) below the directory dfd with
// flags, following no symlink on the way or at the end, and returns the
// raw descriptor, for callers that read with pread or sendfile (serve).
// Errors are those of OpenBeneath.
func OpenatBeneath(dfd int, rel string, flags int) (int, error) {
	return openAt(dfd, rel, rel, flags)
}

// openAt is openat2 with RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS, or the
// O_NOFOLLOW walk where the kernel has no openat2 (ENOSYS, or EPERM from a
// seccomp filter) or a symlink is on the way (ELOOP: the walk finds which,
// and says so).
func openAt(dfd int, rel, full string, flags int) (int, error) {
	fd, err := openat2(dfd, rel, full, flags)
	if err != nil && !errors.Is(err, unix.ENOENT) {
		fd, err = openWalk(dfd, rel, full, flags)
	}
	return fd, err
}

func openRoot(root string) (int, error) {
	fd, err := retryEINTR(func() (int, error) {
		return unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	})
	if err != nil {
		return -1, &fs.PathError{Op: "open", Path: root, Err: err}
	}
	return fd, nil
}

// openat2 opens rel below dfd in one system call, refusing any symlink.
func openat2(dfd int, rel, full string, flags int) (int, error) {
	how := &unix.OpenHow{
		Flags:   uint64(flags),
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS,
	}
	fd, err := retryEINTR(func() (int, error) {
		fd, err := unix.Openat2(dfd, rel, how)
		if errors.Is(err, unix.EAGAIN) {
			err = unix.EINTR // a rename raced the resolution: again
		}
		return fd, err
	})
	if err != nil {
		return -1, &fs.PathError{Op: "open", Path: full, Err: err}
	}
	return fd, nil
}

// openWalk opens rel below dfd one component at a time, each with
// O_NOFOLLOW, and says which component is a symlink if one is.
func openWalk(dfd int, rel, full string, flags int) (int, error) {
	parts := strings.Split(rel, string(filepath.Separator))
	cur := dfd
	defer func() {
		if cur != dfd {
			unix.Close(cur)
		}
	}()
	for i, name := range parts {
		last := i == len(parts)-1
		fl := unix.O_PATH | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC
		if last {
			fl = flags
		}
		fd, err := retryEINTR(func() (int, error) { return unix.Openat(cur, name, fl, 0) })
		if err != nil {
			return -1, describeOpenError(cur, name, strings.Join(parts[:i+1], "/"), full, last, err)
		}
		if last {
			return fd, nil
		}
		if cur != dfd {
			unix.Close(cur)
		}
		cur = fd
	}
	return -1, &fs.PathError{Op: "open", Path: full, Err: fs.ErrInvalid} // unreachable: rel has a component
}

// describeOpenError says what is wrong when opening name (below dirfd; comp
// is its path below the root) failed: a symlink (ELOOP, or ENOTDIR for a
// directory opened with O_PATH|O_NOFOLLOW), or, for the file itself, an
// entry that is not a regular file (e.g. a device on a nodev mount: EACCES;
// a socket: ENXIO). Otherwise it is the error of the open.
func describeOpenError(dirfd int, name, comp, full string, last bool, err error) error {
	var st unix.Stat_t
	if unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW) == nil {
		switch t := st.Mode & unix.S_IFMT; {
		case t == unix.S_IFLNK:
			return symlinkError(comp, full, last)
		case last && t != unix.S_IFREG:
			return notRegularError(comp, full, unixType(st.Mode))
		}
	}
	return &fs.PathError{Op: "open", Path: full, Err: err}
}

// regularFile checks that fd is a regular file, makes it blocking again and
// wraps it; it closes fd on error.
func regularFile(fd int, rel, full string) (afero.File, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, &fs.PathError{Op: "fstat", Path: full, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		unix.Close(fd)
		return nil, notRegularError(rel, full, unixType(st.Mode))
	}
	// F_SETFL sets only the status flags (O_APPEND, O_NONBLOCK, O_DIRECT,
	// O_NOATIME, O_ASYNC), of which the open set O_NONBLOCK, to clear, and
	// maybe O_NOATIME, to keep.
	fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
	if err == nil {
		_, err = unix.FcntlInt(uintptr(fd), unix.F_SETFL, fl&unix.O_NOATIME)
	}
	if err != nil {
		unix.Close(fd)
		return nil, &fs.PathError{Op: "fcntl", Path: full, Err: err}
	}
	return os.NewFile(uintptr(fd), full), nil
}

// openBeneathLstat is OpenBeneath for a filesystem that is not the real
// one: Lstat each component, open without following the last, check the
// open file's type, then Lstat the components again, so that a directory
// swapped for a symlink around the open is seen unless it was swapped back
// in between (only the real filesystem's way is atomic).
func openBeneathLstat(f FS, root, rel, full string) (afero.File, error) {
	if err := checkComponents(f, root, rel, full); err != nil {
		return nil, err
	}
	h, err := f.OpenFile(full, ReadFlags, 0)
	if errors.Is(err, unix.ELOOP) {
		return nil, symlinkError(rel, full, true)
	}
	if err != nil {
		return nil, err
	}
	fi, err := h.Stat()
	if err == nil && !fi.Mode().IsRegular() {
		err = notRegularError(rel, full, fi.Mode())
	}
	if err == nil {
		err = checkComponents(f, root, rel, full)
	}
	if err != nil {
		h.Close()
		return nil, err
	}
	return h, nil
}

// checkComponents lstats each component of rel below root: directories on
// the way, a regular file at the end, no symlink.
func checkComponents(f FS, root, rel, full string) error {
	parts := strings.Split(rel, string(filepath.Separator))
	p := root
	for i, name := range parts {
		p = filepath.Join(p, name)
		fi, err := Lstat(f, p)
		if err != nil {
			return err
		}
		last, comp := i == len(parts)-1, strings.Join(parts[:i+1], "/")
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			return symlinkError(comp, full, last)
		case !last && !fi.IsDir():
			return &fs.PathError{Op: "open", Path: full, Err: unix.ENOTDIR}
		case last && !fi.Mode().IsRegular():
			return notRegularError(rel, full, fi.Mode())
		}
	}
	return nil
}

func symlinkError(comp, full string, last bool) error {
	if last {
		return fmt.Errorf("open %s: %w: %s is a symlink", full, ErrSymlink, comp)
	}
	return fmt.Errorf("open %s: %w: a directory component, %s, is a symlink", full, ErrSymlink, comp)
}

func notRegularError(rel, full string, m fs.FileMode) error {
	return fmt.Errorf("open %s: %w: %s is a %s", full, ErrNotRegular, rel, TypeName(m))
}

// TypeName names the type of a file for messages: "fifo", "character
// device", "directory" ...
func TypeName(m fs.FileMode) string {
	switch {
	case m&fs.ModeNamedPipe != 0:
		return "fifo"
	case m&fs.ModeCharDevice != 0:
		return "character device"
	case m&fs.ModeDevice != 0:
		return "block device"
	case m&fs.ModeSocket != 0:
		return "socket"
	case m&fs.ModeSymlink != 0:
		return "symlink"
	case m.IsDir():
		return "directory"
	case m.IsRegular():
		return "regular file"
	}
	return "special file"
}

// unixType maps the S_IFMT bits of a stat mode to an fs.FileMode type.
func unixType(mode uint32) fs.FileMode {
	switch mode & unix.S_IFMT {
	case unix.S_IFIFO:
		return fs.ModeNamedPipe
	case unix.S_IFCHR:
		return fs.ModeDevice | fs.ModeCharDevice
	case unix.S_IFBLK:
		return fs.ModeDevice
	case unix.S_IFSOCK:
		return fs.ModeSocket
	case unix.S_IFLNK:
		return fs.ModeSymlink
	case unix.S_IFDIR:
		return fs.ModeDir
	case unix.S_IFREG:
		return 0
	}
	return fs.ModeIrregular
}

func retryEINTR(open func() (int, error)) (int, error) {
	for {
		fd, err := open()
		if !errors.Is(err, unix.EINTR) {
			return fd, err
		}
	}
}

// OpenRegular opens name for reading if it is a regular file, without
// following a final symlink and without blocking on a fifo or reading a
// device (a path whose type changed after it was listed: a source being
// published, a planted file in a snapshot being verified). Unlike
// OpenBeneath it follows symlinks in the directories on the way: for trees
// seqmirror writes or an admin names, not for an upstream. On the real
// filesystem the read leaves the file's access time alone where the
// caller may ask that (O_NOATIME), as fsys.OpenDir does.
func OpenRegular(f FS, name string) (afero.File, error) {
	if IsOS(f) {
		fd, err := retryEINTR(func() (int, error) { return unix.Open(name, ReadFlags|unix.O_NOATIME, 0) })
		if errors.Is(err, unix.EPERM) { // O_NOATIME: not the owner, nor CAP_FOWNER
			fd, err = retryEINTR(func() (int, error) { return unix.Open(name, ReadFlags, 0) })
		}
		if errors.Is(err, unix.ELOOP) {
			return nil, symlinkError(filepath.Base(name), name, true)
		}
		if err != nil {
			return nil, &fs.PathError{Op: "open", Path: name, Err: err}
		}
		return regularFile(fd, filepath.Base(name), name)
	}
	h, err := f.OpenFile(name, ReadFlags, 0)
	if errors.Is(err, unix.ELOOP) {
		return nil, symlinkError(filepath.Base(name), name, true)
	}
	if err != nil {
		return nil, err
	}
	if fi, err := h.Stat(); err != nil || !fi.Mode().IsRegular() {
		h.Close()
		if err == nil {
			err = notRegularError(filepath.Base(name), name, fi.Mode())
		}
		return nil, err
	}
	return h, nil
}
