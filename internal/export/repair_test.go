package export_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/seqmirror/seqmirror/internal/export"
	"github.com/seqmirror/seqmirror/internal/fsys"
	"github.com/seqmirror/seqmirror/internal/tree"
	"github.com/seqmirror/seqmirror/snapshot"
	"github.com/seqmirror/seqmirror/testutil"
	"github.com/seqmirror/seqmirror/testutil/faultfs"
)

// The repair tests damage snapshots that the publisher made, so that the
// damage is shared the way publish shares files (hard links between
// snapshots); publishRoot and publishSrc are their only use of snapshot.

// publishRoot returns a root, not yet made, in a temp dir.
func publishRoot(tb testing.TB) *export.Root {
	tb.Helper()
	return export.New(fsys.OS(), filepath.Join(tb.TempDir(), "root"))
}

// publishSrc publishes src into r as its next snapshot, unchanged files
// hard-linked from the served one.
func publishSrc(tb testing.TB, r *export.Root, src string) {
	tb.Helper()
	opt := snapshot.PublishOptions{Backoff: time.Millisecond, Workers: 2, Keep: 100}
	if _, err := snapshot.Publish(context.Background(), r, src, opt); err != nil {
		tb.Fatalf("Publish: %v", err)
	}
}

// verifySnap verifies snapshot n of r.
func verifySnap(tb testing.TB, r *export.Root, n uint64) []tree.Problem {
	tb.Helper()
	m, err := r.ReadManifest(n)
	testutil.Must(tb, err)
	probs, err := tree.Verify(context.Background(), r.FS, r.SnapshotDir(n), m, 2)
	testutil.Must(tb, err)
	return probs
}

// Repair replaces damaged files by rename (in a read-only directory too,
// whose mode it keeps), in the snapshot repaired and in an older one that
// holds the same damage by hard link or by the same bad content; it leaves
// an extra entry alone and says so.
func TestRepair(t *testing.T) {
	src := filepath.Join(t.TempDir(), "src")
	testutil.WriteTree(t, src, map[string]string{
		"linked.txt":       "shared by both snapshots",
		"copied.txt":       "the same damage, separate copies",
		"ro/deep.txt":      "in a read-only directory",
		"gone.txt":         "removed from snapshot 2",
		"changes-once.txt": "version one",
	})
	testutil.Must(t, os.Chmod(filepath.Join(src, "ro/deep.txt"), 0o444))
	testutil.Must(t, os.Chmod(filepath.Join(src, "ro"), 0o555))
	r := publishRoot(t)
	publishSrc(t, r, src)
	testutil.Touch(t, src, "changes-once.txt", "version two")
	publishSrc(t, r, src)
	s1, s2 := r.SnapshotDir(1), r.SnapshotDir(2)

	for _, p := range []string{"linked.txt", "copied.txt", "ro/deep.txt"} {
		testutil.CorruptInPlace(t, filepath.Join(s2, p))
	}
	// Snapshot 1's copied.txt: a separate inode with the same bad bytes.
	bad, err := os.ReadFile(filepath.Join(s2, "copied.txt"))
	testutil.Must(t, err)
	fi, err := os.Stat(filepath.Join(s1, "copied.txt"))
	testutil.Must(t, err)
	tmp := filepath.Join(t.TempDir(), "copy")
	testutil.Must(t, os.WriteFile(tmp, bad, fi.Mode().Perm()))
	testutil.Must(t, os.Chtimes(tmp, fi.ModTime(), fi.ModTime()))
	testutil.Must(t, os.Rename(tmp, filepath.Join(s1, "copied.txt")))
	testutil.Must(t, os.Remove(filepath.Join(s2, "gone.txt")))
	testutil.Must(t, os.WriteFile(filepath.Join(s2, "extra.txt"), []byte("not in the manifest"), 0o644))
	damagedLinked := testutil.Inode(t, filepath.Join(s2, "linked.txt"))

	probs := verifySnap(t, r, 2)
	if len(probs) != 5 {
		t.Fatalf("verify of the damage: %v", probs)
	}
	res, err := export.Repair(context.Background(), r, 2, probs, export.FromSource(r.FS, src))
	testutil.Must(t, err)
	var got []string
	for _, p := range res.Repaired {
		got = append(got, fmt.Sprintf("%d/%s", p.Snapshot, p.Path))
	}
	slices.Sort(got)
	want := []string{"1/copied.txt", "1/linked.txt", "1/ro/deep.txt", "2/copied.txt", "2/gone.txt", "2/linked.txt", "2/ro/deep.txt"}
	if !slices.Equal(got, want) {
		t.Errorf("repaired %v, want %v", got, want)
	}
	if len(res.Failed) != 1 || res.Failed[0].Path != "extra.txt" {
		t.Errorf("failed %+v, want extra.txt only", res.Failed)
	}
	if probs := verifySnap(t, r, 2); len(probs) != 1 || probs[0].Path != "extra.txt" {
		t.Errorf("snapshot 2 after the repair: %v", probs)
	}
	if probs := verifySnap(t, r, 1); len(probs) != 0 {
		t.Errorf("snapshot 1 after the repair: %v", probs)
	}
	for _, p := range []string{"linked.txt", "copied.txt", "ro/deep.txt"} {
		if !testutil.SameFile(t, filepath.Join(s1, p), filepath.Join(s2, p)) {
			t.Errorf("%s: the two snapshots do not share the repaired file", p)
		}
	}
	if testutil.Inode(t, filepath.Join(s2, "linked.txt")) == damagedLinked {
		t.Error("the damaged inode was written, not replaced")
	}
	if fi, err := os.Stat(filepath.Join(s2, "ro")); err != nil || fi.Mode().Perm() != 0o555 {
		t.Errorf("read-only directory after the repair: %v %v", fi.Mode(), err)
	}
	if ents, err := os.ReadDir(r.WorkDir()); err != nil || len(ents) != 0 {
		t.Errorf("work dir after the repair: %v %v", ents, err)
	}
}

// Repair does not take a source file whose content is not the record's.
func TestRepairSourceChanged(t *testing.T) {
	src := filepath.Join(t.TempDir(), "src")
	testutil.WriteTree(t, src, map[string]string{"a.txt": "the recorded content"})
	r := publishRoot(t)
	publishSrc(t, r, src)
	testutil.CorruptInPlace(t, filepath.Join(r.SnapshotDir(1), "a.txt"))
	testutil.Touch(t, src, "a.txt", "the recorded content, edited")
	res, err := export.Repair(context.Background(), r, 1, verifySnap(t, r, 1), export.FromSource(r.FS, src))
	testutil.Must(t, err)
	if len(res.Repaired) != 0 || len(res.Failed) != 1 || res.Failed[0].Path != "a.txt" {
		t.Fatalf("repair from a changed source: %+v", res)
	}
	if len(verifySnap(t, r, 1)) != 1 {
		t.Fatal("the damaged file was replaced")
	}
}

// Repair never renames through a directory that damage replaced by a
// symlink: what it points to stays untouched.
func TestRepairRefusesSymlinkedDir(t *testing.T) {
	src := filepath.Join(t.TempDir(), "src")
	testutil.WriteTree(t, src, map[string]string{"sub/x.txt": "recorded content"})
	r := publishRoot(t)
	publishSrc(t, r, src)
	outside := filepath.Join(t.TempDir(), "outside")
	testutil.Must(t, os.MkdirAll(outside, 0o755))
	testutil.Must(t, os.WriteFile(filepath.Join(outside, "x.txt"), []byte("not the snapshot's"), 0o644))
	sub := filepath.Join(r.SnapshotDir(1), "sub")
	testutil.Must(t, os.RemoveAll(sub))
	testutil.Must(t, os.Symlink(outside, sub))
	res, err := export.Repair(context.Background(), r, 1, verifySnap(t, r, 1), export.FromSource(r.FS, src))
	testutil.Must(t, err)
	if len(res.Repaired) != 0 || len(res.Failed) != 2 {
		t.Fatalf("repair through a symlinked directory: %+v", res)
	}
	if b, err := os.ReadFile(filepath.Join(outside, "x.txt")); err != nil || string(b) != "not the snapshot's" {
		t.Fatalf("the file outside the snapshot: %q %v", b, err)
	}
}

// damagedRoot publishes src twice (the snapshots share their unchanged
// files by hard link), damages two shared files in place, one of them in a
// read-only directory, and returns the root on f and the source.
func damagedRoot(tb testing.TB, f fsys.FS) (*export.Root, string) {
	tb.Helper()
	src := filepath.Join(tb.TempDir(), "src")
	testutil.WriteTree(tb, src, map[string]string{
		"a.txt":      "shared by both snapshots",
		"ro/b.txt":   "in a read-only directory",
		"change.txt": "version one",
	})
	testutil.Must(tb, os.Chmod(filepath.Join(src, "ro"), 0o555))
	r := publishRoot(tb)
	publishSrc(tb, r, src)
	testutil.Touch(tb, src, "change.txt", "version two")
	publishSrc(tb, r, src)
	for _, p := range []string{"a.txt", "ro/b.txt"} {
		testutil.CorruptInPlace(tb, filepath.Join(r.SnapshotDir(2), p))
	}
	return export.New(f, r.Dir), src
}

// A repair that fails at any write leaves every file of every snapshot
// whole (the good copy or the damaged one, never a mix) and every other
// file as it was, and a repair of each snapshot then makes all verify.
func TestRepairFaults(t *testing.T) {
	ffs := faultfs.New(fsys.OS())
	r, src := damagedRoot(t, ffs)
	ffs.FailAt(0, faultfs.Mutating, nil)
	if _, err := export.Repair(context.Background(), r, 2, verifySnap(t, r, 2), export.FromSource(r.FS, src)); err != nil {
		t.Fatal(err)
	}
	total := ffs.Count()
	t.Logf("%d writes in a repair", total)
	for k := 1; k <= total; k++ {
		r, src := damagedRoot(t, ffs)
		ffs.FailAt(k, faultfs.Mutating, syscall.EIO)
		_, err := export.Repair(context.Background(), r, 2, verifySnap(t, r, 2), export.FromSource(r.FS, src))
		ffs.Disarm()
		if err == nil && len(ffs.Injected()) > 0 && !slices.ContainsFunc(ffs.Injected(), func(e faultfs.Event) bool { return e.Op == faultfs.OpRemove }) {
			t.Errorf("fault %v: no error", ffs.Injected())
		}
		for _, n := range []uint64{2, 1} {
			for _, p := range verifySnap(t, r, n) {
				if !slices.Contains([]string{"a.txt", "ro/b.txt", "ro"}, p.Path) {
					t.Errorf("fault %v: snapshot %d: %v", ffs.Injected(), n, p)
				}
			}
		}
		for _, n := range []uint64{2, 1} {
			if _, err := export.Repair(context.Background(), r, n, verifySnap(t, r, n), export.FromSource(r.FS, src)); err != nil {
				t.Fatalf("fault %v: repair again: %v", ffs.Injected(), err)
			}
		}
		for _, n := range []uint64{2, 1} {
			if probs := verifySnap(t, r, n); len(probs) > 0 {
				t.Errorf("fault %v: snapshot %d after repairing again: %v", ffs.Injected(), n, probs)
			}
		}
	}
}
