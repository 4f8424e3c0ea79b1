package export

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/seqmirror/seqmirror/internal/fsys"
	"github.com/seqmirror/seqmirror/manifest"
	"github.com/seqmirror/seqmirror/seqfile"
	"github.com/spf13/afero"
	"golang.org/x/sys/unix"
)

// Layout names, relative to ROOT.
const (
	CurrentName   = "current"
	SnapshotsName = "snapshots"
	SeqName       = "seq"
	StatusName    = "status.json"
	LockName      = ".lock"
	// DaemonLockName is the flock(2) target a daemon holds for its whole
	// life (one daemon per root); runs take LockName as ever.
	DaemonLockName = ".daemon.lock"
	WorkName       = ".work"
	ManifestExt    = ".manifest"
)

var (
	// ErrLocked means another process holds the root's writer lock.
	ErrLocked = errors.New("root is locked by another run")
	// ErrNotRoot means the directory is not an export root.
	ErrNotRoot = errors.New("not a seqmirror export root")
	// ErrBadCurrent means current is not a symlink to snapshots/N.
	ErrBadCurrent = errors.New("bad current symlink")
	// ErrNumbersExhausted means the root already uses snapshot number
	// 2^64-1: a new snapshot cannot be numbered.
	ErrNumbersExhausted = errors.New("snapshot numbers exhausted")
)

// Root is an export root directory on a filesystem.
type Root struct {
	FS  fsys.FS
	Dir string
	// Now is the clock Status reads a timestamp's expiry with (nil:
	// time.Now).
	Now func() time.Time
}

// New returns the root at dir on f.
func New(f fsys.FS, dir string) *Root { return &Root{FS: f, Dir: filepath.Clean(dir)} }

// Path joins elem below the root.
func (r *Root) Path(elem ...string) string { return filepath.Join(append([]string{r.Dir}, elem...)...) }

// SeqDir is ROOT/seq.
func (r *Root) SeqDir() string { return r.Path(SeqName) }

// SnapshotDir is ROOT/snapshots/N.
func (r *Root) SnapshotDir(n uint64) string { return r.Path(SnapshotsName, strconv.FormatUint(n, 10)) }

// ManifestPath is ROOT/snapshots/N.manifest.
func (r *Root) ManifestPath(n uint64) string {
	return r.Path(SnapshotsName, strconv.FormatUint(n, 10)+ManifestExt)
}

// WorkDir is ROOT/.work.
func (r *Root) WorkDir() string { return r.Path(WorkName) }

// Init creates the root's directories. It is idempotent.
func (r *Root) Init() error {
	for _, d := range []string{r.Dir, r.Path(SnapshotsName), r.SeqDir(), r.WorkDir()} {
		if err := r.FS.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("init root %s: %w", r.Dir, err)
		}
	}
	return nil
}

// Exists returns nil if the root looks like an export root (has snapshots/).
func (r *Root) Exists() error {
	fi, err := r.FS.Stat(r.Path(SnapshotsName))
	if err != nil || !fi.IsDir() {
		if _, err2 := r.FS.Stat(r.Dir); err2 != nil {
			return fmt.Errorf("%w: %s: %v", ErrNotRoot, r.Dir, err2)
		}
		return fmt.Errorf("%w: %s has no snapshots/ directory", ErrNotRoot, r.Dir)
	}
	return nil
}

// Lock is a held writer lock.
type Lock struct{ f *os.File }

// Lock takes the root's exclusive writer lock without waiting. It returns an
// error wrapping ErrLocked if another process holds it. The kernel drops the
// lock when the process exits, however it exits.
//
// The root directory is made through the seam (r.FS); the lock file is the
// one file opened outside it: flock(2) and the reserve's fallocate(2) need
// the real file descriptor, which a wrapping FS (a test's fault injector)
// does not expose, and the lock file is never served.
func (r *Root) Lock() (*Lock, error) {
	f, err := r.flock(LockName, "another publish or mirror-sync is running; retry later")
	if err != nil {
		return nil, err
	}
	reserveSpace(f)
	return &Lock{f: f}, nil
}

// DaemonLock takes the root's daemon lock (ROOT/.daemon.lock) without
// waiting: the lock a long-running daemon holds for its whole life, so that
// one root has one daemon. It is independent of Lock, which the daemon's
// runs take and release like any other run's. An error wraps ErrLocked if
// another process holds it; the kernel drops it when the process exits.
func (r *Root) DaemonLock() (*Lock, error) {
	f, err := r.flock(DaemonLockName, "another daemon serves this root")
	if err != nil {
		return nil, err
	}
	return &Lock{f: f}, nil
}

// flock opens ROOT/name (made if missing) and takes an exclusive flock on
// it without waiting; held is the explanation of ErrLocked.
func (r *Root) flock(name, held string) (*os.File, error) {
	if err := r.FS.MkdirAll(r.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("lock %s: %w", r.Dir, err)
	}
	p := r.Path(name)
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE|syscall.O_CLOEXEC, 0o644) // outside the seam: see Lock
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", p, err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: %s (%s)", ErrLocked, r.Dir, held)
		}
		return nil, fmt.Errorf("lock %s: %w", p, err)
	}
	return f, nil
}

// ReserveSize is the room a run keeps allocated in ROOT/.lock so that,
// when the disk fills, the failure can still be recorded in status.json
// (RecordFailure frees it first). The lock file is never served.
const ReserveSize = 64 << 10

// reserveSpace allocates ReserveSize bytes to the lock file f if it holds
// less (once per root, so a no-op poll writes nothing); best effort.
func reserveSpace(f *os.File) {
	if fi, err := f.Stat(); err == nil && fi.Size() < ReserveSize {
		_ = unix.Fallocate(int(f.Fd()), 0, 0, ReserveSize)
	}
}

// freeReserve gives the lock file's reserved room back to the filesystem;
// the next Lock allocates it again. Like the lock file, outside the seam:
// it must make room even when every write through the seam fails.
func (r *Root) freeReserve() bool {
	return os.Truncate(r.Path(LockName), 0) == nil
}

// noSpace reports whether err means the disk (or the quota) is full.
func noSpace(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}

// LockWait is Lock, waiting up to wait for a lock another run holds
// (polling, so that a cancelled ctx stops the wait at once). A wait of 0
// is Lock.
func (r *Root) LockWait(ctx context.Context, wait time.Duration) (*Lock, error) {
	deadline := time.Now().Add(wait)
	delay := 10 * time.Millisecond
	for {
		l, err := r.Lock()
		if !errors.Is(err, ErrLocked) || !time.Now().Before(deadline) {
			if err != nil && wait > 0 && errors.Is(err, ErrLocked) {
				err = fmt.Errorf("%w (waited %s)", err, wait)
			}
			return l, err
		}
		select {
		case <-ctx.Done():
			return nil, context.Cause(ctx)
		case <-time.After(min(delay, time.Until(deadline))):
		}
		delay = min(2*delay, 500*time.Millisecond)
	}
}

// Unlock releases the lock. A flock belongs to the open file, which a
// child forked by another goroutine shares until its exec has closed it
// (the descriptor is close-on-exec, but the forking parent resumes before
// the child closes it): Unlock releases the lock explicitly (LOCK_UN)
// before closing, so the lock is free when Unlock returns and the next Lock
// in this process does not find it held by such a child.
func (l *Lock) Unlock() error {
	errU := unix.Flock(int(l.f.Fd()), unix.LOCK_UN)
	if err := l.f.Close(); err != nil {
		return err
	}
	if errU != nil {
		return fmt.Errorf("unlock: %w", errU)
	}
	return nil
}

// Current returns the snapshot number current points to, 0 if there is none.
func (r *Root) Current() (uint64, error) {
	t, err := r.FS.ReadlinkIfPossible(r.Path(CurrentName))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return 0, nil
		}
		if errors.Is(err, syscall.EINVAL) { // exists but is not a symlink
			return 0, fmt.Errorf("%w: %s is not a symlink", ErrBadCurrent, r.Path(CurrentName))
		}
		return 0, fmt.Errorf("read %s: %w", r.Path(CurrentName), err)
	}
	return ParseCurrent(t)
}

// ParseCurrent parses the target of a current symlink: "snapshots/N". Its
// error describes a bad target without quoting it (it may be an upstream's).
func ParseCurrent(target string) (uint64, error) {
	num, ok := strings.CutPrefix(target, SnapshotsName+"/")
	n, err := strconv.ParseUint(num, 10, 64)
	if !ok || err != nil || n == 0 || strconv.FormatUint(n, 10) != num {
		return 0, fmt.Errorf("%w: its target (%d bytes) is not snapshots/N with N a number from 1 without leading zeros", ErrBadCurrent, len(target))
	}
	return n, nil
}

// CurrentTarget is the symlink target for snapshot n.
func CurrentTarget(n uint64) string { return SnapshotsName + "/" + strconv.FormatUint(n, 10) }

// Flip atomically points current at snapshot n.
func (r *Root) Flip(n uint64) error {
	if err := fsys.Symlink(r.FS, CurrentTarget(n), r.Path(CurrentName)); err != nil {
		return fmt.Errorf("flip current to %d: %w", n, err)
	}
	return nil
}

// PointerPath is ROOT/seq/current, the snapshot pointer (seqfile.Current).
func (r *Root) PointerPath() string { return r.Path(SeqName, seqfile.Current) }

// WritePointer durably writes n to ROOT/seq/current.
func (r *Root) WritePointer(n uint64) error {
	if err := seqfile.Write(r.FS, r.PointerPath(), n); err != nil {
		return fmt.Errorf("write the snapshot pointer: %w", err)
	}
	return nil
}

// SyncPointer makes ROOT/seq/current name cur, the snapshot current
// points to (0 if none), writing only when it does not already: a root
// written before the pointer existed gets it from its next run, a no-op
// included. The caller holds the lock, so current cannot move meanwhile.
func (r *Root) SyncPointer(cur uint64) error {
	if p, err := seqfile.Read(r.FS, r.PointerPath()); err == nil && p == cur {
		return nil
	}
	if cur == 0 {
		if err := r.FS.Remove(r.PointerPath()); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove the snapshot pointer: %w", err)
		}
		return nil
	}
	return r.WritePointer(cur)
}

// listing of snapshots/: complete snapshots plus orphans.
type listing struct {
	complete       []uint64
	dirs, manifest map[uint64]bool
	side           map[uint64]bool // files beside a manifest (sidecarExts)
	max            uint64
}

func (r *Root) list() (listing, error) {
	l := listing{dirs: map[uint64]bool{}, manifest: map[uint64]bool{}, side: map[uint64]bool{}}
	ents, err := afero.ReadDir(r.FS, r.Path(SnapshotsName))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return l, nil
		}
		return l, fmt.Errorf("list snapshots: %w", err)
	}
	for _, e := range ents {
		name, isMan := strings.CutSuffix(e.Name(), ManifestExt)
		if n, ok := sidecar(name); ok && !isMan {
			l.side[n] = true
			continue
		}
		n, err := strconv.ParseUint(name, 10, 64)
		if err != nil || n == 0 || strconv.FormatUint(n, 10) != name {
			continue
		}
		switch {
		case isMan && e.Mode().IsRegular():
			l.manifest[n] = true
		case !isMan && e.IsDir():
			l.dirs[n] = true
		default:
			continue
		}
		l.max = max(l.max, n)
	}
	for n := range l.dirs {
		if l.manifest[n] {
			l.complete = append(l.complete, n)
		}
	}
	slices.Sort(l.complete)
	return l, nil
}

// Complete reports whether snapshot n is complete (directory and manifest).
// It costs two stats, whatever the size of the snapshot.
func (r *Root) Complete(n uint64) bool {
	fi, err := r.FS.Stat(r.SnapshotDir(n))
	if err != nil || !fi.IsDir() {
		return false
	}
	fi, err = r.FS.Stat(r.ManifestPath(n))
	return err == nil && fi.Mode().IsRegular()
}

// Snapshots lists complete snapshots, oldest first.
func (r *Root) Snapshots() ([]uint64, error) {
	l, err := r.list()
	return l.complete, err
}

// HighestNumber returns the highest snapshot number used under snapshots/,
// complete or not, so that a new snapshot never reuses a number.
func (r *Root) HighestNumber() (uint64, error) {
	l, err := r.list()
	if err != nil {
		return 0, err
	}
	cur, err := r.Current()
	if err != nil {
		return 0, err
	}
	return max(l.max, cur), nil
}

// NextNumber returns the number for a new snapshot: one above
// HighestNumber. It fails with ErrNumbersExhausted rather than wrap to 0.
func (r *Root) NextNumber() (uint64, error) {
	hi, err := r.HighestNumber()
	if err != nil {
		return 0, err
	}
	if hi == math.MaxUint64 {
		return 0, fmt.Errorf("%w: %s already uses snapshot number %d", ErrNumbersExhausted, r.Dir, hi)
	}
	return hi + 1, nil
}

// ManifestStream is a manifest opened for streaming: records come from
// Next (validated as they come, errors worded as ReadManifest's), and Close
// releases the file. Finish checks what ReadManifest checks after the last
// record (the snapshot number); call it after Next returned io.EOF.
type ManifestStream struct {
	r    *manifest.Reader
	f    io.Closer
	name string // how errors call it: "manifest PATH"
	n    uint64
}

// OpenManifest opens the manifest of snapshot n for one streaming pass, in
// O(depth) memory. A caller that must not act on a bad manifest drains it
// (and calls Finish) before acting, as ReadManifest does.
func (r *Root) OpenManifest(n uint64) (*ManifestStream, error) {
	f, err := r.FS.Open(r.ManifestPath(n))
	if err != nil {
		return nil, fmt.Errorf("open manifest of snapshot %d: %w", n, err)
	}
	return newManifestStream(f, n, "manifest "+r.ManifestPath(n))
}

// OpenManifestFile opens the manifest file at path (anywhere: one fetched
// into ROOT/.work, say), which should record snapshot n, for one streaming
// pass. name is how its errors call it ("manifest of snapshot 2"); an
// error opening the file is returned as is.
func OpenManifestFile(f fsys.FS, path string, n uint64, name string) (*ManifestStream, error) {
	h, err := f.Open(path)
	if err != nil {
		return nil, err
	}
	return newManifestStream(h, n, name)
}

func newManifestStream(f afero.File, n uint64, name string) (*ManifestStream, error) {
	mr, err := manifest.NewReader(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return &ManifestStream{r: mr, f: f, name: name, n: n}, nil
}

// Next implements manifest.Iterator.
func (m *ManifestStream) Next() (manifest.Entry, error) {
	e, err := m.r.Next()
	if err != nil && err != io.EOF {
		err = fmt.Errorf("%s: %w", m.name, err)
	}
	return e, err
}

// Finish reports a manifest that records another snapshot than its name.
func (m *ManifestStream) Finish() error {
	if m.r.Snapshot() != m.n {
		return fmt.Errorf("%s: %w: records snapshot %d", m.name, manifest.ErrCorrupt, m.r.Snapshot())
	}
	return nil
}

// Drain reads the records left and calls Finish: it checks a manifest
// whole. It returns how many records it read.
func (m *ManifestStream) Drain() (int, error) {
	count := 0
	for {
		_, err := m.Next()
		if err == io.EOF {
			return count, m.Finish()
		}
		if err != nil {
			return count, err
		}
		count++
	}
}

// Close closes the file.
func (m *ManifestStream) Close() error { return m.f.Close() }

// ReadManifest opens and validates the manifest of snapshot n in memory.
func (r *Root) ReadManifest(n uint64) (*manifest.Manifest, error) {
	f, err := r.FS.Open(r.ManifestPath(n))
	if err != nil {
		return nil, fmt.Errorf("open manifest of snapshot %d: %w", n, err)
	}
	defer f.Close()
	m, err := manifest.Decode(f)
	if err != nil {
		return nil, fmt.Errorf("manifest %s: %w", r.ManifestPath(n), err)
	}
	if m.Snapshot != n {
		return nil, fmt.Errorf("manifest %s: %w: records snapshot %d", r.ManifestPath(n), manifest.ErrCorrupt, m.Snapshot)
	}
	return m, nil
}

// Cleanup removes what a killed writer leaves: work directories, temp files,
// manifests or snapshot directories whose other half is missing, and the
// files beside a manifest (sidecarExts: N.full, N.filter, the signature)
// of a snapshot that is not complete (never the served snapshot's). Call
// it only while holding the lock.
func (r *Root) Cleanup() error {
	// Skip the remove (and the mkdir below) when .work is already empty, so
	// that a no-op poll does not rewrite ROOT.
	if ents, err := afero.ReadDir(r.FS, r.WorkDir()); err != nil || len(ents) > 0 {
		if err := fsys.RemoveAll(r.FS, r.WorkDir()); err != nil {
			return fmt.Errorf("remove work dir: %w", err)
		}
	}
	for _, d := range []string{r.Dir, r.SeqDir(), r.Path(SnapshotsName)} {
		if err := fsys.RemoveTemps(r.FS, d); err != nil {
			return fmt.Errorf("remove temp files in %s: %w", d, err)
		}
	}
	l, err := r.list()
	if err != nil {
		return err
	}
	cur, err := r.Current()
	if err != nil {
		return err
	}
	for n := range l.manifest {
		if !l.dirs[n] && n != cur {
			if err := r.FS.Remove(r.ManifestPath(n)); err != nil {
				return fmt.Errorf("remove orphan manifest: %w", err)
			}
		}
	}
	for n := range l.dirs {
		if !l.manifest[n] && n != cur {
			if err := fsys.RemoveAll(r.FS, r.SnapshotDir(n)); err != nil {
				return fmt.Errorf("remove orphan snapshot dir: %w", err)
			}
		}
	}
	for n := range l.side {
		if !(l.manifest[n] && l.dirs[n]) && n != cur {
			if err := r.removeSidecars(n); err != nil {
				return err
			}
		}
	}
	return r.FS.MkdirAll(r.WorkDir(), 0o755)
}

// Prune deletes old snapshots: it keeps the newest keep complete snapshots,
// the served one, and every snapshot superseded less than minAge before now.
// It returns the numbers it deleted. Call it only while holding the lock.
func (r *Root) Prune(keep int, minAge time.Duration, now time.Time) ([]uint64, error) {
	if keep < 1 {
		return nil, fmt.Errorf("prune: keep must be at least 1, got %d", keep)
	}
	snaps, err := r.Snapshots()
	if err != nil {
		return nil, err
	}
	cur, err := r.Current()
	if err != nil {
		return nil, err
	}
	var deleted []uint64
	for i, n := range snaps {
		if len(snaps)-i <= keep || n >= cur {
			break
		}
		// Superseded when the next snapshot was made: its manifest's mtime.
		fi, err := r.FS.Stat(r.ManifestPath(snaps[i+1]))
		if err != nil {
			return deleted, fmt.Errorf("prune: %w", err)
		}
		if now.Sub(fi.ModTime()) < minAge {
			break
		}
		// Manifest first: without it the snapshot is no longer complete, so a
		// crash here leaves an orphan directory that Cleanup removes.
		if err := r.FS.Remove(r.ManifestPath(n)); err != nil {
			return deleted, fmt.Errorf("prune snapshot %d: %w", n, err)
		}
		if err := fsys.SyncDir(r.FS, r.Path(SnapshotsName)); err != nil {
			return deleted, err
		}
		if err := fsys.RemoveAll(r.FS, r.SnapshotDir(n)); err != nil {
			return deleted, fmt.Errorf("prune snapshot %d: %w", n, err)
		}
		if err := r.removeSidecars(n); err != nil {
			return deleted, fmt.Errorf("prune snapshot %d: %w", n, err)
		}
		deleted = append(deleted, n)
	}
	return deleted, nil
}

// PruneIdle is Prune for a run that changed nothing (a no-op poll or an
// unchanged source): snapshots still age past minAge between updates, so
// every run that holds the lock prunes. If it deleted anything it rewrites
// status.json (its snapshot list); otherwise it writes nothing.
func (r *Root) PruneIdle(upstream string, keep int, minAge time.Duration, now time.Time) ([]uint64, error) {
	deleted, err := r.Prune(keep, minAge, now)
	if err != nil || len(deleted) == 0 {
		return deleted, err
	}
	if rec, ok := r.recordedStatus(); ok && upstream == "" {
		upstream = rec.Upstream
	}
	return deleted, r.RecordStatus(upstream)
}

// States reported by Status.
const (
	StateEmpty    = "empty"    // no snapshot served yet
	StateFresh    = "fresh"    // idle and (if compared) level with the upstream
	StateUpdating = "updating" // begin > end: an update runs, or died and the next run repairs it
	StateStale    = "stale"    // idle but the upstream serves a newer snapshot
	StateTorn     = "torn"     // current does not resolve to a complete snapshot
)

// Status is what `status --json` prints and what ROOT/status.json holds.
type Status struct {
	Version          int        `json:"version"`
	Root             string     `json:"root"`
	Snapshot         uint64     `json:"snapshot"`
	Begin            uint64     `json:"begin"`
	End              uint64     `json:"end"`
	State            string     `json:"state"`
	Snapshots        []uint64   `json:"snapshots"`
	Updated          *time.Time `json:"updated,omitempty"`
	Upstream         string     `json:"upstream,omitempty"`
	UpstreamSnapshot *uint64    `json:"upstream_snapshot,omitempty"`
	LagSnapshots     *uint64    `json:"lag_snapshots,omitempty"`
	LagSeconds       *float64   `json:"lag_seconds,omitempty"`
	// UpstreamEnd and ClassicEnd compare a classic mirror (docs/classic.md)
	// with its upstream: the upstream's seq/end now, and the one the served
	// snapshot was copied at.
	UpstreamEnd *uint64 `json:"upstream_end,omitempty"`
	ClassicEnd  *uint64 `json:"classic_end,omitempty"`
	Problem     string  `json:"problem,omitempty"`
	// LastError is why the most recent publish or sync of this root failed
	// (after it took the lock), at LastErrorAt; the next run that succeeds,
	// a no-op one included, clears both.
	LastError   string     `json:"last_error,omitempty"`
	LastErrorAt *time.Time `json:"last_error_at,omitempty"`
	// FailingSince is when the current run of consecutive failures began
	// (the first failed run after a success); FailureReported is when a run
	// of the tools reported it on stderr under --quiet (once per streak).
	// The next successful run clears both.
	FailingSince    *time.Time `json:"failing_since,omitempty"`
	FailureReported *time.Time `json:"failure_reported,omitempty"`
	// Checked is when a mirror-sync run last read this root's upstream
	// (ROOT/seq/checked), CheckedUpstream what it served then and
	// BehindSince, if the mirror was behind, since when (Poll). Status
	// fills them; status.json does not hold them.
	Checked         *time.Time `json:"checked,omitempty"`
	CheckedUpstream *uint64    `json:"checked_upstream_snapshot,omitempty"`
	BehindSince     *time.Time `json:"behind_since,omitempty"`
	// CheckedUpstreams, with several upstreams, is what that poll found
	// at each, in priority order (Poll.Upstreams). Status fills it.
	CheckedUpstreams []PolledUpstream `json:"checked_upstreams,omitempty"`
	// Lineage is the path the served snapshot took, master first, this
	// server last (ExtendLineage); LineageNote says why it starts here or
	// left hops out. Kept while the root serves that snapshot.
	Lineage     []Hop  `json:"lineage,omitempty"`
	LineageNote string `json:"lineage_note,omitempty"`
	// Signature is how the root's writer treats signatures (SignSigned,
	// SignVerified, SignUnsigned; absent: never recorded), and
	// TimestampExpires when the timestamp the root holds expires (the
	// root is frozen from then on). Status fills them from the root.
	Signature        string     `json:"signature,omitempty"`
	TimestampExpires *time.Time `json:"timestamp_expires,omitempty"`
	// Partial, for a partial mirror, is the filter chain of the served
	// snapshot (its snapshots/N.filter).
	Partial *Partial `json:"partial,omitempty"`
	// Quorum is the outcome of the last quorum wait of publish (RecordQuorum);
	// the next run that rewrites status.json from the live state drops it.
	Quorum *Quorum `json:"quorum,omitempty"`
}

// Quorum is what status.json records of publish's wait for its mirrors
// (package quorum): whether Wanted mirrors served Snapshot by Deadline.
type Quorum struct {
	Snapshot uint64         `json:"snapshot"`
	Wanted   int            `json:"wanted"`
	Got      int            `json:"got"`
	Reached  bool           `json:"reached"`
	Counted  []QuorumMirror `json:"counted"`
	Behind   []QuorumMirror `json:"behind"`
	Started  time.Time      `json:"started"`
	Deadline time.Time      `json:"deadline"`
	At       time.Time      `json:"at"` // when the wait ended
	Seconds  float64        `json:"seconds"`
}

// QuorumMirror is one mirror of a Quorum: what it served at its last
// check, and why it does not count (Behind) or how long after the start
// of the wait it did (Counted).
type QuorumMirror struct {
	Mirror   string   `json:"mirror"`
	Snapshot uint64   `json:"snapshot"`
	Why      string   `json:"why,omitempty"`
	After    *float64 `json:"after_seconds,omitempty"`
}

// Status reads the live state of the root (seq files, current, snapshots),
// with the failure status.json records, if any.
func (r *Root) Status() (Status, error) {
	s, err := r.live()
	if err == nil {
		if rec, ok := r.recordedStatus(); ok {
			s.LastError, s.LastErrorAt = rec.LastError, rec.LastErrorAt
			s.FailingSince, s.FailureReported = rec.FailingSince, rec.FailureReported
			s.Quorum = rec.Quorum
		}
		s.Lineage, s.LineageNote = r.recordedLineage(s.Snapshot)
		if p, ok := r.LastPoll(); ok {
			s.AddPoll(p)
		}
	}
	return s, err
}

// AddPoll fills the poll fields of s from p.
func (s *Status) AddPoll(p Poll) {
	t, up := p.Checked, p.UpstreamSnapshot
	s.Checked, s.CheckedUpstream, s.BehindSince = &t, &up, p.BehindSince
	s.CheckedUpstreams = p.Upstreams
}

// live is Status without reading status.json.
func (r *Root) live() (Status, error) {
	s := Status{Version: 1, Root: r.Dir, Snapshots: []uint64{}}
	if err := r.Exists(); err != nil {
		return s, err
	}
	p, err := seqfile.Counters(r.FS, r.SeqDir())
	if err != nil {
		return s, err
	}
	s.Begin, s.End = p.Begin, p.End
	if s.Snapshots, err = r.Snapshots(); err != nil {
		return s, err
	}
	if s.Snapshots == nil {
		s.Snapshots = []uint64{}
	}
	s.Snapshot, err = r.Current()
	now := time.Now
	if r.Now != nil {
		now = r.Now
	}
	frozen := r.signatureStatus(&s, now())
	s.State, s.Problem = ClassifyState(Observed{Corrupt: err, Snapshot: s.Snapshot, Begin: p.Begin, End: p.End,
		Complete: slices.Contains(s.Snapshots, s.Snapshot), Frozen: frozen})
	if fi, err := fsys.Lstat(r.FS, r.Path(CurrentName)); err == nil {
		t := fi.ModTime().UTC()
		s.Updated = &t
	}
	s.Partial = r.partial(s.Snapshot)
	return s, nil
}

// recordedStatus reads ROOT/status.json, if it is there and valid.
func (r *Root) recordedStatus() (Status, bool) {
	var s Status
	b, err := afero.ReadFile(r.FS, r.Path(StatusName))
	if err != nil || len(b) > 1<<20 || json.Unmarshal(b, &s) != nil {
		return s, false
	}
	return s, true
}

// RecordFailure durably notes in ROOT/status.json that a run failed with
// err at now, with the rest of the live state. The caller holds the lock.
func (r *Root) RecordFailure(upstream string, runErr error, now time.Time) error {
	st, err := r.live()
	if err == nil {
		rec, ok := r.recordedStatus()
		if upstream != "" {
			st.Upstream = upstream
		} else if ok {
			st.Upstream = rec.Upstream
		}
		st.Lineage, st.LineageNote = r.recordedLineage(st.Snapshot)
		t := now.UTC()
		st.LastError, st.LastErrorAt = runErr.Error(), &t
		st.FailingSince = &t
		if ok && rec.LastError != "" && rec.FailingSince != nil {
			st.FailingSince, st.FailureReported = rec.FailingSince, rec.FailureReported
		}
		err = r.WriteStatus(st)
		if noSpace(err) && r.freeReserve() {
			err = r.WriteStatus(st)
		}
	}
	if err != nil {
		return fmt.Errorf("write status: %w", err)
	}
	return nil
}

// RecordOutcome is for a deferred call by a run that holds the lock: if
// *errp is a failure, it notes it in status.json (RecordFailure), logging
// (not returning) a failure to do so. A run that died leaves begin > end
// ("updating"), which alone cannot tell a running update from a failed
// one; a run that succeeds clears the note (RecordStatus, ClearFailure).
func (r *Root) RecordOutcome(upstream string, errp *error, now func() time.Time, log *slog.Logger) {
	if *errp == nil {
		return
	}
	if err := r.RecordFailure(upstream, *errp, now()); err != nil {
		log.Error("could not record the failure in status.json", "err", err)
	}
}

// MarkFailureReported notes in status.json that the current failure
// streak was reported at t, so that it is reported once. It writes only if
// status.json records a failure that is not marked yet. The caller holds
// the lock.
func (r *Root) MarkFailureReported(t time.Time) error {
	rec, ok := r.recordedStatus()
	if !ok || rec.LastError == "" || rec.FailureReported != nil {
		return nil
	}
	t = t.UTC()
	rec.FailureReported = &t
	if err := r.WriteStatus(rec); err != nil {
		return fmt.Errorf("write status: %w", err)
	}
	return nil
}

// ClearFailure rewrites ROOT/status.json from the live state if it records
// a failure; otherwise it writes nothing (a no-op run stays write-free).
func (r *Root) ClearFailure(upstream string) error {
	if rec, ok := r.recordedStatus(); !ok || rec.LastError == "" {
		return nil
	}
	return r.RecordStatus(upstream)
}

// CompareUpstream fills the upstream fields of s: upstream serves snapshot
// up; since is when it first served a snapshot newer than s.Snapshot (the
// mtime of its manifest of the oldest such snapshot it holds; zero if
// unknown), so the lag is how long the root has been behind, not the age
// of the upstream's newest snapshot (docs/protocol.md section 5).
func (s *Status) CompareUpstream(name string, up uint64, since, now time.Time) {
	s.Upstream, s.UpstreamSnapshot = name, &up
	var lag uint64
	if up > s.Snapshot {
		lag = up - s.Snapshot
	}
	s.LagSnapshots = &lag
	secs := 0.0
	if lag > 0 && !since.IsZero() {
		secs = max(0, now.Sub(since).Seconds())
	}
	s.LagSeconds = &secs
	if lag > 0 && s.State == StateFresh {
		s.State = StateStale
	}
}

// CompareClassicUpstream fills the upstream fields of a classic mirror's
// s: the upstream's seq/end is upEnd, the served snapshot was copied when it
// was copiedAt. A fresh mirror is stale if they differ.
func (s *Status) CompareClassicUpstream(name string, upEnd, copiedAt uint64) {
	s.Upstream, s.UpstreamEnd, s.ClassicEnd = name, &upEnd, &copiedAt
	if upEnd != copiedAt && s.State == StateFresh {
		s.State = StateStale
	}
}

// RecordStatus durably writes ROOT/status.json from the live state;
// upstream, if not empty, names where the root was last synced from. The
// lineage recorded for the served snapshot is kept.
func (r *Root) RecordStatus(upstream string) error {
	return r.recordStatus(upstream, nil)
}

// recordStatus is RecordStatus; lineage, if set, replaces the recorded
// one (an update that installed a snapshot).
func (r *Root) recordStatus(upstream string, lineage func(st *Status)) error {
	st, err := r.live() // without the failure status.json may record: cleared
	if err == nil {
		st.Upstream = upstream
		st.Lineage, st.LineageNote = r.recordedLineage(st.Snapshot)
		if lineage != nil {
			lineage(&st)
		}
		err = r.WriteStatus(st)
	}
	if err != nil {
		return fmt.Errorf("write status: %w", err)
	}
	return nil
}

// RecordQuorum durably notes q in ROOT/status.json, with the live state
// and the failure status.json records, if any. The caller holds the lock.
func (r *Root) RecordQuorum(q Quorum) error {
	st, err := r.live()
	if err == nil {
		if rec, ok := r.recordedStatus(); ok {
			st.Upstream, st.LastError, st.LastErrorAt = rec.Upstream, rec.LastError, rec.LastErrorAt
			st.FailingSince, st.FailureReported = rec.FailingSince, rec.FailureReported
		}
		st.Quorum = &q
		err = r.WriteStatus(st)
	}
	if err != nil {
		return fmt.Errorf("write status: %w", err)
	}
	return nil
}

// Finish completes an update that changed the tree: seq/end = begin (the
// value seqfile.StartUpdate returned), status.json, then Prune. It returns
// the pruned snapshot numbers.
func (r *Root) Finish(begin uint64, upstream string, keep int, minAge time.Duration, now time.Time) ([]uint64, error) {
	if err := seqfile.FinishUpdate(r.FS, r.SeqDir(), begin); err != nil {
		return nil, err
	}
	if err := r.RecordStatus(upstream); err != nil {
		return nil, err
	}
	return r.Prune(keep, minAge, now)
}

// WriteStatus durably writes ROOT/status.json.
func (r *Root) WriteStatus(s Status) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return fsys.WriteFile(r.FS, r.Path(StatusName), append(b, '\n'), 0o644)
}

// Settle completes the counters after an update that died after its last
// visible step: if begin > end while nothing is running (the caller holds the
// lock), it removes leftovers and sets end = begin. The served snapshot is
// whole (current only ever points to complete snapshots), so the root is
// idle again. It reports whether it changed anything.
func (r *Root) Settle() (bool, error) {
	p, err := seqfile.Counters(r.FS, r.SeqDir())
	if err != nil {
		return false, err
	}
	if p.Idle() {
		return false, nil
	}
	if err := r.Cleanup(); err != nil {
		return false, err
	}
	if err := seqfile.FinishUpdate(r.FS, r.SeqDir(), max(p.Begin, p.End)); err != nil {
		return false, err
	}
	return true, nil
}
