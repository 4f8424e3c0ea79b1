package snapshot_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/seqmirror/seqmirror/internal/cow"
	"github.com/seqmirror/seqmirror/internal/export"
	"github.com/seqmirror/seqmirror/internal/fsys"
	"github.com/seqmirror/seqmirror/internal/tree"
	"github.com/seqmirror/seqmirror/snapshot"
	"github.com/seqmirror/seqmirror/testutil"
)

// cowSetup mounts a btrfs and makes a source subvolume of n files on it,
// and a root beside it.
func cowSetup(tb testing.TB, n int) (root *export.Root, src string) {
	tb.Helper()
	mnt := testutil.MountLoop(tb, "btrfs", testutil.LoopSize)
	src = filepath.Join(mnt, "src")
	testutil.Must(tb, cow.CreateSubvolume(src))
	testutil.GenTree(tb, src, n, 1)
	return export.New(fsys.OS(), filepath.Join(mnt, "root")), src
}

// verifyCoW checks snapshot n of r against its manifest and that it is a
// read-only subvolume.
func verifyCoW(tb testing.TB, r *export.Root, n uint64) {
	tb.Helper()
	m, err := r.ReadManifest(n)
	testutil.Must(tb, err)
	probs, err := tree.Verify(context.Background(), r.FS, r.SnapshotDir(n), m, 2)
	testutil.Must(tb, err)
	if len(probs) > 0 {
		tb.Fatalf("snapshot %d: %v", n, probs)
	}
	if sub, err := cow.IsSubvolume(r.SnapshotDir(n)); err != nil || !sub {
		tb.Fatalf("snapshot %d is no subvolume (%v)", n, err)
	}
	if ro, err := cow.ReadOnly(r.SnapshotDir(n)); err != nil || !ro {
		tb.Fatalf("snapshot %d is not read-only (%v)", n, err)
	}
}

// TestPublishCoW: a btrfs subvolume source is published by snapshots of
// it; a 1% change hashes only what changed; deletions, excludes and seq/
// are left out; an edit with its mtime put back is hashed when anything
// else changed; prune deletes the subvolumes.
func TestPublishCoW(t *testing.T) {
	r, src := cowSetup(t, 300)
	testutil.WriteTree(t, src, map[string]string{"tmp/x.tmp": "skip me", "seq/begin": "7\n", "seq/end": "7\n"})
	x, err := snapshot.ParseExcludes([]string{"*.tmp"})
	testutil.Must(t, err)
	opt := fastOpts()
	opt.Keep, opt.Exclude = 2, x
	log := &testutil.SyncBuffer{}
	opt.Log = slogTo(log)

	res := publish(t, r, src, opt)
	if !res.CoW || res.Snapshot != 1 || res.Copied != 300 {
		t.Fatalf("first publish: %+v\n%s", res, log)
	}
	verifyCoW(t, r, 1)
	for _, p := range []string{"tmp/x.tmp", "seq"} {
		if _, err := os.Lstat(filepath.Join(r.SnapshotDir(1), p)); !os.IsNotExist(err) {
			t.Fatalf("%s is in the snapshot: %v", p, err)
		}
	}

	// 1%: 3 edited, 2 deleted, 1 added.
	for i := range 3 {
		testutil.Touch(t, src, fmt.Sprintf("d%02d/s%02d/f%05d.dat", i%7, (i/7)%5, i), "new")
	}
	testutil.Must(t, os.Remove(filepath.Join(src, "d03/s00/f00003.dat")))
	testutil.Must(t, os.Remove(filepath.Join(src, "d04/s00/f00004.dat")))
	testutil.Touch(t, src, "added/file", "added")
	res = publish(t, r, src, opt)
	if !res.CoW || res.Snapshot != 2 || res.Copied != 4 || res.Linked != 295 || res.Deleted != 2 {
		t.Fatalf("1%% publish: %+v", res)
	}
	verifyCoW(t, r, 1)
	verifyCoW(t, r, 2)

	// An edit of the same size with its mtime put back, beside a change.
	sneaky := filepath.Join(src, "d05/s00/f00005.dat")
	fi, err := os.Stat(sneaky)
	testutil.Must(t, err)
	b, _ := os.ReadFile(sneaky)
	b[0] ^= 0xff
	testutil.Must(t, os.WriteFile(sneaky, b, 0o644))
	testutil.Must(t, os.Chtimes(sneaky, fi.ModTime(), fi.ModTime()))
	testutil.Touch(t, src, "added/file", "again")
	res = publish(t, r, src, opt)
	if res.Snapshot != 3 || res.Copied != 2 {
		t.Fatalf("publish after a sneaky edit: %+v", res)
	}
	verifyCoW(t, r, 3)
	if res.Pruned == nil || res.Pruned[0] != 1 {
		t.Fatalf("pruned %v, want snapshot 1", res.Pruned)
	}
	list := testutil.Btrfs(t, "subvolume", "list", "-o", src+"/..")
	if strings.Contains(list, "snapshots/1\n") || !strings.Contains(list, "snapshots/3") || strings.Contains(list, ".work") {
		t.Fatalf("subvolumes after prune:\n%s", list)
	}
	if !strings.Contains(log.String(), "publishing copy-on-write") {
		t.Fatalf("no word of the path taken at debug level:\n%s", log)
	}
}

// TestPublishCoWFallback: where the copy-on-write path cannot be taken,
// publish takes the hard links as before and says why at debug level.
func TestPublishCoWFallback(t *testing.T) {
	for _, tc := range []struct {
		name, fstype string
		subvol       bool
		why          string
	}{
		{name: "plain dir on btrfs", fstype: "btrfs", why: "not a btrfs subvolume"},
		{name: "ext4", fstype: "ext4", why: "the root is on other, not btrfs"},
		{name: "xfs", fstype: "xfs", why: "the root is on xfs, not btrfs"},
		{name: "nested subvolume", fstype: "btrfs", subvol: true, why: "holds other subvolumes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mnt := testutil.MountLoop(t, tc.fstype, testutil.LoopSize)
			src := filepath.Join(mnt, "src")
			if tc.subvol {
				testutil.Must(t, cow.CreateSubvolume(src))
				testutil.Must(t, cow.CreateSubvolume(src+"/inner"))
			}
			testutil.GenTree(t, src, 20, 2)
			r := export.New(fsys.OS(), filepath.Join(mnt, "root"))
			opt := fastOpts()
			log := &testutil.SyncBuffer{}
			opt.Log = slogTo(log)
			res := publish(t, r, src, opt)
			if res.CoW || !strings.Contains(log.String(), tc.why) {
				t.Fatalf("%+v\n%s", res, log)
			}
			testutil.Touch(t, src, "d00/s00/f00000.dat", "x")
			if res = publish(t, r, src, opt); res.CoW || res.Linked != 19 {
				t.Fatalf("second publish: %+v", res)
			}
		})
	}
}

// slogTo logs at debug level to w.
func slogTo(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
