package mirror

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"

	"github.com/seqmirror/seqmirror/internal/changes"
	"github.com/seqmirror/seqmirror/internal/cow"
	"github.com/seqmirror/seqmirror/internal/export"
	"github.com/seqmirror/seqmirror/internal/fsys"
	"github.com/seqmirror/seqmirror/internal/transport"
	"github.com/seqmirror/seqmirror/internal/tree"
	"github.com/seqmirror/seqmirror/manifest"
)

// The clone path (docs/operating.md section 20). When the upstream is an
// export root on the mirror's own btrfs (a local path) and its snapshot N
// is a subvolume, ROOT/.work/N is a snapshot of it: one ioctl, no data
// copied or written, the same extents shared. Nothing of it is trusted
// before it is checked against the fetched manifest of N:
//
//   - incrementally when the served snapshot K is itself a snapshot of the
//     upstream's K, and the upstream's K and N are snapshots of one
//     subvolume (its publish's source), K taken first: btrfs then says
//     which inodes of N changed since K was taken (changes.Find), and
//     a walk (changes.Walk) reads only those — stat'ed and hashed afresh,
//     the files against N's records — and the directories holding them,
//     while every other entry is K's record, which the served snapshot
//     matched when it was checked, and must be N's record too;
//   - whole (tree.VerifyStream: every file hashed) for a first copy.
//
// A mirror with a served snapshot that is not such a snapshot (copied
// before, or the upstream is itself a mirror, whose snapshots are clones
// of its upstream's) copies the difference instead.
//
// Any difference, and anything the filesystem refuses, drops the clone:
// the build then copies from the upstream as it would have (and reports
// what differs, file by file, as ever). Elsewhere nothing changes.

// errCloneDiffers means the clone of the upstream's snapshot is not what
// its manifest lists.
var errCloneDiffers = errors.New("the upstream's snapshot differs from its manifest")

// clone makes the work tree a checked snapshot of the upstream's snapshot
// n, if it can (done); otherwise the build copies.
func (b *build) clone(ctx context.Context) (done bool, _ error) {
	sc, ok := b.s.up.(transport.SnapshotCloner)
	if !ok || b.pc != nil || b.replaces() {
		return false, nil
	}
	if c, err := cow.Probe(b.s.root.Dir); err != nil || !c.Snapshots {
		return false, nil
	}
	upN, since, err := b.lineage(sc)
	if err != nil {
		b.s.opt.Log.Debug("copying: the upstream's snapshot cannot be cloned", "why", err.Error())
		return false, nil
	}
	var cloned cow.SubvolInfo
	var cloneErr error // the clone's own: the build copies instead
	work, err := b.s.u.WorkClone(b.n, func(w string) error {
		if cloned, cloneErr = sc.CloneSnapshot(ctx, b.n, w); cloneErr == nil && cloned.UUID != upN.UUID {
			cloneErr = fmt.Errorf("the upstream's snapshot %d was replaced", b.n)
			if rerr := cow.Delete(w); rerr != nil {
				return rerr
			}
		}
		return cloneErr
	})
	if cloneErr != nil {
		b.s.opt.Log.Debug("copying: the upstream's snapshot cannot be cloned", "why", cloneErr.Error())
		return false, nil
	}
	if err != nil {
		return false, err
	}
	b.work = work
	b.phase("clone")
	how, err := b.checkClone(ctx, since)
	if err != nil {
		if ctx.Err() != nil {
			return false, err
		}
		b.s.opt.Log.Warn("copying instead of cloning the upstream's snapshot", "snapshot", b.n, "why", err.Error())
		if rerr := fsys.RemoveAll(b.s.root.FS, work); rerr != nil {
			return false, fmt.Errorf("remove the clone: %w", rerr)
		}
		return false, nil
	}
	b.phase("check clone")
	if err := b.recheck(ctx); err != nil {
		return false, err
	}
	b.mode = workSnapshot
	b.res.Linked = b.p.files
	if b.base != 0 {
		b.res.Deleted = b.p.removed
	}
	b.s.opt.Log.Debug("cloned the upstream's snapshot", "snapshot", b.n, "checked", how)
	return true, nil
}

// lineage says whether a clone of the upstream's snapshot n can be
// checked, and returns what btrfs records of that snapshot. With no base
// (a first copy) it is checked whole. With a base, only from what
// changed: the base must be a snapshot of the upstream's snapshot of the
// same number, and that one and the upstream's n snapshots of one
// subvolume, the base's taken first, at transaction since. Otherwise
// (the base was copied, or the upstream is itself a mirror) the build
// copies the difference, which costs less than a whole check.
func (b *build) lineage(sc transport.SnapshotCloner) (upN cow.SubvolInfo, since uint64, err error) {
	if upN, err = sc.SnapshotInfo(b.n); err != nil || b.base == 0 {
		return upN, 0, err
	}
	mine, err := cow.Info(b.s.root.SnapshotDir(b.base))
	if err != nil {
		return upN, 0, err
	}
	upK, err := sc.SnapshotInfo(b.base)
	if err != nil {
		return upN, 0, err
	}
	switch {
	case mine.ParentUUID != upK.UUID:
		return upN, 0, fmt.Errorf("the served snapshot %d is not a snapshot of the upstream's", b.base)
	case upK.ParentUUID != upN.ParentUUID || upN.ParentUUID == [16]byte{} || upK.OTransid >= upN.OTransid:
		return upN, 0, fmt.Errorf("the upstream's snapshots %d and %d are not snapshots of one subvolume, in that order", b.base, b.n)
	}
	return upN, upK.OTransid, nil
}

// checkClone checks the clone in b.work against the fetched manifest:
// whole with no base, else from what changed since transaction since. It
// says which.
func (b *build) checkClone(ctx context.Context, since uint64) (how string, _ error) {
	if b.base == 0 {
		return "whole", b.checkWhole(ctx)
	}
	set, err := changes.Find(b.work, b.s.root.SnapshotDir(b.base), since)
	if err != nil {
		return "", err
	}
	b.phase("find changed inodes")
	return fmt.Sprintf("%d changed inodes", set.Inodes()), b.checkChanged(ctx, set)
}

// checkWhole checks every entry and file of the clone.
func (b *build) checkWhole(ctx context.Context) error {
	nm, err := openFetched(b.s.root.FS, b.manPath, b.n)
	if err != nil {
		return b.upErr(err)
	}
	defer nm.Close()
	v, err := tree.VerifyStream(ctx, b.s.root.FS, b.work, nm, tree.VerifyOptions{Workers: b.s.opt.Workers, MaxProblems: 1})
	if err != nil {
		return err
	}
	if p := v.List(); len(p) > 0 {
		return fmt.Errorf("%w: %s", errCloneDiffers, p[0])
	}
	return nm.Finish()
}

// checkChanged checks the clone from what changed since the base was
// taken.
func (b *build) checkChanged(ctx context.Context, set *changes.Set) error {
	root := b.s.root
	nm, err := openFetched(root.FS, b.manPath, b.n)
	if err != nil {
		return b.upErr(err)
	}
	defer nm.Close()
	om, err := root.OpenManifest(b.base)
	if err != nil {
		return &baseError{err}
	}
	defer om.Close()
	c := &cloneCheck{f: root.FS, work: b.work, base: newRecordBase(om), want: newRecordBase(nm), pool: tree.NewPool(ctx, b.s.opt.Workers)}
	defer c.base.stop()
	defer c.want.stop()
	w := &changes.Walk{FS: root.FS, Dir: b.work, Set: set, Base: c.base, Emit: c.entry}
	err = w.Run()
	if werr := c.pool.Wait(); err == nil {
		err = werr
	}
	if err != nil {
		return err
	}
	if rec, ok := c.want.Current(); ok {
		return fmt.Errorf("%w: %s is missing", errCloneDiffers, rec.Path)
	}
	if err := c.want.finish(); err != nil {
		return b.upErr(err)
	}
	if err := c.base.finish(); err != nil {
		return &baseError{err}
	}
	return nil
}

// cloneCheck compares the walk of a clone with the manifest it must match.
type cloneCheck struct {
	f    fsys.FS
	work string
	base *recordBase // the served snapshot's records, which the walk reads along
	want *recordBase // the upstream's manifest of the clone
	pool *tree.Pool  // hashes the fresh files
}

// entry is the walk's Emit: e must be the next record the manifest has,
// settled entries as they are, fresh ones in their metadata and, files,
// their content.
func (c *cloneCheck) entry(e manifest.Entry, fi fs.FileInfo) error {
	rec, ok := c.want.Current()
	switch {
	case ok && manifest.Compare(rec.Path, e.Path) < 0:
		return fmt.Errorf("%w: %s is missing", errCloneDiffers, rec.Path)
	case !ok || rec.Path != e.Path:
		return fmt.Errorf("%w: %s is not listed", errCloneDiffers, e.Path)
	}
	c.want.Drop()
	if fi == nil {
		if !e.SameContent(rec) {
			return fmt.Errorf("%w: %s is as in the served snapshot, not as listed", errCloneDiffers, e.Path)
		}
		return nil
	}
	got := e
	got.SetSum(rec.Sum())
	if !got.SameContent(rec) || fi.Mode()&(fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky) != 0 {
		return fmt.Errorf("%w: %s: type, mode, size, mtime or target differ", errCloneDiffers, e.Path)
	}
	if e.Type != manifest.File {
		return nil
	}
	full := filepath.Join(c.work, filepath.FromSlash(e.Path))
	return c.pool.Go(func(context.Context) error {
		sum, size, err := tree.HashFile(c.f, full, rec.SumVersion())
		if err == nil {
			err = tree.CheckHash(rec, size, sum)
		}
		if err != nil {
			return fmt.Errorf("%w: %s: %w", errCloneDiffers, e.Path, err)
		}
		return nil
	})
}

// recordBase reads a manifest along a walk (changes.Base): the records of
// the earlier snapshot, or those a clone must match.
type recordBase struct {
	ms   *export.ManifestStream
	ra   *manifest.Readahead
	p    manifest.Entry
	perr error
}

func newRecordBase(ms *export.ManifestStream) *recordBase {
	r := &recordBase{ms: ms, ra: manifest.NewReadahead(ms)}
	r.p, r.perr = r.ra.Next()
	return r
}

// Peek implements changes.Base.
func (r *recordBase) Peek(path string) (manifest.Entry, bool) {
	for r.perr == nil && manifest.Compare(r.p.Path, path) < 0 {
		r.Drop()
	}
	return r.p, r.perr == nil && r.p.Path == path
}

// Current implements changes.Base.
func (r *recordBase) Current() (manifest.Entry, bool) { return r.p, r.perr == nil }

// Drop implements changes.Base.
func (r *recordBase) Drop() {
	if r.perr == nil {
		r.p, r.perr = r.ra.Next()
	}
}

// finish reads the rest of the records and checks the manifest's end.
func (r *recordBase) finish() error {
	for r.perr == nil {
		r.Drop()
	}
	r.ra.Stop()
	if r.perr != io.EOF {
		return r.perr
	}
	return r.ms.Finish()
}

func (r *recordBase) stop() { r.ra.Stop() }
