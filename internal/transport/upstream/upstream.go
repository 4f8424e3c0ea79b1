package upstream

import (
	"context"
	"errors"
	"io"
	"time"

	"github.com/seqmirror/seqmirror/internal/cow"
	"github.com/seqmirror/seqmirror/manifest"
)

var (
	// ErrVanished means the snapshot being copied disappeared upstream.
	ErrVanished = errors.New("snapshot vanished upstream")
	// ErrUnavailable means the upstream did not answer; retry later.
	ErrUnavailable = errors.New("upstream unavailable")
	// ErrTimedOut (with ErrUnavailable) means the upstream already timed
	// out in this run: the connect and I/O timeouts bound the whole run,
	// so no retry of the same run waits for it again.
	ErrTimedOut = errors.New("upstream timed out")
	// ErrBadAddress means the upstream address could not be understood.
	ErrBadAddress = errors.New("bad upstream address")
	// ErrRefused means the upstream answered and refused the request (an
	// unknown module, an option its server refuses, permission denied):
	// a configuration problem that needs a human, not a retry.
	ErrRefused = errors.New("upstream refused the request")
)

// MaxManifestSize bounds a manifest fetched from an upstream (4 GiB).
const MaxManifestSize = 4 << 30

// MaxStatusSize bounds the status.json FetchStatus reads (1 MiB).
const MaxStatusSize = 1 << 20

// Options is everything a transport is opened with. The zero value is
// usable: each transport reads the fields that concern it and applies its
// defaults to the zero ones.
type Options struct {
	// Timeout: give up when no data moves for this long (0: the
	// transport's default).
	Timeout time.Duration
	// ConTimeout: give up on a server that has not answered (connected
	// and greeted) after this long (0: the transport's default).
	ConTimeout time.Duration
	// Workers copy and hash fetched files in parallel (0: tree.Workers()).
	Workers int
	// Progress, if set, receives reports during long fetches: bytes
	// transferred so far and percent done.
	Progress func(bytes int64, percent int)
	// ScratchDir holds a transport's small private files (rsync: each
	// poll's copy of seq/ and current; "": the system temp dir).
	// mirror-sync gives ROOT/.work, which the next run empties, so that a
	// killed run leaves nothing outside ROOT.
	ScratchDir string
	// Rsync tunes the rsync transport (rsync://, host::module, host:path).
	Rsync RsyncOptions
	// HTTP tunes the HTTP(S) transport (http://, https://).
	HTTP HTTPOptions
}

// HTTPOptions are the options only the HTTP(S) transport reads.
type HTTPOptions struct {
	// CAFile is a file of PEM certificates trusted, beside the system's
	// roots, to sign the server's certificate ("": the system's only).
	CAFile string
}

// RsyncOptions are the options only the rsync transport reads.
type RsyncOptions struct {
	Binary string   // rsync binary (default: "rsync" from PATH)
	Rsh    string   // remote shell for host:path addresses (rsync -e; default: rsync's, i.e. ssh)
	Extra  []string // extra rsync options (e.g. --bwlimit=10m), placed before the paths
	// Port is the daemon port for daemon addresses that name none (0:
	// rsync's default); such an address then shows and uses it.
	Port int
}

// Upstream is a readable export root.
type Upstream interface {
	// String names the upstream for logs and status.
	String() string
	// Seq reads the upstream's seq/begin or seq/end ("begin" or "end").
	Seq(ctx context.Context, name string) (uint64, error)
	// Current returns the snapshot the upstream serves (0 if none) and when
	// it started serving it (zero if unknown).
	Current(ctx context.Context) (uint64, time.Time, error)
	// FetchManifest copies snapshots/N.manifest to the new local file dst.
	FetchManifest(ctx context.Context, n uint64, dst string) error
	// Fetch copies the listed files of snapshot n into dir, at their
	// relative paths (whose directories exist), verifying each. A mirror
	// sync calls it several times for one snapshot, with chunks of at most
	// a few ten thousand files, as its streaming diff finds them.
	Fetch(ctx context.Context, n uint64, files []manifest.Entry, dir string) error
	// FetchStatus reads the upstream's status.json (informational: the
	// caller must survive any content). It returns nil and no error if
	// there is none, or it is not a regular file, or it is larger than
	// MaxStatusSize; an error only if the upstream could not be read.
	FetchStatus(ctx context.Context) ([]byte, error)
	// Close releases resources.
	Close() error
}

// Overlapping is implemented by upstreams whose reads may run side by side,
// each its own request (HTTP): a sync then reads the upstream's
// status.json while it copies, instead of one round trip after its flip.
type Overlapping interface {
	// OverlappingReads reports whether reads may overlap.
	OverlappingReads() bool
}

// TreeFetcher is implemented by upstreams that can copy a plain tree with no
// snapshots, as classic mode (mirror.SyncClassic) needs. It is a separate
// interface so that Upstream stays what snapshot mode needs.
type TreeFetcher interface {
	// FetchTree makes dir (which exists and is empty) a copy of the
	// upstream's whole tree except its top-level seq/ directory. A file
	// identical (same size, mtime and mode) to the one at the same path
	// below linkDest, if linkDest is not "", may be hard-linked from there
	// instead of copied. The caller verifies nothing: it hashes what it got.
	FetchTree(ctx context.Context, dir, linkDest string) error
}

// SnapshotFetcher is implemented by upstreams that copy a whole snapshot
// faster than Fetch copies the list of all its files (rsync: no per-file
// staging). mirror.Sync uses it when it has nothing to link from: a first
// copy, or a rebuild with no retained complete snapshot.
type SnapshotFetcher interface {
	// FetchSnapshot fills dir, which holds exactly the directories of
	// snapshot n (made by the caller, writable, nothing else in them),
	// with the snapshot's files and symlinks. It reads m, the snapshot's
	// manifest, as a stream, as many times as it needs, so that memory
	// does not grow with the snapshot; it writes little more than the
	// total size of the files m lists, however much the upstream holds.
	// On success dir holds exactly m's entries (same types, symlink
	// targets, and every regular file's size and hash checked against its
	// record), and every regular file has its record's mode and mtime
	// (directories' are the caller's to set).
	FetchSnapshot(ctx context.Context, n uint64, m Records, dir string) error
}

// SnapshotCloner is implemented by upstreams on a mounted filesystem
// (Local). When the upstream's snapshots are btrfs subvolumes on the
// mirror's own filesystem, the mirror takes a snapshot of the upstream's
// snapshot instead of copying it (one ioctl, no data written) and checks
// it against the manifest; elsewhere both methods return an error
// (wrapping cow.ErrUnsupported where that is why), and the mirror copies.
type SnapshotCloner interface {
	// SnapshotInfo returns what btrfs records of the upstream's snapshot
	// n: its lineage (of which subvolume it is a snapshot, and when it was
	// taken).
	SnapshotInfo(n uint64) (cow.SubvolInfo, error)
	// CloneSnapshot makes dst (which must not exist; its parent is on the
	// same btrfs) a writable snapshot of the upstream's snapshot n,
	// reached without following a symlink below the upstream's root, and
	// returns what SnapshotInfo does of the snapshot it took.
	CloneSnapshot(ctx context.Context, n uint64, dst string) (cow.SubvolInfo, error)
}

// FullFetcher is implemented by upstreams that can copy the full manifest
// a partial mirror keeps beside a snapshot's manifest (snapshots/N.full,
// docs/protocol.md section 11), which a lower tier copies too. Every
// transport implements it; a wrapper that hides it makes the upstream
// look whole to a partial mirror below it.
type FullFetcher interface {
	// FetchFull copies snapshots/N.full to the new local file dst, with
	// FetchManifest's checks and errors.
	FetchFull(ctx context.Context, n uint64, dst string) error
}

// FilterFetcher is implemented by upstreams that read a snapshot's filter
// file (snapshots/N.filter, docs/protocol.md section 11) in the same
// request as its manifest; a mirror asks others for it on its own.
type FilterFetcher interface {
	// FetchManifestFilter is FetchManifest, and returns the content of
	// snapshots/N.filter too (nil if there is none: a whole snapshot).
	FetchManifestFilter(ctx context.Context, n uint64, dst string) ([]byte, error)
}

// Records yields a validated manifest's records: each Open starts a new
// pass, in canonical order, which the caller closes.
type Records interface {
	Open() (RecordIter, error)
}

// RecordIter is one pass over Records.
type RecordIter interface {
	manifest.Iterator
	io.Closer
}

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
