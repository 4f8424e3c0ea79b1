package tree_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/seqmirror/seqmirror/internal/fsys"
	"github.com/seqmirror/seqmirror/internal/tree"
	"github.com/seqmirror/seqmirror/manifest"
	"github.com/seqmirror/seqmirror/testutil"
)

// searchFS refuses Chmod and Chtimes below a directory it has given a mode
// without the owner's search bit, as the kernel does for a non-root owner
// (the tests may run as root, which it lets through).
type searchFS struct {
	fsys.FS
	base string
	mu   sync.Mutex
	mode map[string]os.FileMode
}

func (s *searchFS) blocked(name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for d := filepath.Dir(name); len(d) > len(s.base); d = filepath.Dir(d) {
		if m, ok := s.mode[d]; ok && m&0o100 == 0 {
			return true
		}
	}
	return false
}

func (s *searchFS) Chmod(name string, mode os.FileMode) error {
	if s.blocked(name) {
		return &os.PathError{Op: "chmod", Path: name, Err: syscall.EACCES}
	}
	s.mu.Lock()
	s.mode[name] = mode
	s.mu.Unlock()
	return s.FS.Chmod(name, mode)
}

func (s *searchFS) Chtimes(name string, a, m time.Time) error {
	if s.blocked(name) {
		return &os.PathError{Op: "chtimes", Path: name, Err: syscall.EACCES}
	}
	return s.FS.Chtimes(name, a, m)
}

// manyDirRecords lists, in canonical order, directories with and without
// their owner's search bit, above and below each other, and more than a
// chunk of MakeDirsStream in one directory.
func manyDirRecords() []manifest.Entry {
	var dirs []manifest.Entry
	add := func(p string, mode os.FileMode) {
		dirs = append(dirs, manifest.Entry{Path: p, Type: manifest.Dir, Mode: mode, MTime: int64(len(dirs)+1) * 1e9})
	}
	add("a", 0o600)
	add("a/b", 0o755)
	add("a/b/c", 0o500)
	add("a/b/c/d", 0o000)
	add("a/e", 0o700)
	add("f", 0o755)
	for i := 0; i < 5000; i++ {
		p := fmt.Sprintf("f/g%04d", i)
		add(p, []os.FileMode{0o755, 0o644, 0o555, 0o311}[i%4])
		if i%50 == 0 {
			add(p+"/h", 0o600)
			add(p+"/h/i", 0o755)
		}
	}
	add("z", 0o000)
	return dirs
}

func TestDirStreams(t *testing.T) {
	dirs := manyDirRecords()
	for _, tt := range []struct {
		name    string
		workers int
	}{
		{name: "one worker", workers: 1},
		{name: "four workers", workers: 4},
	} {
		t.Run(tt.name, func(t *testing.T) {
			base := filepath.Join(testutil.FastDir(t), "tree")
			if err := os.Mkdir(base, 0o700); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.Chmod(base, 0o700) })
			f := &searchFS{FS: fsys.OS(), base: base, mode: map[string]os.FileMode{}}
			ctx := context.Background()
			if err := tree.MakeDirsStream(ctx, f, base, &manifest.SliceIterator{Entries: dirs}, tt.workers); err != nil {
				t.Fatal(err)
			}
			if err := tree.FinishDirsStream(ctx, f, base, &manifest.SliceIterator{Entries: dirs}, tt.workers); err != nil {
				t.Fatal(err)
			}
			// Parents first, each opened up once checked, so that what is
			// below it can be reached by a non-root owner too.
			for _, d := range dirs {
				p := filepath.Join(base, filepath.FromSlash(d.Path))
				fi, err := os.Lstat(p)
				if err != nil {
					t.Fatal(err)
				}
				if fi.Mode().Perm() != d.Mode || fi.ModTime().UnixNano() != d.MTime || !fi.IsDir() {
					t.Fatalf("%s: %v %d, want %v %d", d.Path, fi.Mode(), fi.ModTime().UnixNano(), d.Mode, d.MTime)
				}
				if err := os.Chmod(p, 0o700); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}
