package mirror

import (
	"log/slog"

	"github.com/seqmirror/seqmirror/internal/export"
	"github.com/seqmirror/seqmirror/internal/tree"
	"github.com/seqmirror/seqmirror/manifest"
)

// fetchWeight is how much more a byte fetched from the upstream costs than
// a byte of an older manifest read from the local disk, and
// fetchCostPerFile what a fetched file costs besides its bytes (a round
// trip, an inode), in bytes. An older snapshot's manifest costs two passes
// (a check, then the join), so older.link starts reading one only once
// fetchWeight × (bytes + fetchCostPerFile a file) of the files it was
// offered, summed over the chunks so far, is at least twice its size.
const (
	fetchWeight      = 4
	fetchCostPerFile = 4 << 10
)

// older links files to fetch from the retained complete snapshots other
// than the base (the one the diff runs against) and the one being built,
// newest first: a file moved away and back, or one a torn snapshot held,
// is linked rather than fetched again. A file pairs when an older record
// of the same path is the same in full (type, mode, size, mtime and hash:
// manifest.Entry.SameContent), as the base's do; every complete snapshot
// was verified alike when it was made, and is immutable since.
//
// The files to fetch come in chunks, in canonical order (the diff's), so
// each older manifest is read at most twice in all: once whole to check
// it, before any of its pairs is used, then once as the chunks advance
// (tree.Pairer). Memory is one record and one linker per older
// snapshot, plus the chunk's pairs.
type older struct {
	root    *export.Root
	skip    [2]uint64 // base, and the snapshot being built
	pool    *tree.Pool
	work    string
	clone   bool // work is a new subvolume: reflinks, not hard links (newLinker)
	log     *slog.Logger
	sources []*source // newest first; listed on first use
	listed  bool
	linked  int
}

// source is one older snapshot.
type source struct {
	m      uint64
	size   int64 // of its manifest
	credit int64 // weighted cost of the files offered to it so far
	ms     *export.ManifestStream
	pairs  *tree.Pairer
	l      *linker
	done   bool // unreadable, or not worth reading
}

// link links those of files (canonical order, after the previous call's,
// all regular files to fetch) that an older snapshot holds, and returns
// the others, in files' array. An older snapshot that cannot be read is
// skipped with a warning (it is only a link source).
func (o *older) link(files []manifest.Entry) ([]manifest.Entry, error) {
	if len(files) == 0 {
		return files, nil
	}
	o.list()
	todo := make([]int, len(files))
	for i := range todo {
		todo[i] = i
	}
	for _, s := range o.sources {
		if len(todo) == 0 {
			break
		}
		if !o.ready(s, files, todo) {
			continue
		}
		found, err := s.pairs.Pair(files, todo)
		if err != nil {
			o.drop(s, err)
			continue
		}
		if todo, err = o.linkFound(s, files, todo, found); err != nil {
			return files, err
		}
	}
	rest := files[:0]
	for _, i := range todo {
		rest = append(rest, files[i])
	}
	return rest, nil
}

func sameRecord(want, have *manifest.Entry) bool { return want.SameContent(*have) }

// list finds the older snapshots, once.
func (o *older) list() {
	if o.listed {
		return
	}
	o.listed = true
	snaps, err := o.root.Snapshots()
	if err != nil {
		o.log.Warn("not linking from older snapshots", "err", err)
		return
	}
	for k := len(snaps) - 1; k >= 0; k-- {
		m := snaps[k]
		if m == o.skip[0] || m == o.skip[1] {
			continue
		}
		fi, err := o.root.FS.Stat(o.root.ManifestPath(m))
		if err != nil {
			continue
		}
		o.sources = append(o.sources, &source{m: m, size: fi.Size()})
	}
}

// ready reports whether s is open for pairing: it credits s with the cost
// of fetching the files at todo and, once that outweighs two passes over
// its manifest (see fetchWeight), checks the manifest whole and opens it.
func (o *older) ready(s *source, files []manifest.Entry, todo []int) bool {
	if s.done || s.pairs != nil {
		return !s.done
	}
	for _, i := range todo {
		s.credit += fetchWeight * (files[i].Size + fetchCostPerFile)
	}
	if s.credit < 2*s.size {
		return false
	}
	if err := checkManifest(o.root, s.m); err != nil {
		o.drop(s, err)
		return false
	}
	ms, err := o.root.OpenManifest(s.m)
	if err != nil {
		o.drop(s, err)
		return false
	}
	s.ms, s.pairs = ms, tree.NewPairer(ms, sameRecord)
	s.l = newLinker(o.root.FS, o.pool, o.root.SnapshotDir(s.m), o.work, o.clone)
	return true
}

// checkManifest reads snapshot m's manifest whole and checks it.
func checkManifest(root *export.Root, m uint64) error {
	ms, err := root.OpenManifest(m)
	if err != nil {
		return err
	}
	defer ms.Close()
	_, err = ms.Drain()
	return err
}

// drop stops using s.
func (o *older) drop(s *source, err error) {
	o.log.Warn("not linking from snapshot", "snapshot", s.m, "err", err)
	s.done = true
	if s.ms != nil {
		s.ms.Close()
		s.ms = nil
	}
}

// linkFound links the files found in s and returns todo without them.
func (o *older) linkFound(s *source, files []manifest.Entry, todo []int, found map[int]manifest.Sum) ([]int, error) {
	if len(found) == 0 {
		return todo, nil
	}
	rest := todo[:0]
	for _, i := range todo {
		if _, ok := found[i]; !ok {
			rest = append(rest, i)
			continue
		}
		if err := s.l.add(files[i].Path); err != nil {
			return rest, err
		}
		o.linked++
	}
	return rest, nil
}

// flush hands the last batches of every linker to the pool.
func (o *older) flush() error {
	for _, s := range o.sources {
		if s.l == nil {
			continue
		}
		if err := s.l.flush(); err != nil {
			return err
		}
	}
	return nil
}

// close closes the older manifests.
func (o *older) close() {
	for _, s := range o.sources {
		if s.ms != nil {
			s.ms.Close()
			s.ms = nil
		}
	}
}
