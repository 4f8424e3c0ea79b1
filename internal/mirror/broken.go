package mirror

import (
	"context"
	"errors"
	"fmt"

	"github.com/seqmirror/seqmirror/internal/transport"
	"github.com/seqmirror/seqmirror/seqfile"
)

// ErrUpstreamBroken means the upstream's current names a snapshot whose
// manifest or files it does not have, while it is idle: no update of its
// own explains the gap, so waiting cannot help.
var ErrUpstreamBroken = errors.New("upstream is broken")

// checkBroken is asked after an attempt at snapshot n failed with
// transport.ErrVanished (cause). If the upstream has not moved since its
// end read e1 (begin == end == e1) and still serves n, nothing it did can
// have removed what was missing: the upstream is broken, and it says so.
// Otherwise (it moved, or cannot be read now) it returns nil: retry.
func checkBroken(ctx context.Context, up transport.Upstream, n, e1 uint64, cause error) error {
	if !errors.Is(cause, transport.ErrVanished) {
		return nil
	}
	e2, err := up.Seq(ctx, seqfile.End)
	if err != nil || e2 != e1 {
		return nil
	}
	b2, err := up.Seq(ctx, seqfile.Begin)
	if err != nil || b2 != e1 {
		return nil
	}
	cur, _, err := up.Current(ctx)
	if err != nil || cur != n {
		return nil
	}
	return fmt.Errorf("%w: %s serves snapshot %d but does not have all of it, and is not updating (seq %d/%d): %v", ErrUpstreamBroken, up, n, b2, e2, cause)
}
