package snapshot_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/seqmirror/seqmirror/internal/export"
	"github.com/seqmirror/seqmirror/internal/fsys"
	"github.com/seqmirror/seqmirror/internal/tree"
	"github.com/seqmirror/seqmirror/manifest"
	"github.com/seqmirror/seqmirror/snapshot"
	"github.com/seqmirror/seqmirror/testutil"
)

// CopyFile and HashFile read sources and snapshots whose entries may have
// changed type since they were listed (a source being published, a file
// planted in a snapshot being verified): a fifo or a device there is
// refused at once, never read (a fifo would block the run, with the lock
// held, forever; a device would be read without end).
func TestCopyAndHashRefuseSpecialFiles(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name  string
		plant func(p string)
	}{
		{name: "fifo", plant: func(p string) { testutil.Fifo(t, p) }},
		{name: "device", plant: func(p string) { testutil.ZeroDevice(t, p) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, tc.name)
			tc.plant(p)
			done := make(chan error, 2)
			go func() {
				_, _, err := tree.CopyFile(fsys.OS(), p, fsys.OS(), filepath.Join(dir, tc.name+".copy"), -1, manifest.Current)
				done <- err
			}()
			go func() {
				_, _, err := tree.HashFile(fsys.OS(), p, manifest.Current)
				done <- err
			}()
			for i := 0; i < 2; i++ {
				select {
				case err := <-done:
					if !errors.Is(err, fsys.ErrNotRegular) {
						t.Fatalf("err = %v, want ErrNotRegular", err)
					}
				case <-time.After(5 * time.Second):
					t.Fatalf("blocked reading a %s", tc.name)
				}
			}
		})
	}
}

// verify of a snapshot where a file was replaced by a fifo reports it, and
// does not block.
func TestVerifyFifoInSnapshot(t *testing.T) {
	src := t.TempDir()
	testutil.WriteTree(t, src, map[string]string{"a": "1", "d/b": "2"})
	r := export.New(fsys.OS(), filepath.Join(t.TempDir(), "pub"))
	opt := snapshot.DefaultOptions()
	opt.Workers = 2
	res, err := snapshot.Publish(context.Background(), r, src, opt)
	if err != nil {
		t.Fatal(err)
	}
	m, err := r.ReadManifest(res.Snapshot)
	if err != nil {
		t.Fatal(err)
	}
	dir := r.SnapshotDir(res.Snapshot)
	if err := os.Chmod(filepath.Join(dir, "d"), 0o755); err != nil {
		t.Fatal(err)
	}
	testutil.Fifo(t, filepath.Join(dir, "d", "b"))
	done := make(chan error, 1)
	var probs []tree.Problem
	go func() {
		var err error
		probs, err = tree.Verify(context.Background(), fsys.OS(), dir, m, 2)
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil && !errors.Is(err, tree.ErrUnsupportedType) {
			t.Fatal(err)
		}
		if err == nil && len(probs) == 0 {
			t.Fatal("verify found nothing wrong with a fifo in place of a file")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("verify blocked on a fifo in the snapshot")
	}
}
