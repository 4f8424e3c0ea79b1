package tree_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/seqmirror/seqmirror/internal/fsys"
	"github.com/seqmirror/seqmirror/internal/tree"
	"github.com/seqmirror/seqmirror/manifest"
	"github.com/seqmirror/seqmirror/testutil"
	"golang.org/x/sys/unix"
)

// TestCopyFileReflink: on btrfs and XFS a local copy shares the data (the
// free space does not drop by the file's size), on ext4 it is a byte copy;
// the hash and size are the content's either way, and the limit holds.
func TestCopyFileReflink(t *testing.T) {
	for _, tc := range []struct {
		name, fstype string
		shares       bool
	}{
		{name: "btrfs", fstype: "btrfs", shares: true},
		{name: "xfs", fstype: "xfs", shares: true},
		{name: "ext4", fstype: "ext4"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := testutil.MountLoop(t, tc.fstype, testutil.LoopSize)
			data := bytes.Repeat([]byte("0123456789abcdef"), 4<<20) // 64 MiB
			src := filepath.Join(dir, "src")
			testutil.Must(t, os.WriteFile(src, data, 0o644))
			unix.Sync()
			before := free(t, dir)
			h, n, err := tree.CopyFile(fsys.OS(), src, fsys.OS(), filepath.Join(dir, "dst"), -1, manifest.Version2)
			testutil.Must(t, err)
			if n != int64(len(data)) || h != testutil.SumOf(string(data), manifest.Version2) {
				t.Fatalf("copy: %d bytes hash %x", n, h)
			}
			unix.Sync()
			used := before - free(t, dir)
			if shared := used < int64(len(data))/4; shared != tc.shares {
				t.Fatalf("copy took %d bytes of %d: shared %v, want %v", used, len(data), shared, tc.shares)
			}
			if _, _, err := tree.CopyFile(fsys.OS(), src, fsys.OS(), filepath.Join(dir, "short"), 100, manifest.Version2); err == nil {
				t.Fatal("a clone beyond the limit was taken")
			}
		})
	}
}

func free(tb testing.TB, dir string) int64 {
	var st unix.Statfs_t
	testutil.Must(tb, unix.Statfs(dir, &st))
	return int64(st.Bfree) * st.Bsize
}
