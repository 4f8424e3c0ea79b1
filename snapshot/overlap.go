package snapshot

import (
	"errors"
	"fmt"

	"github.com/seqmirror/seqmirror/internal/fsys"
)

// ErrSourceOverlap means the source and the export root are the same
// directory or one holds the other: every snapshot would contain the
// root's own work files (or the root would be published to the world
// from inside the source). No retry can fix it.
var ErrSourceOverlap = errors.New("source and root overlap")

// checkOverlap refuses a source that is root, holds root, or lies inside
// it (after resolving symlinks; root need not exist yet).
func checkOverlap(f fsys.FS, root, source string) error {
	switch fsys.Relate(f, root, source) {
	case fsys.Same:
		return fmt.Errorf("%w: the source %s is the root itself; publish a separate directory", ErrSourceOverlap, source)
	case fsys.Inside:
		return fmt.Errorf("%w: the root %s is inside the source %s; move the root out of the source", ErrSourceOverlap, root, source)
	case fsys.Holds:
		return fmt.Errorf("%w: the source %s is inside the root %s; keep the source outside the exported root", ErrSourceOverlap, source, root)
	}
	return nil
}
