package snapshot

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/seqmirror/seqmirror/internal/fsys"
	"github.com/seqmirror/seqmirror/internal/retry"
	"github.com/seqmirror/seqmirror/internal/tree"
	"github.com/seqmirror/seqmirror/manifest"
	"github.com/seqmirror/seqmirror/testutil"
	"golang.org/x/sys/unix"
)

// watchTree lists dir with a changeWatch and returns both.
func watchTree(tb testing.TB, dir string) (*changeWatch, []manifest.Entry) {
	tb.Helper()
	w := newChangeWatch()
	tb.Cleanup(w.Close)
	var entries []manifest.Entry
	if err := tree.WalkWith(context.Background(), fsys.OS(), dir, tree.WalkOptions{Watch: w}, func(e *manifest.Entry) { entries = append(entries, *e) }); err != nil {
		tb.Fatal(err)
	}
	return w, entries
}

// TestChangeWatchCheck: check reports each kind of change made after the
// listing, naming where, and nothing for reads (publish's own copies),
// atime updates included.
func TestChangeWatchCheck(t *testing.T) {
	tests := []struct {
		name   string
		setup  func(t *testing.T, dir string) // before the listing
		change func(t *testing.T, dir string) // after it
		kind   string                         // "" = no change
		where  string                         // what the message names, under dir
	}{
		{name: "nothing", change: func(*testing.T, string) {}},
		{name: "read, atime moves", setup: func(t *testing.T, dir string) {
			// relatime updates an atime older than the mtime on read.
			old := time.Now().Add(-48 * time.Hour)
			if err := os.Chtimes(filepath.Join(dir, "a/f"), old, time.Now()); err != nil {
				t.Fatal(err)
			}
		}, change: func(t *testing.T, dir string) {
			if _, err := os.ReadFile(filepath.Join(dir, "a/f")); err != nil {
				t.Fatal(err)
			}
			if _, err := os.ReadDir(filepath.Join(dir, "a")); err != nil {
				t.Fatal(err)
			}
			var st unix.Stat_t
			if err := unix.Stat(filepath.Join(dir, "a/f"), &st); err != nil {
				t.Fatal(err)
			}
			if time.Since(time.Unix(st.Atim.Unix())) > time.Hour {
				t.Logf("the read did not move the atime (mount options?)")
			}
		}},
		{name: "write", change: func(t *testing.T, dir string) {
			f, err := os.OpenFile(filepath.Join(dir, "a/f"), os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if _, err := f.WriteAt([]byte("X"), 0); err != nil {
				t.Fatal(err)
			}
		}, kind: "written", where: "a/f"},
		{name: "chmod", change: func(t *testing.T, dir string) {
			if err := os.Chmod(filepath.Join(dir, "a/f"), 0o600); err != nil {
				t.Fatal(err)
			}
		}, kind: "metadata changed", where: "a/f"},
		{name: "create", change: func(t *testing.T, dir string) { testutil.Touch(t, dir, "b/new", "n") }, kind: "added", where: "b/new"},
		{name: "remove", change: func(t *testing.T, dir string) {
			if err := os.Remove(filepath.Join(dir, "b/g")); err != nil {
				t.Fatal(err)
			}
		}, kind: "removed", where: "b/g"},
		{name: "rename the root", change: func(t *testing.T, dir string) {
			if err := os.Rename(dir, dir+".moved"); err != nil {
				t.Fatal(err)
			}
		}, kind: "moved or removed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "tree")
			testutil.WriteTree(t, dir, map[string]string{"a/f": "file", "b/g": "gone"})
			if tc.setup != nil {
				tc.setup(t, dir)
			}
			w, _ := watchTree(t, dir)
			if err := w.why(); err != nil {
				t.Fatalf("watch cannot vouch on %s: %v", dir, err)
			}
			tc.change(t, dir)
			err := w.check(fsys.OS(), dir)
			_, changed := retry.Reason(err)
			switch {
			case tc.kind == "" && err != nil:
				t.Fatalf("check = %v, want no change", err)
			case tc.kind != "" && (!changed || !strings.Contains(err.Error(), tc.kind) ||
				!strings.Contains(err.Error(), filepath.Join(dir, tc.where))):
				t.Fatalf("check = %v, want a change (%s) naming %s", err, tc.kind, filepath.Join(dir, tc.where))
			}
		})
	}
}

// TestChangeWatchHardLinks: a file with another link outside the tree is
// stat'ed again; beyond maxLinked such files the watch gives up.
func TestChangeWatchHardLinks(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tree")
	testutil.WriteTree(t, dir, map[string]string{"f1": "1", "f2": "2", "f3": "3"})
	outside := t.TempDir()
	for _, n := range []string{"f1", "f2", "f3"} {
		if err := os.Link(filepath.Join(dir, n), filepath.Join(outside, n)); err != nil {
			t.Fatal(err)
		}
	}
	w, _ := watchTree(t, dir)
	if len(w.linked) != 3 {
		t.Fatalf("linked = %v, want f1, f2, f3", w.linked)
	}
	testutil.Touch(t, outside, "f2", "two") // no event in the watched tree
	if err := w.check(fsys.OS(), dir); err == nil || !strings.Contains(err.Error(), "f2 changed") {
		t.Fatalf("check = %v, want f2 changed", err)
	}

	w = newChangeWatch()
	defer w.Close()
	w.maxLinked = 2
	if err := tree.WalkWith(context.Background(), fsys.OS(), dir, tree.WalkOptions{Watch: w}, func(*manifest.Entry) {}); err != nil {
		t.Fatal(err)
	}
	if err := w.why(); err == nil || !strings.Contains(err.Error(), "hard links") || w.linked != nil {
		t.Fatalf("why = %v, linked = %v; want the watch to give up on hard links", err, w.linked)
	}
}

// TestChangeWatchOnlyLocalFS: directories on filesystems where changes may
// not raise events (here procfs and sysfs) make the watch give up.
func TestChangeWatchOnlyLocalFS(t *testing.T) {
	for _, dir := range []string{"/proc/self", "/sys/kernel"} {
		t.Run(dir, func(t *testing.T) {
			fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer unix.Close(fd)
			w := newChangeWatch()
			defer w.Close()
			w.AddDir(fd, dir)
			if err := w.why(); err == nil || !strings.Contains(err.Error(), "filesystem (type") {
				t.Fatalf("why = %v, want a refusal of the filesystem", err)
			}
		})
	}
}
