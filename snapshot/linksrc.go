package snapshot

import (
	"fmt"
	"log/slog"

	"github.com/seqmirror/seqmirror/internal/export"
	"github.com/seqmirror/seqmirror/internal/fsys"
	"github.com/seqmirror/seqmirror/internal/tree"
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
		found, err := pairWith(root, m, entries, cands, sameButHash)
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
			entries[i].SetSum(h)
			linkable[i], older[i] = true, dir
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

// sameButHash is publish's pairing rule: a source file (its hash not yet
// known) and a record of an older snapshot pair when all but the hash
// match, and the record has a digest: publish writes version 2, so a file
// whose record (version 1) vouches for no SHA-256 is copied and hashed.
func sameButHash(want, have *manifest.Entry) bool {
	c := *want
	c.SetSum(have.Sum())
	return !have.Digest.IsZero() && c.SameContent(*have)
}

// pairWith streams snapshot m's manifest of root (whole, and checks it, so
// that nothing of a corrupt one is used) against the entries at the
// indexes todo (in canonical order of their paths) and returns, for each
// entry for which same(entry, record of the same path) holds, the index and
// the record's hash. Memory grows with the pairs, not with the manifest.
// Publish pairs by sameButHash; a mirror, which knows the hash, pairs by
// manifest.Entry.SameContent with the same tree.Pairer, over chunks.
func pairWith(root *export.Root, m uint64, entries []manifest.Entry, todo []int, same func(want, have *manifest.Entry) bool) (map[int]manifest.Sum, error) {
	ms, err := root.OpenManifest(m)
	if err != nil {
		return nil, err
	}
	defer ms.Close()
	p := tree.NewPairer(ms, same)
	found, err := p.Pair(entries, todo)
	if err == nil {
		err = p.Drain()
	}
	if err == nil {
		err = ms.Finish()
	}
	if err != nil {
		return nil, err
	}
	return found, nil
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
