package snapshot_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

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
	// Listing and hashing left the snapshot's inodes as they were taken:
	// only what leaving out changed (the top, for seq/, and tmp) changed
	// after (the next publish reads those directories again).
	info, err := cow.Info(r.SnapshotDir(1))
	testutil.Must(t, err)
	after, err := cow.ChangedInodes(r.SnapshotDir(1), info.OTransid)
	testutil.Must(t, err)
	want := map[uint64]bool{testutil.Inode(t, r.SnapshotDir(1)): true, testutil.Inode(t, filepath.Join(r.SnapshotDir(1), "tmp")): true}
	if fmt.Sprint(after.Inodes) != fmt.Sprint(want) {
		t.Fatalf("inodes of snapshot 1 changed after it was taken: %v, want %v (the top and tmp)", after.Inodes, want)
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
	if !strings.Contains(log.String(), "listing only what changed since the served snapshot") {
		t.Fatalf("the 1%% publishes listed the whole snapshot:\n%s", log)
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
		{name: "ext4", fstype: "ext4", why: "the root is on ext4, not btrfs"},
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

// TestPublishCoWChanges: rounds of every kind of change, each published
// from the list of changed inodes (walkChanged) and verified whole against
// its manifest: edits (one with its mtime put back), chmod, mtime-only,
// renames of files and directories, a file made a directory and back,
// symlinks retargeted, hard links added and removed, deletions, and an
// exclude that comes and goes.
func TestPublishCoWChanges(t *testing.T) {
	r, src := cowSetup(t, 200)
	opt := fastOpts()
	opt.MaxDelete = 1
	log := &testutil.SyncBuffer{}
	opt.Log = slogTo(log)
	p := func(rel string) string { return filepath.Join(src, filepath.FromSlash(rel)) }
	rounds := []func(){
		func() {
			testutil.Touch(t, src, "d00/s00/f00000.dat", "edited")
			// A read under relatime moves the atime set old below (the
			// inode item changes, the ctime does not): listed fresh, but
			// not hashed.
			_, err := os.ReadFile(p("d01/s01/f00008.dat"))
			testutil.Must(t, err)
		},
		func() {
			testutil.CorruptInPlace(t, p("d01/s00/f00001.dat"))
			testutil.Must(t, os.Chmod(p("d02/s00/f00002.dat"), 0o600))
		},
		func() {
			old := time.Unix(1_500_000_000, 0)
			testutil.Must(t, os.Chtimes(p("d03/s00/f00003.dat"), old, old))
			testutil.Must(t, os.Rename(p("d04/s00/f00004.dat"), p("d04/s00/renamed.dat")))
			testutil.Must(t, os.Rename(p("d05/s01"), p("d05/moved")))
		},
		func() {
			testutil.Must(t, os.Remove(p("d06/s00/f00006.dat")))
			testutil.Must(t, os.Mkdir(p("d06/s00/f00006.dat"), 0o755))
			testutil.WriteTree(t, src, map[string]string{"d06/s00/f00006.dat/inside": "x", "ln": "->d00"})
		},
		func() {
			testutil.Must(t, os.RemoveAll(p("d06/s00/f00006.dat")))
			testutil.WriteTree(t, src, map[string]string{"d06/s00/f00006.dat": "a file again"})
			testutil.Must(t, os.Remove(p("ln")))
			testutil.Must(t, os.Symlink("d01", p("ln")))
			testutil.Must(t, os.Link(p("d00/s01/f00007.dat"), p("d00/hardlink")))
		},
		func() {
			testutil.Must(t, os.Remove(p("d00/s01/f00007.dat")))
			testutil.Must(t, os.RemoveAll(p("d02")))
			testutil.WriteTree(t, src, map[string]string{"tmp/x.tmp": "excluded", "tmp/y": "kept"})
		},
		func() { // an excluded file in a directory that does not change after
			testutil.WriteTree(t, src, map[string]string{"d08/s00/junk.tmp": "excluded"})
		},
		func() {
			testutil.Touch(t, src, "d00/s00/f00000.dat", "elsewhere")
		},
		func() { // two directories swap names: their files keep their inodes
			testutil.Must(t, os.Rename(p("d07/a"), p("d07/c")))
			testutil.Must(t, os.Rename(p("d07/b"), p("d07/a")))
			testutil.Must(t, os.Rename(p("d07/c"), p("d07/b")))
		},
		func() { // the exclude goes: tmp/x.tmp, unchanged, is listed now
			opt.Exclude = nil
			testutil.Must(t, os.Chmod(p("d01"), 0o700))
		},
	}
	x, err := snapshot.ParseExcludes([]string{"*.tmp"})
	testutil.Must(t, err)
	opt.Exclude = x
	fi, err := os.Stat(p("d01/s01/f00008.dat"))
	testutil.Must(t, err)
	testutil.Must(t, os.Chtimes(p("d01/s01/f00008.dat"), time.Unix(1_400_000_000, 0), fi.ModTime()))
	testutil.WriteTree(t, src, map[string]string{"d07/a/same": "A1", "d07/b/same": "B2", "d07/a/deep/x": "Ax", "d07/b/deep/x": "Bx"})
	mt := time.Unix(1_600_000_000, 0)
	for _, f := range []string{"d07/a/same", "d07/b/same", "d07/a/deep/x", "d07/b/deep/x"} {
		testutil.Must(t, os.Chtimes(p(f), mt, mt)) // the same size and mtime
	}
	publish(t, r, src, opt)
	for i, change := range rounds {
		change()
		res := publish(t, r, src, opt)
		if !res.Published || !res.CoW || (i == 0 && res.Copied != 1) {
			t.Fatalf("round %d: %+v", i, res)
		}
		// the edited file was hashed while listing, the one only read not
		if i == 0 && !strings.Contains(log.String(), `msg="hashed while listing" files=1`) {
			t.Fatalf("round 0: not hashed while listing:\n%s", log)
		}
		verifyCoW(t, r, res.Snapshot)
		if i > 0 && !regexp.MustCompile(`"hashed while listing" files=\d+ read=\d+ skimmed=[1-9]`).MatchString(testutil.LastLine(log.String(), "hashed while listing")) {
			t.Fatalf("round %d: no directory skimmed:\n%s", i, log)
		}
	}
	if n := strings.Count(log.String(), "listing only what changed"); n != len(rounds) {
		t.Fatalf("%d of %d publishes listed only what changed:\n%s", n, len(rounds), log)
	}
	m, err := r.ReadManifest(uint64(len(rounds) + 1))
	testutil.Must(t, err)
	found := false
	for _, e := range m.Entries {
		found = found || e.Path == "tmp/x.tmp"
	}
	if !found {
		t.Fatal("tmp/x.tmp not listed once the exclude went")
	}
}
