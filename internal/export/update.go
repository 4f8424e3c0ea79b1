package export

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strconv"
	"time"

	"github.com/seqmirror/seqmirror/internal/cow"
	"github.com/seqmirror/seqmirror/internal/fsys"
	"github.com/seqmirror/seqmirror/internal/sign"
	"github.com/seqmirror/seqmirror/seqfile"
	"github.com/spf13/afero"
)

// UpdateOptions tunes an Update. Values are taken as given: the callers
// (publish, mirror-sync) hold the defaults.
type UpdateOptions struct {
	// Upstream is what the root mirrors ("" for a master); status.json
	// records it (see also Update.SetUpstream).
	Upstream string
	// Name and Address are this server's hop in the lineage status.json
	// records for a snapshot the update installs (ExtendLineage).
	Name, Address string
	// Filter is this server's own filter (filter.Filter.Rules) if it is
	// a partial mirror: its hop in the lineage records it.
	Filter []string
	// LockWait is how long Begin waits for the lock another run holds
	// (0: fail at once with ErrLocked).
	LockWait time.Duration
	// Keep and MinAge are the pruning rule Done applies (see Prune).
	Keep   int
	MinAge time.Duration
	// Check, if set, runs once the lock is held and before anything is
	// written; its error ends Begin and is not recorded in status.json
	// (a refusal, such as publishing into a mirror's root).
	Check func() error
	// BeforeFlip, if set, runs in Install after the snapshot is in
	// snapshots/ and before current flips (tests check crash points there).
	BeforeFlip func(n uint64)
	// Claim, if set, runs in Install once snapshot n is complete in
	// snapshots/ (manifest is the path of its durable manifest) and before
	// current flips: a master of a highly available group records the
	// number and its manifest there (package ha). Its error stops the
	// install: current does not flip, and snapshot n, which no reader was
	// ever shown, is removed, unless the error wraps ErrUnconfirmed.
	Claim func(ctx context.Context, n uint64, manifest string) error
	// Served, if set, runs in Done once an update that installed snapshot
	// n is over (end bumped, status.json written) and before the prune,
	// so that a daemon's triggers and publish's notifications go out
	// without waiting for the removal of old snapshots. It must not block.
	Served func(n uint64)
	Now    func() time.Time // nil: time.Now
	Log    *slog.Logger     // nil: discard
}

// An Update is one writer run on a root: the begin/end protocol as a type.
// Begin takes the lock and cleans up what a killed run left; Start bumps
// seq/begin before the first write a reader could notice; Install is the
// one commit step (make a built snapshot durable, rename it into
// snapshots/, flip current); Done completes the run (end = begin, status,
// prune) or records its failure, and releases the lock. Every writer
// (publish, mirror-sync in both modes) goes through it:
//
//	u, err := root.Begin(ctx, opt)
//	if err != nil {
//		return err
//	}
//	defer func() { pruned, err = u.Done(err) }()
//
// An Update is used by one goroutine.
type Update struct {
	root       *Root
	opt        UpdateOptions
	lock       *Lock
	served     uint64 // current at Begin
	begin      uint64 // seq/begin this run set; 0 until Start
	installed  bool   // Install flipped current
	installedN uint64 // to snapshot installedN
	installedT time.Time
	onDone     []func() error
	// upLineage is the upstream's lineage for installedN (SetUpstreamLineage).
	upLineage []Hop
	upNote    string
}

// Begin starts an update of r: it creates the root's directories if
// needed, takes the writer lock (waiting up to opt.LockWait), runs
// opt.Check, reads current and removes what a killed run left (work files,
// temp files, orphans). Errors after Check are recorded in status.json.
func (r *Root) Begin(ctx context.Context, opt UpdateOptions) (*Update, error) {
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Log == nil {
		opt.Log = slog.New(slog.DiscardHandler)
	}
	if err := r.Init(); err != nil {
		return nil, err
	}
	lock, err := r.LockWait(ctx, opt.LockWait)
	if err != nil {
		return nil, err
	}
	u := &Update{root: r, opt: opt, lock: lock}
	if opt.Check != nil {
		if err := opt.Check(); err != nil {
			lock.Unlock()
			return nil, err
		}
	}
	if u.served, err = r.Current(); err == nil {
		err = r.Cleanup()
	}
	if err != nil {
		_, err = u.Done(err)
		return nil, err
	}
	return u, nil
}

// Root is the root being updated.
func (u *Update) Root() *Root { return u.root }

// Served is the snapshot current named when the update began (0: none).
func (u *Update) Served() uint64 { return u.served }

// Start bumps seq/begin, once per update: call it before the first write
// of a new snapshot (Work calls it).
func (u *Update) Start() error {
	if u.begin != 0 {
		return nil
	}
	b, err := seqfile.StartUpdate(u.root.FS, u.root.SeqDir())
	if err != nil {
		return err
	}
	u.begin = b
	return nil
}

// Work starts the update (Start) and returns ROOT/.work/N, made fresh and
// empty, to build snapshot n in.
func (u *Update) Work(n uint64) (string, error) {
	if err := u.Start(); err != nil {
		return "", err
	}
	work := filepath.Join(u.root.WorkDir(), strconv.FormatUint(n, 10))
	if err := fsys.RemoveAll(u.root.FS, work); err != nil {
		return "", err
	}
	if err := u.root.FS.Mkdir(work, 0o755); err != nil {
		return "", fmt.Errorf("make work dir: %w", err)
	}
	return work, nil
}

// WorkSnapshot is Work for the copy-on-write path: ROOT/.work/N is made a
// writable btrfs snapshot of the subvolume from (a point-in-time copy of
// it, one ioctl), or a new empty subvolume if from is "". It fails with
// cow.ErrUnsupported where that cannot be done (the caller then builds
// with Work).
func (u *Update) WorkSnapshot(n uint64, from string) (string, error) {
	return u.WorkClone(n, func(work string) error {
		if from == "" {
			return cow.CreateSubvolume(work)
		}
		return cow.Snapshot(from, work, false)
	})
}

// WorkClone is WorkSnapshot with the subvolume ROOT/.work/N made by make
// (a snapshot of an upstream's snapshot, say), which must not leave
// anything at its path when it fails.
func (u *Update) WorkClone(n uint64, make func(work string) error) (string, error) {
	if err := u.Start(); err != nil {
		return "", err
	}
	work := filepath.Join(u.root.WorkDir(), strconv.FormatUint(n, 10))
	if err := fsys.RemoveAll(u.root.FS, work); err != nil {
		return "", err
	}
	if err := make(work); err != nil {
		return "", fmt.Errorf("make work subvolume: %w", err)
	}
	return work, nil
}

// WorkAdopt is Work for a tree made in ROOT/.work before the update
// started (publish's writable btrfs snapshot of its source, taken and
// listed first so that an unchanged source writes nothing): it starts the
// update and renames dir to ROOT/.work/N.
func (u *Update) WorkAdopt(n uint64, dir string) (string, error) {
	if err := u.Start(); err != nil {
		return "", err
	}
	work := filepath.Join(u.root.WorkDir(), strconv.FormatUint(n, 10))
	if err := fsys.RemoveAll(u.root.FS, work); err != nil {
		return "", err
	}
	if err := u.root.FS.Rename(dir, work); err != nil {
		return "", fmt.Errorf("move the work tree into place: %w", err)
	}
	return work, nil
}

// Discard removes everything an attempt left in ROOT/.work, so the next
// attempt starts clean.
func (u *Update) Discard() error {
	if err := fsys.RemoveAll(u.root.FS, u.root.WorkDir()); err != nil {
		return fmt.Errorf("discard the copy: %w", err)
	}
	if err := u.root.FS.MkdirAll(u.root.WorkDir(), 0o755); err != nil {
		return fmt.Errorf("discard the copy: %w", err)
	}
	return nil
}

// Built is a snapshot ready to install.
type Built struct {
	N uint64
	// Tree is the built tree, in ROOT/.work; "" when snapshots/N is
	// complete already (Install only flips to it).
	Tree string
	// Manifest is the path of its manifest, in ROOT/.work.
	Manifest string
	// Subvolume says Tree is a btrfs subvolume (WorkSnapshot): Install
	// makes it read-only once it is in snapshots/ (a read-only subvolume
	// cannot move to another directory), before the flip.
	Subvolume bool
	// Encode, if set, writes the manifest: Install writes it to Manifest
	// while the filesystem flushes the tree. If nil, Manifest exists
	// (fetched), and Install stamps it with the time of install: its mtime
	// says when this root completed the snapshot (Prune's MinAge counts
	// from it, and so does a lower tier's lag).
	Encode func(io.Writer) error
	// Signature, if set, is the snapshot's signature file (publish's, or
	// the upstream's verbatim): Install writes it durably to
	// snapshots/N.manifest.minisig before the manifest, so a complete
	// signed snapshot always has it. Timestamp, if set, is the timestamp
	// file Install writes, verbatim, right after current flips.
	Signature, Timestamp []byte
	// Sign, if set (a master that signs), is given the digest of the
	// manifest Encode writes, computed as it is written, and returns the
	// Signature and Timestamp to install.
	Sign func(d sign.Digest) (signature, timestamp []byte)
	// Full and Filter, if not "", are the files of a partial snapshot
	// beside its manifest (FullExt, FilterExt), in ROOT/.work: Install
	// moves them into snapshots/ before the manifest.
	Full, Filter string
	// Replace: N is the served snapshot, rebuilt with another filter;
	// Install swaps the trees at once instead of renaming (replace).
	Replace bool
}

// Install is the one commit step of every writer; docs/design.md's crash
// table follows it step by step:
//
//  1. a run stopped (SIGTERM, SIGINT) before here installs nothing;
//  2. the manifest is made durable and the whole tree flushed (syncfs);
//  3. the signature, if any, is written durably to snapshots/, then the
//     manifest is renamed there;
//  4. the tree is renamed to snapshots/N, then fsync(snapshots/) makes
//     both renames durable (before it, a crash may keep either, both or
//     neither: an orphan manifest or directory is not a complete snapshot,
//     and Begin removes it); a btrfs subvolume (Built.Subvolume) is made
//     read-only there and the filesystem flushed instead of the fsync;
//  5. a run stopped before here still installs nothing (snapshots/N is
//     complete but not served: the next run flips to it or prunes it);
//     a master of a highly available group claims N here, its signature
//     already durable (UpdateOptions.Claim: a refused claim removes
//     snapshots/N and its signature, and flips nothing);
//  6. current flips to snapshots/N (a durable symlink replace), then
//     seq/current (the pointer HTTP clients read) says N, durably, then
//     the timestamp, if any, is replaced (durably).
//
// A crash anywhere leaves the served snapshot untouched; seq/end is bumped
// only by Done. With b.Tree == "" only the signature's write (if given and
// not there) and steps 5 and 6 run (and a snapshot that is a writable
// subvolume is first made read-only).
func (u *Update) Install(ctx context.Context, b Built) error {
	if err := Stopped(ctx); err != nil {
		return err
	}
	switch {
	case b.Replace:
		if err := u.replace(b); err != nil {
			return err
		}
	case b.Tree != "":
		if err := u.durable(&b); err != nil {
			return err
		}
		if err := u.root.placeManifest(b); err != nil {
			return err
		}
		if err := u.root.FS.Rename(b.Tree, u.root.SnapshotDir(b.N)); err != nil {
			return fmt.Errorf("move snapshot %d into place: %w", b.N, err)
		}
		if err := u.placed(b); err != nil {
			return err
		}
	default:
		if err := u.root.placeSignature(b.N, b.Signature); err != nil {
			return err
		}
		if err := u.sealed(b.N); err != nil {
			return err
		}
	}
	if err := u.claim(ctx, b.N); err != nil {
		return err
	}
	if u.opt.BeforeFlip != nil {
		u.opt.BeforeFlip(b.N)
	}
	if err := Stopped(ctx); err != nil {
		return err
	}
	if err := u.root.Flip(b.N); err != nil {
		return err
	}
	u.installed, u.installedN, u.installedT = true, b.N, u.opt.Now()
	u.upLineage, u.upNote = nil, ""
	if err := u.root.WritePointer(b.N); err != nil {
		return err
	}
	if b.Timestamp == nil {
		return nil
	}
	return u.root.WriteTimestamp(b.Timestamp)
}

// placeSignature is Install's write of snapshot n's signature file sig
// (nothing if nil), durably, before its manifest: a complete signed
// snapshot has it (a crash before the manifest leaves an orphan
// signature, which Begin removes). An identical file already there is
// kept.
func (r *Root) placeSignature(n uint64, sig []byte) error {
	if sig == nil {
		return nil
	}
	p := r.SignaturePath(n)
	if old, err := afero.ReadFile(r.FS, p); err == nil && bytes.Equal(old, sig) {
		return nil
	}
	if err := fsys.WriteFile(r.FS, p, sig, 0o644); err != nil {
		return fmt.Errorf("write signature of snapshot %d: %w", n, err)
	}
	return nil
}

// ErrUnconfirmed, wrapped by an UpdateOptions.Claim error, says that the
// claim may have been recorded all the same (its store did not answer):
// Install then keeps snapshot n complete and unserved, so that the writer
// can flip to it once it learns that the claim held (or remove it).
var ErrUnconfirmed = errors.New("claim not confirmed")

// claim is Install's step 5a: the UpdateOptions.Claim hook, the one place
// a highly available master records snapshot n before it is served. A
// refused claim removes snapshot n (never served: current still names
// another), so that no complete snapshot with a number the group gave to
// another manifest stays on disk; an unconfirmed one keeps it.
func (u *Update) claim(ctx context.Context, n uint64) error {
	if u.opt.Claim == nil {
		return nil
	}
	err := u.opt.Claim(ctx, n, u.root.ManifestPath(n))
	if err == nil {
		return nil
	}
	if cur, cerr := u.root.Current(); cerr == nil && cur != n && !errors.Is(err, ErrUnconfirmed) {
		if rerr := u.root.FS.Remove(u.root.ManifestPath(n)); rerr != nil {
			u.opt.Log.Warn("could not remove the unclaimed snapshot's manifest", "snapshot", n, "err", rerr)
		}
		if rerr := fsys.RemoveAll(u.root.FS, u.root.SnapshotDir(n)); rerr != nil {
			u.opt.Log.Warn("could not remove the unclaimed snapshot", "snapshot", n, "err", rerr)
		}
		if rerr := u.root.removeSidecars(n); rerr != nil { // its signature
			u.opt.Log.Warn("could not remove the unclaimed snapshot's signature", "snapshot", n, "err", rerr)
		}
	}
	return fmt.Errorf("snapshot %d not served: %w", n, err)
}

// placed is the end of Install's step 4: fsync(snapshots/) makes the two
// renames durable; a subvolume is first made read-only, and then the
// filesystem's transaction committed (syncfs), which holds the flag and
// the renames.
func (u *Update) placed(b Built) error {
	if !b.Subvolume {
		return fsys.SyncDir(u.root.FS, u.root.Path(SnapshotsName))
	}
	dir := u.root.SnapshotDir(b.N)
	if err := cow.SetReadOnly(dir, true); err != nil {
		return fmt.Errorf("make snapshot %d read-only: %w", b.N, err)
	}
	if err := u.root.FS.SyncFS(dir); err != nil {
		return fmt.Errorf("flush snapshot %d: %w", b.N, err)
	}
	return nil
}

// sealed makes a complete snapshots/N that a crash left a writable
// subvolume (between its rename and placed) read-only before Install
// flips to it.
func (u *Update) sealed(n uint64) error {
	dir := u.root.SnapshotDir(n)
	if sub, err := cow.IsSubvolume(dir); err != nil || !sub {
		return nil
	}
	if ro, err := cow.ReadOnly(dir); err != nil || ro {
		return err
	}
	if err := cow.SetReadOnly(dir, true); err != nil {
		return fmt.Errorf("make snapshot %d read-only: %w", n, err)
	}
	return u.root.FS.SyncFS(dir)
}

// durable is Install's step 2: the manifest written (or stamped) and the
// tree flushed, the two at once when the manifest is written here (and
// signed, with b.Sign).
func (u *Update) durable(b *Built) error {
	f := u.root.FS
	if b.Encode == nil {
		if err := f.Chmod(b.Manifest, 0o644); err != nil {
			return fmt.Errorf("chmod manifest: %w", err)
		}
		now := u.opt.Now()
		if err := f.Chtimes(b.Manifest, now, now); err != nil {
			return fmt.Errorf("stamp manifest of snapshot %d: %w", b.N, err)
		}
		if err := f.SyncFS(b.Tree); err != nil {
			return fmt.Errorf("flush snapshot %d: %w", b.N, err)
		}
		return nil
	}
	synced := make(chan error, 1)
	go func() { synced <- f.SyncFS(b.Tree) }()
	encode, dg := b.Encode, sign.NewDigester()
	if b.Sign != nil {
		encode = func(w io.Writer) error { return b.Encode(io.MultiWriter(w, dg)) }
	}
	errM := fsys.WriteStream(f, b.Manifest, 0o644, encode)
	if err := <-synced; err != nil {
		return fmt.Errorf("flush snapshot %d: %w", b.N, err)
	}
	if errM != nil {
		return fmt.Errorf("write manifest of snapshot %d: %w", b.N, errM)
	}
	if b.Sign != nil {
		b.Signature, b.Timestamp = b.Sign(dg.Digest())
	}
	return nil
}

// Installed returns the snapshot Install last flipped to and when (0 if
// none).
func (u *Update) Installed() (uint64, time.Time) { return u.installedN, u.installedT }

// SetUpstream names the upstream status.json records (a mirror with
// several upstreams knows which one only after it polled them).
func (u *Update) SetUpstream(up string) { u.opt.Upstream = up }

// SetUpstreamLineage gives the lineage the upstream reported for the
// snapshot Install last flipped to (nil if unknown; note says why), which
// Done extends with this server's hop (ExtendLineage).
func (u *Update) SetUpstreamLineage(hops []Hop, note string) { u.upLineage, u.upNote = hops, note }

// lineage is the status.json lineage of the snapshot the update installed.
func (u *Update) lineage(st *Status) {
	self := Hop{Name: u.opt.Name, Address: u.opt.Address, Snapshot: u.installedN, Since: u.installedT, Filter: u.opt.Filter}
	st.Lineage, st.LineageNote = ExtendLineage(u.upLineage, self, u.opt.Upstream)
	if u.upNote != "" && len(st.Lineage) == 1 {
		st.LineageNote = u.upNote
	}
}

// OnDone registers a write Done makes, under the lock, after it completed
// a successful run (a mirror's record of its upstream).
func (u *Update) OnDone(fn func() error) { u.onDone = append(u.onDone, fn) }

// Done ends the update and releases the lock. With err == nil it completes
// the run: if Install flipped current, seq/end = seq/begin, status.json
// rewritten, old snapshots pruned; otherwise (nothing new) it repairs what
// a killed run left (begin > end), clears a recorded failure and prunes
// what aged out, writing nothing when there is nothing to do. Then the
// writes OnDone registered. An error (err, or one of completing) is
// recorded in status.json and returned. It returns the snapshots pruned.
func (u *Update) Done(err error) (pruned []uint64, _ error) {
	defer u.lock.Unlock()
	if err == nil {
		pruned, err = u.complete()
	}
	for i := 0; err == nil && i < len(u.onDone); i++ {
		err = u.onDone[i]()
	}
	if err != nil {
		if rerr := u.root.RecordFailure(u.opt.Upstream, err, u.opt.Now()); rerr != nil {
			u.opt.Log.Error("could not record the failure in status.json", "err", rerr)
		}
		return pruned, err
	}
	return pruned, nil
}

// complete is Done's success path.
func (u *Update) complete() ([]uint64, error) {
	r := u.root
	// A run killed between the flip and the pointer left seq/current
	// behind current: it is set before end, which says the update is over.
	cur := u.served // current does not move under the lock but by Install
	if u.installed {
		cur = u.installedN
	}
	if err := r.SyncPointer(cur); err != nil {
		return nil, err
	}
	if u.installed {
		if err := seqfile.FinishUpdate(r.FS, r.SeqDir(), u.begin); err != nil {
			return nil, err
		}
		if err := r.recordStatus(u.opt.Upstream, u.lineage); err != nil {
			return nil, err
		}
		if u.opt.Served != nil {
			u.opt.Served(cur)
		}
		return r.Prune(u.opt.Keep, u.opt.MinAge, u.opt.Now())
	}
	if u.begin != 0 {
		// An attempt started and was given up (nothing new after all).
		if err := r.Cleanup(); err != nil {
			return nil, err
		}
	}
	settled, err := r.Settle()
	if err != nil {
		return nil, err
	}
	if settled {
		if u.begin == 0 {
			// This run bumped nothing: the counters were a killed run's.
			u.opt.Log.Info("completed the counters of an interrupted run")
		}
		err = r.RecordStatus(u.opt.Upstream)
	} else {
		err = r.ClearFailure(u.opt.Upstream)
	}
	if err != nil {
		return nil, err
	}
	return r.PruneIdle(u.opt.Upstream, u.opt.Keep, u.opt.MinAge, u.opt.Now())
}

// Stopped returns an error wrapping ctx's cause if ctx is done: the check
// a writer makes right before each commit step, so that a run stopped
// after its last check installs nothing.
func Stopped(ctx context.Context) error {
	if ctx.Err() == nil {
		return nil
	}
	return fmt.Errorf("stopped before the commit: %w", context.Cause(ctx))
}
