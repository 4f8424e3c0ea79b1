package mirror_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/seqmirror/seqmirror/internal/cow"
	"github.com/seqmirror/seqmirror/internal/export"
	"github.com/seqmirror/seqmirror/internal/fsys"
	"github.com/seqmirror/seqmirror/internal/tree"
	"github.com/seqmirror/seqmirror/snapshot"
	"github.com/seqmirror/seqmirror/testutil"
	"golang.org/x/sys/unix"
)

// cowWorld is a world on loop-mounted btrfs filesystems: the source a
// subvolume, the upstream beside it, the mirror on a filesystem of its
// own (where it cannot clone the upstream's snapshots: clone_test.go).
func cowWorld(tb testing.TB, n int) *world {
	tb.Helper()
	d := testutil.MountLoop(tb, "btrfs", testutil.LoopSize)
	m := testutil.MountLoop(tb, "btrfs", testutil.LoopSize)
	w := &world{
		src: filepath.Join(d, "src"),
		up:  export.New(fsys.OS(), filepath.Join(d, "up")),
		mir: export.New(fsys.OS(), filepath.Join(m, "mirror")),
	}
	testutil.Must(tb, cow.CreateSubvolume(w.src))
	testutil.GenTree(tb, w.src, n, 3)
	return w
}

// checkCoW verifies snapshot n of r against its manifest and checks that
// it is a read-only subvolume.
func checkCoW(tb testing.TB, r *export.Root, n uint64) {
	tb.Helper()
	m, err := r.ReadManifest(n)
	testutil.Must(tb, err)
	probs, err := tree.Verify(context.Background(), r.FS, r.SnapshotDir(n), m, 2)
	testutil.Must(tb, err)
	if len(probs) > 0 {
		tb.Fatalf("%s snapshot %d: %v", r.Dir, n, probs)
	}
	if ro, err := cow.ReadOnly(r.SnapshotDir(n)); err != nil || !ro {
		tb.Fatalf("%s snapshot %d is not a read-only subvolume (%v)", r.Dir, n, err)
	}
}

// TestSyncCoW: on btrfs a mirror's first copy is a new subvolume and each
// later one a snapshot of the served one with the diff applied (edits,
// deletions, type changes, directory modes, symlinks), verified, read-only;
// prune deletes the subvolumes.
func TestSyncCoW(t *testing.T) {
	w := cowWorld(t, 300)
	testutil.WriteTree(t, w.src, map[string]string{"gone/a": "a", "gone/sub/b": "b", "kind": "file", "kind2/x": "x", "ln": "->d00"})
	pub := snapshot.PublishOptions{Backoff: time.Millisecond, Workers: 2, Keep: 100, MaxDelete: 1}
	publishCoW := func() uint64 {
		res, err := snapshot.Publish(context.Background(), w.up, w.src, pub)
		testutil.Must(t, err)
		if !res.CoW {
			t.Fatalf("publish took the hard links: %+v", res)
		}
		return res.Snapshot
	}
	publishCoW()
	opt := opts()
	opt.Keep = 2
	log := &testutil.SyncBuffer{}
	opt.Log = debugLog(log)
	res, err := w.sync(t, opt)
	testutil.Must(t, err)
	checkCoW(t, w.mir, 1)
	if res.Fetched != 304 {
		t.Fatalf("first copy: %+v", res)
	}

	for i := range 3 {
		testutil.Touch(t, w.src, fmt.Sprintf("d%02d/s%02d/f%05d.dat", i%7, (i/7)%5, i), "edited")
	}
	testutil.Must(t, os.RemoveAll(filepath.Join(w.src, "gone")))
	testutil.Must(t, os.Remove(filepath.Join(w.src, "kind")))
	testutil.WriteTree(t, w.src, map[string]string{"kind/now-a-dir": "y", "new/deep/file": "new"})
	testutil.Must(t, os.RemoveAll(filepath.Join(w.src, "kind2")))
	testutil.WriteTree(t, w.src, map[string]string{"kind2": "now a file"})
	testutil.Must(t, os.Remove(filepath.Join(w.src, "ln")))
	testutil.Must(t, os.Symlink("d01", filepath.Join(w.src, "ln")))
	testutil.Must(t, os.Chmod(filepath.Join(w.src, "d02"), 0o750))
	publishCoW()
	res, err = w.sync(t, opt)
	testutil.Must(t, err)
	checkCoW(t, w.mir, 1)
	checkCoW(t, w.mir, 2)
	if res.Fetched != 6 || res.Linked != 297 {
		t.Fatalf("1%% sync: %+v\n%s", res, log)
	}
	if !strings.Contains(log.String(), "syncing copy-on-write") || !strings.Contains(log.String(), "cannot be cloned") {
		t.Fatalf("no word of the path taken:\n%s", log)
	}

	testutil.Touch(t, w.src, "new/deep/file", "again")
	publishCoW()
	res, err = w.sync(t, opt)
	testutil.Must(t, err)
	checkCoW(t, w.mir, 3)
	if len(res.Pruned) != 1 || res.Pruned[0] != 1 {
		t.Fatalf("pruned %v", res.Pruned)
	}
	list := testutil.Btrfs(t, "subvolume", "list", "-o", filepath.Dir(w.mir.Dir))
	if strings.Contains(list, "mirror/snapshots/1\n") || !strings.Contains(list, "mirror/snapshots/3") || strings.Contains(list, ".work") {
		t.Fatalf("subvolumes after prune:\n%s", list)
	}
}

// TestSyncCoWFallback: a mirror root on XFS or ext4 links as before.
func TestSyncCoWFallback(t *testing.T) {
	for _, fstype := range []string{"xfs", "ext4"} {
		t.Run(fstype, func(t *testing.T) {
			d := testutil.MountLoop(t, fstype, testutil.LoopSize)
			w := newWorld(t, map[string]string{"a": "a", "b/c": "c"})
			w.mir = export.New(fsys.OS(), filepath.Join(d, "mirror"))
			w.publish(t)
			opt := opts()
			log := &testutil.SyncBuffer{}
			opt.Log = debugLog(log)
			_, err := w.sync(t, opt)
			testutil.Must(t, err)
			testutil.Touch(t, w.src, "a", "A")
			w.publish(t)
			res, err := w.sync(t, opt)
			testutil.Must(t, err)
			if res.Linked != 1 || !strings.Contains(log.String(), "not btrfs") {
				t.Fatalf("%+v\n%s", res, log)
			}
		})
	}
}

// debugLog logs at debug level to w.
func debugLog(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// TestReflinkXFS: on XFS (no snapshots) publish's copies from a source on
// the same filesystem and mirror-sync's fetches from a local upstream are
// reflinks: three trees of 32 MiB take the space of one; each verifies.
func TestReflinkXFS(t *testing.T) {
	d := testutil.MountLoop(t, "xfs", testutil.LoopSize)
	w := &world{
		src: filepath.Join(d, "src"),
		up:  export.New(fsys.OS(), filepath.Join(d, "up")),
		mir: export.New(fsys.OS(), filepath.Join(d, "mirror")),
	}
	big := strings.Repeat("0123456789abcdef", 1<<20) // 16 MiB
	testutil.WriteTree(t, w.src, map[string]string{"big1": big, "dir/big2": big + "x", "small": "s"})
	unix.Sync()
	before := freeBytes(t, d)
	w.publish(t)
	res, err := w.sync(t, opts())
	testutil.Must(t, err)
	unix.Sync()
	if used := before - freeBytes(t, d); used > 8<<20 {
		t.Fatalf("publish and mirror-sync took %d bytes for 32 MiB of files: not reflinks", used)
	}
	if res.Fetched != 3 {
		t.Fatalf("%+v", res)
	}
	for _, r := range []*export.Root{w.up, w.mir} {
		m, err := r.ReadManifest(1)
		testutil.Must(t, err)
		probs, err := tree.Verify(context.Background(), r.FS, r.SnapshotDir(1), m, 2)
		testutil.Must(t, err)
		if len(probs) > 0 {
			t.Fatalf("%s: %v", r.Dir, probs)
		}
	}
}

func freeBytes(tb testing.TB, dir string) int64 {
	var st unix.Statfs_t
	testutil.Must(tb, unix.Statfs(dir, &st))
	return int64(st.Bfree) * st.Bsize
}

// TestSyncCoWConvert: a mirror root on btrfs whose served snapshot is a
// plain directory (made by the hard-link farm) syncs the next snapshot
// into a new subvolume, its unchanged files reflinked, and the one after
// by a snapshot of that.
func TestSyncCoWConvert(t *testing.T) {
	w := cowWorld(t, 50)
	w.publish(t)
	opt := opts()
	_, err := w.sync(t, opt)
	testutil.Must(t, err)
	// Make the mirror's snapshot 1 a plain directory, as the farm leaves it.
	s1 := w.mir.SnapshotDir(1)
	plain := filepath.Join(filepath.Dir(w.mir.Dir), "plain")
	if out, err := exec.Command("cp", "-a", s1, plain).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	testutil.Must(t, cow.Delete(s1))
	testutil.Must(t, os.Rename(plain, s1))
	if sub, _ := cow.IsSubvolume(s1); sub {
		t.Fatal("snapshot 1 still a subvolume")
	}
	log := &testutil.SyncBuffer{}
	opt.Log = debugLog(log)
	testutil.Touch(t, w.src, "d00/s00/f00000.dat", "changed")
	w.publish(t)
	res, err := w.sync(t, opt)
	testutil.Must(t, err)
	checkCoW(t, w.mir, 2)
	if res.Linked != 49 || res.Fetched != 1 || !strings.Contains(log.String(), "syncing into a new subvolume") {
		t.Fatalf("%+v\n%s", res, log)
	}
	testutil.Touch(t, w.src, "d01/s00/f00001.dat", "changed")
	w.publish(t)
	res, err = w.sync(t, opt)
	testutil.Must(t, err)
	checkCoW(t, w.mir, 3)
	if res.Linked != 49 || !strings.Contains(log.String(), "syncing copy-on-write") {
		t.Fatalf("%+v\n%s", res, log)
	}
}
