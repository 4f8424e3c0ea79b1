package cow

import (
	"encoding/binary"

	"golang.org/x/sys/unix"
)

// dirIndexKey is BTRFS_DIR_INDEX_KEY: a directory's entries, one item
// each, in the order they were made.
const dirIndexKey = 96

// Tree is a subvolume open for reading its btrfs tree (the tree search
// needs CAP_SYS_ADMIN: ErrUnsupported without). It is not safe for
// concurrent use.
type Tree struct {
	fd   int
	path string
	args *searchArgs
}

// OpenTree opens the subvolume path.
func OpenTree(path string) (*Tree, error) {
	fd, err := openDir(path)
	if err != nil {
		return nil, err
	}
	return &Tree{fd: fd, path: path, args: new(searchArgs)}, nil
}

// Close closes the tree.
func (t *Tree) Close() error { return unix.Close(t.fd) }

// NameTransids returns, for each entry of directory dir (an inode number
// of the tree), the transaction that gave the entry its name, by the
// inode number it names (the newest, for an inode named twice there). A
// name is never changed in place: a rename or link writes a new entry. So
// an entry whose transaction is no newer than a snapshot's names the same
// inode there, under the same name in the same directory. Ask it of a
// snapshot: a live subvolume's newest entries reach its tree only when
// btrfs flushes them (delayed items), which taking a snapshot does.
func (t *Tree) NameTransids(dir uint64) (map[uint64]uint64, error) {
	names := map[uint64]uint64{}
	le := binary.LittleEndian
	parse := func(buf []byte, n int) (last key) {
		off := 0
		for i := 0; i < n && off+32 <= len(buf); i++ {
			k := key{objectID: le.Uint64(buf[off+8:]), offset: le.Uint64(buf[off+16:]), typ: le.Uint32(buf[off+24:])}
			size := int(le.Uint32(buf[off+28:]))
			item := buf[off+32 : min(off+32+size, len(buf))]
			// struct btrfs_dir_item: location (objectid u64, type u8,
			// offset u64), transid u64, data_len, name_len (u16), type u8
			if k.typ == dirIndexKey && k.objectID == dir && len(item) >= 30 && item[8] == inodeItemKey {
				ino, transid := le.Uint64(item), le.Uint64(item[17:])
				names[ino] = max(names[ino], transid)
			}
			last = k
			off += 32 + size
		}
		return last
	}
	k := searchKey{minObjectID: dir, maxObjectID: dir, minType: dirIndexKey, maxType: dirIndexKey, maxOffset: ^uint64(0), maxTransid: ^uint64(0)}
	if err := treeSearch(t.fd, t.args, k, parse); err != nil {
		return nil, wrap("search the tree of", t.path, err)
	}
	return names, nil
}
