package changes_test

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/seqmirror/seqmirror/internal/changes"
	"github.com/seqmirror/seqmirror/internal/cow"
	"github.com/seqmirror/seqmirror/internal/fsys"
	"github.com/seqmirror/seqmirror/internal/tree"
	"github.com/seqmirror/seqmirror/manifest"
	"github.com/seqmirror/seqmirror/testutil"
)

// records is a Base over a listing in memory.
type records struct{ r []manifest.Entry }

func (b *records) Peek(path string) (manifest.Entry, bool) {
	for len(b.r) > 0 && manifest.Compare(b.r[0].Path, path) < 0 {
		b.r = b.r[1:]
	}
	e, ok := b.Current()
	return e, ok && e.Path == path
}

func (b *records) Current() (manifest.Entry, bool) {
	if len(b.r) == 0 {
		return manifest.Entry{}, false
	}
	return b.r[0], true
}

func (b *records) Drop() {
	if len(b.r) > 0 {
		b.r = b.r[1:]
	}
}

// listing is the manifest of dir: every entry, files hashed.
func listing(tb testing.TB, dir string) []manifest.Entry {
	tb.Helper()
	es, err := tree.Walk(context.Background(), fsys.OS(), dir, nil)
	testutil.Must(tb, err)
	for i := range es {
		if es[i].Type == manifest.File {
			sum, _, err := tree.HashFile(fsys.OS(), filepath.Join(dir, filepath.FromSlash(es[i].Path)), manifest.Current)
			testutil.Must(tb, err)
			es[i].SetSum(sum)
		}
	}
	return es
}

// TestWalk: a snapshot listed from what changed since an earlier one of
// the same subvolume is the snapshot's whole listing, every settled
// record right (hash included), through edits (one with its mtime put
// back), a new deep file, a deletion, a chmod, a hard link, two
// directories swapping names and an entry deleted from the earlier
// snapshot after it was taken; the untouched directories are not read.
func TestWalk(t *testing.T) {
	mnt := testutil.MountLoop(t, "btrfs", testutil.LoopSize)
	src := filepath.Join(mnt, "src")
	testutil.Must(t, cow.CreateSubvolume(src))
	testutil.GenTree(t, src, 300, 7)
	testutil.WriteTree(t, src, map[string]string{"sw/a/f": "A1", "sw/b/f": "B2", "x/junk": "j", "x/kept": "k"})
	mt := time.Unix(1_600_000_000, 0)
	p := func(rel string) string { return filepath.Join(src, filepath.FromSlash(rel)) }
	for _, f := range []string{"sw/a/f", "sw/b/f"} {
		testutil.Must(t, os.Chtimes(p(f), mt, mt))
	}
	s1 := filepath.Join(mnt, "s1")
	testutil.Must(t, cow.Snapshot(src, s1, false))
	testutil.Must(t, os.Remove(filepath.Join(s1, "x/junk"))) // left out of s1
	base := listing(t, s1)
	testutil.Must(t, cow.SetReadOnly(s1, true))

	testutil.Touch(t, src, "d00/s00/f00000.dat", "edited")
	testutil.CorruptInPlace(t, p("d01/s00/f00001.dat"))
	testutil.WriteTree(t, src, map[string]string{"new/deep/file": "new"})
	testutil.Must(t, os.Remove(p("d02/s00/f00002.dat")))
	testutil.Must(t, os.Chmod(p("d03"), 0o750))
	testutil.Must(t, os.Link(p("d04/s00/f00004.dat"), p("d05/hardlink")))
	testutil.Must(t, os.Rename(p("sw/a"), p("sw/c")))
	testutil.Must(t, os.Rename(p("sw/b"), p("sw/a")))
	testutil.Must(t, os.Rename(p("sw/c"), p("sw/b")))
	s2 := filepath.Join(mnt, "s2")
	testutil.Must(t, cow.Snapshot(src, s2, true))

	info, err := cow.Info(s1)
	testutil.Must(t, err)
	set, err := changes.Find(s2, s1, info.OTransid)
	testutil.Must(t, err)
	var got []manifest.Entry
	settled := map[string]bool{}
	w := &changes.Walk{FS: fsys.OS(), Dir: s2, Set: set, Base: &records{r: base}, Emit: func(e manifest.Entry, fi fs.FileInfo) error {
		got = append(got, e)
		settled[e.Path] = fi == nil
		return nil
	}}
	testutil.Must(t, w.Run())

	want := listing(t, s2)
	if len(got) != len(want) {
		have := map[string]bool{}
		for _, e := range got {
			have[e.Path] = true
		}
		var missing []string
		for _, e := range want {
			if !have[e.Path] {
				missing = append(missing, e.Path)
			}
		}
		t.Fatalf("listed %d entries, the snapshot has %d; missing %v", len(got), len(want), missing)
	}
	for i, e := range got {
		wn := want[i]
		if !settled[e.Path] {
			e.SetSum(wn.Sum()) // a fresh entry is not hashed by the walk
		}
		if e.Path != wn.Path || !e.SameContent(wn) {
			t.Errorf("entry %d: %+v (settled %v), the snapshot has %+v", i, e, settled[e.Path], wn)
		}
	}
	for _, f := range []string{"d00/s00/f00000.dat", "d01/s00/f00001.dat", "new/deep/file", "x/junk", "sw/a/f", "sw/b/f", "d05/hardlink", "d04/s00/f00004.dat", "d03"} {
		if settled[f] {
			t.Errorf("%s settled: it changed", f)
		}
	}
	read, skimmed := w.Counts()
	if skimmed == 0 || read >= skimmed {
		t.Errorf("read %d directories and skimmed %d: the untouched ones should not be read", read, skimmed)
	}
}
