package cow

import (
	"encoding/binary"
	"errors"
	"unsafe"

	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"
)

// More btrfs ioctls (linux/btrfs.h).
const (
	iocGetSubvolInfo = 0x81f8943c // _IOR(0x94, 60, struct btrfs_ioctl_get_subvol_info_args)
	iocTreeSearchV2  = 0xc0709411 // _IOWR(0x94, 17, struct btrfs_ioctl_search_args_v2)
	inodeItemKey     = 1          // BTRFS_INODE_ITEM_KEY
	inodeRefKey      = 12         // BTRFS_INODE_REF_KEY
	inodeExtrefKey   = 13         // BTRFS_INODE_EXTREF_KEY
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
	return InfoOf(fd, path)
}

// InfoOf is Info of the subvolume open as fd (path names it in errors).
func InfoOf(fd int, path string) (SubvolInfo, error) {
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

// searchKey is struct btrfs_ioctl_search_key (104 bytes): the range of
// keys and transids searched, and on return how many items the buffer
// holds.
type searchKey struct {
	treeID, minObjectID, maxObjectID, minOffset, maxOffset, minTransid, maxTransid uint64
	minType, maxType, nrItems, _                                                   uint32
	_                                                                              [4]uint64
}

// searchBufSize is the result buffer of one search: large enough that a
// search of a big change takes a few hundred calls, each of which walks
// down the tree again.
const searchBufSize = 256 << 10

// searchArgs is struct btrfs_ioctl_search_args_v2: the key, the buffer's
// size and the buffer.
type searchArgs struct {
	key     searchKey
	bufSize uint64
	buf     [searchBufSize]byte
}

// Changes is what ChangedInodes found.
type Changes struct {
	Inodes map[uint64]bool // every changed inode
	Dirs   []uint64        // the directories among them, in inode order
	// Parents are the directories that hold a name of a changed inode
	// (every one, for an inode with hard links).
	Parents map[uint64]bool
}

// ChangedInodes returns the inode numbers of the subvolume path whose
// inode item a transaction after since changed (its transid field): every
// write, truncate, chmod, chown, utime, rename and link or unlink of an
// inode moves it, and so does every name added to or taken from a
// directory. It reads only the parts of the subvolume's tree written
// after since (BTRFS_IOC_TREE_SEARCH with a minimum transid, as btrfs
// subvolume find-new does), so its cost follows what changed, not the
// size of the tree. It needs CAP_SYS_ADMIN (ErrUnsupported without).
func ChangedInodes(path string, since uint64) (Changes, error) {
	fd, err := openDir(path)
	if err != nil {
		return Changes{}, err
	}
	defer unix.Close(fd)
	parts, err := searchParts(fd, since)
	if err != nil {
		return Changes{}, wrap("search the tree of", path, err)
	}
	// The parts of the tree are searched at once: on a cold cache their
	// blocks come from the disk in parallel instead of one at a time.
	found := make([]*changeSearch, len(parts))
	var g errgroup.Group
	for i, k := range parts {
		found[i] = newChangeSearch(since)
		g.Go(func() error { return found[i].search(fd, k) })
	}
	if err := g.Wait(); err != nil {
		return Changes{}, wrap("search the tree of", path, err)
	}
	s := found[0]
	for _, o := range found[1:] {
		s.merge(o)
	}
	if err := s.nameRest(fd); err != nil {
		return Changes{}, wrap("search the tree of", path, err)
	}
	return s.c, nil
}

// searchWays is how many parts of a subvolume's tree ChangedInodes
// searches at once.
const searchWays = 4

// searchParts splits the search for items written after since into
// searchWays ranges of inode numbers, up to the highest inode written
// after since (found by bisection: each probe is one descent of the
// tree), and one range above it for the tree's special objects.
func searchParts(fd int, since uint64) ([]searchKey, error) {
	whole := searchKey{maxObjectID: ^uint64(0), maxOffset: ^uint64(0), minTransid: since + 1, maxTransid: ^uint64(0),
		minType: inodeItemKey, maxType: inodeItemKey}
	args := &searchArgs{}
	has := func(lo uint64) (bool, error) { // an item at lo..2^63 written after since?
		args.key = whole
		args.key.minObjectID, args.key.maxObjectID, args.key.maxType = lo, 1<<63, 255
		args.key.nrItems = 1
		err := searchOnce(fd, args)
		return args.key.nrItems > 0, err
	}
	lo, hi := uint64(SubvolumeRootIno), uint64(1<<63) // has(lo) may hold; has(hi) does not
	for hi-lo > 1 {
		mid := lo + (hi-lo)/2
		ok, err := has(mid)
		if err != nil {
			return nil, err
		}
		if ok {
			lo = mid
		} else {
			hi = mid
		}
	}
	var parts []searchKey
	step := max((hi-SubvolumeRootIno)/searchWays, 1)
	for start := uint64(0); start < hi; {
		end := min(max(start, SubvolumeRootIno)+step, hi)
		k := whole
		k.minObjectID, k.maxObjectID, k.maxType, k.maxOffset = start, end-1, 255, ^uint64(0)
		parts = append(parts, k)
		start = end
	}
	k := whole
	k.minObjectID = hi
	return append(parts, k), nil
}

// changeSearch gathers Changes from tree searches.
type changeSearch struct {
	since uint64
	c     Changes
	named map[uint64]bool // changed inodes whose names were seen
	args  *searchArgs
}

func newChangeSearch(since uint64) *changeSearch {
	return &changeSearch{since: since, c: Changes{Inodes: map[uint64]bool{}, Parents: map[uint64]bool{}},
		named: map[uint64]bool{}, args: new(searchArgs)}
}

// merge adds what o found.
func (s *changeSearch) merge(o *changeSearch) {
	for ino := range o.c.Inodes {
		s.c.Inodes[ino] = true
	}
	s.c.Dirs = append(s.c.Dirs, o.c.Dirs...)
	for ino := range o.c.Parents {
		s.c.Parents[ino] = true
	}
	for ino := range o.named {
		s.named[ino] = true
	}
}

// nameRest finds the names of the changed inodes whose names the search
// did not meet: they follow an inode's item in the tree, but may begin a
// leaf written before since, which the search skipped.
func (s *changeSearch) nameRest(fd int) error {
	for ino := range s.c.Inodes {
		if s.named[ino] {
			continue
		}
		refs := searchKey{minObjectID: ino, maxObjectID: ino, minType: inodeRefKey, maxType: inodeExtrefKey,
			maxOffset: ^uint64(0), maxTransid: ^uint64(0)}
		if err := s.search(fd, refs); err != nil {
			return err
		}
	}
	return nil
}

// search runs a tree search of the keys in k to its end.
func (s *changeSearch) search(fd int, k searchKey) error {
	return treeSearch(fd, s.args, k, s.parse)
}

// searchOnce is one BTRFS_IOC_TREE_SEARCH_V2 of args.key (at most
// args.key.nrItems items) into args's buffer; without CAP_SYS_ADMIN its
// error wraps ErrUnsupported.
func searchOnce(fd int, args *searchArgs) error {
	args.bufSize = searchBufSize
	err := ioctl(fd, iocTreeSearchV2, unsafe.Pointer(args))
	if errors.Is(err, unix.EPERM) {
		err = errors.Join(ErrUnsupported, err)
	}
	return err
}

// treeSearch runs a tree search of the keys in k to its end, in args's
// buffer, handing each batch of n items to parse, which returns the last
// key.
func treeSearch(fd int, args *searchArgs, k searchKey, parse func(buf []byte, n int) key) error {
	args.key = k
	for {
		args.key.nrItems = ^uint32(0)
		if err := searchOnce(fd, args); err != nil {
			return err
		}
		if args.key.nrItems == 0 {
			return nil
		}
		last := parse(args.buf[:], int(args.key.nrItems))
		// the next key after the last one returned
		k := &args.key
		switch {
		case last.offset < ^uint64(0):
			k.minObjectID, k.minType, k.minOffset = last.objectID, last.typ, last.offset+1
		case last.typ < 255:
			k.minObjectID, k.minType, k.minOffset = last.objectID, last.typ+1, 0
		case last.objectID < ^uint64(0):
			k.minObjectID, k.minType, k.minOffset = last.objectID+1, 0, 0
		default:
			return nil
		}
		if k.minObjectID > k.maxObjectID {
			return nil
		}
	}
}

type key struct {
	objectID uint64
	typ      uint32
	offset   uint64
}

// parse reads n search results (a 32-byte header each: transid, objectid,
// offset, type, len; then the item) from buf and returns the last key.
// The inodes whose item's transid is after since are changed; the names
// of changed inodes (an inode ref's key offset is the directory; an
// extended ref's entries each start with theirs) give Parents.
func (s *changeSearch) parse(buf []byte, n int) (last key) {
	le := binary.LittleEndian
	off := 0
	for i := 0; i < n && off+32 <= len(buf); i++ {
		k := key{objectID: le.Uint64(buf[off+8:]), offset: le.Uint64(buf[off+16:]), typ: le.Uint32(buf[off+24:])}
		size := int(le.Uint32(buf[off+28:]))
		item := buf[off+32 : min(off+32+size, len(buf))]
		switch k.typ {
		case inodeItemKey:
			// struct btrfs_inode_item: generation, transid, size, nbytes,
			// block_group (u64 each), nlink, uid, gid, mode (u32 each).
			if len(item) >= 56 && le.Uint64(item[8:]) > s.since && !s.c.Inodes[k.objectID] {
				s.c.Inodes[k.objectID] = true
				if le.Uint32(item[52:])&unix.S_IFMT == unix.S_IFDIR {
					s.c.Dirs = append(s.c.Dirs, k.objectID)
				}
			}
		case inodeRefKey:
			if s.c.Inodes[k.objectID] {
				s.c.Parents[k.offset] = true
				s.named[k.objectID] = true
			}
		case inodeExtrefKey:
			if s.c.Inodes[k.objectID] {
				// struct btrfs_inode_extref: parent, index (u64), name_len
				// (u16), name; packed
				for b := item; len(b) >= 18; {
					s.c.Parents[le.Uint64(b)] = true
					b = b[min(len(b), 18+int(le.Uint16(b[16:]))):]
				}
				s.named[k.objectID] = true
			}
		}
		last = k
		off += 32 + size
	}
	return last
}
