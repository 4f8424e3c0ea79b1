package testutil

import (
	"os"
	"syscall"
	"testing"
)

// CorruptInPlace overwrites the first bytes of the file at p in place (the
// inode every hard link to it shares), keeping its size, mode and mtime:
// damage that no quick check sees. The file must be at least 8 bytes.
func CorruptInPlace(tb testing.TB, p string) {
	tb.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		tb.Fatal(err)
	}
	if err := os.Chmod(p, 0o644); err != nil {
		tb.Fatal(err)
	}
	w, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := w.WriteAt([]byte("bit rot!"), 0); err != nil {
		tb.Fatal(err)
	}
	if err := w.Close(); err != nil {
		tb.Fatal(err)
	}
	if err := os.Chmod(p, fi.Mode().Perm()); err != nil {
		tb.Fatal(err)
	}
	if err := os.Chtimes(p, fi.ModTime(), fi.ModTime()); err != nil {
		tb.Fatal(err)
	}
	if after, err := os.Stat(p); err != nil || after.Size() != fi.Size() || !after.ModTime().Equal(fi.ModTime()) {
		tb.Fatalf("corrupt %s: size or mtime moved (%v)", p, err)
	}
}

// Inode returns the inode number of the file at p (not following a final
// symlink).
func Inode(tb testing.TB, p string) uint64 {
	tb.Helper()
	fi, err := os.Lstat(p)
	if err != nil {
		tb.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Ino
}
