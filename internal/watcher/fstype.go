package watcher

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// remoteFS maps statfs f_type to the filesystems whose changes inotify may
// not see: made by another machine (network filesystems) or by a
// user-space server (FUSE, which reports only what goes through this
// kernel's mount).
var remoteFS = map[int64]string{
	0x6969:     "NFS",
	0x517B:     "SMB",
	0xFF534D42: "CIFS",
	0xFE534D42: "SMB2",
	0x65735546: "FUSE",
	0x01021997: "9p",
	0x00C36400: "Ceph",
	0x5346414F: "AFS",
	0x6B414653: "kAFS",
	0x73757245: "Coda",
	0x564C:     "NCP",
	0x0BD00BD0: "Lustre",
	0x01161970: "GFS2",
	0x7461636F: "OCFS2",
	0x47504653: "GPFS",
	0x19830326: "FhGFS/BeeGFS",
	0x013111A8: "IBRIX",
	0xAAD7AAEA: "PanFS",
}

// RemoteFS reports the name of the filesystem type magic (statfs f_type)
// if inotify may miss its changes, and whether it may.
func RemoteFS(magic int64) (string, bool) {
	name, ok := remoteFS[magic]
	return name, ok
}

// statfsType is the statfs f_type of the filesystem holding path.
func statfsType(path string) (int64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return 0, fmt.Errorf("statfs %s: %w", path, err)
	}
	return int64(st.Type), nil //nolint:unconvert // int32 on some platforms
}

// pollReason says why path's filesystem must be polled ("" if it need
// not): typeOf is statfsType, or a test's.
func pollReason(typeOf func(string) (int64, error), path string) string {
	magic, err := typeOf(path)
	if err != nil {
		return ""
	}
	if name, remote := RemoteFS(magic); remote {
		return fmt.Sprintf("%s is on %s (statfs type %#x): inotify does not see changes made elsewhere", path, name, magic)
	}
	return ""
}
