package tree_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/seqmirror/seqmirror/internal/fsys"
	"github.com/seqmirror/seqmirror/internal/tree"
	"github.com/seqmirror/seqmirror/manifest"
	"github.com/seqmirror/seqmirror/testutil"
)

// CheckFile is the one "file matches its record" check: a regular file of
// the record's size and hash passes; anything else wraps ErrHashMismatch
// and says what it got, except a missing file (fs.ErrNotExist). A fifo is
// not waited on.
func TestCheckFile(t *testing.T) {
	const content = "hello\n"
	want := manifest.Entry{Path: "f", Type: manifest.File, Mode: 0o644, Size: int64(len(content)), Hash: xxhash.Sum64String(content)}
	tests := []struct {
		name string
		make func(tb testing.TB, p string)
		err  error  // nil: passes
		says string // in the error
	}{
		{name: "match", make: func(tb testing.TB, p string) { write(tb, p, content) }},
		{name: "other size", make: func(tb testing.TB, p string) { write(tb, p, content+"x") }, err: tree.ErrHashMismatch,
			says: "(got 7 bytes hash "},
		{name: "same size, other content", make: func(tb testing.TB, p string) { write(tb, p, "HELLO\n") }, err: tree.ErrHashMismatch,
			says: "manifest says 6 bytes hash "},
		{name: "symlink to the right content", make: func(tb testing.TB, p string) {
			write(tb, p+".real", content)
			if err := os.Symlink(filepath.Base(p)+".real", p); err != nil {
				tb.Fatal(err)
			}
		}, err: tree.ErrHashMismatch, says: "got a symlink, manifest says f"},
		{name: "fifo", make: func(tb testing.TB, p string) { testutil.Fifo(tb, p) }, err: tree.ErrHashMismatch, says: "got type p---------, manifest says f"},
		{name: "directory", make: func(tb testing.TB, p string) {
			if err := os.Mkdir(p, 0o755); err != nil {
				tb.Fatal(err)
			}
		}, err: tree.ErrHashMismatch, says: "got type d---------, manifest says f"},
		{name: "missing", make: func(testing.TB, string) {}, err: fs.ErrNotExist},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "f")
			tt.make(t, p)
			done := make(chan error, 1)
			var fi fs.FileInfo
			go func() {
				var err error
				fi, err = tree.CheckFile(fsys.OS(), p, want)
				done <- err
			}()
			var err error
			select {
			case err = <-done:
			case <-time.After(5 * time.Second):
				t.Fatal("CheckFile still blocked after 5s")
			}
			if tt.err == nil {
				if err != nil || fi == nil || !fi.Mode().IsRegular() {
					t.Fatalf("CheckFile = %v, %v; want a regular file's info and nil", fi, err)
				}
				return
			}
			if !errors.Is(err, tt.err) || !strings.Contains(err.Error(), tt.says) {
				t.Fatalf("CheckFile = %v, want it to wrap %v and say %q", err, tt.err, tt.says)
			}
		})
	}
}

// CheckHash compares a copy's size and hash with its record.
func TestCheckHash(t *testing.T) {
	want := manifest.Entry{Path: "f", Type: manifest.File, Size: 3, Hash: 0xabc}
	if err := tree.CheckHash(want, 3, 0xabc); err != nil {
		t.Fatalf("match: %v", err)
	}
	for _, got := range []struct {
		size int64
		hash uint64
	}{{4, 0xabc}, {3, 0xabd}} {
		err := tree.CheckHash(want, got.size, got.hash)
		if !errors.Is(err, tree.ErrHashMismatch) || !strings.Contains(err.Error(), "manifest says 3 bytes hash 0000000000000abc") {
			t.Errorf("CheckHash(%d, %x) = %v", got.size, got.hash, err)
		}
	}
}

func write(tb testing.TB, p, content string) {
	tb.Helper()
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		tb.Fatal(err)
	}
}
