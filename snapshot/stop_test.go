package snapshot_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/seqmirror/seqmirror/internal/export"
	"github.com/seqmirror/seqmirror/internal/fsys"
	"github.com/seqmirror/seqmirror/internal/tree"
	"github.com/seqmirror/seqmirror/snapshot"
	"github.com/seqmirror/seqmirror/testutil"
	"github.com/seqmirror/seqmirror/testutil/faultfs"
)

// TestPoolStoppedReportsCancel cancels the caller's context while jobs are
// queued: the pool skips them, and Wait must say so.
func TestPoolStoppedReportsCancel(t *testing.T) {
	tests := []struct {
		name string
		jobs int // queued before the cancel (beyond the one running)
	}{
		{name: "queued jobs skipped", jobs: 3},
		{name: "job refused", jobs: 40}, // more than the queue holds: Go refuses
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			pool := tree.NewPool(ctx, 1)
			started, release := make(chan struct{}), make(chan struct{})
			var ran atomic.Int64
			testutil.Must(t, pool.Go(func(context.Context) error {
				close(started)
				<-release
				ran.Add(1)
				return nil
			}))
			<-started
			refused := false
			go func() { time.Sleep(20 * time.Millisecond); cancel(); close(release) }()
			for i := 0; i < tt.jobs && !refused; i++ {
				refused = pool.Go(func(context.Context) error { ran.Add(1); return nil }) != nil
			}
			err := pool.Wait()
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("Wait = %v after %d of %d jobs ran (refused %v), want context.Canceled", err, ran.Load(), tt.jobs+1, refused)
			}
		})
	}
}

// TestPoolCompleteAfterCancel: a cancel after every job ran is no failure.
func TestPoolCompleteAfterCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	pool := tree.NewPool(ctx, 2)
	var done sync.WaitGroup
	for i := 0; i < 5; i++ {
		done.Add(1)
		testutil.Must(t, pool.Go(func(context.Context) error { done.Done(); return nil }))
	}
	done.Wait()
	cancel()
	if err := pool.Wait(); err != nil {
		t.Fatalf("Wait = %v after every job ran, want nil", err)
	}
}

// stopSource writes a tree of files spread over many directories (so that
// many pool jobs are queued at once) and returns its directory.
func stopSource(tb testing.TB, dir string) string {
	tb.Helper()
	src := filepath.Join(dir, "src")
	testutil.GenTree(tb, src, 70, 5)
	testutil.WriteTree(tb, src, map[string]string{"link": "->d00", "top": "top\n"})
	return src
}

// TestPublishStopped stops publish (first and incremental) just before each
// of its filesystem operations in turn, as SIGTERM would: it must either
// fail with the cancellation and leave current, seq/end and status as they
// were, or have completed; the served snapshot always verifies.
func TestPublishStopped(t *testing.T) {
	tests := []struct {
		name  string
		setup func(tb testing.TB, src, root string)
	}{
		{name: "first", setup: func(testing.TB, string, string) {}},
		{name: "incremental", setup: func(tb testing.TB, src, root string) {
			publish(tb, export.New(fsys.OS(), root), src, fastOpts())
			testutil.Touch(tb, src, "d01/s00/f00001.dat", "changed\n")
			testutil.WriteTree(tb, src, map[string]string{"d09/new": "new\n"})
			testutil.Must(tb, os.Remove(filepath.Join(src, "d02/s00/f00002.dat")))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var src string
			st := faultfs.StopSweep(t, faultfs.StopRun{
				Setup: func(tb testing.TB) string {
					d := testutil.FastDir(tb)
					src = stopSource(tb, d)
					root := filepath.Join(d, "root")
					tt.setup(tb, src, root)
					return root
				},
				Run: func(ctx context.Context, f fsys.FS, root string) error {
					_, err := snapshot.Publish(ctx, export.New(f, root), src, fastOpts())
					return err
				},
				Points: 20,
				Tail:   45,
			})
			t.Logf("%d stop points: %d stopped, %d completed", st.Points, st.Stopped, st.Done)
		})
	}
}

// TestPublishStoppedBeforeFlip cancels the run once the snapshot is built
// and in snapshots/, just before current flips: nothing may be served.
func TestPublishStoppedBeforeFlip(t *testing.T) {
	r := newRoot(t)
	src := stopSource(t, t.TempDir())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	opt := fastOpts()
	opt.BeforeFlip = func(uint64) { cancel() }
	_, err := snapshot.Publish(ctx, r, src, opt)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Publish = %v, want context.Canceled", err)
	}
	if n, err := r.Current(); err != nil || n != 0 {
		t.Fatalf("a stopped run serves %d (%v)", n, err)
	}
	if p := counters(t, r); p.End != 0 {
		t.Fatalf("a stopped run moved seq/end to %d", p.End)
	}
}
