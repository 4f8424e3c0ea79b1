package snapshot_test

import (
	"context"
	"maps"
	"os"
	"path/filepath"
	"testing"

	"github.com/seqmirror/seqmirror/internal/export"
	"github.com/seqmirror/seqmirror/internal/tree"
	"github.com/seqmirror/seqmirror/manifest"
	"github.com/seqmirror/seqmirror/testutil"
)

// verifySnap verifies snapshot n of r.
func verifySnap(tb testing.TB, r *export.Root, n uint64) []tree.Problem {
	tb.Helper()
	probs, err := tree.Verify(context.Background(), r.FS, r.SnapshotDir(n), readManifest(tb, r, n), 2)
	testutil.Must(tb, err)
	return probs
}

// Files moved away and back are linked from the older snapshot that has
// them (under Force only if that file still hashes to its record); an older
// snapshot whose manifest is corrupt is no link source, and no error.
func TestPublishLinksFromOlder(t *testing.T) {
	for _, tc := range []struct {
		name            string
		force, corrupt  bool
		damage          bool
		linked, copied  int
		linkedFromFirst bool
	}{
		{name: "plain", linked: 40, linkedFromFirst: true},
		{name: "force", force: true, linked: 40, linkedFromFirst: true},
		{name: "force with damage", force: true, damage: true, linked: 39, copied: 1},
		{name: "corrupt older manifest", corrupt: true, linked: 34, copied: 6},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := filepath.Join(t.TempDir(), "src")
			testutil.GenTree(t, src, 40, 1)
			r := newRoot(t)
			publish(t, r, src, fastOpts())
			testutil.Must(t, os.Rename(filepath.Join(src, "d01"), filepath.Join(src, "moved")))
			publish(t, r, src, fastOpts())
			testutil.Must(t, os.Rename(filepath.Join(src, "moved"), filepath.Join(src, "d01")))
			p := filepath.Join("d01", "s00", "f00001.dat")
			if tc.damage {
				testutil.CorruptInPlace(t, filepath.Join(r.SnapshotDir(1), p))
			}
			if tc.corrupt {
				testutil.Must(t, os.WriteFile(r.ManifestPath(1), []byte("seqmirror-manifest 1\nsnapshot 7\n"), 0o644))
			}
			opt := fastOpts()
			opt.Force = tc.force
			res := publish(t, r, src, opt)
			if res.Snapshot != 3 || res.Linked != tc.linked || res.Copied != tc.copied {
				t.Errorf("publish: %+v, want linked %d, copied %d", res, tc.linked, tc.copied)
			}
			if got := testutil.SameFile(t, filepath.Join(r.SnapshotDir(1), p), filepath.Join(r.SnapshotDir(3), p)); got != tc.linkedFromFirst {
				t.Errorf("%s linked from snapshot 1: %v, want %v", p, got, tc.linkedFromFirst)
			}
			if probs := verifySnap(t, r, 3); len(probs) != 0 {
				t.Errorf("snapshot 3: %v", probs)
			}
		})
	}
}

// A Pairer joins successive batches against one pass over the stream.
func TestPairerBatches(t *testing.T) {
	rec := func(p string, h uint64) manifest.Entry {
		return manifest.Entry{Path: p, Type: manifest.File, Mode: 0o644, Size: 1, Hash: h}
	}
	stream := []manifest.Entry{rec("a", 1), rec("b", 2), rec("b/x", 3), rec("c", 4), rec("e", 5)}
	p := tree.NewPairer(&manifest.SliceIterator{Entries: stream}, func(w, h *manifest.Entry) bool { return w.SameContent(*h) })
	tests := []struct {
		name  string
		batch []manifest.Entry
		want  map[int]manifest.Sum
	}{
		{name: "first", batch: []manifest.Entry{rec("a", 1), rec("b", 9)}, want: map[int]manifest.Sum{0: {Hash: 1}}},
		{name: "second", batch: []manifest.Entry{rec("b/x", 3), rec("d", 4), rec("e", 5)}, want: map[int]manifest.Sum{0: {Hash: 3}, 2: {Hash: 5}}},
		{name: "past the end", batch: []manifest.Entry{rec("f", 6)}, want: map[int]manifest.Sum{}},
	}
	for _, tc := range tests {
		todo := make([]int, len(tc.batch))
		for i := range todo {
			todo[i] = i
		}
		got, err := p.Pair(tc.batch, todo)
		if err != nil || !maps.Equal(got, tc.want) {
			t.Errorf("%s: %v, %v; want %v", tc.name, got, err, tc.want)
		}
	}
	if err := p.Drain(); err != nil {
		t.Fatal(err)
	}
}
