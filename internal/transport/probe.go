package transport

import (
	"context"
	"strconv"
	"time"

	"github.com/seqmirror/seqmirror/internal/export"
)

// PathInfo is what a Prober reports about one path of an upstream root.
type PathInfo struct {
	Dir     bool // a directory (not a symlink to one)
	Regular bool // a regular file (not a symlink to one)
	Size    int64
	ModTime time.Time // to the second over rsync
}

// SmallFile is a small file read by a Prober.
type SmallFile struct {
	Data    []byte
	ModTime time.Time
}

// Prober is implemented by upstreams that can look at a few named paths
// of the root in one round trip and read small files, which a monitor
// (`mirror-sync check`) and the lag computation need. Both are separate
// from Upstream, which is what a sync needs.
type Prober interface {
	// Stat reports on each of names (slash-separated, relative to the
	// root) that exists, without following symlinks; names that do not
	// exist are absent from the map.
	Stat(ctx context.Context, names []string) (map[string]PathInfo, error)
	// ReadSmall reads each of names that is a regular file of at most max
	// bytes; the others are absent from the map.
	ReadSmall(ctx context.Context, names []string, max int64) (map[string]SmallFile, error)
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
