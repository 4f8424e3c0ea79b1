package cliapp

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"time"

	"github.com/seqmirror/seqmirror/internal/export"
	"github.com/seqmirror/seqmirror/internal/mirror"
	"github.com/seqmirror/seqmirror/internal/transport"
	"github.com/seqmirror/seqmirror/seqfile"
)

// compareUpstream fills the upstream fields of s (the status of r) from up
// at time now.
// A classic mirror (docs/classic.md: r holds mirror.ClassicStateName) is
// compared by the upstream's seq/end against the one its served snapshot
// was copied at; any other root by the snapshot the upstream serves.
func compareUpstream(ctx context.Context, r *export.Root, up transport.Upstream, s *export.Status, now time.Time) error {
	copiedAt, err := seqfile.Read(r.FS, r.Path(mirror.ClassicStateName))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		n, since, err := upstreamSince(ctx, up, s.Snapshot)
		if err != nil {
			return err
		}
		s.CompareUpstream(up.String(), n, since, now)
		return nil
	case err != nil:
		return fmt.Errorf("classic mirror state: %w", err)
	}
	end, err := up.Seq(ctx, seqfile.End)
	if err != nil {
		return err
	}
	s.CompareClassicUpstream(up.String(), end, copiedAt)
	return nil
}
