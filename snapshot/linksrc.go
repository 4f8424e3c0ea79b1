package snapshot

import (
	"fmt"
	"io"
	"log/slog"

	"github.com/seqmirror/seqmirror/export"
	"github.com/seqmirror/seqmirror/fsys"
	"github.com/seqmirror/seqmirror/manifest"
)

// copyCostPerFile is what pairOlder counts for each file to copy besides
// its bytes (creating an inode, opening, flushing), in bytes of manifest
// it is worth reading to avoid it.
const copyCostPerFile = 4 << 10

// pairOlder pairs the regular files that the served snapshot cur could not
// link (linkable false) with the other retained complete snapshots, newest
// first, by the pairer's rule (same path, type, mode, size and mtime: what
// publish trusts to link from the served snapshot, which holds for every
// complete snapshot as they are all immutable and verified alike), so that
// a file moved back or restored is linked, not copied. It sets their hash
// and linkable, and returns the snapshot directory to link each from.
//
// Each older snapshot costs a pass over its manifest, so it is read only
// for candidates that it can hold, files whose mtime is not after its
// manifest was written (a file edited since cannot be in it), and only
// while their copy would outweigh the pass (bytes, plus copyCostPerFile a
// file): a tree where files were only edited or added never pays for it.
// An older snapshot whose manifest cannot be read is skipped with a
// warning: it is only a link source.
func pairOlder(root *export.Root, cur uint64, entries []manifest.Entry, linkable []bool, log *slog.Logger) map[int]string {
	var todo []int
	for i := range entries {
		if entries[i].Type == manifest.File && !linkable[i] {
			todo = append(todo, i)
		}
	}
	if len(todo) == 0 {
		return nil
	}
	snaps, err := root.Snapshots()
	if err != nil {
		log.Warn("not linking from older snapshots", "err", err)
		return nil
	}
	older := map[int]string{}
	for k := len(snaps) - 1; k >= 0 && len(todo) > 0; k-- {
		m := snaps[k]
		cands := candidates(root, m, entries, todo)
		if m == cur || cands == nil {
			continue
		}
		found, err := pairWith(root, m, entries, cands)
		if err != nil {
			log.Warn("not linking from snapshot", "snapshot", m, "err", err)
			continue
		}
		dir := root.SnapshotDir(m)
		rest := todo[:0]
		for _, i := range todo {
			h, ok := found[i]
			if !ok {
				rest = append(rest, i)
				continue
			}
			entries[i].Hash, linkable[i], older[i] = h, true, dir
		}
		todo = rest
	}
	return older
}

// candidates returns the entries of todo that snapshot m may hold (mtime
// not after its manifest's), or nil if there are none or their copy costs
// less than reading its manifest.
func candidates(root *export.Root, m uint64, entries []manifest.Entry, todo []int) []int {
	fi, err := root.FS.Stat(root.ManifestPath(m))
	if err != nil {
		return nil
	}
	made := fi.ModTime().UnixNano()
	var cands []int
	var cost int64
	for _, i := range todo {
		if entries[i].MTime <= made {
			cands = append(cands, i)
			cost += entries[i].Size + copyCostPerFile
		}
	}
	if cost < fi.Size() {
		return nil
	}
	return cands
}

// pairWith streams snapshot m's manifest (whole, so that a corrupt one is
// not used at all) against the entries at the indexes todo (canonical
// order) and returns the recorded hash of each that it pairs.
func pairWith(root *export.Root, m uint64, entries []manifest.Entry, todo []int) (map[int]uint64, error) {
	ms, err := root.OpenManifest(m)
	if err != nil {
		return nil, err
	}
	defer ms.Close()
	found := map[int]uint64{}
	j := 0
	for {
		r, err := ms.Next()
		if err == io.EOF {
			return found, ms.Finish()
		}
		if err != nil {
			return nil, err
		}
		for j < len(todo) && manifest.Compare(entries[todo[j]].Path, r.Path) < 0 {
			j++
		}
		if j == len(todo) || entries[todo[j]].Path != r.Path {
			continue
		}
		c := entries[todo[j]]
		c.Hash = r.Hash
		if c.SameContent(r) {
			found[todo[j]] = r.Hash
		}
		j++
	}
}

// forceLinkable is a forced republish's check before it links old, a file
// of a retained snapshot, for the source file src, listed as e with the
// hash of old's record: the source must still have that content, and old
// too, with its record's mode, size and mtime. A file of the snapshot
// damaged in place (same size and mtime) is thus copied afresh from the
// source rather than carried into the new snapshot.
func forceLinkable(f fsys.FS, src, old string, e manifest.Entry) (bool, error) {
	h, _, err := HashFile(f, src)
	if err != nil {
		return false, fmt.Errorf("hash %s: %w", src, err)
	}
	if h != e.Hash {
		return false, nil
	}
	fi, err := fsys.Lstat(f, old)
	if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm() != e.Mode || fi.Size() != e.Size || fi.ModTime().UnixNano() != e.MTime {
		return false, nil
	}
	h, size, err := HashFile(f, old)
	return err == nil && size == e.Size && h == e.Hash, nil
}
