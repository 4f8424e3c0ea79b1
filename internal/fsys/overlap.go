package fsys

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Relation is how two directories lie relative to each other.
type Relation int

// The relations Relate reports.
const (
	Apart  Relation = iota // neither holds the other
	Same                   // one directory
	Inside                 // the first lies strictly below the second
	Holds                  // the second lies strictly below the first
)

// Relate tells how directories a and b lie relative to each other. On the
// OS filesystem both are compared after resolving symlinks, so that a link
// cannot hide an overlap; neither needs to exist yet.
func Relate(f FS, a, b string) Relation {
	ra, rb := realPath(f, a), realPath(f, b)
	switch {
	case ra == rb:
		return Same
	case within(ra, rb):
		return Inside
	case within(rb, ra):
		return Holds
	}
	return Apart
}

// within reports whether p lies strictly below dir (both clean, absolute).
func within(p, dir string) bool {
	if dir == string(filepath.Separator) {
		return p != dir
	}
	return strings.HasPrefix(p, dir+string(filepath.Separator))
}

// realPath makes p absolute and clean and, on the OS filesystem, resolves
// the symlinks of its longest existing prefix.
func realPath(f FS, p string) string {
	abs, err := filepath.Abs(p)
	if err != nil {
		abs = filepath.Clean(p)
	}
	if !IsOS(f) {
		return abs
	}
	rest := ""
	for dir := abs; ; dir = filepath.Dir(dir) {
		if r, err := filepath.EvalSymlinks(dir); err == nil {
			return filepath.Join(r, rest)
		} else if !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, os.ErrInvalid) {
			return abs
		}
		if dir == filepath.Dir(dir) {
			return abs
		}
		rest = filepath.Join(filepath.Base(dir), rest)
	}
}
