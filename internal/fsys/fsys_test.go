package fsys_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/seqmirror/seqmirror/internal/fsys"
)

// memFS stands for any FS that is not the real one (e.g. testutil/faultfs).
type memFS struct {
	fsys.FS
	links [][2]string
}

func (m *memFS) Link(o, n string) error {
	m.links = append(m.links, [2]string{o, n})
	return nil
}

func TestLinkAll(t *testing.T) {
	tests := []struct {
		name    string
		names   []string
		wantErr error
	}{
		{name: "all present", names: []string{"a", "b", "c d"}},
		{name: "one missing", names: []string{"a", "nope"}, wantErr: fs.ErrNotExist},
		{name: "none", names: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			src, dst := filepath.Join(dir, "src"), filepath.Join(dir, "dst")
			os.Mkdir(src, 0o755)
			os.Mkdir(dst, 0o755)
			for _, n := range []string{"a", "b", "c d"} {
				os.WriteFile(filepath.Join(src, n), []byte(n), 0o644)
			}
			err := fsys.LinkAll(fsys.OS(), src, dst, tt.names)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Fatalf("LinkAll = %v, want %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			for _, n := range tt.names {
				a, _ := os.Stat(filepath.Join(src, n))
				b, err := os.Stat(filepath.Join(dst, n))
				if err != nil || !os.SameFile(a, b) {
					t.Fatalf("%s not hard-linked: %v", n, err)
				}
			}
		})
	}
}

func TestLinkAllFallsBackToLink(t *testing.T) {
	m := &memFS{FS: fsys.OS()}
	if err := fsys.LinkAll(m, "/s", "/d", []string{"x", "y"}); err != nil {
		t.Fatal(err)
	}
	want := [][2]string{{"/s/x", "/d/x"}, {"/s/y", "/d/y"}}
	if len(m.links) != 2 || m.links[0] != want[0] || m.links[1] != want[1] {
		t.Fatalf("links = %v, want %v", m.links, want)
	}
}
