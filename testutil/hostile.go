package testutil

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"

	"github.com/seqmirror/seqmirror/internal/fsys"
	"golang.org/x/sys/unix"
)

// SilentServer listens on 127.0.0.1, accepts every connection and never
// sends a byte: an rsync daemon that hangs. It returns host:port; the
// listener and the connections are closed when the test ends.
func SilentServer(tb testing.TB) string {
	tb.Helper()
	return StallServer(tb, nil)
}

// StallServer is SilentServer sending greet on each connection first (an
// rsync daemon's "@RSYNCD: 32.0\n" makes one that stalls after greeting).
func StallServer(tb testing.TB, greet []byte) string {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("silent server: %v", err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			if len(greet) > 0 {
				_, _ = c.Write(greet)
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	tb.Cleanup(func() {
		l.Close()
		<-done
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return l.Addr().String()
}

// Plant replaces the entry at p by a special file of kind "fifo",
// "chardev" (like /dev/null), "blockdev" (mode 0666, like the one a hostile
// upstream planted) or "symlink" (to /etc/passwd). Devices need root
// (CAP_MKNOD): without it the test is skipped, as it cannot be set up.
func Plant(tb testing.TB, p, kind string) {
	tb.Helper()
	os.Chmod(filepath.Dir(p), 0o755)
	if err := os.RemoveAll(p); err != nil {
		tb.Fatal(err)
	}
	plant(tb, p, kind)
}

// plant makes the special file of kind at p, which must not exist: "fifo",
// "chardev" (1,3: /dev/null), "zerodev" (1,5: /dev/zero, reads without
// end), "blockdev" or "symlink". A device needs root: without it the test
// is skipped.
func plant(tb testing.TB, p, kind string) {
	tb.Helper()
	var err error
	switch kind {
	case "fifo":
		err = unix.Mkfifo(p, 0o644)
	case "chardev":
		err = unix.Mknod(p, unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3)))
	case "zerodev":
		err = unix.Mknod(p, unix.S_IFCHR|0o666, int(unix.Mkdev(1, 5)))
	case "blockdev":
		err = unix.Mknod(p, unix.S_IFBLK|0o666, int(unix.Mkdev(7, 0)))
	case "symlink":
		err = os.Symlink("/etc/passwd", p)
	default:
		tb.Fatalf("plant: unknown kind %q", kind)
	}
	if errors.Is(err, syscall.EPERM) {
		tb.Skipf("making a %s needs root (CAP_MKNOD): %v", kind, err)
	}
	if err != nil {
		tb.Fatalf("plant %s %s: %v", kind, p, err)
	}
}

// SmallDisk is the OS filesystem reporting only Free bytes free (to the
// rsync and HTTP transports, which ask before copying a manifest).
type SmallDisk struct {
	fsys.FS
	Free int64
}

// NewSmallDisk returns fsys.OS() reporting free bytes free.
func NewSmallDisk(free int64) *SmallDisk { return &SmallDisk{FS: fsys.OS(), Free: free} }

// FreeSpace implements the transports' free-space question.
func (d *SmallDisk) FreeSpace(string) (int64, error) { return d.Free, nil }
