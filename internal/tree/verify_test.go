package tree_test

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/seqmirror/seqmirror/internal/export"
	"github.com/seqmirror/seqmirror/internal/fsys"
	"github.com/seqmirror/seqmirror/internal/tree"
	"github.com/seqmirror/seqmirror/manifest"
	"github.com/seqmirror/seqmirror/testutil"
	"github.com/seqmirror/seqmirror/testutil/faultfs"
)

// verifyTree writes the tree the merge tests tamper with: files, a
// symlink, a subtree below "d" and a directory chain 40 deep.
func verifyTree(tb testing.TB) string {
	tb.Helper()
	dir := filepath.Join(tb.TempDir(), "t")
	deep := strings.Repeat("n/", 40) + "leaf"
	testutil.WriteTree(tb, dir, map[string]string{"a": "a", "b": "bb", "d/e": "e", "d/f/g": "g", "m": "m", "z": "z", deep: "leaf"})
	testutil.Must(tb, os.Symlink("a", filepath.Join(dir, "l")))
	testutil.Must(tb, os.Chmod(filepath.Join(dir, "m"), 0o755))
	return dir
}

// manifestOf is the manifest of the tree at dir (listed, files hashed).
func manifestOf(tb testing.TB, dir string) *manifest.Manifest {
	tb.Helper()
	es, err := tree.Walk(context.Background(), fsys.OS(), dir, nil)
	testutil.Must(tb, err)
	for i := range es {
		if es[i].Type == manifest.File {
			h, _, err := tree.HashFile(fsys.OS(), filepath.Join(dir, es[i].Path), manifest.Current)
			testutil.Must(tb, err)
			es[i].SetSum(h)
		}
	}
	return &manifest.Manifest{Snapshot: 1, Entries: es}
}

// unsupported is the reason Verify gives for a fifo at rel in dir.
func unsupported(dir, rel string) string {
	return regexp.QuoteMeta(fmt.Sprintf(".: unsupported file type: %s is a fifo;", filepath.Join(dir, rel))) + ".*"
}

// The merge of the tree with the manifest, case by case: every problem
// Verify reports, exactly, on the OS filesystem and through a wrapping one.
func TestVerifyMerge(t *testing.T) {
	deep := strings.Repeat("n/", 40) + "leaf"
	tests := []struct {
		name   string
		tamper func(t *testing.T, dir string)
		want   func(dir string) []string // regexps, whole problems in order
	}{
		{name: "none", tamper: func(*testing.T, string) {}, want: func(string) []string { return nil }},
		{name: "extra file", tamper: func(t *testing.T, dir string) {
			testutil.Must(t, os.WriteFile(filepath.Join(dir, "d/x"), nil, 0o644))
		}, want: lit("d/x: not in manifest")},
		{name: "extra dir with contents", tamper: func(t *testing.T, dir string) {
			testutil.WriteTree(t, dir, map[string]string{"c/1": "", "c/2/3": ""})
		}, want: lit("c: not in manifest", "c/1: not in manifest", "c/2: not in manifest", "c/2/3: not in manifest")},
		{name: "missing file", tamper: func(t *testing.T, dir string) {
			testutil.Must(t, os.Remove(filepath.Join(dir, "b")))
		}, want: lit("b: missing")},
		{name: "missing subtree", tamper: func(t *testing.T, dir string) {
			testutil.Must(t, os.RemoveAll(filepath.Join(dir, "d")))
		}, want: lit("d: missing", "d/e: missing", "d/f: missing", "d/f/g: missing")},
		{name: "file became dir", tamper: func(t *testing.T, dir string) {
			testutil.Must(t, os.Remove(filepath.Join(dir, "b")))
			testutil.WriteTree(t, dir, map[string]string{"b/in": ""})
		}, want: lit("b: is type d, manifest says f", "b/in: not in manifest")},
		{name: "dir became file", tamper: func(t *testing.T, dir string) {
			testutil.Must(t, os.RemoveAll(filepath.Join(dir, "d")))
			testutil.Must(t, os.WriteFile(filepath.Join(dir, "d"), nil, 0o644))
		}, want: lit("d: is type f, manifest says d", "d/e: missing", "d/f: missing", "d/f/g: missing")},
		{name: "file became symlink", tamper: func(t *testing.T, dir string) {
			testutil.Must(t, os.Remove(filepath.Join(dir, "z")))
			testutil.Must(t, os.Symlink("a", filepath.Join(dir, "z")))
		}, want: lit("z: is type l, manifest says f")},
		{name: "mode", tamper: func(t *testing.T, dir string) {
			testutil.Must(t, os.Chmod(filepath.Join(dir, "m"), 0o700))
		}, want: lit("m: mode 0700, manifest says 0755")},
		{name: "setuid", tamper: func(t *testing.T, dir string) {
			testutil.Must(t, os.Chmod(filepath.Join(dir, "m"), 0o755|fs.ModeSetuid))
		}, want: lit("m: mode 4755, manifest says 0755")},
		{name: "size", tamper: func(t *testing.T, dir string) {
			rewrite(t, filepath.Join(dir, "b"), "bbb")
		}, want: lit("b: size 3, manifest says 2")},
		{name: "mtime", tamper: func(t *testing.T, dir string) {
			tm := time.Unix(7, 0)
			testutil.Must(t, os.Chtimes(filepath.Join(dir, "a"), tm, tm))
		}, want: lit("a: mtime 7000000000, manifest says [0-9]+")},
		{name: "content", tamper: func(t *testing.T, dir string) {
			rewrite(t, filepath.Join(dir, "b"), "cc")
		}, want: lit("b: content hash sha256:[0-9a-f]{64}, manifest says sha256:[0-9a-f]{64}")},
		{name: "symlink target", tamper: func(t *testing.T, dir string) {
			testutil.Must(t, os.Remove(filepath.Join(dir, "l")))
			testutil.Must(t, os.Symlink("b", filepath.Join(dir, "l")))
		}, want: lit(`l: symlink target "b", manifest says "a"`)},
		{name: "fifo added", tamper: func(t *testing.T, dir string) {
			testutil.Fifo(t, filepath.Join(dir, "c"))
		}, want: func(dir string) []string { return []string{unsupported(dir, "c")} }},
		{name: "fifo for a file", tamper: func(t *testing.T, dir string) {
			testutil.Fifo(t, filepath.Join(dir, "d/e"))
		}, want: func(dir string) []string { return []string{unsupported(dir, "d/e"), "d/e: missing"} }},
		{name: "two fifos", tamper: func(t *testing.T, dir string) {
			testutil.Fifo(t, filepath.Join(dir, "c"))
			testutil.Fifo(t, filepath.Join(dir, "y"))
		}, want: func(dir string) []string { return []string{unsupported(dir, "c"), unsupported(dir, "y")} }},
		{name: "deep", tamper: func(t *testing.T, dir string) {
			rewrite(t, filepath.Join(dir, deep), "LEAF")
			testutil.Must(t, os.WriteFile(filepath.Join(dir, strings.Repeat("n/", 20)+"x"), nil, 0o644))
		}, want: lit(deep+": content hash sha256:[0-9a-f]{64}, manifest says sha256:[0-9a-f]{64}", strings.Repeat("n/", 20)+"x: not in manifest")},
	}
	for _, tt := range tests {
		for _, f := range []struct {
			name string
			fs   fsys.FS
		}{{"os", fsys.OS()}, {"wrapped", faultfs.New(fsys.OS())}} {
			t.Run(tt.name+"/"+f.name, func(t *testing.T) {
				dir := verifyTree(t)
				m := manifestOf(t, dir)
				tt.tamper(t, dir)
				probs, err := tree.Verify(context.Background(), f.fs, dir, m, 2)
				testutil.Must(t, err)
				checkProblems(t, probs, tt.want(dir))
			})
		}
	}
}

// lit is a want of exactly these problems.
func lit(want ...string) func(string) []string { return func(string) []string { return want } }

// rewrite replaces the content of the file at p, keeping its mtime.
func rewrite(tb testing.TB, p, content string) {
	tb.Helper()
	fi, err := os.Stat(p)
	testutil.Must(tb, err)
	testutil.Must(tb, os.WriteFile(p, []byte(content), 0o644))
	testutil.Must(tb, os.Chtimes(p, fi.ModTime(), fi.ModTime()))
}

// checkProblems fails unless probs match want (regexps), one for one.
func checkProblems(tb testing.TB, probs []tree.Problem, want []string) {
	tb.Helper()
	ok := len(probs) == len(want)
	for i := 0; ok && i < len(want); i++ {
		ok = regexp.MustCompile("^" + want[i] + "$").MatchString(probs[i].String())
	}
	if !ok {
		tb.Fatalf("problems:\n%v\nwant:\n%s", probs, strings.Join(want, "\n"))
	}
}

// A tree that differs everywhere: VerifyStream lists the first
// MaxProblems differences (of the sorted whole) and counts the rest.
func TestVerifyProblemsCapped(t *testing.T) {
	dir := verifyTree(t)
	m := manifestOf(t, dir)
	files := map[string]string{}
	for i := range 50 {
		files[fmt.Sprintf("x/%02d", 49-i)] = ""
	}
	testutil.WriteTree(t, dir, files)
	v, err := tree.VerifyStream(context.Background(), fsys.OS(), dir, m.Iter(), tree.VerifyOptions{Workers: 2, MaxProblems: 4})
	testutil.Must(t, err)
	checkProblems(t, v.Problems, lit("x: not in manifest", "x/00: not in manifest", "x/01: not in manifest", "x/02: not in manifest")(""))
	if v.More != 47 {
		t.Fatalf("More = %d, want 47", v.More)
	}
	if l := v.List(); len(l) != 5 || l[4].String() != "...: and 47 more differences, not listed" {
		t.Fatalf("List ends %v", l[len(l)-1])
	}
}

// manyDirs is how many directory records the memory test's snapshot has.
const manyDirs = 100_000

// A snapshot of many directories verifies in memory that does not grow
// with them: neither the tree's listing nor (streamed) the manifest is
// held whole.
func TestVerifyManyDirsMemoryBounded(t *testing.T) {
	ctx := context.Background()
	up := filepath.Join(testutil.FastDir(t), "up")
	testutil.ManyDirsUpstream(t, up, 1, manyDirs, "x")
	r := export.New(fsys.OS(), up)
	snap := r.SnapshotDir(1)
	makeDirs(t, r, snap)
	m, err := r.ReadManifest(1)
	testutil.Must(t, err)
	check := func(name string, verify func() (int, error)) {
		var n int
		grew := testutil.PeakHeap(func() { n, err = verify() })
		if err != nil || n != 0 {
			t.Fatalf("%s: %d problems, %v", name, n, err)
		}
		t.Logf("%s: heap grew by %.1f MiB", name, float64(grew)/(1<<20))
		// Holding the tree's listing (or the decoded manifest) costs 22-29
		// MiB here; streaming 0.5-1.6 MiB, up to ~4.5 under -race.
		if limit := uint64(8 << 20); grew > limit {
			t.Fatalf("%s: heap grew by %d bytes verifying %d directories (limit %d)", name, grew, manyDirs, limit)
		}
	}
	check("manifest in memory", func() (int, error) {
		probs, err := tree.Verify(ctx, r.FS, snap, m, 2)
		return len(probs), err
	})
	m = nil
	check("manifest streamed", func() (int, error) {
		ms, err := r.OpenManifest(1)
		if err != nil {
			return 0, err
		}
		defer ms.Close()
		v, err := tree.VerifyStream(ctx, r.FS, snap, ms, tree.VerifyOptions{Workers: 2})
		if err == nil {
			err = ms.Finish()
		}
		return len(v.Problems) + v.More, err
	})
}

// makeDirs makes the directories snapshot 1 of r records in snap, with
// their modes and mtimes.
func makeDirs(tb testing.TB, r *export.Root, snap string) {
	tb.Helper()
	for _, pass := range []func(manifest.Iterator) error{
		func(it manifest.Iterator) error {
			return tree.MakeDirsStream(context.Background(), r.FS, snap, it, 2)
		},
		func(it manifest.Iterator) error {
			return tree.FinishDirsStream(context.Background(), r.FS, snap, it, 2)
		},
	} {
		ms, err := r.OpenManifest(1)
		testutil.Must(tb, err)
		err = pass(ms)
		ms.Close()
		testutil.Must(tb, err)
	}
}
