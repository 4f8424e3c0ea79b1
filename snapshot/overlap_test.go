package snapshot

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/seqmirror/seqmirror/internal/fsys"
)

func TestCheckOverlap(t *testing.T) {
	d := t.TempDir()
	for _, p := range []string{"src/sub", "other"} {
		if err := os.MkdirAll(filepath.Join(d, p), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("src", filepath.Join(d, "link")); err != nil {
		t.Fatal(err)
	}
	j := func(p string) string { return filepath.Join(d, p) }
	for _, tc := range []struct {
		name         string
		root, source string
		overlap      bool
	}{
		{name: "same", root: j("src"), source: j("src"), overlap: true},
		{name: "same, unclean", root: j("src/sub/.."), source: j("src"), overlap: true},
		{name: "root inside source", root: j("src/pub"), source: j("src"), overlap: true},
		{name: "root deep inside source, not yet made", root: j("src/a/b/pub"), source: j("src"), overlap: true},
		{name: "source inside root", root: j("src"), source: j("src/sub"), overlap: true},
		{name: "root inside source through a symlink", root: j("link/pub"), source: j("src"), overlap: true},
		{name: "source is a symlink to the root", root: j("src"), source: j("link"), overlap: true},
		{name: "siblings", root: j("other"), source: j("src")},
		{name: "shared name prefix", root: j("src2"), source: j("src")},
		{name: "root is filesystem root", root: "/", source: j("src"), overlap: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := checkOverlap(fsys.OS(), tc.root, tc.source)
			if got := errors.Is(err, ErrSourceOverlap); got != tc.overlap {
				t.Fatalf("checkOverlap(%s, %s) = %v; want overlap %v", tc.root, tc.source, err, tc.overlap)
			}
		})
	}
}
