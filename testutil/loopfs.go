package testutil

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// MountLoop makes a filesystem of type fstype ("btrfs", "xfs", "ext4") in
// a sparse image of size bytes in a temporary directory (FastDir: on
// /dev/shm if there is one, where only what is written takes memory), mounts it through
// a loop device on a new temporary directory and returns that directory;
// the test's cleanup unmounts it and detaches the device. Tests of the
// copy-on-write paths run on these real filesystems. Mounting needs root,
// which CI has: as another user the test fails and says so (no skip).
func MountLoop(tb testing.TB, fstype string, size int64) string {
	tb.Helper()
	if os.Geteuid() != 0 {
		tb.Fatalf("MountLoop(%s) needs root to mount a loop device (CI runs as root): run the test as root", fstype)
	}
	img := filepath.Join(FastDir(tb), fstype+".img") // on tmpfs: flushes cost no disk
	if err := os.WriteFile(img, nil, 0o600); err != nil {
		tb.Fatal(err)
	}
	if err := os.Truncate(img, size); err != nil {
		tb.Fatal(err)
	}
	run(tb, "mkfs."+fstype, mkfsArgs(fstype, img)...)
	dev := strings.TrimSpace(run(tb, "losetup", "--find", "--show", img))
	dir := tb.TempDir()
	if out, err := exec.Command("mount", "-t", fstype, dev, dir).CombinedOutput(); err != nil {
		_ = exec.Command("losetup", "-d", dev).Run()
		tb.Fatalf("mount %s (%s) on %s: %v: %s", dev, fstype, dir, err, out)
	}
	tb.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			tb.Errorf("umount %s: %v: %s", dir, err, out)
		}
		if out, err := exec.Command("losetup", "-d", dev).CombinedOutput(); err != nil {
			tb.Errorf("losetup -d %s: %v: %s", dev, err, out)
		}
	})
	return dir
}

// mkfsArgs are mkfs.TYPE's arguments: quiet, forced over the new image.
func mkfsArgs(fstype, img string) []string {
	switch fstype {
	case "btrfs":
		return []string{"-q", "-f", img}
	case "xfs":
		return []string{"-q", "-f", "-m", "reflink=1", img}
	}
	return []string{"-q", "-F", img}
}

// run runs a command the test needs, failing the test with its output.
func run(tb testing.TB, name string, args ...string) string {
	tb.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		tb.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// Btrfs runs the btrfs program (tests inspect subvolumes with it) and
// returns its output.
func Btrfs(tb testing.TB, args ...string) string {
	tb.Helper()
	return run(tb, "btrfs", args...)
}

// LoopSize is a size for MountLoop that every filesystem accepts (mkfs.xfs
// wants 300 MB), sparse: only what the test writes takes space.
const LoopSize = int64(512 << 20)
