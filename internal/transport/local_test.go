package transport_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/seqmirror/seqmirror/internal/cow"
	"github.com/seqmirror/seqmirror/internal/fsys"
	"github.com/seqmirror/seqmirror/internal/transport"
	"github.com/seqmirror/seqmirror/testutil"
	"github.com/spf13/afero"
)

// swapFS swaps the file at path for something else (swap) just before it
// is opened: an upstream that changes a file's type between the walk that
// listed it and the copy.
type swapFS struct {
	fsys.FS
	path string
	swap func(p string)
}

func (s *swapFS) OpenFile(name string, flag int, perm os.FileMode) (afero.File, error) {
	if name == s.path && s.swap != nil {
		s.swap(name)
		s.swap = nil
	}
	return s.FS.OpenFile(name, flag, perm)
}

// TestFetchTreeRefusesSwappedFile: classic mode lists the upstream tree
// (lstat, never following), then copies each regular file. A file that is a
// fifo, a device or a symlink by the time it is opened is neither waited on,
// read on, nor followed: the copy stops with ErrVanished (the upstream
// changed; SyncClassic starts over), at once.
func TestFetchTreeRefusesSwappedFile(t *testing.T) {
	const secret = "s3cr3t:20228\n"
	tests := []struct {
		name string
		swap func(tb testing.TB, p, outside string)
	}{
		{name: "fifo", swap: func(tb testing.TB, p, _ string) { testutil.Fifo(tb, p) }},
		{name: "character device", swap: func(tb testing.TB, p, _ string) { testutil.ZeroDevice(tb, p) }},
		{name: "symlink to a secret", swap: func(tb testing.TB, p, outside string) {
			os.Remove(p)
			if err := os.Symlink(filepath.Join(outside, "secret"), p); err != nil {
				tb.Fatal(err)
			}
		}},
		{name: "directory symlinked outside", swap: func(tb testing.TB, p, outside string) {
			d := filepath.Dir(p)
			os.RemoveAll(d)
			if err := os.WriteFile(filepath.Join(outside, filepath.Base(p)), []byte(secret), 0o644); err != nil {
				tb.Fatal(err)
			}
			if err := os.Symlink(outside, d); err != nil {
				tb.Fatal(err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			up, outside, dst := filepath.Join(dir, "up"), filepath.Join(dir, "outside"), filepath.Join(dir, "dst")
			testutil.WriteTree(t, up, map[string]string{"a.txt": "a\n", "sub/b.txt": "b\n", "seq/end": "1\n"})
			testutil.WriteTree(t, outside, map[string]string{"secret": secret})
			if err := os.Mkdir(dst, 0o755); err != nil {
				t.Fatal(err)
			}
			target := filepath.Join(up, "sub", "b.txt")
			f := &swapFS{FS: fsys.OS(), path: target, swap: func(p string) { tt.swap(t, p, outside) }}
			l, err := transport.NewLocal(f, up)
			if err != nil {
				t.Fatal(err)
			}
			l.Workers = 1
			done := make(chan error, 1)
			go func() { done <- l.FetchTree(context.Background(), dst, "") }()
			select {
			case err = <-done:
			case <-time.After(5 * time.Second):
				t.Fatal("FetchTree still blocked after 5s")
			}
			if !errors.Is(err, transport.ErrVanished) || !fsys.Refused(err) {
				t.Fatalf("FetchTree = %v, want ErrVanished and a refusal", err)
			}
			if strings.Contains(err.Error(), "20228") {
				t.Fatalf("the error quotes the secret: %v", err)
			}
			if b, err := os.ReadFile(filepath.Join(dst, "sub", "b.txt")); err == nil {
				t.Fatalf("copied %q", b)
			}
		})
	}
}

// TestCloneSnapshot: a local upstream on btrfs clones its snapshot N into
// a writable snapshot and says what btrfs records of it; a snapshots/N
// that is a symlink (to a subvolume elsewhere), a plain directory, or on
// another filesystem is refused with cow.ErrUnsupported and leaves nothing.
func TestCloneSnapshot(t *testing.T) {
	mnt := testutil.MountLoop(t, "btrfs", testutil.LoopSize)
	up := filepath.Join(mnt, "up")
	testutil.Must(t, os.MkdirAll(filepath.Join(up, "snapshots"), 0o755))
	testutil.Must(t, cow.CreateSubvolume(filepath.Join(up, "snapshots", "1")))
	testutil.WriteTree(t, filepath.Join(up, "snapshots", "1"), map[string]string{"f": "x"})
	testutil.Must(t, cow.CreateSubvolume(filepath.Join(mnt, "elsewhere")))
	testutil.Must(t, os.Symlink("../../elsewhere", filepath.Join(up, "snapshots", "2")))
	testutil.Must(t, os.Mkdir(filepath.Join(up, "snapshots", "3"), 0o755))
	l, err := transport.NewLocal(fsys.OS(), up)
	testutil.Must(t, err)
	dst := filepath.Join(mnt, "clone")
	info, err := l.CloneSnapshot(context.Background(), 1, dst)
	testutil.Must(t, err)
	want, err := cow.Info(filepath.Join(up, "snapshots", "1"))
	testutil.Must(t, err)
	got, err := cow.Info(dst)
	testutil.Must(t, err)
	if info != want || got.ParentUUID != want.UUID {
		t.Fatalf("clone info %+v of %+v, want a snapshot of %+v", info, got, want)
	}
	if b, err := os.ReadFile(filepath.Join(dst, "f")); err != nil || string(b) != "x" {
		t.Fatalf("clone holds %q, %v", b, err)
	}
	other := testutil.MountLoop(t, "btrfs", testutil.LoopSize)
	for _, tc := range []struct {
		name string
		n    uint64
		dst  string
	}{
		{name: "symlink", n: 2, dst: filepath.Join(mnt, "c2")},
		{name: "plain directory", n: 3, dst: filepath.Join(mnt, "c3")},
		{name: "missing", n: 4, dst: filepath.Join(mnt, "c4")},
		{name: "another filesystem", n: 1, dst: filepath.Join(other, "c1")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := l.CloneSnapshot(context.Background(), tc.n, tc.dst)
			if !errors.Is(err, cow.ErrUnsupported) {
				t.Fatalf("clone: %v, want ErrUnsupported", err)
			}
			if _, err := os.Lstat(tc.dst); !os.IsNotExist(err) {
				t.Fatalf("%s left behind: %v", tc.dst, err)
			}
		})
	}
}
