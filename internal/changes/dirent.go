package changes

import (
	"encoding/binary"
	"fmt"
	"io/fs"
	"slices"
	"strings"

	"github.com/seqmirror/seqmirror/internal/fsys"
	"github.com/seqmirror/seqmirror/manifest"
	"golang.org/x/sys/unix"
)

// dirent is one directory entry as getdents(2) gives it.
type dirent struct {
	name string
	ino  uint64
	typ  manifest.Type // 0 if not a file, directory or symlink
}

// readDirents lists directory dir without stat'ing its entries, sorted by
// name, using buf.
func readDirents(dir string, buf []byte) ([]dirent, error) {
	fd, err := fsys.OpenDir(dir, unix.O_NOFOLLOW)
	if err != nil {
		return nil, fmt.Errorf("walk %s: %w", dir, err)
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
