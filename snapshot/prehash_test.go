package snapshot

import (
	"context"
	"path/filepath"
	"slices"
	"testing"

	"github.com/seqmirror/seqmirror/internal/fsys"
	"github.com/seqmirror/seqmirror/internal/tree"
	"github.com/seqmirror/seqmirror/manifest"
	"github.com/seqmirror/seqmirror/testutil"
)

// TestPrehasher: the sums it keeps are the files' own, at most max of
// them; a file it cannot read is not kept (hashFiles reports it), and a
// nil prehasher has none.
func TestPrehasher(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{"a": "alpha", "d/b": "bravo!", "d/c": "", "e": "echo"}
	testutil.WriteTree(t, dir, files)
	f := fsys.OS()
	tests := []struct {
		name string
		max  int
		add  []string
		want []string
	}{
		{name: "all", max: 10, add: []string{"a", "d/b", "d/c"}, want: []string{"a", "d/b", "d/c"}},
		{name: "bounded", max: 2, add: []string{"a", "d/b", "e"}, want: []string{"a", "d/b"}},
		{name: "missing file", max: 10, add: []string{"a", "gone"}, want: []string{"a"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := newPrehasher(context.Background(), f, dir, 3)
			p.max = tc.max
			for _, rel := range tc.add {
				p.add(&manifest.Entry{Path: rel, Type: manifest.File})
			}
			if n := p.wait(); n != len(tc.want) {
				t.Fatalf("hashed %d files, want %d", n, len(tc.want))
			}
			for _, rel := range tc.want {
				got, ok := p.sum(rel)
				h, n, err := tree.HashFile(f, filepath.Join(dir, rel), manifest.Current)
				testutil.Must(t, err)
				if !ok || got.sum != h || got.size != n {
					t.Errorf("%s: %+v %v, want %+v size %d", rel, got, ok, h, n)
				}
			}
			for _, rel := range tc.add {
				if _, ok := p.sum(rel); ok && !slices.Contains(tc.want, rel) {
					t.Errorf("%s kept", rel)
				}
			}
		})
	}
	var nilp *prehasher
	if _, ok := nilp.sum("a"); ok {
		t.Fatal("a nil prehasher has a sum")
	}
}
