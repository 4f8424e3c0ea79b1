package snapshot

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math"
	"path/filepath"
	"time"

	"github.com/seqmirror/seqmirror/internal/export"
	"github.com/seqmirror/seqmirror/internal/fsys"
	"github.com/seqmirror/seqmirror/internal/retry"
	"github.com/seqmirror/seqmirror/internal/sign"
	"github.com/seqmirror/seqmirror/internal/tree"
	"github.com/seqmirror/seqmirror/seqfile"
)

// ErrSourceChanging means the source kept changing while it was copied and
// publish gave up after its retries without publishing.
var ErrSourceChanging = errors.New("source changed while it was being published")

// ErrTooManyDeletes means the new snapshot would delete more of the served
// snapshot's files than PublishOptions.MaxDelete allows; nothing was
// published.
var ErrTooManyDeletes = errors.New("new snapshot would delete too many files")

// ErrMirrorRoot means the root is written by mirror-sync (it records an
// upstream): a snapshot published there would carry a number its upstream
// will also use, for another tree. PublishOptions.TakeOver publishes anyway.
var ErrMirrorRoot = errors.New("root is a mirror's, written by mirror-sync")

// ErrServedManifest means the served snapshot's manifest, which publish
// reads to link unchanged files, could not be read or does not check out
// (it then also wraps manifest.ErrCorrupt); nothing was published. The
// served snapshot needs verifying.
var ErrServedManifest = errors.New("read served snapshot's manifest")

// ErrBadOptions means PublishOptions holds a value that means nothing (no
// snapshot to keep, no worker, a share of deletes outside 0..1).
var ErrBadOptions = errors.New("bad publish options")

// PublishOptions tunes Publish, which takes every value as given: start
// from DefaultOptions.
type PublishOptions struct {
	Force   bool          // make a new snapshot even if nothing changed; re-hash every file
	Keep    int           // snapshots to keep (at least 1)
	MinAge  time.Duration // never prune a snapshot superseded less than this ago
	Retries int           // attempts after the first when the source moves (0: none)
	Backoff time.Duration // wait before the first retry, doubled each time
	Workers int           // parallel copy/hash/link workers (at least 1)
	// MaxDelete refuses (ErrTooManyDeletes) a snapshot that leaves out more
	// than this share of the served snapshot's files (0..1; 0: any delete
	// is refused; 1: no limit). Force lifts it.
	MaxDelete float64
	// TakeOver publishes into a root that mirror-sync writes (otherwise
	// ErrMirrorRoot), making it a master's: the first snapshot it publishes
	// there ends the root's record of its upstream.
	TakeOver bool
	// Exclude leaves the matching paths out of the snapshot (nil: none).
	// git's transient files inside git directories are always left out
	// (gitTransient), as is the source's seq/ if it has valid counters.
	Exclude *Excludes
	// LockWait is how long to wait for the root's lock while another run
	// holds it (0: fail at once with export.ErrLocked).
	LockWait time.Duration
	// Name and Address are this server's hop in the lineage status.json
	// records (docs/protocol.md section 8): its name, and where its
	// mirrors reach it ("" if not given).
	Name, Address string
	Log           *slog.Logger     // nil: log nothing
	Now           func() time.Time // nil: time.Now
	// BeforeFlip, if set, runs after the snapshot is renamed into place and
	// before current flips (tests use it to check crash points).
	BeforeFlip func(n uint64)
	// Claim, if set, records snapshot n and its manifest before current
	// flips (export.UpdateOptions.Claim: a highly available master's
	// compare-and-swap in etcd, package ha); its error publishes nothing.
	Claim func(ctx context.Context, n uint64, manifest string) error
	// Served, if set, runs once a publish that made snapshot n is over,
	// before the prune (export.UpdateOptions.Served): publish's
	// notifications go out from there.
	Served func(n uint64)
	// Signer, if set, signs each snapshot published (its manifest's
	// digest, with a statement) and a timestamp valid for Validity
	// (docs/protocol.md section 10).
	Signer   *sign.Signer
	Validity time.Duration
	// AfterList, if set, runs in each attempt that will publish, once the
	// source is listed and before the listing's confirmation starts (tests
	// change the source there).
	AfterList func()
}

// DefaultOptions returns publish's defaults: keep 3 snapshots, 3 retries
// after a 1s backoff, tree.Workers() workers, refuse a snapshot that
// deletes more than half of the served one's files, log nothing.
func DefaultOptions() PublishOptions {
	return PublishOptions{
		Keep:      3,
		Retries:   3,
		Backoff:   time.Second,
		Workers:   tree.Workers(),
		MaxDelete: 0.5,
		Validity:  sign.DefaultValidity,
		Log:       slog.New(slog.DiscardHandler),
		Now:       time.Now,
	}
}

// validate refuses values that mean nothing (ErrBadOptions).
func (o *PublishOptions) validate() error {
	var why string
	switch {
	case o.Keep < 1:
		why = fmt.Sprintf("Keep is %d: the served snapshot is always kept, so at least 1", o.Keep)
	case o.Retries < 0:
		why = fmt.Sprintf("Retries is %d: at least 0", o.Retries)
	case o.Backoff < 0 || o.MinAge < 0 || o.LockWait < 0:
		why = fmt.Sprintf("a negative duration (Backoff %s, MinAge %s, LockWait %s)", o.Backoff, o.MinAge, o.LockWait)
	case o.Workers < 1:
		why = fmt.Sprintf("Workers is %d: at least 1", o.Workers)
	case !(o.MaxDelete >= 0 && o.MaxDelete <= 1) || math.IsNaN(o.MaxDelete):
		why = fmt.Sprintf("MaxDelete is %g: a share from 0 to 1", o.MaxDelete)
	default:
		return nil
	}
	return fmt.Errorf("%w: %s", ErrBadOptions, why)
}

// PublishResult reports what Publish did.
type PublishResult struct {
	Snapshot  uint64   `json:"snapshot"`  // the snapshot now served
	Published bool     `json:"published"` // false: nothing changed, nothing written
	Entries   int      `json:"entries"`   // records in the manifest (dirs, files, symlinks)
	Linked    int      `json:"linked"`
	Copied    int      `json:"copied"`
	Bytes     int64    `json:"bytes_copied"`
	Pruned    []uint64 `json:"pruned,omitempty"`
	Deleted   int      `json:"deleted"` // the served snapshot's files the new one leaves out
	// Unreadable counts the published entries other users cannot read (a
	// file without o+r, a directory without o+rx): an rsync daemon running
	// as another user cannot serve them.
	Unreadable int `json:"unreadable,omitempty"`
	// CoW says the snapshot was made copy-on-write (a btrfs snapshot of
	// the source): Linked then counts the unchanged files it shares with
	// the served snapshot, Copied and Bytes the changed files hashed.
	CoW bool `json:"cow,omitempty"`
}

// SourceSeqDir is where a source tree may carry its own seq/begin and
// seq/end. When both are valid, publish waits for begin == end, checks that
// they did not move while it copied, and leaves seq/ out of the snapshot.
const SourceSeqDir = "seq"

// Publish makes a new snapshot of source in root and serves it: one update
// of the root (export.Root.Begin, Update.Done around it), made of attempts
// (attempt.run) retried while the source moves under them.
func Publish(ctx context.Context, root *export.Root, source string, opt PublishOptions) (res PublishResult, err error) {
	if err := opt.validate(); err != nil {
		return res, err
	}
	if opt.Log == nil {
		opt.Log = slog.New(slog.DiscardHandler)
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if err := checkOverlap(root.FS, root.Dir, source); err != nil {
		return res, err
	}
	u, err := root.Begin(ctx, export.UpdateOptions{
		LockWait: opt.LockWait, Keep: opt.Keep, MinAge: opt.MinAge, Name: opt.Name, Address: opt.Address,
		Check:      func() error { return refuseMirror(root, opt.TakeOver) },
		BeforeFlip: opt.BeforeFlip, Claim: opt.Claim, Served: opt.Served, Now: opt.Now, Log: opt.Log,
	})
	if errors.Is(err, export.ErrBadCurrent) {
		return res, fmt.Errorf("%w: check %s", err, root.Path(export.CurrentName))
	}
	if err != nil {
		return res, err
	}
	defer func() { res.Pruned, err = u.Done(err) }()
	res, err = publishRetrying(ctx, u, source, &opt)
	if err == nil && res.Published && opt.TakeOver {
		err = takeOver(root)
	}
	return res, err
}

// refuseMirror is Begin's check: a root that records an upstream is a
// mirror's (ErrMirrorRoot) unless publish takes it over.
func refuseMirror(root *export.Root, takeOver bool) error {
	if up := root.MirroredFrom(); up != "" && !takeOver {
		return fmt.Errorf("%w: %s mirrors %s; a snapshot published here would differ from the upstream's snapshot of the same number; nothing was published", ErrMirrorRoot, root.Dir, up)
	}
	return nil
}

// takeOver ends a taken-over root's record of its upstream, once publish
// served its first snapshot there.
func takeOver(root *export.Root) error {
	if err := root.FS.Remove(root.Path(export.UpstreamStateName)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("take over %s: %w", root.Dir, err)
	}
	return nil
}

// publishRetrying makes attempts until one publishes (or finds nothing
// new) or the retries are spent while the source keeps moving
// (ErrSourceChanging). On failure the result names the served snapshot.
func publishRetrying(ctx context.Context, u *export.Update, source string, opt *PublishOptions) (PublishResult, error) {
	res := PublishResult{Snapshot: u.Served()}
	policy := retry.Policy{Retries: opt.Retries, Backoff: opt.Backoff,
		OnRetry: func(why string, attempt int, wait time.Duration) {
			opt.Log.Warn("source is changing; retrying after a wait", "what", why, "attempt", attempt, "wait", wait)
		}}
	err := retry.Do(ctx, policy, func(int) error {
		r, err := newAttempt(ctx, u, source, opt).run()
		if err == nil {
			res = r
		}
		return err
	})
	var ex *retry.Exhausted
	if errors.As(err, &ex) {
		return res, fmt.Errorf("%w (%s; gave up after %d attempts): publish when the source is quiet, or have its writer bump seq/begin and seq/end", ErrSourceChanging, ex.Why, ex.Attempts)
	}
	return res, err
}

// sourceSeq reads the source's counters if it has a valid pair. They are
// opened beneath the source (seqfile.ReadBeneath): a fifo, a device or a
// symlink there (seq/ itself included) is an error, not a hang or a read
// of another file.
func sourceSeq(f fsys.FS, source string) (seqfile.Pair, bool, error) {
	b, errB := seqfile.ReadBeneath(f, source, filepath.Join(SourceSeqDir, seqfile.Begin))
	e, errE := seqfile.ReadBeneath(f, source, filepath.Join(SourceSeqDir, seqfile.End))
	if errB != nil || errE != nil {
		if errors.Is(errB, seqfile.ErrCorrupt) || errors.Is(errE, seqfile.ErrCorrupt) {
			return seqfile.Pair{}, false, fmt.Errorf("source counters: %w", errors.Join(errB, errE))
		}
		return seqfile.Pair{}, false, nil
	}
	return seqfile.Pair{Begin: b, End: e}, true, nil
}

// SourceBusy reports whether the source's own writer is mid-update: the
// source has valid seq/begin and seq/end (SourceSeqDir) and begin is not
// equal to end. A source without them is never busy; corrupt counters are
// an error (wrapping seqfile.ErrCorrupt). Publish refuses to list a busy
// source (and retries); publish --watch waits for it to be idle.
func SourceBusy(f fsys.FS, source string) (bool, error) {
	p, ok, err := sourceSeq(f, source)
	return ok && !p.Idle(), err
}
