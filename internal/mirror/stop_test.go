package mirror_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/seqmirror/seqmirror/internal/export"
	"github.com/seqmirror/seqmirror/internal/fsys"
	"github.com/seqmirror/seqmirror/internal/mirror"
	"github.com/seqmirror/seqmirror/internal/transport"
	"github.com/seqmirror/seqmirror/testutil"
	"github.com/seqmirror/seqmirror/testutil/faultfs"
)

// TestSyncStopped stops mirror-sync (first copy, incremental, classic) just
// before each of its filesystem operations in turn, as SIGTERM would: it
// must either fail with the cancellation and leave current, seq/end and
// status as they were, or have completed; the served snapshot always
// verifies, and the next run completes.
func TestSyncStopped(t *testing.T) {
	tests := []struct {
		name    string
		classic bool
		// ctxAware: the upstream fails every call once the context is
		// done, as the rsync transport does.
		ctxAware bool
		// setup makes the upstream at up (from the source src) and, for
		// the incremental case, the mirror at mir.
		setup func(tb testing.TB, src, up, mir string)
	}{
		{name: "first copy", setup: func(tb testing.TB, src, up, _ string) {
			publishTree(tb, src, up)
		}},
		{name: "incremental", setup: func(tb testing.TB, src, up, mir string) {
			publishTree(tb, src, up)
			testutil.Must(tb, syncLocal(context.Background(), fsys.OS(), up, mir, false))
			testutil.Touch(tb, src, "d01/s00/f00001.dat", "changed\n")
			testutil.WriteTree(tb, src, map[string]string{"d09/new": "new\n"})
			testutil.Must(tb, os.Remove(filepath.Join(src, "d02/s00/f00002.dat")))
			publishTree(tb, src, up)
		}},
		{name: "incremental, upstream checks the context", ctxAware: true, setup: func(tb testing.TB, src, up, mir string) {
			publishTree(tb, src, up)
			testutil.Must(tb, syncLocal(context.Background(), fsys.OS(), up, mir, false))
			testutil.Touch(tb, src, "d03/s00/f00003.dat", "changed\n")
			publishTree(tb, src, up)
		}},
		{name: "classic", classic: true, setup: func(tb testing.TB, src, up, _ string) {
			testutil.Must(tb, os.Rename(src, up))
			setSeq(tb, up, 1, 1)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var up string
			st := faultfs.StopSweep(t, faultfs.StopRun{
				Setup: func(tb testing.TB) string {
					d := testutil.FastDir(tb)
					src, mir := filepath.Join(d, "src"), filepath.Join(d, "mirror")
					up = filepath.Join(d, "up")
					testutil.GenTree(tb, src, 70, 6)
					testutil.WriteTree(tb, src, map[string]string{"link": "->d00", "top": "top\n"})
					tt.setup(tb, src, up, mir)
					return mir
				},
				Run: func(ctx context.Context, f fsys.FS, mir string) error {
					if tt.classic {
						return syncClassicLocal(ctx, f, up, mir)
					}
					return syncLocal(ctx, f, up, mir, tt.ctxAware)
				},
				Points: 20,
				Tail:   45,
			})
			t.Logf("%d stop points: %d stopped, %d completed", st.Points, st.Stopped, st.Done)
		})
	}
}

// TestSyncStoppedBeforeFlip cancels the run once the snapshot is built,
// just before current flips: nothing may be installed.
func TestSyncStoppedBeforeFlip(t *testing.T) {
	w := newWorld(t, baseFiles())
	w.publish(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	u, err := transport.NewLocal(fsys.OS(), w.up.Dir)
	testutil.Must(t, err)
	opt := opts()
	opt.BeforeFlip = func(uint64) { cancel() }
	_, err = mirror.Sync(ctx, w.mir, u, opt)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Sync = %v, want context.Canceled", err)
	}
	if n := current(t, w.mir); n != 0 {
		t.Fatalf("a stopped run flipped current to %d", n)
	}
}

func publishTree(tb testing.TB, src, up string) {
	tb.Helper()
	w := &world{src: src, up: export.New(fsys.OS(), up)}
	w.publish(tb)
}

func syncLocal(ctx context.Context, f fsys.FS, up, mir string, ctxAware bool) error {
	l, err := transport.NewLocal(f, up)
	if err != nil {
		return err
	}
	var u transport.Upstream = l
	if ctxAware {
		u = ctxUpstream{l}
	}
	_, err = mirror.Sync(ctx, export.New(f, mir), u, opts())
	return err
}

// ctxUpstream is a local upstream whose calls fail once the context is
// done, as the rsync transport's do.
type ctxUpstream struct{ *transport.Local }

func (u ctxUpstream) Seq(ctx context.Context, name string) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	return u.Local.Seq(ctx, name)
}

func (u ctxUpstream) Current(ctx context.Context) (uint64, time.Time, error) {
	if err := ctx.Err(); err != nil {
		return 0, time.Time{}, err
	}
	return u.Local.Current(ctx)
}

func syncClassicLocal(ctx context.Context, f fsys.FS, up, mir string) error {
	u, err := transport.NewLocal(f, up)
	if err != nil {
		return err
	}
	_, err = mirror.SyncClassic(ctx, export.New(f, mir), u, opts())
	return err
}
