package snapshot

import (
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/seqmirror/seqmirror/internal/export"
	"github.com/seqmirror/seqmirror/internal/fsys"
	"github.com/seqmirror/seqmirror/internal/retry"
	"github.com/seqmirror/seqmirror/internal/sign"
	"github.com/seqmirror/seqmirror/internal/tree"
	"github.com/seqmirror/seqmirror/manifest"
	"github.com/seqmirror/seqmirror/seqfile"
)

// attempt is one try at publishing the source, in four phases that run
// in order (run): list the source, pairing each entry with the served
// snapshot's record; confirm the listing (an inotify watch, or a second
// listing, started beside the build); build the new snapshot in
// ROOT/.work/N; commit it (the source's counters re-checked, then
// export.Update.Install). A phase that finds the source moved returns a
// retry.Error, and Publish makes a new attempt.
type attempt struct {
	ctx    context.Context
	u      *export.Update
	f      fsys.FS
	source string
	opt    *PublishOptions
	clock  phaseClock
	res    PublishResult

	// list
	seq      seqfile.Pair // the source's counters, if hasSeq
	hasSeq   bool
	skip     func(rel string) bool // what the listing leaves out
	pr       *pairer
	watch    *changeWatch
	entries  []manifest.Entry // the listing, in canonical order
	linkable []bool           // entries[i] has its record in a retained snapshot
	older    map[int]string   // the snapshot dir to link entries[i] from, if not the served one

	// pit: the copy-on-write path (cow.go): source is a point-in-time snapshot
	// of the source, which needs no watch and no confirmation; skips
	// records what the listing left out.
	pit   bool
	skips skipRecorder
	fresh []bool // entries[i] was stat'ed by walkChanged (nil: a whole walk)

	// confirm: the attempt's context, cancelled at the first change seen
	actx context.Context
	conf *confirmer

	// build
	n       uint64
	work    string // ROOT/.work/N
	prevDir string // the served snapshot's dir ("" if none)
	dirs    []manifest.Entry
	linked  atomic.Int64
	copied  atomic.Int64
	bytes   atomic.Int64
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
}

// list walks the source (watching each directory it lists) and pairs each
// entry with the served snapshot's record as the walk hands it over, then
// with older snapshots. It reports whether there is anything to publish;
// a mass delete is refused here, before anything is written.
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
	if a.pit {
		a.skip = a.skips.wrap(a.skip)
	} else {
		a.watch = newChangeWatch()
		a.watch.leaveOut(a.source, a.skip)
	}
	if err := a.listEntries(); err != nil {
		return false, err
	}
	a.res.Entries = len(a.entries)
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
	if err := checkDeletes(a.pr, *a.opt); err != nil {
		return false, err
	}
	if a.pit {
		return true, nil // nothing is linked
	}
	// Files the served snapshot cannot give may be in an older one (moved
	// away and back, restored): link those from there.
	a.older = pairOlder(a.u.Root(), a.u.Served(), a.entries, a.linkable, a.opt.Log)
	return true, nil
}

// listEntries lists the source: on the copy-on-write path only what
// changed since the served snapshot, if btrfs can tell (walkChanged), else
// the whole tree (walk).
func (a *attempt) listEntries() error {
	if a.pit {
		if changed, ok := a.changeSet(); ok {
			a.clock.phase("find changed inodes")
			return a.walkChanged(changed)
		}
	}
	return a.walk()
}

// walk lists the source into entries, pairing as it goes.
func (a *attempt) walk() error {
	wo := tree.WalkOptions{Skip: a.skip, Size: func(n int) {
		a.entries, a.linkable = make([]manifest.Entry, 0, n), make([]bool, 0, n)
	}}
	if a.watch != nil {
		wo.Watch = a.watch
	}
	err := tree.WalkWith(a.ctx, a.f, a.source, wo, func(e *manifest.Entry) {
		a.entries = append(a.entries, *e)
		a.linkable = append(a.linkable, a.pr.pair(&a.entries[len(a.entries)-1]))
	})
	if errors.Is(err, fs.ErrNotExist) && !errors.Is(err, tree.ErrNoTree) {
		return retry.Again(err.Error()) // something vanished mid-walk
	}
	return err
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
	m := &manifest.Manifest{Snapshot: a.n, Entries: a.entries}
	built := export.Built{N: a.n, Tree: a.work, Manifest: a.work + export.ManifestExt, Encode: m.Encode, Subvolume: a.pit}
	if s := a.opt.Signer; s != nil {
		if err := a.u.Root().WriteSignedState(signerState(s)); err != nil {
			return err
		}
		now := a.opt.Now()
		built.Sign = func(d sign.Digest) ([]byte, []byte) { return s.SignSnapshot(a.n, d, now, a.opt.Validity) }
	}
	if err := a.u.Install(a.ctx, built); err != nil {
		return err
	}
	a.clock.phase("install")
	a.res.Snapshot, a.res.Published = a.n, true
	a.res.Linked, a.res.Copied, a.res.Bytes = int(a.linked.Load()), int(a.copied.Load()), a.bytes.Load()
	a.res.CoW = a.pit
	a.opt.Log.Info("published", "snapshot", a.n, "entries", len(a.entries), "linked", a.res.Linked, "copied", a.res.Copied, "bytes", a.res.Bytes, "deleted", a.res.Deleted, "cow", a.pit)
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
