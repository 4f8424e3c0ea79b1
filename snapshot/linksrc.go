package snapshot

import (
	"fmt"
	"log/slog"

	"github.com/seqmirror/seqmirror/internal/export"
	"github.com/seqmirror/seqmirror/internal/fsys"
	"github.com/seqmirror/seqmirror/internal/tree"
	"github.com/seqmirror/seqmirror/manifest"
)

// copyCostPerFile is what an older snapshot's cost counts for each file
// to copy besides its bytes (creating an inode, opening, flushing), in
// bytes of manifest it is worth reading to avoid it.
const copyCostPerFile = 4 << 10

// olders links the regular files that the served snapshot cannot give
// (not linkable) from the other retained complete snapshots, newest
// first, by the pairer's rule (same path, type, mode, size and mtime:
// what publish trusts to link from the served snapshot, which holds for
// every complete snapshot as they are all immutable and verified alike),
// so that a file moved back or restored is linked, not copied.
//
// Each older snapshot costs two passes over its manifest (a check of the
// whole, before any of its records is used, then the join), so it is read
// only if the files it can hold, those whose mtime is not after its
// manifest was written (a file edited since cannot be in it), would cost
// more to copy (bytes, plus copyCostPerFile a file) than the pass: the
// list phase counts that cost (note), and a tree where files were only
// edited or added never pays for it. The join streams: the files come in
// canonical order (find) and each manifest is read once alongside them
// (tree.Pairer, as mirror-sync's older snapshots), so memory is one
// record per older snapshot. A manifest that cannot be read or does not
// check out is skipped with a warning: it is only a link source.
type olders struct {
	root *export.Root
	log  *slog.Logger
	srcs []*olderSrc // newest first
}

// olderSrc is one older snapshot.
type olderSrc struct {
	m          uint64
	dir        string
	made, size int64 // its manifest's mtime and size
	cost       int64 // of copying the files it may hold
	ms         *export.ManifestStream
	pairs      *tree.Pairer
}

// listOlders finds the retained snapshots other than cur.
func listOlders(root *export.Root, cur uint64, log *slog.Logger) *olders {
	o := &olders{root: root, log: log}
	snaps, err := root.Snapshots()
	if err != nil {
		log.Warn("not linking from older snapshots", "err", err)
		return o
	}
	for k := len(snaps) - 1; k >= 0; k-- {
		m := snaps[k]
		fi, err := root.FS.Stat(root.ManifestPath(m))
		if m == cur || err != nil {
			continue
		}
		o.srcs = append(o.srcs, &olderSrc{m: m, dir: root.SnapshotDir(m), made: fi.ModTime().UnixNano(), size: fi.Size()})
	}
	return o
}

// note counts e, a listed entry, in the cost of each older snapshot that
// may hold it.
func (o *olders) note(e *manifest.Entry, linkable bool) {
	if linkable || e.Type != manifest.File {
		return
	}
	for _, s := range o.srcs {
		if e.MTime <= s.made {
			s.cost += e.Size + copyCostPerFile
		}
	}
}

// open keeps the older snapshots worth reading, checks each manifest whole
// and opens it for the join.
func (o *olders) open() {
	keep := o.srcs[:0]
	for _, s := range o.srcs {
		if s.cost < s.size {
			continue
		}
		ms, err := checkedManifest(o.root, s.m)
		if err != nil {
			o.log.Warn("not linking from snapshot", "snapshot", s.m, "err", err)
			continue
		}
		s.ms, s.pairs = ms, tree.NewPairer(ms, sameButHash)
		keep = append(keep, s)
	}
	o.srcs = keep
}

// checkedManifest reads snapshot m's manifest whole, to check it, and
// opens it again.
func checkedManifest(root *export.Root, m uint64) (*export.ManifestStream, error) {
	ms, err := root.OpenManifest(m)
	if err != nil {
		return nil, err
	}
	_, err = ms.Drain()
	ms.Close()
	if err != nil {
		return nil, err
	}
	return root.OpenManifest(m)
}

// find looks for the regular file e (not linkable; after the files of the
// calls before, in canonical order) in the older snapshots: if one holds
// it, it sets e's hash and digest and returns the snapshot's directory.
func (o *olders) find(e *manifest.Entry) (string, bool) {
	for _, s := range o.srcs {
		if s.pairs == nil || e.MTime > s.made {
			continue
		}
		h, ok, err := s.pairs.Find(e)
		if err != nil {
			o.log.Warn("not linking from snapshot", "snapshot", s.m, "err", err)
			s.ms.Close()
			s.ms, s.pairs = nil, nil
			continue
		}
		if ok {
			e.SetSum(h)
			return s.dir, true
		}
	}
	return "", false
}

// close closes the manifests open for the join.
func (o *olders) close() {
	for _, s := range o.srcs {
		if s.ms != nil {
			s.ms.Close()
			s.ms = nil
		}
	}
}

// sameButHash is publish's pairing rule: a source file (its hash not yet
// known) and a record of an older snapshot pair when all but the hash
// match, and the record has a digest: publish writes version 2, so a file
// whose record (version 1) vouches for no SHA-256 is copied and hashed.
func sameButHash(want, have *manifest.Entry) bool {
	c := *want
	c.SetSum(have.Sum())
	return !have.Digest.IsZero() && c.SameContent(*have)
}

// forceLinkable is a forced republish's check before it links old, a file
// of a retained snapshot, for the source file src, listed as e with the
// hash of old's record: the source must still have that content, and old
// too, with its record's mode, size and mtime. A file of the snapshot
// damaged in place (same size and mtime) is thus copied afresh from the
// source rather than carried into the new snapshot.
func forceLinkable(f fsys.FS, src, old string, e manifest.Entry) (bool, error) {
	h, _, err := tree.HashFile(f, src, e.SumVersion())
	if err != nil {
		return false, fmt.Errorf("hash %s: %w", src, err)
	}
	if h != e.Sum() {
		return false, nil
	}
	fi, err := fsys.Lstat(f, old)
	if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm() != e.Mode || fi.Size() != e.Size || fi.ModTime().UnixNano() != e.MTime {
		return false, nil
	}
	h, size, err := tree.HashFile(f, old, e.SumVersion())
	return err == nil && tree.CheckHash(e, size, h) == nil, nil
}
