package mirror_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/seqmirror/seqmirror/internal/export"
	"github.com/seqmirror/seqmirror/internal/fsys"
	"github.com/seqmirror/seqmirror/internal/mirror"
	"github.com/seqmirror/seqmirror/internal/transport"
	"github.com/seqmirror/seqmirror/snapshot"
	"github.com/seqmirror/seqmirror/testutil"
)

// linkWorld is a source of 40 files, its publishing root, a mirror root
// keeping every snapshot, and the upstream's address (a directory, or an
// rsync daemon's module serving it).
type linkWorld struct {
	src      string
	up, mir  *export.Root
	addr     string
	upFiles  int
	keepOpts mirror.Options
}

func newLinkWorld(tb testing.TB, rsync bool) *linkWorld {
	tb.Helper()
	d := tb.TempDir()
	w := &linkWorld{
		src: filepath.Join(d, "src"),
		up:  export.New(fsys.OS(), filepath.Join(d, "up")),
		mir: export.New(fsys.OS(), filepath.Join(d, "mirror")),
	}
	w.upFiles = len(testutil.GenTree(tb, w.src, 40, 1))
	testutil.Must(tb, os.MkdirAll(w.up.Dir, 0o755))
	w.addr = w.up.Dir
	if rsync {
		w.addr = testutil.StartRsyncdServer(tb, map[string]string{"pub": w.up.Dir}).URL("pub")
	}
	w.keepOpts = mirror.DefaultOptions()
	w.keepOpts.Backoff, w.keepOpts.Workers, w.keepOpts.Keep, w.keepOpts.MinAge = time.Millisecond, 2, 100, time.Hour
	return w
}

// step publishes the source and syncs the mirror from it.
func (w *linkWorld) step(tb testing.TB) mirror.Result {
	tb.Helper()
	_, err := snapshot.Publish(context.Background(), w.up, w.src, snapshot.PublishOptions{Backoff: time.Millisecond, Workers: 2, Keep: 100, MaxDelete: 1})
	testutil.Must(tb, err)
	return w.sync(tb)
}

func (w *linkWorld) sync(tb testing.TB) mirror.Result {
	tb.Helper()
	u, err := transport.Open(w.addr, fsys.OS(), transport.Options{})
	testutil.Must(tb, err)
	defer u.Close()
	res, err := mirror.Sync(context.Background(), w.mir, u, w.keepOpts)
	testutil.Must(tb, err)
	return res
}

// A mirror whose current points at a torn snapshot (its manifest gone)
// rebuilds the upstream's new snapshot by linking from the newest retained
// complete one (or the next, if that one's manifest is bad), fetching only
// what differs from it; the upstream's snapshots 2, 3 and 4 each change one
// file (a, b, c).
func TestSyncTornLinksFromRetained(t *testing.T) {
	for _, tc := range []struct {
		name           string
		rsync          bool
		corruptBase    bool
		linked, fetchd int
	}{
		{name: "local", linked: 38, fetchd: 2},
		{name: "rsync", rsync: true, linked: 38, fetchd: 2},
		{name: "local, newest complete manifest corrupt", corruptBase: true, linked: 37, fetchd: 3},
		{name: "rsync, newest complete manifest corrupt", rsync: true, corruptBase: true, linked: 37, fetchd: 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newLinkWorld(t, tc.rsync)
			w.step(t)
			for i, rel := range []string{"d00/s00/f00000.dat", "d01/s00/f00001.dat"} {
				testutil.Touch(t, w.src, rel, "changed "+rel)
				if r := w.step(t); r.Snapshot != uint64(i+2) {
					t.Fatalf("sync: %+v", r)
				}
			}
			testutil.Must(t, os.Remove(w.mir.ManifestPath(3)))
			if tc.corruptBase {
				testutil.Must(t, os.WriteFile(w.mir.ManifestPath(2), []byte("seqmirror-manifest 1\nsnapshot 7\n"), 0o644))
			}
			testutil.Touch(t, w.src, "d02/s00/f00002.dat", "changed again")
			r := w.step(t)
			if r.Snapshot != 4 || r.Linked != tc.linked || r.Fetched != tc.fetchd {
				t.Errorf("sync over a torn current: %+v, want linked %d, fetched %d", r, tc.linked, tc.fetchd)
			}
			requireMirrors(t, w.up, w.mir, 4)
		})
	}
}

// Files moved away and back upstream are linked from the retained
// snapshot that has them, not fetched again; also when pass 2 streams the
// files to fetch in chunks (each chunk joined with the older manifest).
func TestSyncLinksMovedBack(t *testing.T) {
	for _, tc := range []struct {
		name     string
		rsync    bool
		streamed bool
	}{
		{name: "local"},
		{name: "rsync", rsync: true},
		{name: "local, streamed", streamed: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newLinkWorld(t, tc.rsync)
			if tc.streamed {
				w.keepOpts = w.keepOpts.WithLimits(2, 3)
			}
			w.step(t)
			testutil.Must(t, os.Rename(filepath.Join(w.src, "d01"), filepath.Join(w.src, "moved")))
			w.step(t)
			testutil.Must(t, os.Rename(filepath.Join(w.src, "moved"), filepath.Join(w.src, "d01")))
			r := w.step(t)
			if r.Snapshot != 3 || r.Fetched != 0 || r.Linked != w.upFiles {
				t.Errorf("sync of the moved-back tree: %+v, want fetched 0, linked %d", r, w.upFiles)
			}
			p := filepath.Join("d01", "s00", "f00001.dat")
			if !testutil.SameFile(t, filepath.Join(w.mir.SnapshotDir(1), p), filepath.Join(w.mir.SnapshotDir(3), p)) {
				t.Errorf("%s not linked from snapshot 1", p)
			}
			requireMirrors(t, w.up, w.mir, 3)
		})
	}
}

// Over a torn current, the delete guard counts against the base the build
// links from (before, it was skipped: nothing was served).
func TestSyncTornDeleteGuard(t *testing.T) {
	w := newLinkWorld(t, false)
	w.step(t)
	testutil.Touch(t, w.src, "d00/s00/f00000.dat", "changed")
	w.step(t)
	testutil.Must(t, os.Remove(w.mir.ManifestPath(2)))
	testutil.Must(t, os.RemoveAll(filepath.Join(w.src, "d01")))
	testutil.Must(t, os.RemoveAll(filepath.Join(w.src, "d02")))
	testutil.Must(t, os.RemoveAll(filepath.Join(w.src, "d03")))
	testutil.Must(t, os.RemoveAll(filepath.Join(w.src, "d04")))
	_, err := snapshot.Publish(context.Background(), w.up, w.src, snapshot.PublishOptions{Backoff: time.Millisecond, Workers: 2, Keep: 100, MaxDelete: 1})
	testutil.Must(t, err)
	u, err := transport.Open(w.addr, fsys.OS(), transport.Options{})
	testutil.Must(t, err)
	defer u.Close()
	if _, err := mirror.Sync(context.Background(), w.mir, u, w.keepOpts); !errors.Is(err, mirror.ErrTooManyDeletes) {
		t.Fatalf("sync deleting most of the base's files over a torn current: %v, want %v", err, mirror.ErrTooManyDeletes)
	}
}
