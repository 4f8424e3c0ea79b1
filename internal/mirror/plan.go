package mirror

import (
	"errors"
	"io"
	"log/slog"
	"math"

	"github.com/seqmirror/seqmirror/internal/export"
	"github.com/seqmirror/seqmirror/manifest"
)

// plan is what pass 1 learns: counts for the delete guard and, when they
// are few enough to hold, the directories to make, the files to fetch and
// the files and symlinks to make, so that pass 2 need not read the
// manifests again.
type plan struct {
	lim     limits
	entries int   // records in the upstream's manifest
	del     int   // files of the base snapshot the upstream no longer has
	total   int   // files of the base snapshot (served, unless torn)
	removed int   // records of the base snapshot not in the upstream's
	files   int   // file records in the upstream's manifest
	bytes   int64 // and their total size
	// dirs lists the directories while there are at most lim.dirCap of
	// them (dirsKept); over that, the directory passes read the manifest
	// again.
	dirs     []manifest.Entry
	dirsKept bool
	// fetch lists the new and changed files while there are at most
	// lim.fetchChunk of them; nil over that (pass 2 streams them in chunks).
	fetch []manifest.Entry
	// links (unchanged files) and symlinks are complete while together they
	// are at most lim.planCap; over that, whole is false and pass 2 streams.
	links    []string
	symlinks []manifest.Entry
	kept     int // len(links) + len(symlinks)
	whole    bool
}

func newPlan(lim limits) *plan {
	return &plan{lim: lim, fetch: []manifest.Entry{}, whole: true, dirsKept: true}
}

// add counts one change of the diff and keeps what pass 2 needs.
func (p *plan) add(c manifest.Change) error {
	if c.Old != nil && c.Old.Type == manifest.File {
		p.total++
		if c.New == nil {
			p.del++
		}
	}
	if c.New == nil {
		p.removed++
		return nil
	}
	p.entries++
	e := c.New
	switch {
	case e.Type == manifest.Dir:
		if p.dirsKept && len(p.dirs) < p.lim.dirCap {
			p.dirs = append(p.dirs, *e)
		} else {
			p.dirs, p.dirsKept = nil, false
		}
	case e.Type == manifest.File && c.Old != nil && c.Same:
		p.files++
		p.bytes += e.Size
		if p.whole {
			p.links = append(p.links, e.Path)
			p.kept++
		}
	case e.Type == manifest.File:
		p.files++
		p.bytes += e.Size
		if p.fetch != nil {
			if len(p.fetch) < p.lim.fetchChunk {
				p.fetch = append(p.fetch, *e)
			} else {
				p.fetch = nil // too many: pass 2 streams them
			}
		}
	case e.Type == manifest.Symlink:
		if p.whole {
			p.symlinks = append(p.symlinks, *e)
			p.kept++
		}
	}
	if p.kept > p.lim.planCap {
		p.whole, p.links, p.symlinks = false, nil, nil
	}
	return nil
}

// settle ends pass 1: pass 2 lays a kept plan only if it can also fetch
// from the kept list.
func (p *plan) settle() {
	if p.fetch == nil {
		p.whole, p.links, p.symlinks = false, nil, nil
	}
}

// validateBase is validate against the base linkBase picks. A base that is
// not the served snapshot is only a link source: if its manifest is bad,
// it warns and tries the next older one. It sets b.p and b.base.
func (b *build) validateBase() error {
	log := b.s.opt.Log
	base := linkBase(b.s.root, b.cur, b.n, math.MaxUint64, log)
	if b.s.noBase && base == b.n {
		base = linkBase(b.s.root, 0, b.n, math.MaxUint64, log)
	}
	for {
		p, err := b.validate(base)
		var be *baseError
		if !errors.As(err, &be) || base == b.cur {
			b.p, b.base = p, base
			return err
		}
		log.Warn("not linking from snapshot", "snapshot", base, "err", be.err)
		base = linkBase(b.s.root, 0, b.n, base, log)
	}
}

// validate makes one streaming pass over the fetched manifest of n and the
// manifest of base, the snapshot to link from (O(depth) memory): it checks
// both completely, as decoding them would, and counts what the delete guard
// needs. An error in the upstream's manifest is reported before one in
// base's (a *baseError).
func (b *build) validate(base uint64) (*plan, error) {
	pr, err := b.openPair(base)
	if err != nil {
		return nil, b.baseErr(err)
	}
	defer pr.close()
	// Each manifest decodes on its own goroutine (Readahead); both are
	// stopped before they are finished or closed.
	na := manifest.NewReadahead(pr.nm)
	defer na.Stop()
	tn := &tagged{it: na}
	var to *tagged
	var oldIt manifest.Iterator
	var oa *manifest.Readahead
	if pr.om != nil {
		oa = manifest.NewReadahead(pr.om)
		defer oa.Stop()
		to = &tagged{it: oa}
		oldIt = to
	}
	p := newPlan(b.s.opt.lim)
	err = manifest.Diff(oldIt, tn, p.add)
	switch {
	case tn.err != nil:
		return nil, b.upErr(tn.err)
	case to != nil && to.err != nil:
		return nil, b.baseErr(&baseError{to.err})
	case err != nil:
		return nil, err
	}
	na.Stop()
	if err := pr.nm.Finish(); err != nil {
		return nil, b.upErr(err)
	}
	if pr.om != nil {
		oa.Stop()
		if err := pr.om.Finish(); err != nil {
			return nil, b.baseErr(&baseError{err})
		}
	}
	p.settle()
	return p, nil
}

// baseErr reports an error of the base's manifest only once the upstream's
// manifest is known to be good as a whole (an error in it comes first).
func (b *build) baseErr(err error) error {
	var be *baseError
	if !errors.As(err, &be) {
		return err
	}
	if nerr := checkFetched(b.s.root.FS, b.manPath, b.n); nerr != nil {
		return b.upErr(nerr)
	}
	return err
}

// tagged remembers the error its iterator returned, so a Diff over two
// streams can tell which one failed.
type tagged struct {
	it  manifest.Iterator
	err error
}

func (t *tagged) Next() (manifest.Entry, error) {
	e, err := t.it.Next()
	if err != nil && err != io.EOF {
		t.err = err
	}
	return e, err
}

// linkBase returns the snapshot a build of n diffs against and links
// unchanged files from: the served snapshot cur (0 if none, or torn),
// else the newest retained complete snapshot below below other than n,
// else 0 (nothing to link from). Only a build calls it: a no-op poll
// never lists snapshots.
func linkBase(root *export.Root, cur, n, below uint64, log *slog.Logger) uint64 {
	if cur > 0 {
		return cur
	}
	snaps, err := root.Snapshots()
	if err != nil {
		log.Warn("not linking from older snapshots", "err", err)
		return 0
	}
	for k := len(snaps) - 1; k >= 0; k-- {
		if snaps[k] != n && snaps[k] < below {
			return snaps[k]
		}
	}
	return 0
}
