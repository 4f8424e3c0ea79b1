package cow

import (
	"encoding/binary"
	"errors"
	"unsafe"

	"golang.org/x/sys/unix"
)

// More btrfs ioctls (linux/btrfs.h).
const (
	iocGetSubvolInfo = 0x81f8943c // _IOR(0x94, 60, struct btrfs_ioctl_get_subvol_info_args)
	iocTreeSearch    = 0xd0009411 // _IOWR(0x94, 17, struct btrfs_ioctl_search_args)
	inodeItemKey     = 1          // BTRFS_INODE_ITEM_KEY
)

// SubvolInfo is what btrfs records of a subvolume.
type SubvolInfo struct {
	ID         uint64
	UUID       [16]byte
	ParentUUID [16]byte // the subvolume it is a snapshot of (zero: none)
	// OTransid is the transaction that created it: a snapshot holds every
	// change of its parent up to and including that transaction, none
	// after.
	OTransid uint64
}

// Info returns the subvolume information of path (a subvolume).
func Info(path string) (SubvolInfo, error) {
	fd, err := openDir(path)
	if err != nil {
		return SubvolInfo{}, err
	}
	defer unix.Close(fd)
	var buf [504]byte
	if err := ioctl(fd, iocGetSubvolInfo, unsafe.Pointer(&buf[0])); err != nil {
		return SubvolInfo{}, wrap("subvolume info of", path, err)
	}
	le := binary.LittleEndian
	var in SubvolInfo
	in.ID = le.Uint64(buf[0:])
	copy(in.UUID[:], buf[296:312])
	copy(in.ParentUUID[:], buf[312:328])
	in.OTransid = le.Uint64(buf[352:])
	return in, nil
}

// searchArgs is struct btrfs_ioctl_search_args: the key (104 bytes) and
// the result buffer.
type searchArgs struct {
	treeID, minObjectID, maxObjectID, minOffset, maxOffset, minTransid, maxTransid uint64
	minType, maxType, nrItems, _                                                   uint32
	_                                                                              [4]uint64
	buf                                                                            [4096 - 104]byte
}

// ChangedInodes returns the inode numbers of the subvolume path whose
// inode item a transaction after since changed (its transid field): every
// write, truncate, chmod, chown, utime, rename and link or unlink of an
// inode moves it. It reads only the parts of the subvolume's tree written
// after since (BTRFS_IOC_TREE_SEARCH with a minimum transid, as btrfs
// subvolume find-new does), so its cost follows what changed, not the
// size of the tree. It needs CAP_SYS_ADMIN (ErrUnsupported without).
func ChangedInodes(path string, since uint64) (map[uint64]bool, error) {
	fd, err := openDir(path)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	changed := map[uint64]bool{}
	args := &searchArgs{maxObjectID: ^uint64(0), maxOffset: ^uint64(0), minTransid: since + 1, maxTransid: ^uint64(0),
		minType: inodeItemKey, maxType: inodeItemKey}
	for {
		args.nrItems = 4096
		if err := ioctl(fd, iocTreeSearch, unsafe.Pointer(args)); err != nil {
			if errors.Is(err, unix.EPERM) {
				err = errors.Join(ErrUnsupported, err)
			}
			return nil, wrap("search the tree of", path, err)
		}
		if args.nrItems == 0 {
			return changed, nil
		}
		last := parseInodeItems(args.buf[:], int(args.nrItems), since, changed)
		if last == ^uint64(0) {
			return changed, nil
		}
		args.minObjectID, args.minOffset = last+1, 0
	}
}

// parseInodeItems reads n search results (a 32-byte header each, then the
// item) from buf, adds the inodes whose item's transid is after since to
// changed and returns the last objectid seen.
func parseInodeItems(buf []byte, n int, since uint64, changed map[uint64]bool) (last uint64) {
	le := binary.LittleEndian
	off := 0
	for i := 0; i < n && off+32 <= len(buf); i++ {
		obj, typ, size := le.Uint64(buf[off+8:]), le.Uint32(buf[off+24:]), int(le.Uint32(buf[off+28:]))
		item := buf[off+32 : min(off+32+size, len(buf))]
		// struct btrfs_inode_item: generation, then transid.
		if typ == inodeItemKey && len(item) >= 16 && le.Uint64(item[8:]) > since {
			changed[obj] = true
		}
		last = obj
		off += 32 + size
	}
	return last
}
