package snapshot

import (
	"fmt"
	"io/fs"

	"github.com/seqmirror/seqmirror/internal/changes"
	"github.com/seqmirror/seqmirror/internal/cow"
	"github.com/seqmirror/seqmirror/manifest"
)

// The listing of the copy-on-write path when the served snapshot is an
// earlier btrfs snapshot of the same source subvolume (changeSet): btrfs
// says which inodes changed since that snapshot was taken, and the listing
// (changes.Walk) stats only those and reads only the directories where
// something changed. Every other entry takes the served snapshot's record
// of the same path as it is, hash included (package changes says why that
// is right).

// changeSet returns what changed in the source's snapshot since the served
// snapshot was taken, or ok false if the served snapshot is not a snapshot
// of the same subvolume (made by the hard-link farm, or of another source)
// or btrfs cannot tell: then everything is listed.
func (a *attempt) changeSet() (_ *changes.Set, ok bool) {
	served := a.u.Served()
	if served == 0 || a.opt.Force {
		return nil, false
	}
	was, err := cow.Info(a.prevDir)
	if err != nil {
		a.opt.Log.Debug("listing the whole source snapshot", "why", err.Error())
		return nil, false
	}
	now, err := cow.Info(a.source)
	if err == nil && (now.ParentUUID != was.ParentUUID || now.ParentUUID == [16]byte{}) {
		err = fmt.Errorf("snapshot %d is not a snapshot of this source", served)
	}
	var set *changes.Set
	if err == nil {
		set, err = changes.Find(a.source, a.prevDir, was.OTransid)
	}
	if err != nil {
		a.opt.Log.Debug("listing the whole source snapshot", "why", err.Error())
		return nil, false
	}
	a.opt.Log.Debug("listing only what changed since the served snapshot", "snapshot", served,
		"inodes", set.Inodes(), "dirs", set.Dirs(), "reads", set.Reads())
	return set, true
}

// walkChanged lists the source's snapshot into the spool, pairing as it
// goes, stat'ing only the changed inodes; an entry not stat'ed is spooled
// as settled (spooled.settled: its file is not hashed again).
//
// The files it finds new or changed (that the served snapshot cannot
// vouch for: unchanged) are hashed meanwhile by a prehasher, whose sums
// hashFiles takes.
func (a *attempt) walkChanged(set *changes.Set) error {
	a.pre = newPrehasher(a.ctx, a.f, a.source, a.opt.Workers)
	w := &changes.Walk{FS: a.f, Dir: a.source, Set: set, Base: a.pr, Skip: a.skip, Emit: a.emitChanged}
	err := w.Run()
	read, skimmed := w.Counts()
	a.opt.Log.Debug("hashed while listing", "files", a.pre.wait(), "read", read, "skimmed", skimmed)
	if err != nil {
		return err
	}
	return a.spool.seal()
}

// emitChanged pairs and spools e (fresh: fi, its lstat, is not nil) and
// has it hashed if it is a file the served snapshot cannot vouch for.
func (a *attempt) emitChanged(e manifest.Entry, fi fs.FileInfo) error {
	fresh := fi != nil
	linkable, err := a.spoolEntry(spooled{Entry: e, settled: !fresh})
	if err == nil && fresh && e.Type == manifest.File && !(linkable && a.servedFile(fi, e.Path)) {
		a.pre.add(&e)
	}
	return err
}
