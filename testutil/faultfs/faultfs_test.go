package faultfs_test

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/seqmirror/seqmirror/internal/fsys"
	"github.com/seqmirror/seqmirror/testutil/faultfs"
)

// writeFile's mutating ops: create, write, sync, close (not counted), chmod,
// rename, open dir (not counted), sync dir.
func TestFailEachStepOfWriteFile(t *testing.T) {
	tests := []struct {
		name   string
		k      int
		ops    faultfs.Op
		errno  syscall.Errno
		wantOp string
	}{
		{name: "remove stale temp", k: 1, ops: faultfs.Mutating, errno: syscall.EIO},
		{name: "create temp", k: 1, ops: faultfs.OpCreate, errno: syscall.ENOSPC, wantOp: "create temp"},
		{name: "write", k: 1, ops: faultfs.OpWrite, errno: syscall.ENOSPC, wantOp: "write"},
		{name: "fsync file", k: 1, ops: faultfs.OpSync, errno: syscall.EIO, wantOp: "fsync"},
		{name: "chmod", k: 1, ops: faultfs.OpChmod, errno: syscall.EROFS, wantOp: "chmod"},
		{name: "rename", k: 1, ops: faultfs.OpRename, errno: syscall.EXDEV, wantOp: "rename"},
		{name: "fsync dir", k: 2, ops: faultfs.OpSync, errno: syscall.EIO, wantOp: "fsync dir"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			name := filepath.Join(dir, "f")
			if err := os.WriteFile(name, []byte("old"), 0o644); err != nil {
				t.Fatal(err)
			}
			f := faultfs.New(fsys.OS())
			f.FailAt(tt.k, tt.ops, tt.errno)
			err := fsys.WriteFile(f, name, []byte("new"), 0o644)
			inj := f.Injected()
			if len(inj) != 1 {
				t.Fatalf("injected %v, want exactly one fault", inj)
			}
			if tt.wantOp == "" { // the pre-create Remove's error is ignored by design
				if err != nil {
					t.Fatalf("WriteFile = %v, want the ignored fault to be harmless", err)
				}
				return
			}
			if !errors.Is(err, tt.errno) {
				t.Fatalf("WriteFile err = %v, want it to wrap %v", err, tt.errno)
			}
			b, _ := os.ReadFile(name)
			if tt.wantOp == "fsync dir" {
				if string(b) != "new" {
					t.Fatalf("content %q after failed dir fsync, want new (renamed)", b)
				}
			} else if string(b) != "old" {
				t.Fatalf("content %q after failed %s, want old", b, tt.wantOp)
			}
			ents, _ := os.ReadDir(dir)
			if len(ents) != 1 {
				t.Fatalf("dir holds %d entries after a failed WriteFile, want 1 (temp removed)", len(ents))
			}
		})
	}
}

func TestCountsAndSticky(t *testing.T) {
	dir := t.TempDir()
	f := faultfs.New(fsys.OS())
	f.FailAt(0, faultfs.Mutating, nil)
	f.Trace(true)
	if err := fsys.WriteFile(f, filepath.Join(dir, "a"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	// remove temp, create, write, sync, chmod, rename, sync dir
	if got := f.Count(); got != 7 {
		t.Fatalf("WriteFile counted %d ops, want 7: %v", got, f.Events())
	}
	if ev := f.Events(); len(ev) != 7 || ev[5].Op != faultfs.OpRename {
		t.Fatalf("trace %v, want 7 events with the rename 6th", ev)
	}
	f.FailFrom(2, faultfs.OpMkdir, syscall.ENOSPC)
	for i, want := range []bool{false, true, true} {
		err := f.Mkdir(filepath.Join(dir, "d"+string(rune('0'+i))), 0o755)
		if got := errors.Is(err, syscall.ENOSPC); got != want {
			t.Fatalf("mkdir %d: err %v, want failure=%v", i+1, err, want)
		}
	}
	f.Disarm()
	if err := f.Mkdir(filepath.Join(dir, "d9"), 0o755); err != nil {
		t.Fatalf("after Disarm: %v", err)
	}
	f.FailAt(1, faultfs.OpRead, syscall.EIO)
	h, err := f.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if _, err := h.Readdirnames(-1); !errors.Is(err, syscall.EIO) {
		t.Fatalf("readdir err %v, want EIO", err)
	}
}

// CallAt runs its function once, at the k-th matching operation, which
// still happens.
func TestCallAt(t *testing.T) {
	dir := t.TempDir()
	f := faultfs.New(fsys.OS())
	calls := 0
	f.CallAt(2, faultfs.OpMkdir, func() {
		calls++
		if _, err := os.Stat(filepath.Join(dir, "b")); !os.IsNotExist(err) {
			t.Errorf("the function ran after its operation: stat b = %v", err)
		}
	})
	for _, d := range []string{"a", "b", "c"} {
		if err := f.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatalf("mkdir %s: %v", d, err)
		}
	}
	if calls != 1 || f.Count() != 3 {
		t.Fatalf("calls %d count %d, want 1 and 3", calls, f.Count())
	}
}
