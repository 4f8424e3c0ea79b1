package snapshot

import (
	"encoding/binary"
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"

	"github.com/seqmirror/seqmirror/internal/cow"
	"github.com/seqmirror/seqmirror/internal/fsys"
	"github.com/seqmirror/seqmirror/internal/tree"
	"github.com/seqmirror/seqmirror/manifest"
	"golang.org/x/sys/unix"
)

// The listing of the copy-on-write path when the served snapshot is an
// earlier btrfs snapshot of the same source subvolume (changeSet): btrfs
// says which inodes changed since that snapshot was taken (cow.ChangedInodes,
// reading only what was written since), and the listing reads every
// directory (names and inode numbers, getdents(2)) but stats only the
// entries whose inode changed. Every other entry takes the served
// snapshot's record of the same path as it is, hash included.
//
// Why that record is right: an inode whose item no transaction changed
// since the served snapshot's (its transid) is, byte for byte and in every
// attribute, what it was in that snapshot — a write, truncate, chmod,
// utime, rename, link or unlink of it changes its item — and it has the
// same names: every name given to or taken from an inode changes its link
// count or ctime. So its name here was its name there, where the record
// (the served manifest describes the served snapshot exactly) describes
// it. A path with no record there (left out by other excludes then), or a
// record of another type, is stat'ed.

// changeSet returns the inodes of the source's snapshot changed since the
// served snapshot was taken, or ok false if the served snapshot is not a
// snapshot of the same subvolume (made by the hard-link farm, or of
// another source) or btrfs cannot tell: then everything is listed.
func (a *attempt) changeSet() (changed map[uint64]bool, ok bool) {
	served := a.u.Served()
	if served == 0 || a.opt.Force {
		return nil, false
	}
	was, err := cow.Info(a.u.Root().SnapshotDir(served))
	if err != nil {
		a.opt.Log.Debug("listing the whole source snapshot", "why", err.Error())
		return nil, false
	}
	now, err := cow.Info(a.source)
	if err == nil && (now.ParentUUID != was.ParentUUID || now.ParentUUID == [16]byte{}) {
		err = fmt.Errorf("snapshot %d is not a snapshot of this source", served)
	}
	if err == nil {
		changed, err = cow.ChangedInodes(a.source, was.OTransid)
	}
	if err != nil {
		a.opt.Log.Debug("listing the whole source snapshot", "why", err.Error())
		return nil, false
	}
	a.opt.Log.Debug("listing only what changed since the served snapshot", "snapshot", served, "inodes", len(changed))
	return changed, true
}

// walkChanged lists the source's snapshot into the spool, pairing as it
// goes, stat'ing only the changed inodes; an entry not stat'ed is spooled
// as settled (spooled.settled: its file is not hashed again).
//
// The files it finds new or changed (that the served snapshot cannot
// vouch for: unchanged) are hashed meanwhile by a prehasher, whose sums
// hashFiles takes.
func (a *attempt) walkChanged(changed map[uint64]bool) error {
	a.pre = newPrehasher(a.ctx, a.f, a.source, a.opt.Workers)
	w := &changeWalk{a: a, changed: changed, buf: make([]byte, 64<<10)}
	err := w.dir("")
	a.opt.Log.Debug("hashed while listing", "files", a.pre.wait())
	if err != nil {
		return err
	}
	return a.spool.seal()
}

type changeWalk struct {
	a       *attempt
	changed map[uint64]bool
	buf     []byte
}

// dir lists directory rel and, depth first, what is below it.
func (w *changeWalk) dir(rel string) error {
	a := w.a
	ents, err := readDirents(filepath.Join(a.source, filepath.FromSlash(rel)), w.buf)
	if err != nil {
		return err
	}
	for _, d := range ents {
		r := d.name
		if rel != "" {
			r = rel + "/" + d.name
		}
		if a.skip(r) {
			continue
		}
		if err := manifest.CheckPath(r); err != nil {
			return fmt.Errorf("walk %s: %w", a.source, err)
		}
		e, fi, err := w.entry(r, d)
		if err != nil {
			return err
		}
		fresh := fi != nil
		linkable, err := a.spoolEntry(spooled{Entry: e, settled: !fresh})
		if err != nil {
			return err
		}
		if fresh && e.Type == manifest.File && !(linkable && a.servedFile(fi, r)) {
			a.pre.add(&e)
		}
		if e.Type == manifest.Dir {
			if err := w.dir(r); err != nil {
				return err
			}
		}
	}
	return nil
}

// entry is the record of r: the served snapshot's if its inode did not
// change and the record is of its type, else from lstat (fresh: fi, the
// lstat, is not nil).
func (w *changeWalk) entry(r string, d dirent) (_ manifest.Entry, fi fs.FileInfo, _ error) {
	a := w.a
	if !w.changed[d.ino] {
		if rec, ok := a.pr.peek(r); ok && rec.Type == d.typ {
			return rec, nil, nil
		}
	}
	full := filepath.Join(a.source, filepath.FromSlash(r))
	fi, err := fsys.Lstat(a.f, full)
	if err != nil {
		return manifest.Entry{}, nil, fmt.Errorf("walk: lstat %s: %w", full, err)
	}
	e, err := tree.EntryFromInfo(a.f, full, r, fi)
	return e, fi, err
}

// dirent is one directory entry as getdents(2) gives it.
type dirent struct {
	name string
	ino  uint64
	typ  manifest.Type // 0 if not a file, directory or symlink
}

// readDirents lists directory dir without stat'ing its entries, sorted by
// name, using buf.
func readDirents(dir string, buf []byte) ([]dirent, error) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err != nil {
		return nil, fmt.Errorf("walk %s: %w", dir, &fs.PathError{Op: "open", Path: dir, Err: err})
	}
	defer unix.Close(fd)
	var out []dirent
	for {
		n, err := unix.Getdents(fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("walk %s: %w", dir, &fs.PathError{Op: "getdents", Path: dir, Err: err})
		}
		if n <= 0 {
			break
		}
		out = parseDirents(buf[:n], out)
	}
	slices.SortFunc(out, func(x, y dirent) int { return strings.Compare(x.name, y.name) })
	return out, nil
}

// parseDirents appends the entries of a getdents64 buffer (struct
// linux_dirent64: ino, off, reclen, type, name) but . and ...
func parseDirents(b []byte, out []dirent) []dirent {
	le := binary.LittleEndian
	for len(b) >= 19 {
		reclen := int(le.Uint16(b[16:]))
		if reclen < 19 || reclen > len(b) {
			break
		}
		name := b[19:reclen]
		if i := slices.Index(name, 0); i >= 0 {
			name = name[:i]
		}
		if s := string(name); s != "." && s != ".." {
			out = append(out, dirent{name: s, ino: le.Uint64(b[0:]), typ: direntType(b[18])})
		}
		b = b[reclen:]
	}
	return out
}

func direntType(t uint8) manifest.Type {
	switch t {
	case unix.DT_REG:
		return manifest.File
	case unix.DT_DIR:
		return manifest.Dir
	case unix.DT_LNK:
		return manifest.Symlink
	}
	return 0
}
