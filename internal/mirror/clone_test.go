package mirror_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/seqmirror/seqmirror/internal/cow"
	"github.com/seqmirror/seqmirror/internal/export"
	"github.com/seqmirror/seqmirror/internal/fsys"
	"github.com/seqmirror/seqmirror/testutil"
)

// cloneWorld is a cowWorld whose mirror is on the upstream's filesystem.
func cloneWorld(tb testing.TB, n int) *world {
	tb.Helper()
	w := cowWorld(tb, n)
	w.mir = export.New(fsys.OS(), filepath.Join(filepath.Dir(w.src), "mirror"))
	return w
}

// sameManifest fails unless the mirror's manifest of n is the upstream's.
func sameManifests(tb testing.TB, w *world, n uint64) {
	tb.Helper()
	a, err := os.ReadFile(w.up.ManifestPath(n))
	testutil.Must(tb, err)
	b, err := os.ReadFile(w.mir.ManifestPath(n))
	testutil.Must(tb, err)
	if string(a) != string(b) {
		tb.Fatalf("manifests of snapshot %d differ", n)
	}
}

// TestSyncClone: a mirror on the upstream's btrfs takes snapshots of the
// upstream's snapshots: the first checked whole, each later one from what
// changed since the served one (edits, a sneaky edit with its mtime put
// back, deletions, new directories, two directories swapping names, a
// chmod), every one verified against its manifest, nothing fetched.
func TestSyncClone(t *testing.T) {
	w := cloneWorld(t, 200)
	testutil.WriteTree(t, w.src, map[string]string{"sw/a/same": "A1", "sw/b/same": "B2"})
	mt := time.Unix(1_600_000_000, 0)
	for _, f := range []string{"sw/a/same", "sw/b/same"} {
		testutil.Must(t, os.Chtimes(filepath.Join(w.src, f), mt, mt))
	}
	p := func(rel string) string { return filepath.Join(w.src, filepath.FromSlash(rel)) }
	opt := opts()
	log := &testutil.SyncBuffer{}
	opt.Log = debugLog(log)
	rounds := []func(){
		func() {},
		func() {
			testutil.Touch(t, w.src, "d00/s00/f00000.dat", "edited")
			testutil.Must(t, os.Remove(p("d01/s00/f00001.dat")))
			testutil.WriteTree(t, w.src, map[string]string{"new/deep/file": "new"})
		},
		func() {
			testutil.CorruptInPlace(t, p("d02/s00/f00002.dat"))
			testutil.Must(t, os.Chmod(p("d03"), 0o750))
		},
		func() {
			testutil.Must(t, os.Rename(p("sw/a"), p("sw/c")))
			testutil.Must(t, os.Rename(p("sw/b"), p("sw/a")))
			testutil.Must(t, os.Rename(p("sw/c"), p("sw/b")))
		},
	}
	for i, change := range rounds {
		change()
		n := w.publish(t)
		res, err := w.sync(t, opt)
		testutil.Must(t, err)
		checkCoW(t, w.mir, n)
		sameManifests(t, w, n)
		want := `checked=whole`
		if i > 0 {
			want = `checked="`
		}
		line := testutil.LastLine(log.String(), "cloned the upstream's snapshot")
		if res.Snapshot != n || res.Fetched != 0 || !strings.Contains(line, want) {
			t.Fatalf("round %d: %+v, want %s:\n%s", i, res, want, log)
		}
	}
	info, err := cow.Info(w.mir.SnapshotDir(4))
	testutil.Must(t, err)
	up, err := cow.Info(w.up.SnapshotDir(4))
	testutil.Must(t, err)
	if info.ParentUUID != up.UUID {
		t.Fatal("snapshot 4 is not a snapshot of the upstream's")
	}
}

// TestSyncCloneDiffers: a clone that is not what the upstream's manifest
// lists is dropped, and the build copies as it would have: a file added
// to the upstream's snapshot after publish is not copied, and one edited
// there (its size and mtime kept) but listed as unchanged is taken from
// the served snapshot: the mirror serves what the manifest lists.
func TestSyncCloneDiffers(t *testing.T) {
	for _, tc := range []struct {
		name   string
		tamper func(t *testing.T, dir string)
	}{
		{name: "file added", tamper: func(t *testing.T, dir string) {
			testutil.WriteTree(t, dir, map[string]string{"d00/planted": "x"})
		}},
		{name: "file edited", tamper: func(t *testing.T, dir string) {
			f := filepath.Join(dir, "d01/s00/f00001.dat")
			testutil.CorruptInPlace(t, f)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := cloneWorld(t, 50)
			w.publish(t)
			opt := opts()
			log := &testutil.SyncBuffer{}
			opt.Log = debugLog(log)
			_, err := w.sync(t, opt)
			testutil.Must(t, err)
			testutil.Touch(t, w.src, "d00/s00/f00000.dat", "edited")
			n := w.publish(t)
			dir := w.up.SnapshotDir(n)
			testutil.Must(t, cow.SetReadOnly(dir, false))
			tc.tamper(t, dir)
			testutil.Must(t, cow.SetReadOnly(dir, true))
			res, err := w.sync(t, opt)
			if !strings.Contains(log.String(), "copying instead of cloning") {
				t.Fatalf("clone not dropped: %+v %v\n%s", res, err, log)
			}
			testutil.Must(t, err)
			checkCoW(t, w.mir, n)
			if res.Fetched != 1 {
				t.Fatalf("%+v", res)
			}
		})
	}
}
