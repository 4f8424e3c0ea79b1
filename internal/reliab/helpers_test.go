package reliab

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/seqmirror/seqmirror/internal/export"
	"github.com/seqmirror/seqmirror/internal/fsys"
	"github.com/seqmirror/seqmirror/internal/tree"
	"github.com/seqmirror/seqmirror/manifest"
	"github.com/seqmirror/seqmirror/seqfile"
	"github.com/seqmirror/seqmirror/testutil"
)

// long reports whether the long (soak/crash) versions were asked for.
func long() bool { return os.Getenv("SEQMIRROR_LONG") != "" }

// pick returns short or, with SEQMIRROR_LONG set, long.
func pick(short, longN int) int {
	if long() {
		return longN
	}
	return short
}

// state is what a root serves and its counters.
type state struct {
	Cur uint64
	Seq seqfile.Pair
}

// readState reads current and seq/ of the root at dir; both must parse and
// begin >= end must hold.
func readState(tb testing.TB, dir string) state {
	tb.Helper()
	r := export.New(fsys.OS(), dir)
	cur, err := r.Current()
	if err != nil {
		tb.Fatalf("%s: current: %v", dir, err)
	}
	p, err := seqfile.Counters(fsys.OS(), r.SeqDir())
	if err != nil {
		tb.Fatalf("%s: seq files: %v", dir, err)
	}
	if p.Begin < p.End {
		tb.Fatalf("%s: seq begin %d < end %d", dir, p.Begin, p.End)
	}
	return state{Cur: cur, Seq: p}
}

// verifyCurrent checks that current resolves to a complete snapshot whose
// tree matches its manifest, and returns the manifest (nil if none served).
func verifyCurrent(tb testing.TB, dir string) *manifest.Manifest {
	tb.Helper()
	r := export.New(fsys.OS(), dir)
	cur, err := r.Current()
	if err != nil {
		tb.Fatalf("%s: current: %v", dir, err)
	}
	if cur == 0 {
		return nil
	}
	m, err := r.ReadManifest(cur)
	if err != nil {
		tb.Fatalf("%s: served snapshot %d: %v", dir, cur, err)
	}
	probs, err := tree.Verify(context.Background(), fsys.OS(), r.SnapshotDir(cur), m, 2)
	if err != nil {
		tb.Fatalf("%s: verify snapshot %d: %v", dir, cur, err)
	}
	if len(probs) > 0 {
		tb.Fatalf("%s: served snapshot %d is torn: %v", dir, cur, probs)
	}
	return m
}

// checkClean checks what a successful run must leave: begin == end, an empty
// .work, no temp files, and every snapshot directory paired with its manifest.
func checkClean(tb testing.TB, dir string) {
	tb.Helper()
	st := readState(tb, dir)
	if !st.Seq.Idle() {
		tb.Errorf("%s: after a successful run seq begin %d != end %d", dir, st.Seq.Begin, st.Seq.End)
	}
	if ents, err := os.ReadDir(filepath.Join(dir, export.WorkName)); err != nil || len(ents) > 0 {
		tb.Errorf("%s: .work not empty after a successful run: %v %v", dir, names(ents), err)
	}
	for _, d := range []string{dir, filepath.Join(dir, export.SeqName), filepath.Join(dir, export.SnapshotsName)} {
		ents, _ := os.ReadDir(d)
		for _, e := range ents {
			if strings.Contains(e.Name(), fsys.TempMarker) {
				tb.Errorf("%s: temp file %s left behind", dir, filepath.Join(d, e.Name()))
			}
		}
	}
	ents, err := os.ReadDir(filepath.Join(dir, export.SnapshotsName))
	if err != nil {
		tb.Fatal(err)
	}
	have := map[string]bool{}
	for _, e := range ents {
		have[e.Name()] = true
	}
	for name := range have {
		if n, ok := strings.CutSuffix(name, export.SignatureExt); ok {
			if !have[n+export.ManifestExt] {
				tb.Errorf("%s: orphan signature %s", dir, name)
			}
			continue
		}
		if n, ok := strings.CutSuffix(name, export.ManifestExt); ok {
			if !have[n] {
				tb.Errorf("%s: orphan manifest %s", dir, name)
			}
		} else if !have[name+export.ManifestExt] {
			tb.Errorf("%s: orphan snapshot directory %s", dir, name)
		}
	}
}

func names(ents []os.DirEntry) []string {
	var s []string
	for _, e := range ents {
		s = append(s, e.Name())
	}
	return s
}

// sameEntries reports whether two manifests list the same tree.
func sameEntries(a, b *manifest.Manifest) bool {
	if a == nil || b == nil {
		return a == b
	}
	return slices.Equal(a.Entries, b.Entries)
}

// makeSources writes a small tree (30 files in nested dirs, a symlink, an
// empty dir) to v1, and v2 = v1 with a change set: modified, added, deleted
// and re-moded files and a re-targeted symlink. mtimes are fixed once here.
func makeSources(tb testing.TB, base string) (v1, v2 string) {
	tb.Helper()
	v1, v2 = filepath.Join(base, "v1"), filepath.Join(base, "v2")
	paths := testutil.GenTree(tb, v1, 30, 7)
	testutil.WriteTree(tb, v1, map[string]string{
		"link":           "->" + paths[0],
		"d01/up":         "->../d00",
		"top.txt":        "top\n",
		"empty/.keep":    "",
		"d00/deep/a/b/c": "nested\n",
	})
	cp(tb, v1, v2)
	testutil.Touch(tb, v2, paths[1], "changed 1\n")
	testutil.Touch(tb, v2, paths[2], "changed 2 and longer\n")
	testutil.Touch(tb, v2, "top.txt", "top v2\n")
	testutil.WriteTree(tb, v2, map[string]string{"new/dir/added.txt": "added\n", "d03/added2": "x"})
	for _, p := range paths[5:8] {
		if err := os.Remove(filepath.Join(v2, p)); err != nil {
			tb.Fatal(err)
		}
	}
	if err := os.Chmod(filepath.Join(v2, paths[9]), 0o600); err != nil {
		tb.Fatal(err)
	}
	os.Remove(filepath.Join(v2, "link"))
	if err := os.Symlink(paths[3], filepath.Join(v2, "link")); err != nil {
		tb.Fatal(err)
	}
	return v1, v2
}

// cp copies a tree preserving modes, times and hard links (cp -a).
func cp(tb testing.TB, from, to string) {
	tb.Helper()
	if out, err := exec.Command("cp", "-a", from, to).CombinedOutput(); err != nil {
		tb.Fatalf("cp -a %s %s: %v\n%s", from, to, err, out)
	}
}

// listing returns every path below dir with its type and size: a cheap
// fingerprint for "nothing changed here".
func listing(tb testing.TB, dir string) []string {
	tb.Helper()
	var out []string
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == "." {
			return nil // the snapshot root itself is not in the manifest
		}
		out = append(out, rel+" "+fi.Mode().String()+" "+strconv.FormatInt(fi.Size(), 10)+" "+strconv.FormatInt(fi.ModTime().UnixNano(), 10))
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	return out
}

func errorsAs(err error, target any) bool { return errors.As(err, target) }
