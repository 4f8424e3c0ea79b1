package export_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/seqmirror/seqmirror/internal/export"
	"github.com/seqmirror/seqmirror/internal/filter"
)

// addSidecars gives snapshot n a full manifest and a filter file.
func addSidecars(tb testing.TB, r *export.Root, n uint64) {
	tb.Helper()
	for _, p := range []string{r.FullPath(n), r.FilterPath(n)} {
		b := []byte(`{"version":1,"filters":[["- x"]]}`)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			tb.Fatal(err)
		}
	}
}

// Prune and Cleanup take a partial snapshot's N.full and N.filter along;
// N.full and N.filter are not snapshots.
func TestPartialSidecars(t *testing.T) {
	r := newRoot(t)
	old := time.Now().Add(-time.Hour)
	for n := uint64(1); n <= 3; n++ {
		addSnapshot(t, r, n, old)
		addSidecars(t, r, n)
	}
	flip(t, r, 3)
	addSidecars(t, r, 7) // orphans: no manifest, not served
	snaps, err := r.Snapshots()
	if err != nil || len(snaps) != 3 {
		t.Fatalf("Snapshots = %v %v, want 1 2 3", snaps, err)
	}
	if err := r.Cleanup(); err != nil {
		t.Fatal(err)
	}
	if exists(r.FullPath(7)) || exists(r.FilterPath(7)) {
		t.Fatal("Cleanup left the orphan N.full or N.filter of 7")
	}
	if !exists(r.FullPath(3)) || !exists(r.FilterPath(1)) {
		t.Fatal("Cleanup removed a complete snapshot's files")
	}
	deleted, err := r.Prune(1, 0, time.Now())
	if err != nil || len(deleted) != 2 {
		t.Fatalf("Prune = %v %v", deleted, err)
	}
	for _, n := range deleted {
		if exists(r.FullPath(n)) || exists(r.FilterPath(n)) {
			t.Fatalf("Prune left the files of snapshot %d", n)
		}
	}
	st, err := r.Status()
	if err != nil || st.Partial == nil || st.Partial.Filter != "- x" {
		t.Fatalf("Status partial %+v %v, want the filter - x", st.Partial, err)
	}
	c, ok, err := r.SnapshotFilter(3)
	if err != nil || !ok || !c.Equal(filter.Chain{mustParse(t, "- x")}) {
		t.Fatalf("SnapshotFilter = %v %v %v", c.Rules(), ok, err)
	}
	if got := r.FullManifestPath(3); got != r.FullPath(3) {
		t.Fatalf("FullManifestPath = %s, want N.full", got)
	}
}

func mustParse(tb testing.TB, rules ...string) *filter.Filter {
	tb.Helper()
	f, err := filter.Parse(rules)
	if err != nil {
		tb.Fatal(err)
	}
	return f
}

// Install with Replace swaps the served snapshot's tree and manifest, and
// removes a whole snapshot's N.full and N.filter when the new one has none.
func TestInstallReplace(t *testing.T) {
	r := newRoot(t)
	addSnapshot(t, r, 5, time.Time{})
	addSidecars(t, r, 5)
	flip(t, r, 5)
	u, err := r.Begin(context.Background(), export.UpdateOptions{Keep: 3})
	if err != nil {
		t.Fatal(err)
	}
	if err := u.Start(); err != nil {
		t.Fatal(err)
	}
	work, err := u.Work(5)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(work, "g"), []byte("new"), 0o644); err != nil {
		t.Fatal(err)
	}
	man := filepath.Join(r.WorkDir(), "5.manifest")
	if err := os.Rename(r.ManifestPath(5), man); err != nil { // the same bytes will do
		t.Fatal(err)
	}
	addManifest(t, r, 5)
	if err := u.Install(context.Background(), export.Built{N: 5, Tree: work, Manifest: man, Replace: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := u.Done(nil); err != nil {
		t.Fatal(err)
	}
	if !exists(filepath.Join(r.SnapshotDir(5), "g")) || exists(filepath.Join(r.SnapshotDir(5), "f")) {
		t.Fatal("snapshots/5 is not the new tree")
	}
	if exists(r.FullPath(5)) || exists(r.FilterPath(5)) || exists(r.Path(export.ReplacingName)) || r.Replacing() != 0 {
		t.Fatal("a whole snapshot kept N.full, N.filter, or .replacing stayed")
	}
	if n, err := r.Current(); err != nil || n != 5 {
		t.Fatalf("current = %d %v", n, err)
	}
}
