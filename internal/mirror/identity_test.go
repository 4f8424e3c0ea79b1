package mirror_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/seqmirror/seqmirror/internal/export"
	"github.com/seqmirror/seqmirror/internal/fsys"
	"github.com/seqmirror/seqmirror/internal/mirror"
	"github.com/seqmirror/seqmirror/internal/transport"
	"github.com/seqmirror/seqmirror/seqfile"
	"github.com/seqmirror/seqmirror/snapshot"
	"github.com/seqmirror/seqmirror/testutil"
)

// rollBack points r's current back at snapshot n the way a writer should,
// with its counters bumped around the flip.
func rollBack(tb testing.TB, r *export.Root, n uint64) {
	tb.Helper()
	b, err := seqfile.StartUpdate(r.FS, r.SeqDir())
	testutil.Must(tb, err)
	testutil.Must(tb, r.Flip(n))
	testutil.Must(tb, seqfile.FinishUpdate(r.FS, r.SeqDir(), b))
}

// countingUpstream counts manifest fetches.
type countingUpstream struct {
	transport.Upstream
	manifests int
}

func (c *countingUpstream) FetchManifest(ctx context.Context, n uint64, dst string) error {
	c.manifests++
	return c.Upstream.FetchManifest(ctx, n, dst)
}

func syncCounting(tb testing.TB, up, mir *export.Root, opt mirror.Options) (mirror.Result, int, error) {
	tb.Helper()
	u, err := transport.NewLocal(fsys.OS(), up.Dir)
	testutil.Must(tb, err)
	defer u.Close()
	cu := &countingUpstream{Upstream: u}
	res, err := mirror.Sync(context.Background(), mir, cu, opt)
	return res, cu.manifests, err
}

// publishTo publishes src into r (taking over a mirror's root if need be).
func publishTo(tb testing.TB, r *export.Root, src string) uint64 {
	tb.Helper()
	res, err := snapshot.Publish(context.Background(), r, src, snapshot.PublishOptions{Workers: 2, Keep: 100, MaxDelete: 1, TakeOver: true})
	testutil.Must(tb, err)
	return res.Snapshot
}

// Item 23: a mirror whose snapshot N is not the upstream's snapshot N
// (publish wrote into the mirror's root; two masters numbering
// independently) refuses loudly instead of reporting "already serving".
func TestDivergedSameNumber(t *testing.T) {
	tests := []struct {
		name string
		// diverge makes the mirror serve a snapshot numbered like the
		// upstream's but another tree; it returns the upstream to sync from.
		diverge func(t testing.TB, w *world) *export.Root
	}{
		{
			name: "publish into the mirror's root",
			diverge: func(t testing.TB, w *world) *export.Root {
				other := filepath.Join(t.TempDir(), "other")
				testutil.WriteTree(t, other, map[string]string{"OTHER": "a different tree"})
				n := publishTo(t, w.mir, other)
				testutil.Touch(t, w.src, "README", "v2")
				if got := w.publish(t); got != n {
					t.Fatalf("upstream published %d, the mirror's root %d: want the same number", got, n)
				}
				return w.up
			},
		},
		{
			name: "another master with the same numbers",
			diverge: func(t testing.TB, w *world) *export.Root {
				d := t.TempDir()
				src, up := filepath.Join(d, "src"), export.New(fsys.OS(), filepath.Join(d, "up"))
				testutil.WriteTree(t, src, map[string]string{"B": "master B's tree"})
				publishTo(t, up, src)
				return up
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t, baseFiles())
			n := w.publish(t)
			_, err := w.sync(t, opts())
			testutil.Must(t, err)
			up := tt.diverge(t, w)
			cur := current(t, w.mir)
			if upn := current(t, up); upn != cur {
				t.Fatalf("upstream serves %d, mirror %d: the test wants them equal", upn, cur)
			}
			_, err = syncFrom(t, up, w.mir, opts())
			if !errors.Is(err, mirror.ErrDiverged) {
				t.Fatalf("sync = %v, want ErrDiverged (mirror and upstream both serve %d, different trees; first sync was %d)", err, cur, n)
			}
			if got := current(t, w.mir); got != cur {
				t.Fatalf("mirror moved to %d", got)
			}
			if s := recorded(t, w.mir); s.LastError == "" {
				t.Fatalf("status.json does not record the divergence: %+v", s)
			}
		})
	}
}

// The identity check costs no manifest fetch on the no-op polls that
// follow a sync; a mirror without the record (an older version's, or one
// whose record was lost) fetches the upstream's manifest once, finds it
// the same, and records it.
func TestSameNumberNoopStaysCheap(t *testing.T) {
	w := newWorld(t, baseFiles())
	w.publish(t)
	_, fetched, err := syncCounting(t, w.up, w.mir, opts())
	testutil.Must(t, err)
	if fetched != 1 {
		t.Fatalf("first sync fetched %d manifests, want 1", fetched)
	}
	for i := 0; i < 2; i++ {
		res, fetched, err := syncCounting(t, w.up, w.mir, opts())
		testutil.Must(t, err)
		if res.Changed || fetched != 0 {
			t.Fatalf("no-op poll %d: changed=%v, fetched %d manifests, want none", i, res.Changed, fetched)
		}
	}
	testutil.Must(t, os.Remove(w.mir.Path(export.UpstreamStateName)))
	for i, want := range []int{1, 0} {
		res, fetched, err := syncCounting(t, w.up, w.mir, opts())
		testutil.Must(t, err)
		if res.Changed || fetched != want {
			t.Fatalf("poll %d without a record: changed=%v, fetched %d manifests, want %d", i, res.Changed, fetched, want)
		}
	}
}

// Item 25: an upstream that is behind (not the one last synced from, or
// the same one that has published nothing since) is skipped with exit 0
// and no change; only the same upstream that published since and now
// serves an older snapshot has rolled back (TestRollback).
func TestBehindUpstream(t *testing.T) {
	tests := []struct {
		name string
		// behind returns an upstream that serves an older snapshot.
		behind func(t testing.TB, w *world) *export.Root
	}{
		{
			name: "failover to a peer that is behind",
			behind: func(t testing.TB, w *world) *export.Root {
				peer := export.New(fsys.OS(), filepath.Join(t.TempDir(), "peer"))
				_, err := syncFrom(t, w.up, peer, opts())
				testutil.Must(t, err)
				testutil.Touch(t, w.src, "README", "v2")
				w.publish(t)
				_, err = w.sync(t, opts())
				testutil.Must(t, err)
				return peer
			},
		},
		{
			name: "the same upstream, restored (seq/end not advanced)",
			behind: func(t testing.TB, w *world) *export.Root {
				n1 := current(t, w.up)
				end1 := counters(t, w.up).End
				testutil.Touch(t, w.src, "README", "v2")
				w.publish(t)
				_, err := w.sync(t, opts())
				testutil.Must(t, err)
				// Restored from a backup taken at snapshot n1: current and
				// the seq files as they were then.
				testutil.Must(t, w.up.Flip(n1))
				for _, name := range []string{seqfile.Begin, seqfile.End} {
					testutil.Must(t, seqfile.Write(fsys.OS(), w.up.Path("seq", name), end1))
				}
				return w.up
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t, baseFiles())
			w.publish(t)
			_, err := w.sync(t, opts())
			testutil.Must(t, err)
			up := tt.behind(t, w)
			cur := current(t, w.mir)
			res, err := syncFrom(t, up, w.mir, opts())
			if err != nil {
				t.Fatalf("sync from an upstream that is behind = %v, want nil (nothing to do)", err)
			}
			if res.Changed || !res.UpstreamBehind || res.Snapshot != cur || current(t, w.mir) != cur {
				t.Fatalf("sync from an upstream that is behind = %+v, mirror serves %d, want %d unchanged", res, current(t, w.mir), cur)
			}
			if p := counters(t, w.mir); !p.Idle() {
				t.Fatalf("counters %+v", p)
			}
		})
	}
}

// failFirstManifest fails its first manifest fetch as an upstream that did
// not answer.
type failFirstManifest struct {
	transport.Upstream
	calls int
}

func (f *failFirstManifest) FetchManifest(ctx context.Context, n uint64, dst string) error {
	f.calls++
	if f.calls == 1 {
		return fmt.Errorf("fetch manifest: %w", transport.ErrUnavailable)
	}
	return f.Upstream.FetchManifest(ctx, n, dst)
}

// A retry that happens before any copy started does not claim the upstream
// "changed during the copy".
func TestRetryLogWording(t *testing.T) {
	w := newWorld(t, baseFiles())
	w.publish(t)
	u, err := transport.NewLocal(fsys.OS(), w.up.Dir)
	testutil.Must(t, err)
	defer u.Close()
	logs := &testutil.SyncBuffer{}
	opt := opts()
	opt.Log = slog.New(slog.NewTextHandler(logs, nil))
	if _, err := mirror.Sync(context.Background(), w.mir, &failFirstManifest{Upstream: u}, opt); err != nil {
		t.Fatal(err)
	}
	if s := logs.String(); strings.Contains(s, "changed during the copy") || !strings.Contains(s, "upstream moved or did not answer; retrying the copy") {
		t.Fatalf("retry log:\n%s", s)
	}
}
