package cow

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ErrUnsupported means the filesystem (or kernel) cannot do what was asked
// copy-on-write: the caller takes its ordinary path instead.
var ErrUnsupported = errors.New("copy-on-write not supported here")

// Caps is what the filesystem of a directory offers.
type Caps struct {
	FS        string // "btrfs", "xfs", another name from fsNames, or "other"
	Snapshots bool   // subvolume snapshots (btrfs)
	Reflink   bool   // FICLONE may work (btrfs, XFS; tried per file)
}

// Probe statfs's dir.
func Probe(dir string) (Caps, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return Caps{}, &fs.PathError{Op: "statfs", Path: dir, Err: err}
	}
	switch st.Type {
	case unix.BTRFS_SUPER_MAGIC:
		return Caps{FS: "btrfs", Snapshots: true, Reflink: true}, nil
	case unix.XFS_SUPER_MAGIC:
		return Caps{FS: "xfs", Reflink: true}, nil
	}
	if name, ok := fsNames[st.Type]; ok {
		return Caps{FS: name}, nil
	}
	return Caps{FS: "other"}, nil
}

// fsNames names the filesystems without copy-on-write that mirrors are
// commonly on, for the log line that says why the copy-on-write path is
// not taken.
var fsNames = map[int64]string{
	unix.EXT4_SUPER_MAGIC:      "ext4",
	unix.TMPFS_MAGIC:           "tmpfs",
	unix.OVERLAYFS_SUPER_MAGIC: "overlayfs",
	unix.NFS_SUPER_MAGIC:       "nfs",
	unix.F2FS_SUPER_MAGIC:      "f2fs",
}

// SubvolumeRootIno is the inode number of every btrfs subvolume's root
// directory (BTRFS_FIRST_FREE_OBJECTID).
const SubvolumeRootIno = 256

// IsSubvolume reports whether path is the root directory of a btrfs
// subvolume (false, nil on any other filesystem).
func IsSubvolume(path string) (bool, error) {
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		return false, &fs.PathError{Op: "lstat", Path: path, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR || st.Ino != SubvolumeRootIno {
		return false, nil
	}
	c, err := Probe(path)
	return err == nil && c.Snapshots, err
}

// btrfs ioctls (linux/btrfs.h): magic 0x94.
const (
	iocSubvolCreate   = 0x5000940e // _IOW(0x94, 14, struct btrfs_ioctl_vol_args)
	iocSnapDestroy    = 0x5000940f // _IOW(0x94, 15, struct btrfs_ioctl_vol_args)
	iocSnapCreateV2   = 0x50009417 // _IOW(0x94, 23, struct btrfs_ioctl_vol_args_v2)
	iocSubvolGetFlags = 0x80089419 // _IOR(0x94, 25, __u64)
	iocSubvolSetFlags = 0x4008941a // _IOW(0x94, 26, __u64)
	iocGetRootRef     = 0xd000943d // _IOWR(0x94, 61, struct btrfs_ioctl_get_subvol_rootref_args)
	subvolReadOnly    = 1 << 1     // BTRFS_SUBVOL_RDONLY
)

// volArgs is struct btrfs_ioctl_vol_args.
type volArgs struct {
	fd   int64
	name [4088]byte
}

// volArgsV2 is struct btrfs_ioctl_vol_args_v2.
type volArgsV2 struct {
	fd      int64
	transid uint64
	flags   uint64
	unused  [4]uint64
	name    [4040]byte
}

// rootRefArgs is struct btrfs_ioctl_get_subvol_rootref_args.
type rootRefArgs struct {
	minTreeID uint64
	refs      [255][2]uint64
	numItems  uint8
	_         [7]uint8
}

func ioctl(fd int, req uintptr, arg unsafe.Pointer) error {
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), req, uintptr(arg))
	if errno != 0 {
		return errno
	}
	return nil
}

// wrap words a failed ioctl, wrapping ErrUnsupported when the filesystem
// or kernel does not do it (EXDEV: another filesystem).
func wrap(op, path string, err error) error {
	switch {
	case errors.Is(err, unix.ENOTTY), errors.Is(err, unix.EOPNOTSUPP), errors.Is(err, unix.EXDEV),
		errors.Is(err, unix.EINVAL), errors.Is(err, unix.ENOSYS):
		return fmt.Errorf("%s %s: %w: %w", op, path, ErrUnsupported, err)
	}
	return &fs.PathError{Op: op, Path: path, Err: err}
}

// openDir opens a directory for an ioctl.
func openDir(path string) (int, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	return fd, nil
}

// setName copies the base name of path into a NUL-terminated buffer.
func setName(buf []byte, path string) error {
	name := filepath.Base(path)
	if len(name) >= len(buf) || name == "." || name == "/" {
		return fmt.Errorf("subvolume name %q: %w", path, unix.ENAMETOOLONG)
	}
	copy(buf, name)
	return nil
}

// Snapshot makes dst (which must not exist; its parent must be on the same
// btrfs) a snapshot of the subvolume src, read-only if readOnly.
func Snapshot(src, dst string, readOnly bool) error {
	sfd, err := openDir(src)
	if err != nil {
		return err
	}
	defer unix.Close(sfd)
	return SnapshotOf(sfd, src, dst, readOnly)
}

// SnapshotOf is Snapshot of the subvolume open as sfd (src names it in
// errors).
func SnapshotOf(sfd int, src, dst string, readOnly bool) error {
	pfd, err := openDir(filepath.Dir(dst))
	if err != nil {
		return err
	}
	defer unix.Close(pfd)
	args := &volArgsV2{fd: int64(sfd)}
	if readOnly {
		args.flags = subvolReadOnly
	}
	if err := setName(args.name[:], dst); err != nil {
		return err
	}
	if err := ioctl(pfd, iocSnapCreateV2, unsafe.Pointer(args)); err != nil {
		return wrap("snapshot "+src+" to", dst, err)
	}
	return nil
}

// CreateSubvolume makes dst a new, empty subvolume.
func CreateSubvolume(dst string) error {
	pfd, err := openDir(filepath.Dir(dst))
	if err != nil {
		return err
	}
	defer unix.Close(pfd)
	args := &volArgs{}
	if err := setName(args.name[:], dst); err != nil {
		return err
	}
	if err := ioctl(pfd, iocSubvolCreate, unsafe.Pointer(args)); err != nil {
		return wrap("create subvolume", dst, err)
	}
	return nil
}

// Delete removes the subvolume path, whole, read-only or not.
func Delete(path string) error {
	pfd, err := openDir(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer unix.Close(pfd)
	args := &volArgs{}
	if err := setName(args.name[:], path); err != nil {
		return err
	}
	if err := ioctl(pfd, iocSnapDestroy, unsafe.Pointer(args)); err != nil {
		return wrap("delete subvolume", path, err)
	}
	return nil
}

// SetReadOnly sets or clears the read-only flag of the subvolume path.
func SetReadOnly(path string, ro bool) error {
	fd, err := openDir(path)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	var flags uint64
	if err := ioctl(fd, iocSubvolGetFlags, unsafe.Pointer(&flags)); err != nil {
		return wrap("get subvolume flags", path, err)
	}
	if ro {
		flags |= subvolReadOnly
	} else {
		flags &^= subvolReadOnly
	}
	if err := ioctl(fd, iocSubvolSetFlags, unsafe.Pointer(&flags)); err != nil {
		return wrap("set subvolume flags", path, err)
	}
	return nil
}

// ReadOnly reports whether the subvolume path is read-only.
func ReadOnly(path string) (bool, error) {
	fd, err := openDir(path)
	if err != nil {
		return false, err
	}
	defer unix.Close(fd)
	var flags uint64
	if err := ioctl(fd, iocSubvolGetFlags, unsafe.Pointer(&flags)); err != nil {
		return false, wrap("get subvolume flags", path, err)
	}
	return flags&subvolReadOnly != 0, nil
}

// HasNested reports whether the subvolume path holds other subvolumes
// (which a snapshot of it leaves out).
func HasNested(path string) (bool, error) {
	fd, err := openDir(path)
	if err != nil {
		return false, err
	}
	defer unix.Close(fd)
	args := &rootRefArgs{}
	err = ioctl(fd, iocGetRootRef, unsafe.Pointer(args))
	if errors.Is(err, unix.EOVERFLOW) {
		return true, nil // more than one buffer of them
	}
	if err != nil {
		return false, wrap("list nested subvolumes of", path, err)
	}
	return args.numItems > 0, nil
}

// File is an open file (an *os.File).
type File interface {
	Fd() uintptr
	Name() string
}

// Clone makes the open file dst share all of src's data (FICLONE). It
// fails with ErrUnsupported where the filesystem cannot (another
// filesystem, no reflink support, a file btrfs will not clone): the caller
// copies the bytes instead.
func Clone(dst, src File) error {
	if err := unix.IoctlFileClone(int(dst.Fd()), int(src.Fd())); err != nil {
		return wrap("clone "+src.Name()+" to", dst.Name(), err)
	}
	return nil
}

// RemoveAll removes path like os.RemoveAll, except that on btrfs the
// subvolumes at path and directly below it are deleted whole first
// (DeleteSubvolumes).
func RemoveAll(path string) error {
	if DeleteSubvolumes(path) {
		return nil
	}
	return os.RemoveAll(path)
}

// DeleteSubvolumes deletes, on btrfs, the subvolume path (reporting true:
// nothing is left) or else the subvolumes directly below the directory
// path, each whole with one ioctl (read-only ones included), rather than
// emptied file by file. Errors are left for the removal of what remains
// to report; elsewhere it does nothing.
func DeleteSubvolumes(path string) (gone bool) {
	if c, err := Probe(path); err != nil || !c.Snapshots {
		return false
	}
	if sub, err := IsSubvolume(path); err == nil && sub {
		return Delete(path) == nil
	}
	ents, err := os.ReadDir(path)
	if err != nil {
		return false
	}
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		p := filepath.Join(path, e.Name())
		if sub, err := IsSubvolume(p); err == nil && sub {
			_ = Delete(p)
		}
	}
	return false
}
