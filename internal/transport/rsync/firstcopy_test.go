package rsync_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/seqmirror/seqmirror/internal/export"
	"github.com/seqmirror/seqmirror/internal/fsys"
	"github.com/seqmirror/seqmirror/internal/mirror"
	"github.com/seqmirror/seqmirror/internal/transport/rsync"
	"github.com/seqmirror/seqmirror/internal/tree"
	"github.com/seqmirror/seqmirror/testutil"
)

// treeBytes is the total size of the regular files below dir (0 if it is
// gone; entries vanishing during the walk are skipped).
func treeBytes(dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

// watchBytes samples treeBytes(dir) until stop is called, which returns
// the largest sample.
func watchBytes(dir string) (stop func() int64) {
	var peak atomic.Int64
	done, quit := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for {
			peak.Store(max(peak.Load(), treeBytes(dir)))
			select {
			case <-quit:
				return
			case <-time.After(2 * time.Millisecond):
			}
		}
	}()
	return func() int64 {
		close(quit)
		<-done
		return max(peak.Load(), treeBytes(dir))
	}
}

// A hostile upstream whose snapshot directory holds 40 MB its manifest
// (2 MB) does not list: the first copy is stopped soon after more than the
// manifest declares has come, refused, and leaves nothing in .work.
func TestFirstCopyBoundedByManifest(t *testing.T) {
	tmp := t.TempDir()
	src, master, mir := filepath.Join(tmp, "src"), filepath.Join(tmp, "master"), filepath.Join(tmp, "mirror")
	files := map[string]string{}
	for i := 0; i < 20; i++ {
		files[fmt.Sprintf("d%d/f%02d", i%3, i)] = strings.Repeat(string(rune('a'+i)), 100<<10)
	}
	testutil.WriteTree(t, src, files)
	publish(t, master, src, 3)
	snap := filepath.Join(master, "snapshots", "1")
	os.Chmod(snap, 0o755)
	extras := map[string]string{}
	for i := 0; i < 400; i++ { // no larger than the largest listed file
		extras[fmt.Sprintf("x%d/extra%03d", i%4, i)] = strings.Repeat("x", 100<<10)
	}
	testutil.WriteTree(t, snap, extras)
	declared := int64(20 * 100 << 10)
	port := testutil.StartRsyncd(t, map[string]string{"master": master})
	up := openRsync(t, fmt.Sprintf("rsync://127.0.0.1:%d/master", port))

	stop := watchBytes(mir)
	_, err := mirror.Sync(context.Background(), export.New(fsys.OS(), mir), up, mirror.DefaultOptions())
	peak := stop()
	if !errors.Is(err, rsync.ErrUnlisted) || !errors.Is(err, tree.ErrHashMismatch) {
		t.Fatalf("first copy: %v, want %v", err, rsync.ErrUnlisted)
	}
	// The slack (1 MiB), the file in flight when the limit was crossed,
	// what rsync wrote before it was stopped, and the manifest itself.
	t.Logf("ROOT held at most %d bytes; the manifest declares %d", peak, declared)
	if limit := declared + 8<<20; peak > limit {
		t.Fatalf("ROOT held %d bytes during the copy; the manifest declares %d (limit %d)", peak, declared, limit)
	}
	if n, _ := export.New(fsys.OS(), mir).Current(); n != 0 {
		t.Fatalf("mirror serves %d", n)
	}
	if ents, _ := os.ReadDir(filepath.Join(mir, ".work")); len(ents) > 0 {
		t.Errorf(".work holds %v after the refusal", ents)
	}
}

// TestManyDirsMemoryBoundedRsync is mirror's TestManyDirsMemoryBounded over
// a daemon: the first copy (FetchSnapshot) and an incremental sync do not
// hold every directory record.
func TestManyDirsMemoryBoundedRsync(t *testing.T) {
	const dirs = 100_000
	dir := testutil.FastDir(t)
	upDir, mDir := filepath.Join(dir, "up"), filepath.Join(dir, "m")
	testutil.ManyDirsUpstream(t, upDir, 1, dirs, "first")
	port := testutil.StartRsyncd(t, map[string]string{"up": upDir})
	up := openRsync(t, fmt.Sprintf("rsync://127.0.0.1:%d/up", port))
	root := export.New(fsys.OS(), mDir)
	for _, tt := range []struct {
		name string
		n    uint64
	}{
		{name: "first copy", n: 1},
		{name: "incremental", n: 2},
	} {
		t.Run(tt.name, func(t *testing.T) {
			testutil.ManyDirsUpstream(t, upDir, tt.n, dirs, tt.name)
			var res mirror.Result
			var err error
			grew := testutil.PeakHeap(func() {
				res, err = mirror.Sync(context.Background(), root, up, mirrorOpts(func(o *mirror.Options) { o.Keep = 2 }))
			})
			if err != nil || res.Snapshot != tt.n || res.Entries != dirs+1 {
				t.Fatalf("sync: %+v %v", res, err)
			}
			t.Logf("heap grew by %.1f MiB", float64(grew)/(1<<20))
			if limit := uint64(10 << 20); grew > limit {
				t.Fatalf("heap grew by %d bytes while syncing %d directory records (limit %d)", grew, dirs, limit)
			}
		})
	}
}

// mirrorOpts is mirror-sync's defaults changed by set.
func mirrorOpts(set func(o *mirror.Options)) mirror.Options {
	o := mirror.DefaultOptions()
	set(&o)
	return o
}
