package snapshot

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/seqmirror/seqmirror/internal/export"
	"github.com/seqmirror/seqmirror/internal/fsys"
	"github.com/seqmirror/seqmirror/internal/retry"
	"github.com/seqmirror/seqmirror/internal/sign"
	"github.com/seqmirror/seqmirror/internal/tree"
	"github.com/seqmirror/seqmirror/seqfile"
)

// attempt is one try at publishing the source, in four phases that run
// in order (run): list the source, pairing each entry with the served
// snapshot's record and spooling the listing to a file (spool); confirm
// the listing (an inotify watch, or a second listing, started beside the
// build); build the new snapshot in ROOT/.work/N and its manifest from the
// spooled listing; commit it (the source's counters re-checked, then
// export.Update.Install). A phase that finds the source moved returns a
// retry.Error, and Publish makes a new attempt.
//
// Every phase streams: the listing, the served snapshot's manifest, the
// older snapshots' manifests and the new manifest are each read or
// written in canonical order, once or a few times, and what is held is
// O(depth) plus the batches in flight (tree.Lister, the recorder's
// window), whatever the size of the tree; only the watch's inotify
// descriptors and its few hard-linked files grow with it.
type attempt struct {
	ctx    context.Context
	u      *export.Update
	f      fsys.FS
	source string
	opt    *PublishOptions
	clock  phaseClock
	res    PublishResult

	// list
	seq    seqfile.Pair // the source's counters, if hasSeq
	hasSeq bool
	skip   func(rel string) bool // what the listing leaves out
	pr     *pairer
	watch  *changeWatch
	spool  *spool  // the listing, in canonical order, each entry paired
	dirs   dirList // its directories, while they are few
	older  *olders // other snapshots to link files from

	// pit: the copy-on-write path (cow.go): source is a point-in-time snapshot
	// of the source, which needs no watch and no confirmation; skips
	// records what the listing left out.
	pit   bool
	skips skipRecorder

	// confirm: the attempt's context, cancelled at the first change seen
	actx context.Context
	conf *confirmer

	// build
	n         uint64
	work      string      // ROOT/.work/N
	manPath   string      // ROOT/.work/N.manifest
	manDigest sign.Digest // its digest, once written (the recorder's)
	prevDir   string      // the served snapshot's dir ("" if none)
	pre       *prehasher  // files walkChanged had hashed (nil if none)
	linked    atomic.Int64
	copied    atomic.Int64
	bytes     atomic.Int64
}

func newAttempt(ctx context.Context, u *export.Update, source string, opt *PublishOptions) *attempt {
	return &attempt{
		ctx: ctx, u: u, f: u.Root().FS, source: source, opt: opt,
		clock: phaseClock{log: opt.Log, t0: time.Now()},
		res:   PublishResult{Snapshot: u.Served()},
	}
}

// run is the attempt, phase by phase. An error a change in the source
// caused is reported as that change (a retry.Error).
func (a *attempt) run() (_ PublishResult, err error) {
	defer a.close()
	if snap, ok, err := a.snapshotSource(); err != nil || ok {
		if err != nil {
			return a.res, err
		}
		a.source, a.pit = snap, true
		a.clock.phase("snapshot the source")
		return a.runCow()
	}
	fresh, err := a.list()
	if err != nil || !fresh {
		return a.res, err
	}
	a.confirm()
	defer func() { err = a.conf.explain(err) }()
	if err := a.build(); err != nil {
		return a.res, err
	}
	if err := a.conf.wait(); err != nil {
		return a.res, err
	}
	a.watch.Close()
	a.clock.phase("confirm")
	if err := a.commit(); err != nil {
		return a.res, err
	}
	return a.res, nil
}

// close releases what list opened.
func (a *attempt) close() {
	if a.watch != nil {
		a.watch.Close()
	}
	if a.pr != nil {
		a.pr.close()
	}
	if a.older != nil {
		a.older.close()
	}
	a.spool.close()
}

// list walks the source (watching each directory it lists), pairs each
// entry with the served snapshot's record as the walk hands it over and
// spools the listing. It reports whether there is anything to publish; a
// mass delete is refused here, before anything is written.
func (a *attempt) list() (fresh bool, err error) {
	a.seq, a.hasSeq, err = sourceSeq(a.f, a.source)
	if err != nil {
		return false, err
	}
	if a.hasSeq && !a.seq.Idle() {
		return false, retry.Againf("source seq/begin=%d != seq/end=%d: its writer is busy", a.seq.Begin, a.seq.End)
	}
	a.skip = sourceSkip(a.f, a.source, a.hasSeq, a.opt.Exclude)
	if a.pr, err = openPairer(a.u.Root(), a.u.Served()); err != nil {
		return false, err
	}
	if a.spool, err = newSpool(a.f, a.u.Root().WorkDir()); err != nil {
		return false, err
	}
	if a.pit {
		a.skip = a.skips.wrap(a.skip)
		a.older = &olders{} // nothing is linked
	} else {
		a.older = listOlders(a.u.Root(), a.u.Served(), a.opt.Log)
		a.watch = newChangeWatch()
		a.watch.leaveOut(a.source, a.skip)
	}
	a.dirs.max = dirsKept
	if err := a.listEntries(); err != nil {
		return false, err
	}
	same, err := a.pr.finish()
	if err != nil {
		return false, err
	}
	a.clock.phase("walk and pair")
	if same && !a.opt.Force {
		a.opt.Log.Info("source unchanged since snapshot; nothing published", "snapshot", a.u.Served())
		return false, nil
	}
	a.res.Deleted, a.res.Unreadable = a.pr.del, a.pr.unr.count
	return true, checkDeletes(a.pr, *a.opt)
}

// listEntries lists the source into the spool: on the copy-on-write path
// only what changed since the served snapshot, if btrfs can tell
// (walkChanged), else the whole tree (walk).
func (a *attempt) listEntries() error {
	if a.pit {
		if ch, ok := a.changeSet(); ok {
			a.clock.phase("find changed inodes")
			return a.walkChanged(ch)
		}
	}
	return a.walk()
}

// walk lists the source into the spool, pairing as it goes.
func (a *attempt) walk() error {
	wo := tree.WalkOptions{Skip: a.skip}
	if a.watch != nil {
		wo.Watch = a.watch
	}
	l, err := tree.NewLister(a.ctx, a.f, a.source, wo)
	if err == nil {
		defer l.Close()
		err = a.spoolAll(l)
	}
	if errors.Is(err, fs.ErrNotExist) && !errors.Is(err, tree.ErrNoTree) {
		return retry.Again(err.Error()) // something vanished mid-walk
	}
	return err
}

// spoolAll pairs and spools every entry l yields.
func (a *attempt) spoolAll(l *tree.Lister) error {
	for {
		e, err := l.Next()
		if err == io.EOF {
			return a.spool.seal()
		}
		if err != nil {
			return err
		}
		if _, err := a.spoolEntry(spooled{Entry: e}); err != nil {
			return err
		}
	}
}

// spoolEntry pairs s's entry with the served snapshot's record and
// spools it. linkable: the pairer found the served record of the same
// file by the quick check.
func (a *attempt) spoolEntry(s spooled) (linkable bool, _ error) {
	s.linkable = a.pr.pair(&s.Entry)
	a.older.note(&s.Entry, s.linkable)
	a.dirs.add(&s.Entry)
	a.res.Entries++
	return s.linkable, a.spool.add(&s)
}

// commit installs the built snapshot, unless the source's writer started
// an update since the listing: the manifest is written while the tree is
// flushed, and export.Update.Install makes both durable, renames them into
// snapshots/ and flips current (a run stopped before the flip installs
// nothing).
func (a *attempt) commit() error {
	if a.hasSeq && !a.pit { // a snapshot's counters do not move
		after, _, err := sourceSeq(a.f, a.source)
		if err != nil {
			return err
		}
		if after.Begin != a.seq.End {
			return retry.Againf("source seq/begin moved from %d to %d", a.seq.End, after.Begin)
		}
	}
	built := export.Built{N: a.n, Tree: a.work, Manifest: a.manPath, Subvolume: a.pit}
	if s := a.opt.Signer; s != nil {
		if err := a.u.Root().WriteSignedState(signerState(s)); err != nil {
			return err
		}
		built.Signature, built.Timestamp = s.SignSnapshot(a.n, a.manDigest, a.opt.Now(), a.opt.Validity)
	}
	if err := a.u.Install(a.ctx, built); err != nil {
		return err
	}
	a.clock.phase("install")
	a.res.Snapshot, a.res.Published = a.n, true
	a.res.Linked, a.res.Copied, a.res.Bytes = int(a.linked.Load()), int(a.copied.Load()), a.bytes.Load()
	a.res.CoW = a.pit
	a.opt.Log.Info("published", "snapshot", a.n, "entries", a.res.Entries, "linked", a.res.Linked, "copied", a.res.Copied, "bytes", a.res.Bytes, "deleted", a.res.Deleted, "cow", a.pit)
	a.pr.unr.log(a.opt.Log, a.n)
	return nil
}

// phaseClock logs, at debug level, how long each phase of an attempt took.
type phaseClock struct {
	log *slog.Logger
	t0  time.Time
}

func (c *phaseClock) phase(name string) {
	t := time.Now()
	c.log.Debug("publish phase", "phase", name, "took", t.Sub(c.t0).Round(time.Microsecond))
	c.t0 = t
}
