package rsync

import (
	"os"
	"path/filepath"
	"testing"
)

// dirsBelow refuses a path whose directories below the private top
// include a symlink (which rsync -l may have received from the upstream).
func TestDirsBelow(t *testing.T) {
	top := t.TempDir()
	if err := os.MkdirAll(filepath.Join(top, "a", "b"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(t.TempDir(), filepath.Join(top, "a", "link")); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		dir  string
		want bool
	}{
		{name: "top", dir: top, want: true},
		{name: "real dirs", dir: filepath.Join(top, "a", "b"), want: true},
		{name: "symlink", dir: filepath.Join(top, "a", "link"), want: false},
		{name: "below a symlink", dir: filepath.Join(top, "a", "link", "x"), want: false},
		{name: "missing", dir: filepath.Join(top, "nope"), want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := dirsBelow(top, tt.dir); got != tt.want {
				t.Fatalf("dirsBelow(%s) = %v", tt.dir, got)
			}
		})
	}
}
