package transport

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/seqmirror/seqmirror/internal/export"
	"github.com/seqmirror/seqmirror/seqfile"
)

// Observe reads up's seq/end, seq/begin and current (over rsync, one run):
// an error reaching the root is Unreachable, numbers that do not read are
// Corrupt (a torn root). The one reading of a root's counters by the
// monitors (check, the status page).
func Observe(ctx context.Context, up Upstream) export.Observed {
	var o export.Observed
	var err error
	if o.End, err = up.Seq(ctx, seqfile.End); err == nil {
		if o.Begin, err = up.Seq(ctx, seqfile.Begin); err == nil {
			o.Snapshot, _, err = up.Current(ctx)
		}
	}
	switch {
	case errors.Is(err, export.ErrBadCurrent), errors.Is(err, seqfile.ErrCorrupt):
		o.Corrupt = err
	case err != nil:
		o.Unreachable = err
	}
	return o
}

// LagWindow is how many snapshot numbers below its current NewerSince
// looks at (an upstream keeps far fewer snapshots than that).
const LagWindow = 1024

// NewerSince returns when p's root started serving a snapshot newer than
// mine, given that it serves cur: the mtime of snapshots/N.manifest for
// the oldest N in (mine, cur] it holds (at most LagWindow numbers below
// cur), which publish writes just before it flips to N and mirror-sync
// stamps just before it does. It is the zero time if cur <= mine or no
// such manifest is there.
func NewerSince(ctx context.Context, p Prober, mine, cur uint64) (time.Time, error) {
	if cur <= mine {
		return time.Time{}, nil
	}
	lo := mine + 1
	if cur-lo >= LagWindow {
		lo = cur - LagWindow + 1
	}
	names := make([]string, 0, cur-lo+1)
	for n := lo; n <= cur; n++ {
		names = append(names, ManifestName(n))
	}
	infos, err := p.Stat(ctx, names)
	if err != nil {
		return time.Time{}, err
	}
	for _, name := range names {
		if fi, ok := infos[name]; ok && fi.Regular {
			return fi.ModTime, nil
		}
	}
	return time.Time{}, nil
}

// ManifestName is snapshots/N.manifest, relative to a root.
func ManifestName(n uint64) string {
	return export.SnapshotsName + "/" + strconv.FormatUint(n, 10) + export.ManifestExt
}

// FilterName is snapshots/N.filter, relative to the root: a partial
// snapshot's filter chain.
func FilterName(n uint64) string {
	return export.SnapshotsName + "/" + strconv.FormatUint(n, 10) + export.FilterExt
}
