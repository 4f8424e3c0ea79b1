package export_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/seqmirror/seqmirror/internal/cow"
	"github.com/seqmirror/seqmirror/internal/export"
	"github.com/seqmirror/seqmirror/internal/fsys"
	"github.com/seqmirror/seqmirror/testutil"
)

// TestUpdateSubvolumes: on btrfs, Begin's cleanup deletes an orphan
// snapshot subvolume and the work subvolumes a killed run left (read-only
// ones too), and an Install that only flips to a complete snapshot a crash
// left writable makes it read-only first.
func TestUpdateSubvolumes(t *testing.T) {
	mnt := testutil.MountLoop(t, "btrfs", testutil.LoopSize)
	dir := filepath.Join(mnt, "root")
	testutil.SnapshotRoot(t, dir, 1, map[string]string{"a": "one"})
	testutil.SnapshotRoot(t, dir, 2, map[string]string{"a": "two"})
	r := export.New(fsys.OS(), dir)
	// snapshots/1 as a crash between its rename and its read-only flag leaves it.
	sub := filepath.Join(mnt, "sub")
	testutil.Must(t, cow.CreateSubvolume(sub))
	if out, err := exec.Command("cp", "-a", r.SnapshotDir(1)+"/.", sub).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	testutil.Must(t, os.RemoveAll(r.SnapshotDir(1)))
	testutil.Must(t, os.Rename(sub, r.SnapshotDir(1)))
	// What killed runs left: an orphan read-only snapshot, work subvolumes.
	testutil.Must(t, cow.Snapshot(r.SnapshotDir(1), r.SnapshotDir(3), true))
	testutil.Must(t, cow.Snapshot(r.SnapshotDir(1), filepath.Join(r.WorkDir(), "4"), false))
	testutil.Must(t, cow.Snapshot(r.SnapshotDir(1), filepath.Join(r.WorkDir(), "source"), true))

	u, err := r.Begin(context.Background(), export.UpdateOptions{Keep: 5})
	testutil.Must(t, err)
	for _, p := range []string{r.SnapshotDir(3), filepath.Join(r.WorkDir(), "4"), filepath.Join(r.WorkDir(), "source")} {
		if _, err := os.Lstat(p); !os.IsNotExist(err) {
			t.Errorf("%s left by Begin: %v", p, err)
		}
	}
	if ro, _ := cow.ReadOnly(r.SnapshotDir(1)); ro {
		t.Fatal("snapshot 1 read-only before the test's install")
	}
	testutil.Must(t, u.Install(context.Background(), export.Built{N: 1}))
	_, err = u.Done(nil)
	testutil.Must(t, err)
	if ro, err := cow.ReadOnly(r.SnapshotDir(1)); err != nil || !ro {
		t.Fatalf("snapshot 1 served but not read-only (%v)", err)
	}
	if cur, _ := r.Current(); cur != 1 {
		t.Fatalf("current %d, want 1", cur)
	}
}
