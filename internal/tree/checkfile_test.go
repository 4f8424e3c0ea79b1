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

// CheckHash compares a copy's size and hash with its record: by xxhash64
// for a version 1 record, by SHA-256 for a version 2 one, where a copy
// whose hash (the digest's first 8 bytes) matches but whose digest does not
// is refused.
func TestCheckHash(t *testing.T) {
	want := manifest.Entry{Path: "f", Type: manifest.File, Size: 3, Hash: 0xabc}
	if err := tree.CheckHash(want, 3, manifest.Sum{Hash: 0xabc}); err != nil {
		t.Fatalf("match: %v", err)
	}
	h := manifest.NewHasher(manifest.Version2)
	h.Write([]byte("abc"))
	want2 := manifest.Entry{Path: "f", Type: manifest.File, Size: 3}
	want2.SetSum(h.Sum())
	if err := tree.CheckHash(want2, 3, h.Sum()); err != nil {
		t.Fatalf("version 2 match: %v", err)
	}
	forged := h.Sum()
	forged.Digest[31]++ // same 64-bit hash, another digest
	tests := []struct {
		name string
		want manifest.Entry
		size int64
		got  manifest.Sum
		says string
	}{
		{name: "v1 size", want: want, size: 4, got: manifest.Sum{Hash: 0xabc}, says: "manifest says 3 bytes hash 0000000000000abc"},
		{name: "v1 hash", want: want, size: 3, got: manifest.Sum{Hash: 0xabd}, says: "manifest says 3 bytes hash 0000000000000abc"},
		{name: "v2 digest", want: want2, size: 3, got: forged, says: "manifest says 3 bytes sha256 " + want2.Digest.String()},
		{name: "v2 hashed as v1", want: want2, size: 3, got: manifest.Sum{Hash: want2.Hash}, says: "got 3 bytes hash"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tree.CheckHash(tt.want, tt.size, tt.got)
			if !errors.Is(err, tree.ErrHashMismatch) || !strings.Contains(err.Error(), tt.says) {
				t.Errorf("CheckHash(%d, %v) = %v, want it to say %q", tt.size, tt.got, err, tt.says)
			}
		})
	}
}

func write(tb testing.TB, p, content string) {
	tb.Helper()
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		tb.Fatal(err)
	}
}
