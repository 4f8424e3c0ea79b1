package mirror_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/seqmirror/seqmirror/internal/export"
	"github.com/seqmirror/seqmirror/internal/fsys"
	"github.com/seqmirror/seqmirror/internal/mirror"
	"github.com/seqmirror/seqmirror/internal/transport"
	"github.com/seqmirror/seqmirror/testutil"
)

// manyDirs is how many directory records the memory tests' manifests list.
const manyDirs = 100_000

// A manifest of many directory records: neither a first copy nor an
// incremental sync holds them all (about 100 bytes each) in memory.
func TestManyDirsMemoryBounded(t *testing.T) {
	dir := testutil.FastDir(t)
	upDir, mDir := filepath.Join(dir, "up"), filepath.Join(dir, "m")
	up, err := transport.Open(upDir, fsys.OS(), transport.Options{})
	if err != nil {
		t.Fatal(err)
	}
	root := export.New(fsys.OS(), mDir)
	keep2 := mirror.DefaultOptions()
	keep2.Keep = 2
	for _, tt := range []struct {
		name string
		n    uint64
	}{
		{name: "first copy", n: 1},
		{name: "incremental", n: 2},
	} {
		t.Run(tt.name, func(t *testing.T) {
			testutil.ManyDirsUpstream(t, upDir, tt.n, manyDirs, tt.name)
			var res mirror.Result
			grew := testutil.PeakHeap(func() {
				res, err = mirror.Sync(context.Background(), root, up, keep2)
			})
			if err != nil || res.Snapshot != tt.n || res.Entries != manyDirs+1 {
				t.Fatalf("sync: %+v %v", res, err)
			}
			t.Logf("heap grew by %.1f MiB", float64(grew)/(1<<20))
			// Holding every directory record costs 20-30 MiB here.
			if limit := uint64(10 << 20); grew > limit {
				t.Fatalf("heap grew by %d bytes while syncing %d directory records (limit %d)", grew, manyDirs, limit)
			}
		})
	}
}
