package testutil

import (
	"os"
	"path/filepath"
	"testing"
)

// FastDir returns a fresh directory on a tmpfs (/dev/shm) when there is
// one, else tb.TempDir(): fault and stop sweeps run hundreds of runs, each
// flushing the filesystem, and test logic, not disks. Crash tests use
// tb.TempDir(). The cleanup first makes every directory writable
// (snapshot directories may be read-only).
func FastDir(tb testing.TB) string {
	tb.Helper()
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		if d, err := os.MkdirTemp("/dev/shm", "seqmirror-test-"); err == nil {
			tb.Cleanup(func() { MakeWritable(d); os.RemoveAll(d) })
			return d
		}
	}
	return tb.TempDir()
}

// MakeWritable makes every directory below d writable so it can be removed.
func MakeWritable(d string) {
	filepath.Walk(d, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.IsDir() {
			os.Chmod(p, 0o755)
		}
		return nil
	})
}
