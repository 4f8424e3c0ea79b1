package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"iter"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/seqmirror/seqmirror/internal/export"
	"github.com/seqmirror/seqmirror/internal/fsys"
	"github.com/seqmirror/seqmirror/internal/transport"
	"github.com/seqmirror/seqmirror/internal/tree"
	"github.com/seqmirror/seqmirror/manifest"
	"github.com/seqmirror/seqmirror/seqfile"
)

var (
	// ErrNotFound means the snapshot has no record at the path. It also
	// matches fs.ErrNotExist.
	ErrNotFound = fmt.Errorf("not in the snapshot: %w", fs.ErrNotExist)
	// ErrNotFile means the record is a directory or a symlink, which Open
	// does not read.
	ErrNotFile = errors.New("not a regular file")
	// ErrNotDir means List was given a record that is not a directory.
	ErrNotDir = errors.New("not a directory")
	// ErrNoSnapshot means the address serves no snapshot yet (an empty
	// export root).
	ErrNoSnapshot = errors.New("no snapshot served")
	// ErrSnapshotGone means the pinned snapshot is no longer held upstream
	// (pruned, or replaced by another with the same number).
	ErrSnapshotGone = errors.New("snapshot no longer held upstream")
	// ErrCorrupt means the mirror sent damaged data: a file that does not
	// match its manifest record, a corrupt manifest, seq file or current.
	ErrCorrupt = errors.New("corrupt data from the mirror")
	// ErrUnavailable is the transport's: the upstream did not answer (a
	// network failure, a timeout, a path that is gone); retry later.
	ErrUnavailable = transport.ErrUnavailable
	// ErrBadAddress is the transport's: the address cannot be understood.
	ErrBadAddress = transport.ErrBadAddress
)

// Options tune Open. The zero value is usable.
type Options struct {
	// ScratchDir is where Open makes its private scratch directory, which
	// holds the manifest while it is read and each file while it is
	// fetched and checked ("": the system temp dir). Close removes it.
	ScratchDir string
	// Timeout gives up when no data moves for this long (0: the
	// transport's default).
	Timeout time.Duration
	// ConTimeout gives up on a server that has not answered after this
	// long (0: the transport's default).
	ConTimeout time.Duration
	// TrustKeys are files of the master's minisign public keys (several
	// during a key rotation). With any, Open verifies the signature of the
	// snapshot it pins before it returns (docs/protocol.md section 10):
	// a trusted key, a statement for that snapshot, over exactly the
	// manifest read (from a partial mirror: over its full manifest, which
	// the manifest read must be a subset of); else ErrUntrusted. It
	// verifies the timestamp too:
	// State is StateFrozen if the newest one has expired. Without keys
	// nothing is verified and State is StateUnsigned.
	TrustKeys []string
	// StateFile, if set (with TrustKeys), is a small file Open keeps the
	// highest signed snapshot number it has seen in, so that a later Open
	// refuses an older signed snapshot (a replay: ErrUntrusted) unless
	// AllowRollback.
	StateFile     string
	AllowRollback bool
	// Now is the clock timestamps' expiry is judged by (nil: time.Now).
	Now func() time.Time
}

// pinAttempts bounds Open's tries when the served snapshot disappears
// between reading current and fetching its manifest.
const pinAttempts = 3

// Snapshot is one snapshot of an export root, pinned by Open.
type Snapshot struct {
	addr    string
	n       uint64
	entries []manifest.Entry // the manifest's records, in canonical order
	manSize int64            // the manifest's size, for Check
	manID   string           // its footer line, for Check without a Prober
	sig     signing          // how signatures are checked, and what was found

	mu      sync.Mutex // serialises the upstream and guards what follows
	up      transport.Upstream
	scratch string
	fetches uint64 // names each fetch's directory below scratch
	closed  bool
}

// Open opens the export root at addr, reads the snapshot it serves, fetches
// and validates that snapshot's manifest, and returns the snapshot, pinned.
// Close it when done.
func Open(ctx context.Context, addr string, opt Options) (*Snapshot, error) {
	scratch, err := os.MkdirTemp(opt.ScratchDir, "seqmirror-client-")
	if err != nil {
		return nil, fmt.Errorf("open %s: scratch directory: %w", addr, err)
	}
	sg, err := newSigning(opt)
	if err != nil {
		_ = os.RemoveAll(scratch)
		return nil, fmt.Errorf("open %s: %w", addr, err)
	}
	up, err := transport.Open(addr, fsys.OS(), transport.Options{
		Timeout: opt.Timeout, ConTimeout: opt.ConTimeout, ScratchDir: scratch,
	})
	if err != nil {
		_ = os.RemoveAll(scratch)
		return nil, fmt.Errorf("open %s: %w", addr, err)
	}
	return open(ctx, addr, up, scratch, sg)
}

// open pins the snapshot up serves; on failure it closes up and removes
// scratch.
func open(ctx context.Context, addr string, up transport.Upstream, scratch string, sg signing) (*Snapshot, error) {
	s := &Snapshot{addr: addr, up: up, scratch: scratch, sig: sg}
	if err := s.pin(ctx); err != nil {
		_ = up.Close()
		_ = os.RemoveAll(scratch)
		return nil, err
	}
	return s, nil
}

// pin reads the snapshot the upstream serves and loads its manifest; if
// the snapshot disappears meanwhile it reads current again. A current
// that still names a snapshot whose manifest is missing is torn.
func (s *Snapshot) pin(ctx context.Context) error {
	var err error
	var prev uint64
	for range pinAttempts {
		n, _, cerr := s.up.Current(ctx)
		switch {
		case cerr != nil:
			return fmt.Errorf("open %s: %w", s.addr, classify(cerr))
		case n == 0:
			return s.nothingServed(ctx)
		case n == prev:
			return fmt.Errorf("open %s: %w: current names snapshot %d, whose manifest is missing (torn)", s.addr, ErrCorrupt, n)
		}
		if err = s.load(ctx, n); !errors.Is(err, ErrSnapshotGone) {
			return err
		}
		prev = n
	}
	return err
}

// nothingServed is the error for an upstream whose current names no
// snapshot: ErrNoSnapshot for an export root, or why its seq/end could
// not be read (a transport may read a missing root's current as none).
func (s *Snapshot) nothingServed(ctx context.Context) error {
	if _, err := s.up.Seq(ctx, seqfile.End); err != nil {
		return fmt.Errorf("open %s: %w", s.addr, classify(err))
	}
	return fmt.Errorf("open %s: %w", s.addr, ErrNoSnapshot)
}

// load fetches, validates and keeps the manifest of snapshot n.
func (s *Snapshot) load(ctx context.Context, n uint64) error {
	p := filepath.Join(s.scratch, "manifest")
	defer os.Remove(p)
	if err := s.up.FetchManifest(ctx, n, p); err != nil {
		return fmt.Errorf("open %s: snapshot %d: %w", s.addr, n, classify(err))
	}
	entries, err := readManifest(p, n)
	if err != nil {
		return fmt.Errorf("open %s: %w", s.addr, classify(err))
	}
	fi, err := os.Stat(p)
	if err != nil {
		return fmt.Errorf("open %s: %w", s.addr, err)
	}
	id, err := export.ManifestID(fsys.OS(), p)
	if err != nil {
		return fmt.Errorf("open %s: %w", s.addr, classify(err))
	}
	if err := s.verifySigned(ctx, n, p); err != nil {
		return fmt.Errorf("open %s: %w", s.addr, err)
	}
	s.n, s.entries, s.manSize, s.manID = n, entries, fi.Size(), id
	return nil
}

// readManifest reads and validates the whole manifest at p, which must
// record snapshot n.
func readManifest(p string, n uint64) ([]manifest.Entry, error) {
	m, err := export.OpenManifestFile(fsys.OS(), p, n, "manifest of snapshot "+strconv.FormatUint(n, 10))
	if err != nil {
		return nil, err
	}
	defer m.Close()
	var entries []manifest.Entry
	for {
		e, err := m.Next()
		if err == io.EOF {
			return entries, m.Finish()
		}
		if err != nil {
			return nil, err
		}
		entries = append(entries, e)
	}
}

// classify adds this package's sentinels to a transport's error: ErrCorrupt
// for damaged data, ErrSnapshotGone for a snapshot that vanished.
func classify(err error) error {
	switch {
	case errors.Is(err, transport.ErrVanished):
		return fmt.Errorf("%w: %w", ErrSnapshotGone, err)
	case errors.Is(err, tree.ErrHashMismatch), errors.Is(err, manifest.ErrCorrupt),
		errors.Is(err, manifest.ErrUnsafePath), errors.Is(err, seqfile.ErrCorrupt),
		errors.Is(err, export.ErrBadCurrent):
		return fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	return err
}

// N is the number of the pinned snapshot.
func (s *Snapshot) N() uint64 { return s.n }

// Addr is the address the snapshot was opened at.
func (s *Snapshot) Addr() string { return s.addr }

// Entries yields every record of the snapshot's manifest in canonical
// order (parents before their children).
func (s *Snapshot) Entries() iter.Seq[manifest.Entry] { return slices.Values(s.entries) }

// Stat returns the record of the slash-separated path name (relative to
// the snapshot's top, clean, as in the manifest).
func (s *Snapshot) Stat(name string) (manifest.Entry, error) {
	i, ok := s.find(name)
	if !ok {
		return manifest.Entry{}, fmt.Errorf("%q in snapshot %d of %s: %w", name, s.n, s.addr, ErrNotFound)
	}
	return s.entries[i], nil
}

// find returns the index of name's record.
func (s *Snapshot) find(name string) (int, bool) {
	if manifest.CheckPath(name) != nil {
		return 0, false
	}
	return slices.BinarySearchFunc(s.entries, name, func(e manifest.Entry, p string) int {
		return manifest.Compare(e.Path, p)
	})
}

// List returns the records directly below the directory dir ("" or ".":
// the snapshot's top), in canonical order.
func (s *Snapshot) List(dir string) ([]manifest.Entry, error) {
	start, prefix := 0, ""
	if dir != "" && dir != "." {
		e, err := s.Stat(dir)
		if err != nil {
			return nil, err
		}
		if e.Type != manifest.Dir {
			return nil, fmt.Errorf("%q in snapshot %d of %s: %w", dir, s.n, s.addr, ErrNotDir)
		}
		i, _ := s.find(dir)
		start, prefix = i+1, dir+"/"
	}
	var out []manifest.Entry
	// A directory's descendants follow its record at once: '/' sorts
	// below every other byte.
	for _, e := range s.entries[start:] {
		rest, ok := strings.CutPrefix(e.Path, prefix)
		if !ok {
			break
		}
		if !strings.Contains(rest, "/") {
			out = append(out, e)
		}
	}
	return out, nil
}
