package fsys

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/spf13/afero"
	"golang.org/x/sys/unix"
)

// wrapper stands for any FS that is not the real one (e.g. testutil/faultfs).
type wrapper struct{ FS }

// beneathOpeners are OpenBeneath's three ways: openat2, the openat walk the
// real filesystem falls back to without openat2, and the Lstat walk of
// wrapping filesystems; and BeneathDir.Open.
var beneathOpeners = []struct {
	name string
	open func(root, rel string) (afero.File, error)
}{
	{name: "openat2", open: func(root, rel string) (afero.File, error) { return OpenBeneath(OS(), root, rel) }},
	{name: "openat walk", open: func(root, rel string) (afero.File, error) {
		rel, full, err := localRel(root, rel)
		if err != nil {
			return nil, err
		}
		dfd, err := openRoot(root)
		if err != nil {
			return nil, err
		}
		defer unix.Close(dfd)
		fd, err := openWalk(dfd, rel, full, ReadFlags)
		if err != nil {
			return nil, err
		}
		return regularFile(fd, rel, full)
	}},
	{name: "lstat", open: func(root, rel string) (afero.File, error) { return OpenBeneath(wrapper{OS()}, root, rel) }},
	{name: "BeneathDir", open: func(root, rel string) (afero.File, error) {
		d, err := OpenBeneathDir(OS(), root)
		if err != nil {
			return nil, err
		}
		defer d.Close() // the opened file outlives the directory
		return d.Open(rel)
	}},
}

// beneathTree makes root (a regular file f, d/e/f, a fifo, a character
// device like /dev/zero, a directory, symlinks to a secret outside root and
// inside it) and returns it.
func beneathTree(tb testing.TB) string {
	tb.Helper()
	dir := tb.TempDir()
	root, outside := filepath.Join(dir, "root"), filepath.Join(dir, "outside")
	for _, d := range []string{root, outside, filepath.Join(root, "d", "e")} {
		must(tb, os.MkdirAll(d, 0o755))
	}
	must(tb, os.WriteFile(filepath.Join(outside, "secret"), []byte("s3cr3t:20228:0\n"), 0o600))
	must(tb, os.WriteFile(filepath.Join(root, "f"), []byte("top\n"), 0o644))
	must(tb, os.WriteFile(filepath.Join(root, "d", "e", "f"), []byte("deep\n"), 0o644))
	must(tb, unix.Mkfifo(filepath.Join(root, "fifo"), 0o644))
	must(tb, unix.Mknod(filepath.Join(root, "zero"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 5))))
	must(tb, os.Symlink(filepath.Join(outside, "secret"), filepath.Join(root, "leak")))
	must(tb, os.Symlink("f", filepath.Join(root, "inside")))
	must(tb, os.Symlink(outside, filepath.Join(root, "d", "out")))
	must(tb, os.Symlink("e", filepath.Join(root, "d", "in")))
	return root
}

func must(tb testing.TB, err error) {
	tb.Helper()
	if err != nil {
		tb.Fatal(err)
	}
}

func TestOpenBeneath(t *testing.T) {
	root := beneathTree(t)
	tests := []struct {
		name    string
		rel     string
		want    string // content, if it opens
		wantErr error
		msg     string // in the error
	}{
		{name: "regular file", rel: "f", want: "top\n"},
		{name: "nested regular file", rel: "d/e/f", want: "deep\n"},
		{name: "unclean but local", rel: "d/../f", want: "top\n"},
		{name: "fifo", rel: "fifo", wantErr: ErrNotRegular, msg: "fifo is a fifo"},
		{name: "character device", rel: "zero", wantErr: ErrNotRegular, msg: "zero is a character device"},
		{name: "directory", rel: "d", wantErr: ErrNotRegular, msg: "d is a directory"},
		{name: "symlink to a file outside", rel: "leak", wantErr: ErrSymlink, msg: "leak is a symlink"},
		{name: "symlink to a file inside", rel: "inside", wantErr: ErrSymlink, msg: "inside is a symlink"},
		{name: "directory symlink to outside", rel: "d/out/secret", wantErr: ErrSymlink, msg: "a directory component, d/out, is a symlink"},
		{name: "directory symlink inside", rel: "d/in/f", wantErr: ErrSymlink, msg: "a directory component, d/in, is a symlink"},
		{name: "missing", rel: "d/nope", wantErr: fs.ErrNotExist},
		{name: "file as a directory", rel: "f/x", wantErr: syscall.ENOTDIR},
		{name: "leaves the root", rel: "../outside/secret", wantErr: fs.ErrInvalid},
		{name: "absolute", rel: "/etc/passwd", wantErr: fs.ErrInvalid},
		{name: "the root itself", rel: ".", wantErr: fs.ErrInvalid},
	}
	for _, o := range beneathOpeners {
		for _, tt := range tests {
			t.Run(o.name+"/"+tt.name, func(t *testing.T) {
				h, err := openWithin(t, 5*time.Second, func() (afero.File, error) { return o.open(root, tt.rel) })
				if tt.wantErr != nil {
					if !errors.Is(err, tt.wantErr) || !strings.Contains(fmtErr(err), tt.msg) {
						t.Fatalf("OpenBeneath(%s) = %v, want %v with %q", tt.rel, err, tt.wantErr, tt.msg)
					}
					if strings.Contains(err.Error(), "s3cr3t") {
						t.Fatalf("error quotes the secret: %v", err)
					}
					return
				}
				if err != nil {
					t.Fatalf("OpenBeneath(%s): %v", tt.rel, err)
				}
				defer h.Close()
				b, err := io.ReadAll(h)
				if err != nil || string(b) != tt.want {
					t.Fatalf("read %q, %v; want %q", b, err, tt.want)
				}
			})
		}
	}
}

func fmtErr(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// openWithin fails the test if open does not return within d (a fifo would
// block an open without O_NONBLOCK forever).
func openWithin(tb testing.TB, d time.Duration, open func() (afero.File, error)) (afero.File, error) {
	tb.Helper()
	type result struct {
		h   afero.File
		err error
	}
	done := make(chan result, 1)
	go func() {
		h, err := open()
		done <- result{h, err}
	}()
	select {
	case r := <-done:
		return r.h, r.err
	case <-time.After(d):
		tb.Fatalf("open still blocked after %v", d)
		return nil, nil
	}
}

// TestOpenBeneathBlocking checks that the file OpenBeneath returns on the
// real filesystem is blocking again (O_NONBLOCK was only for the open).
func TestOpenBeneathBlocking(t *testing.T) {
	root := beneathTree(t)
	h, err := OpenBeneath(OS(), root, "f")
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	rc, err := h.(*os.File).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var flags int
	var ferr error
	must(t, rc.Control(func(fd uintptr) { flags, ferr = unix.FcntlInt(fd, unix.F_GETFL, 0) }))
	if ferr != nil || flags&unix.O_NONBLOCK != 0 {
		t.Fatalf("flags %#x, %v: O_NONBLOCK still set", flags, ferr)
	}
}
