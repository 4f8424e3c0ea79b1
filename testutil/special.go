package testutil

import (
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

// Fifo replaces path by a named pipe: a file that blocks a reader opening
// it (without O_NONBLOCK) until a writer comes.
func Fifo(tb testing.TB, path string) {
	tb.Helper()
	os.Remove(path)
	if err := unix.Mkfifo(path, 0o644); err != nil {
		tb.Fatalf("mkfifo %s: %v", path, err)
	}
}

// ZeroDevice replaces path by a character device node like /dev/zero (1,5):
// a file that reads without end. Making one needs root (CAP_MKNOD); a test
// run by another user skips the case that needs it.
func ZeroDevice(tb testing.TB, path string) {
	tb.Helper()
	os.Remove(path)
	err := unix.Mknod(path, unix.S_IFCHR|0o666, int(unix.Mkdev(1, 5)))
	if err == unix.EPERM && os.Geteuid() != 0 {
		tb.Skipf("mknod %s: %v: a device node needs root", path, err)
	}
	if err != nil {
		tb.Fatalf("mknod %s: %v", path, err)
	}
}
