package cow_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/seqmirror/seqmirror/internal/cow"
	"github.com/seqmirror/seqmirror/testutil"
)

func TestProbe(t *testing.T) {
	for _, tc := range []struct {
		name, fstype string
		want         cow.Caps
	}{
		{name: "btrfs", fstype: "btrfs", want: cow.Caps{FS: "btrfs", Snapshots: true, Reflink: true}},
		{name: "xfs", fstype: "xfs", want: cow.Caps{FS: "xfs", Reflink: true}},
		{name: "ext4", fstype: "ext4", want: cow.Caps{FS: "ext4"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := testutil.MountLoop(t, tc.fstype, testutil.LoopSize)
			got, err := cow.Probe(dir)
			if err != nil || got != tc.want {
				t.Fatalf("Probe = %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

// TestSubvolumes: create, snapshot (point in time, read-only refuses
// writes), nested detection, delete whole, RemoveAll of a directory
// holding read-only subvolumes.
func TestSubvolumes(t *testing.T) {
	mnt := testutil.MountLoop(t, "btrfs", testutil.LoopSize)
	src := filepath.Join(mnt, "src")
	testutil.Must(t, cow.CreateSubvolume(src))
	testutil.Must(t, os.WriteFile(filepath.Join(src, "a"), []byte("one"), 0o644))
	if sub, err := cow.IsSubvolume(src); err != nil || !sub {
		t.Fatalf("IsSubvolume(src) = %v, %v", sub, err)
	}
	if sub, _ := cow.IsSubvolume(mnt + "/src/a"); sub {
		t.Fatal("a file is no subvolume")
	}
	work := filepath.Join(mnt, "work")
	testutil.Must(t, os.Mkdir(work, 0o755))
	ro := filepath.Join(work, "1")
	testutil.Must(t, cow.Snapshot(src, ro, true))
	testutil.Must(t, os.WriteFile(filepath.Join(src, "a"), []byte("two"), 0o644))
	if b, _ := os.ReadFile(filepath.Join(ro, "a")); string(b) != "one" {
		t.Fatalf("snapshot holds %q, want the content at the snapshot", b)
	}
	if err := os.WriteFile(filepath.Join(ro, "b"), nil, 0o644); err == nil {
		t.Fatal("a write into a read-only snapshot succeeded")
	}
	if r, err := cow.ReadOnly(ro); err != nil || !r {
		t.Fatalf("ReadOnly = %v, %v", r, err)
	}
	rw := filepath.Join(work, "2")
	testutil.Must(t, cow.Snapshot(ro, rw, false))
	testutil.Must(t, os.WriteFile(filepath.Join(rw, "b"), nil, 0o644))
	// Install's move into snapshots/: a writable subvolume moves to
	// another directory, a read-only one does not (its ".." would change).
	testutil.Must(t, os.Rename(rw, filepath.Join(mnt, "2")))
	testutil.Must(t, cow.SetReadOnly(filepath.Join(mnt, "2"), true))
	if err := os.Rename(filepath.Join(mnt, "2"), rw); err == nil {
		t.Fatal("a read-only subvolume moved to another directory")
	}
	testutil.Must(t, cow.SetReadOnly(filepath.Join(mnt, "2"), false))
	testutil.Must(t, os.Rename(filepath.Join(mnt, "2"), rw))
	testutil.Must(t, cow.SetReadOnly(rw, true))

	if n, err := cow.HasNested(src); err != nil || n {
		t.Fatalf("HasNested(src) = %v, %v before a nested subvolume", n, err)
	}
	testutil.Must(t, cow.CreateSubvolume(filepath.Join(src, "inner")))
	if n, err := cow.HasNested(src); err != nil || !n {
		t.Fatalf("HasNested(src) = %v, %v with one", n, err)
	}

	testutil.Must(t, cow.RemoveAll(work))
	if _, err := os.Stat(work); !os.IsNotExist(err) {
		t.Fatalf("work still there: %v", err)
	}
	list := testutil.Btrfs(t, "subvolume", "list", mnt)
	if strings.Contains(list, "work/") {
		t.Fatalf("subvolumes left:\n%s", list)
	}
	testutil.Must(t, cow.Delete(filepath.Join(src, "inner")))
	testutil.Must(t, cow.RemoveAll(src))
}

func TestUnsupported(t *testing.T) {
	ext := testutil.MountLoop(t, "ext4", testutil.LoopSize)
	testutil.Must(t, os.Mkdir(ext+"/d", 0o755))
	for _, tc := range []struct {
		name string
		err  error
	}{
		{name: "snapshot", err: cow.Snapshot(ext+"/d", ext+"/e", true)},
		{name: "create", err: cow.CreateSubvolume(ext + "/f")},
		{name: "readonly", err: cow.SetReadOnly(ext+"/d", true)},
	} {
		if !errors.Is(tc.err, cow.ErrUnsupported) {
			t.Errorf("%s on ext4: %v, want ErrUnsupported", tc.name, tc.err)
		}
	}
	// snapshot across filesystems
	b := testutil.MountLoop(t, "btrfs", testutil.LoopSize)
	testutil.Must(t, cow.CreateSubvolume(b+"/s"))
	if err := cow.Snapshot(b+"/s", ext+"/s", false); !errors.Is(err, cow.ErrUnsupported) {
		t.Errorf("snapshot to another fs: %v, want ErrUnsupported", err)
	}
}

func TestClone(t *testing.T) {
	for _, tc := range []struct {
		name, fstype string
		clones       bool
	}{
		{name: "btrfs", fstype: "btrfs", clones: true},
		{name: "xfs", fstype: "xfs", clones: true},
		{name: "ext4", fstype: "ext4"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := testutil.MountLoop(t, tc.fstype, testutil.LoopSize)
			testutil.Must(t, os.WriteFile(dir+"/src", []byte(strings.Repeat("x", 100000)), 0o644))
			src, err := os.Open(dir + "/src")
			testutil.Must(t, err)
			defer src.Close()
			dst, err := os.Create(dir + "/dst")
			testutil.Must(t, err)
			defer dst.Close()
			err = cow.Clone(dst, src)
			if tc.clones != (err == nil) || (err != nil && !errors.Is(err, cow.ErrUnsupported)) {
				t.Fatalf("Clone: %v (clones: %v)", err, tc.clones)
			}
			if tc.clones {
				b, _ := os.ReadFile(dir + "/dst")
				if len(b) != 100000 {
					t.Fatalf("clone has %d bytes", len(b))
				}
			}
		})
	}
}

// TestChangedInodes: the inodes changed since a snapshot of the same
// subvolume, found without walking: an edit, a chmod, a rename, a new
// file and the directories whose entries changed; not the untouched file.
func TestChangedInodes(t *testing.T) {
	mnt := testutil.MountLoop(t, "btrfs", testutil.LoopSize)
	src := filepath.Join(mnt, "src")
	testutil.Must(t, cow.CreateSubvolume(src))
	testutil.WriteTree(t, src, map[string]string{"a": "a", "b": "b", "c": "c", "d/e": "e", "f/g": "g"})
	testutil.Must(t, cow.Snapshot(src, mnt+"/s1", true))
	s1, err := cow.Info(mnt + "/s1")
	testutil.Must(t, err)
	si, err := cow.Info(src)
	testutil.Must(t, err)
	if s1.ParentUUID != si.UUID || s1.OTransid == 0 {
		t.Fatalf("snapshot info %+v, source %+v", s1, si)
	}
	testutil.Must(t, os.WriteFile(src+"/b", []byte("B"), 0o644))
	testutil.Must(t, os.Chmod(src+"/c", 0o600))
	testutil.Must(t, os.Rename(src+"/d/e", src+"/d/e2"))
	testutil.WriteTree(t, src, map[string]string{"new": "n"})
	testutil.Must(t, cow.Snapshot(src, mnt+"/s2", true))
	ch, err := cow.ChangedInodes(mnt+"/s2", s1.OTransid)
	testutil.Must(t, err)
	got := ch.Inodes
	ino := func(p string) uint64 { return testutil.Inode(t, filepath.Join(mnt, "s2", p)) }
	for _, p := range []string{"b", "c", "d/e2", "new", "d", "."} {
		if !got[ino(p)] {
			t.Errorf("%s (inode %d) not found changed: %v", p, ino(p), got)
		}
	}
	for _, p := range []string{"a", "f", "f/g"} {
		if got[ino(p)] {
			t.Errorf("%s (inode %d) found changed", p, ino(p))
		}
	}
	if len(got) != 6 {
		t.Errorf("changed: %v, want 6 inodes", got)
	}
	if want := []uint64{ino("."), ino("d")}; !slices.Equal(ch.Dirs, want) {
		t.Errorf("changed directories %v, want %v (. and d)", ch.Dirs, want)
	}
	// the directories holding b, c, d/e2, new and d (. holds . too)
	if want := map[uint64]bool{ino("."): true, ino("d"): true}; fmt.Sprint(ch.Parents) != fmt.Sprint(want) {
		t.Errorf("parents %v, want %v (. and d)", ch.Parents, want)
	}
	none, err := cow.ChangedInodes(mnt+"/s1", s1.OTransid)
	testutil.Must(t, err)
	if len(none.Inodes) != 0 || len(none.Dirs) != 0 {
		t.Errorf("changed in s1 since its own creation: %v", none)
	}
}

// TestParentsOf: the directories of a changed inode whose names the
// changed leaves did not hold are found by a search of its names alone,
// every one of a file with hard links in two directories.
func TestParentsOf(t *testing.T) {
	mnt := testutil.MountLoop(t, "btrfs", testutil.LoopSize)
	src := filepath.Join(mnt, "src")
	testutil.Must(t, cow.CreateSubvolume(src))
	testutil.WriteTree(t, src, map[string]string{"x/a": "a", "y/keep": "k", "z/other": "o"})
	testutil.Must(t, os.Link(src+"/x/a", src+"/y/b"))
	ino := func(p string) uint64 { return testutil.Inode(t, filepath.Join(src, p)) }
	got, err := cow.ParentsOf(src, []uint64{ino("x/a")})
	testutil.Must(t, err)
	want := map[uint64]bool{ino("x"): true, ino("y"): true}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("parents %v, want %v (x and y)", got, want)
	}
}

// TestNameTransids: each entry of a directory of a snapshot says when it
// got its name: those made before an earlier snapshot no later than its
// transaction, a rename and a new entry after it.
func TestNameTransids(t *testing.T) {
	mnt := testutil.MountLoop(t, "btrfs", testutil.LoopSize)
	src := filepath.Join(mnt, "src")
	testutil.Must(t, cow.CreateSubvolume(src))
	testutil.WriteTree(t, src, map[string]string{"d/a": "a", "d/b": "b", "d/sub/x": "x"})
	testutil.Must(t, cow.Snapshot(src, mnt+"/s1", true))
	s1, err := cow.Info(mnt + "/s1")
	testutil.Must(t, err)
	testutil.Must(t, os.Rename(src+"/d/b", src+"/d/c"))
	testutil.Must(t, os.Mkdir(src+"/d/new", 0o755))
	testutil.Must(t, cow.Snapshot(src, mnt+"/s2", true))
	ino := func(p string) uint64 { return testutil.Inode(t, filepath.Join(mnt, "s2", p)) }
	tr, err := cow.OpenTree(mnt + "/s2")
	testutil.Must(t, err)
	defer tr.Close()
	names, err := tr.NameTransids(ino("d"))
	testutil.Must(t, err)
	for p, old := range map[string]bool{"d/a": true, "d/sub": true, "d/c": false, "d/new": false} {
		if got := names[ino(p)]; got == 0 || (got <= s1.OTransid) != old {
			t.Errorf("%s: named at transaction %d, snapshot at %d; want before it: %v", p, got, s1.OTransid, old)
		}
	}
	if len(names) != 4 {
		t.Errorf("names %v, want 4 entries", names)
	}
}
