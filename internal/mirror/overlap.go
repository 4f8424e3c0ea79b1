package mirror

import (
	"errors"
	"fmt"

	"github.com/seqmirror/seqmirror/internal/export"
	"github.com/seqmirror/seqmirror/internal/fsys"
	"github.com/seqmirror/seqmirror/internal/transport"
)

// ErrUpstreamOverlap means a local upstream is the mirror's own root, or
// one lies inside the other: a misconfiguration no retry can fix.
var ErrUpstreamOverlap = errors.New("upstream and root overlap")

// checkUpstream refuses a local upstream that overlaps root.
func checkUpstream(root *export.Root, up transport.Upstream) error {
	l, ok := up.(*transport.Local)
	if !ok {
		return nil
	}
	switch fsys.Relate(root.FS, root.Dir, l.String()) {
	case fsys.Same:
		return fmt.Errorf("%w: %s is the mirror's own root; name the upstream's root", ErrUpstreamOverlap, l)
	case fsys.Inside, fsys.Holds:
		return fmt.Errorf("%w: one of %s and %s lies inside the other; keep the mirror's root apart from the upstream", ErrUpstreamOverlap, root.Dir, l)
	}
	return nil
}
