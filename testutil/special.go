package testutil

import (
	"os"
	"testing"
)

// Fifo replaces path by a named pipe: a file that blocks a reader opening
// it (without O_NONBLOCK) until a writer comes.
func Fifo(tb testing.TB, path string) {
	tb.Helper()
	os.Remove(path)
	plant(tb, path, "fifo")
}

// ZeroDevice replaces path by a character device node like /dev/zero (1,5):
// a file that reads without end. Making one needs root (CAP_MKNOD); a test
// run by another user skips the case that needs it.
func ZeroDevice(tb testing.TB, path string) {
	tb.Helper()
	os.Remove(path)
	plant(tb, path, "zerodev")
}
