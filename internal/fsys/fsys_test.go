package fsys_test

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/seqmirror/seqmirror/internal/fsys"
	"github.com/seqmirror/seqmirror/testutil"
	"golang.org/x/sys/unix"
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

// TestNoAtime: reading a file through OpenRegular, or listing a directory
// opened by OpenDir, leaves its access time alone where relatime would
// move it (an atime older than the mtime), so that a copy-on-write
// snapshot being hashed or listed keeps its inodes as they were.
func TestNoAtime(t *testing.T) {
	dir := t.TempDir()
	testutil.WriteTree(t, dir, map[string]string{"d/f": "content"})
	old := time.Unix(1_000_000_000, 0)
	for _, p := range []string{"d", "d/f"} {
		now := time.Now()
		testutil.Must(t, os.Chtimes(filepath.Join(dir, p), old, now))
	}
	for _, tc := range []struct {
		name string
		read func(p string) error
		path string
	}{
		{name: "OpenRegular", path: "d/f", read: func(p string) error {
			h, err := fsys.OpenRegular(fsys.OS(), p)
			if err == nil {
				_, err = io.ReadAll(h)
				h.Close()
			}
			return err
		}},
		{name: "OpenDir", path: "d", read: func(p string) error {
			fd, err := fsys.OpenDir(p, 0)
			if err == nil {
				_, err = unix.Getdents(fd, make([]byte, 4096))
				unix.Close(fd)
			}
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, tc.path)
			testutil.Must(t, tc.read(p))
			var st unix.Stat_t
			testutil.Must(t, unix.Lstat(p, &st))
			if got := time.Unix(st.Atim.Unix()); !got.Equal(old) {
				t.Fatalf("atime of %s moved to %v", tc.path, got)
			}
		})
	}
}
