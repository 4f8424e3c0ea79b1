package mirror

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strconv"
	"time"

	"github.com/seqmirror/seqmirror/internal/export"
	"github.com/seqmirror/seqmirror/internal/fsys"
	"github.com/seqmirror/seqmirror/internal/retry"
	"github.com/seqmirror/seqmirror/internal/transport"
	"github.com/seqmirror/seqmirror/internal/tree"
	"github.com/seqmirror/seqmirror/manifest"
	"github.com/seqmirror/seqmirror/seqfile"
)

// build is one attempt at snapshot n, in three phases that run in order:
// plan (fetch the manifest, check it and the base's whole, apply the
// delete guard), lay (make the tree in ROOT/.work/N: unchanged files linked
// from the base or an older snapshot, the rest fetched and verified) and
// commit (finish the directories, Install). A complete snapshots/N that is
// the same snapshot is flipped to instead (reuse).
type build struct {
	s       *syncRun
	n, e1   uint64 // the snapshot, and the upstream's seq/end when it was read
	cur     uint64 // the served snapshot (0: none, or torn)
	base    uint64 // the snapshot linked from (0: nothing to link from)
	manPath string // the fetched manifest, in ROOT/.work
	work    string // the tree being built, ROOT/.work/N
	p       *plan
	sig, ts []byte       // the upstream's signature of n and timestamp, to install verbatim (signatures)
	signed  [][]byte     // the same two files as read beside the manifest (nil: not read; signatures reads them)
	pc      *partialCopy // a partial snapshot's full manifest and filter (nil: whole)
	mode    workMode     // what the work tree is (cow.go)
	res     Result
	phaseAt time.Time
}

// buildOnce makes snapshot n in .work and, if recheck (called once nothing
// more is to come from the upstream) passes, installs it. Unchanged files
// are linked from the base linkBase picks, and files the base lacks from
// any other retained complete snapshot that has them (older).
func (s *syncRun) buildOnce(ctx context.Context, n, e1 uint64) (Result, error) {
	name := strconv.FormatUint(n, 10)
	b := &build{
		s: s, n: n, e1: e1, cur: s.res.Snapshot, res: Result{Snapshot: s.res.Snapshot}, phaseAt: time.Now(),
		manPath: filepath.Join(s.root.WorkDir(), name+export.ManifestExt),
	}
	err := b.run(ctx)
	return b.res, err
}

func (b *build) run(ctx context.Context) error {
	if err := b.plan(ctx); err != nil {
		return err
	}
	if done, err := b.reuse(ctx); done || err != nil {
		return err
	}
	if done, err := b.clone(ctx); err != nil {
		return err
	} else if done {
		return b.commit(ctx)
	}
	mode, err := b.makeWork(b.chooseWork())
	if err != nil {
		return err
	}
	b.mode = mode
	if mode == workSnapshot {
		err = b.layCow(ctx)
	} else if sf, ok := b.s.up.(transport.SnapshotFetcher); ok && b.base == 0 && b.pc == nil {
		// Nothing to link from (a first copy, or a rebuild with no complete
		// snapshot left): the upstream copies the whole snapshot at once and
		// checks it against the manifest, which it reads as a stream. Not
		// for a partial snapshot: the upstream holds more than its manifest.
		err = b.fetchWhole(ctx, sf)
	} else {
		err = b.lay(ctx)
	}
	if err != nil {
		return err
	}
	return b.commit(ctx)
}

// phase logs how long the phase that just ended took.
func (b *build) phase(name string) {
	t := time.Now()
	b.s.opt.Log.Debug("sync phase", "phase", name, "took", t.Sub(b.phaseAt).Round(time.Microsecond))
	b.phaseAt = t
}

// plan fetches the manifest of n and makes pass 1: both manifests checked
// whole before acting on either, and the delete guard, against the served
// snapshot (or the base if it is torn).
func (b *build) plan(ctx context.Context) error {
	upFilter, err := b.fetchManifest(ctx)
	if err != nil {
		return err
	}
	if err := b.partial(ctx, upFilter); err != nil {
		return err
	}
	b.phase("fetch manifest")
	if err := b.validateBase(); err != nil {
		return err
	}
	b.phase("validate")
	if b.sig, b.ts, err = b.s.signatures(ctx, b.n, b.signedManifest(), b.signed); err != nil {
		return err
	}
	if b.base == 0 || b.s.rebuild {
		return nil // a rebuild of the same snapshot deletes only what the filter leaves out
	}
	return b.s.opt.tooManyDeletes(b.n, b.p.del, b.p.total)
}

// fetchManifest fetches the upstream's manifest of n to b.manPath and
// reads its filter file (fetchManifestFilter), or takes the copy this run
// fetched already (manifests: the failover rule's, or one fetched ahead).
func (b *build) fetchManifest(ctx context.Context) (upstreamFilter, error) {
	if f := b.s.mans.take(b.s.up, b.n, b.manPath); f != nil {
		if f.signedOK {
			b.signed = f.signed
		}
		return f.filter, nil
	}
	return fetchManifestFilter(ctx, b.s.up, b.n, b.manPath)
}

// reuse handles a complete snapshots/N already there (a crash after the
// rename but before the flip, or a rollback): if it is the same snapshot it
// flips to it (done), else it removes it.
func (b *build) reuse(ctx context.Context) (done bool, _ error) {
	root := b.s.root
	if b.replaces() {
		return false, nil
	}
	if fi, err := root.FS.Stat(root.SnapshotDir(b.n)); err != nil || !fi.IsDir() {
		return false, nil
	}
	if !sameManifest(root, b.n, b.manPath) {
		if b.n == b.cur {
			return true, fmt.Errorf("served snapshot %d differs from the upstream's snapshot %d: %w", b.n, b.n, ErrServedDamaged)
		}
		if err := fsys.RemoveAll(root.FS, root.SnapshotDir(b.n)); err != nil {
			return true, err
		}
		_ = root.FS.Remove(root.ManifestPath(b.n))
		return false, nil
	}
	b.s.opt.Log.Info("snapshot already present; flipping to it", "snapshot", b.n)
	// The fetched copy of the manifest is not needed: drop it, or it stays
	// in .work until the next run that changes something.
	if err := root.FS.Remove(b.manPath); err != nil {
		return true, fmt.Errorf("remove fetched manifest: %w", err)
	}
	b.res.Entries = b.p.entries
	if err := b.recheck(ctx); err != nil {
		return true, err
	}
	return true, b.install(ctx, export.Built{N: b.n})
}

// recheck is step 4 of the protocol (doc.go): once nothing more comes from
// the upstream, re-read its begin. If it moved, the upstream started an
// update after we read end; our copy is still good if snapshot n is intact
// (its files all verified), so make sure it was not pruned or replaced
// under us. The build runs it as soon as its last fetch is done (beside
// the local links), and installs only if it passes.
func (b *build) recheck(ctx context.Context) error {
	up := b.s.up
	b2, err := up.Seq(ctx, seqfile.Begin)
	if err != nil || b2 == b.e1 {
		return err
	}
	now, _, err := up.Current(ctx)
	if err != nil {
		return err
	}
	if now < b.n && !b.s.opt.AllowRollback {
		return retry.Againf("upstream went back to snapshot %d during the copy", now)
	}
	if err := stillThere(ctx, b.s.root, up, b.n); err != nil {
		return retry.Again(err.Error())
	}
	return nil
}

// fetchWhole makes the directories and has sf copy the files and symlinks
// of snapshot n into them.
func (b *build) fetchWhole(ctx context.Context, sf transport.SnapshotFetcher) error {
	if err := b.makeDirs(ctx); err != nil {
		return err
	}
	stop := b.startFlusher()
	err := sf.FetchSnapshot(ctx, b.n, b, b.work)
	stop()
	if err != nil {
		// Whatever came stays no longer than the run (it may be a hostile
		// upstream's, as large as the disk allows).
		f := b.s.root.FS
		rerr := fsys.RemoveAll(f, b.work)
		if rerr == nil {
			if rerr = f.Remove(b.manPath); errors.Is(rerr, fs.ErrNotExist) {
				rerr = nil
			}
		}
		if rerr != nil {
			b.s.opt.Log.Warn("could not remove the failed copy", "dir", b.work, "err", rerr)
		}
		return err
	}
	if err := b.recheck(ctx); err != nil {
		return err
	}
	b.res.Fetched, b.res.Bytes = b.p.files, b.p.bytes
	return nil
}

// flushEvery is how often a first copy asks the filesystem to write back
// what has come so far.
const flushEvery = time.Second

// startFlusher starts writing back the files of a first copy while it
// runs: a syncfs of the work tree's filesystem every flushEvery, on a
// goroutine of its own, so that the syncfs Install makes before the flip
// (the one durability rests on) finds little left, instead of the whole
// snapshot, to write. Its errors are ignored: the final syncfs reports. The
// returned function stops it and waits for it.
func (b *build) startFlusher() (stop func()) {
	done, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		t := time.NewTicker(flushEvery)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				_ = b.s.root.FS.SyncFS(b.work)
			}
		}
	}()
	return func() { close(done); <-stopped }
}

// commit finishes the directories and installs the snapshot.
func (b *build) commit(ctx context.Context) error {
	if b.mode != workSnapshot { // layCow finished the directories it touched
		if err := b.finishDirs(ctx); err != nil {
			return err
		}
	}
	b.phase("finish dirs")
	b.res.Entries = b.p.entries
	defer b.phase("flip")
	built := export.Built{N: b.n, Tree: b.work, Manifest: b.manPath, Replace: b.replaces(), Subvolume: b.mode != workPlain}
	if b.pc != nil {
		built.Full, built.Filter = b.pc.full, b.pc.filter
		b.res.Filter, b.res.Missing = b.pc.chain.String(), b.pc.missing
	}
	return b.install(ctx, built)
}

// signedManifest is the manifest the master's signature of n covers: the
// full manifest of a partial snapshot (N.full, the master's bytes), else
// the fetched one. A partial snapshot's subset manifest is checked against
// it record by record (partial: filter.CheckSubset), so verifying the
// full one vouches for every file the subset lists.
func (b *build) signedManifest() string {
	if b.pc != nil {
		return b.pc.full
	}
	return b.manPath
}

// replaces reports whether the build is of the served snapshot, again
// (another subset of it): Install replaces it.
func (b *build) replaces() bool { return b.s.rebuild && b.n == b.cur && b.cur != 0 }

// install is the commit step (export.Update.Install): the fetched manifest
// is stamped with the time of install.
func (b *build) install(ctx context.Context, built export.Built) error {
	built.Signature, built.Timestamp = b.sig, b.ts
	if err := b.s.u.Install(ctx, built); err != nil {
		return err
	}
	b.res.Snapshot = b.n
	b.res.logServing(b.s.opt.Log)
	return nil
}

// Open implements transport.Records: a new pass over the fetched manifest
// (validated by pass 1).
func (b *build) Open() (transport.RecordIter, error) {
	return openFetched(b.s.root.FS, b.manPath, b.n)
}

// dirRecords yields the directories: pass 1's list if it kept them all,
// else a new pass over the manifest (whose other records the directory
// passes skip), so that memory does not grow with the directories.
func (b *build) dirRecords() (transport.RecordIter, error) {
	if b.p.dirsKept {
		return sliceRecords{&manifest.SliceIterator{Entries: b.p.dirs}}, nil
	}
	return b.Open()
}

type sliceRecords struct{ *manifest.SliceIterator }

func (sliceRecords) Close() error { return nil }

// makeDirs makes the directories below work, mode 0700 until finishDirs.
func (b *build) makeDirs(ctx context.Context) error {
	it, err := b.dirRecords()
	if err != nil {
		return err
	}
	defer it.Close()
	return tree.MakeDirsStream(ctx, b.s.root.FS, b.work, it, b.s.opt.Workers)
}

// finishDirs gives the directories below work their modes and mtimes.
func (b *build) finishDirs(ctx context.Context) error {
	it, err := b.dirRecords()
	if err != nil {
		return err
	}
	defer it.Close()
	return tree.FinishDirsStream(ctx, b.s.root.FS, b.work, it, b.s.opt.Workers)
}

// openFetched opens a manifest of snapshot n fetched from the upstream to
// p; its errors name it "manifest of snapshot N".
func openFetched(f fsys.FS, p string, n uint64) (*export.ManifestStream, error) {
	return export.OpenManifestFile(f, p, n, "manifest of snapshot "+strconv.FormatUint(n, 10))
}

// checkFetched checks the whole fetched manifest at p in one streaming pass.
func checkFetched(f fsys.FS, p string, n uint64) error {
	m, err := openFetched(f, p, n)
	if err != nil {
		return err
	}
	defer m.Close()
	_, err = m.Drain()
	return err
}

// pair is the fetched manifest of the snapshot being built and (nil if
// there is none) the manifest of the snapshot it is diffed against, open
// for one Diff pass.
type pair struct{ nm, om *export.ManifestStream }

// openPair opens the fetched manifest and the manifest of base (if not 0).
// An error in the first is the upstream's; one in the second a *baseError.
func (b *build) openPair(base uint64) (pair, error) {
	root := b.s.root
	nm, err := openFetched(root.FS, b.manPath, b.n)
	if err != nil {
		return pair{}, b.upErr(err)
	}
	if base == 0 {
		return pair{nm: nm}, nil
	}
	om, err := root.OpenManifest(base)
	if err != nil {
		nm.Close()
		return pair{}, &baseError{err}
	}
	return pair{nm: nm, om: om}, nil
}

// old is the old side of the Diff (nil: none).
func (p pair) old() manifest.Iterator {
	if p.om == nil {
		return nil
	}
	return p.om
}

func (p pair) close() {
	p.nm.Close()
	if p.om != nil {
		p.om.Close()
	}
}

// upErr words an error in the upstream's manifest.
func (b *build) upErr(err error) error { return fmt.Errorf("upstream %s: %w", b.s.up, err) }

// baseError is an error in the manifest of the snapshot a build links from
// (ErrServedDamaged when it is the served snapshot).
type baseError struct{ err error }

func (e *baseError) Error() string        { return "served snapshot: " + e.err.Error() }
func (e *baseError) Unwrap() error        { return e.err }
func (e *baseError) Is(target error) bool { return target == ErrServedDamaged }

// sameManifest reports whether the complete snapshot n's manifest is valid
// and records exactly what the fetched manifest at manPath (already
// validated) records, comparing the two in one streaming pass.
func sameManifest(root *export.Root, n uint64, manPath string) bool {
	nm, err := openFetched(root.FS, manPath, n)
	if err != nil {
		return false
	}
	defer nm.Close()
	om, err := root.OpenManifest(n)
	if err != nil {
		return false
	}
	defer om.Close()
	err = manifest.Diff(om, nm, func(c manifest.Change) error {
		if c.Old == nil || c.New == nil || *c.Old != *c.New {
			return errDiffers
		}
		return nil
	})
	return err == nil && om.Finish() == nil && nm.Finish() == nil
}

var errDiffers = errors.New("manifests differ")
