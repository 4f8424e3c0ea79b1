package transport

import (
	"fmt"

	"github.com/seqmirror/seqmirror/internal/fsys"
	"github.com/seqmirror/seqmirror/internal/transport/rsync"
	"github.com/seqmirror/seqmirror/internal/transport/upstream"
	"github.com/seqmirror/seqmirror/internal/transport/web"
)

// The contract, defined in the leaf package transport/upstream so that
// transport packages can implement it and Open can open them.
type (
	// Upstream is a readable export root; see upstream.Upstream.
	Upstream = upstream.Upstream
	// Options is what an upstream is opened with; see upstream.Options.
	Options = upstream.Options
	// RsyncOptions are Options.Rsync; see upstream.RsyncOptions.
	RsyncOptions = upstream.RsyncOptions
	// HTTPOptions are Options.HTTP; see upstream.HTTPOptions.
	HTTPOptions = upstream.HTTPOptions
	// TreeFetcher copies a plain tree (classic mode); see upstream.TreeFetcher.
	TreeFetcher = upstream.TreeFetcher
	// Overlapping reads side by side (HTTP); see upstream.Overlapping.
	Overlapping = upstream.Overlapping
	// SnapshotFetcher copies a whole snapshot; see upstream.SnapshotFetcher.
	SnapshotFetcher = upstream.SnapshotFetcher
	// SnapshotCloner clones a snapshot on the same btrfs; see upstream.SnapshotCloner.
	SnapshotCloner = upstream.SnapshotCloner
	// FullFetcher copies a partial snapshot's full manifest; see upstream.FullFetcher.
	FullFetcher = upstream.FullFetcher
	// FilterFetcher reads a snapshot's filter with its manifest; see upstream.FilterFetcher.
	FilterFetcher = upstream.FilterFetcher
	// Records yields a manifest's records; see upstream.Records.
	Records = upstream.Records
	// RecordIter is one pass over Records.
	RecordIter = upstream.RecordIter
	// Prober looks at a few paths of the root; see upstream.Prober.
	Prober = upstream.Prober
	// PathInfo is what a Prober reports about one path.
	PathInfo = upstream.PathInfo
	// SmallFile is a small file read by a Prober.
	SmallFile = upstream.SmallFile
)

// The errors upstreams return; see package upstream.
var (
	ErrVanished    = upstream.ErrVanished
	ErrUnavailable = upstream.ErrUnavailable
	ErrTimedOut    = upstream.ErrTimedOut
	ErrBadAddress  = upstream.ErrBadAddress
	ErrRefused     = upstream.ErrRefused
)

// MaxManifestSize bounds a manifest fetched from an upstream (4 GiB).
const MaxManifestSize = upstream.MaxManifestSize

// MaxStatusSize bounds the status.json Upstream.FetchStatus reads (1 MiB).
const MaxStatusSize = upstream.MaxStatusSize

// Open returns the upstream at addr, opened with opt: an http:// or
// https:// address (the URL of an export root; see package web), an rsync
// address (rsync://, host::module, host:path; see rsync.ParseAddress), else a path
// read directly (local disk or NFS). local is the filesystem the mirror
// writes to, through which the upstream makes its own writes (and from
// which a path upstream is read). A new transport joins with one case here.
func Open(addr string, local fsys.FS, opt Options) (Upstream, error) {
	switch {
	case addr == "":
		return nil, fmt.Errorf("%w: empty; give a local path, rsync://host/module or https://host/path", ErrBadAddress)
	case web.IsAddress(addr): // before rsync's: http://host reads as host:path
		u, err := web.Open(addr, local, opt)
		if err != nil {
			return nil, err // not a nil *web.Upstream in an interface
		}
		return u, nil
	case rsync.IsAddress(addr):
		u, err := rsync.Open(addr, local, opt)
		if err != nil {
			return nil, err // not a nil *rsync.Upstream in an interface
		}
		return u, nil
	}
	l, err := NewLocal(local, addr)
	if err != nil {
		return nil, err
	}
	if opt.Workers > 0 {
		l.Workers = opt.Workers
	}
	return l, nil
}
