package snapshot

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/seqmirror/seqmirror/fsys"
)

// ErrSourceOverlap means the source and the export root are the same
// directory or one holds the other: every snapshot would contain the
// root's own work files (or the root would be published to the world
// from inside the source). No retry can fix it.
var ErrSourceOverlap = errors.New("source and root overlap")

// checkOverlap refuses a source that is root, holds root, or lies inside
// it. On the OS filesystem both are compared after resolving symlinks, so
// that a link cannot hide the overlap; root need not exist yet.
func checkOverlap(f fsys.FS, root, source string) error {
	r, s := realPath(f, root), realPath(f, source)
	switch {
	case r == s:
		return fmt.Errorf("%w: the source %s is the root itself; publish a separate directory", ErrSourceOverlap, source)
	case within(r, s):
		return fmt.Errorf("%w: the root %s is inside the source %s; move the root out of the source", ErrSourceOverlap, root, source)
	case within(s, r):
		return fmt.Errorf("%w: the source %s is inside the root %s; keep the source outside the exported root", ErrSourceOverlap, source, root)
	}
	return nil
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
func realPath(f fsys.FS, p string) string {
	abs, err := filepath.Abs(p)
	if err != nil {
		abs = filepath.Clean(p)
	}
	if !fsys.IsOS(f) {
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
