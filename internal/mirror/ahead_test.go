package mirror_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/seqmirror/seqmirror/internal/export"
	"github.com/seqmirror/seqmirror/internal/fsys"
	"github.com/seqmirror/seqmirror/internal/mirror"
	"github.com/seqmirror/seqmirror/internal/transport"
	"github.com/seqmirror/seqmirror/testutil"
)

// ordered is an upstream whose reads overlap (as HTTP's) and that logs
// them in the order they start. Its Current waits, up to a bound, for a
// manifest fetch and a read of small files (the signatures) to start: a
// run that reads them beside current logs them first, one that waits for
// current logs them after.
type ordered struct {
	transport.Upstream
	mu  sync.Mutex
	log []string
}

func newOrdered(tb testing.TB, addr string) *ordered {
	return &ordered{Upstream: openLocals(tb, []string{addr})[0]}
}

func (o *ordered) OverlappingReads() bool { return true }

func (o *ordered) add(s string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.log = append(o.log, s)
}

func (o *ordered) reads() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.log)
}

func (o *ordered) Seq(ctx context.Context, name string) (uint64, error) {
	o.add("seq/" + name)
	return o.Upstream.Seq(ctx, name)
}

func (o *ordered) Current(ctx context.Context) (uint64, time.Time, error) {
	for deadline := time.Now().Add(300 * time.Millisecond); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		r := strings.Join(o.reads(), ",")
		if strings.Contains(r, "manifest") && strings.Contains(r, "small") {
			break
		}
	}
	o.add("current")
	return o.Upstream.Current(ctx)
}

func (o *ordered) FetchManifest(ctx context.Context, n uint64, dst string) error {
	o.add(fmt.Sprintf("manifest %d", n))
	return o.Upstream.FetchManifest(ctx, n, dst)
}

func (o *ordered) ReadSmall(ctx context.Context, names []string, max int64) (map[string]transport.SmallFile, error) {
	o.add("small " + strings.Join(names, " "))
	return o.Upstream.(transport.Prober).ReadSmall(ctx, names, max)
}

func (o *ordered) Stat(ctx context.Context, names []string) (map[string]transport.PathInfo, error) {
	return o.Upstream.(transport.Prober).Stat(ctx, names)
}

// A run after a trigger's snapshot fetches that snapshot's manifest, and
// reads its signature files, as soon as it has read the upstream's
// seq/end, beside its read of current, and fetches each once; without a
// target, or for a target ROOT serves, it fetches them after current as
// before; a snapshot the upstream does not serve, or one it has passed,
// is fetched for nothing and the served one after current; and a
// manifest fetched ahead but not used leaves nothing in ROOT/.work.
func TestManifestFetchedAhead(t *testing.T) {
	tests := []struct {
		name   string
		snaps  []map[string]string // the upstream's; the mirror serves the first
		target uint64
		serves uint64
		ahead  bool // the target's manifest and signatures read before current
	}{
		{name: "no target", snaps: ms(treeA1, treeA2), target: 0, serves: 2},
		{name: "target served", snaps: ms(treeA1, treeA2), target: 2, serves: 2, ahead: true},
		{name: "upstream past the target", snaps: ms(treeA1, treeA2, treeA3), target: 2, serves: 3, ahead: true},
		{name: "target not there", snaps: ms(treeA1, treeA2), target: 5, serves: 2, ahead: true},
		{name: "target served already", snaps: ms(treeA1, treeA2), target: 1, serves: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := t.TempDir()
			up := root(t, d, "up", tt.snaps[0])
			mir := export.New(fsys.OS(), filepath.Join(d, "mirror"))
			_, err := syncUps(t, mir, []string{up}, opts())
			testutil.Must(t, err)
			for i, s := range tt.snaps[1:] {
				testutil.SnapshotRoot(t, up, uint64(i+2), s)
			}

			o := newOrdered(t, up)
			opt := opts()
			opt.Target = tt.target
			res, err := mirror.SyncFrom(context.Background(), mir, []transport.Upstream{o}, opt)
			if err != nil || res.Snapshot != tt.serves {
				t.Fatalf("sync = %+v, %v; want snapshot %d served", res, err, tt.serves)
			}
			got := o.reads()
			cur := slices.Index(got, "current")
			if cur < 0 || !slices.Equal(got[:1], []string{"seq/end"}) {
				t.Fatalf("reads %q: want seq/end first, then current", got)
			}
			first := fmt.Sprintf("manifest %d", tt.serves)
			sig := fmt.Sprintf("small snapshots/%d%s", tt.serves, export.SignatureExt)
			if tt.ahead {
				first = fmt.Sprintf("manifest %d", tt.target)
				sig = fmt.Sprintf("small snapshots/%d%s", tt.target, export.SignatureExt)
			}
			for _, want := range []string{first, sig} {
				i := slices.IndexFunc(got, func(r string) bool { return strings.HasPrefix(r, want) })
				if i < 0 || (i < cur) != tt.ahead {
					t.Fatalf("reads %q: %q at %d, current at %d; want it before current: %v", got, want, i, cur, tt.ahead)
				}
			}
			for _, once := range []string{fmt.Sprintf("manifest %d", tt.serves), fmt.Sprintf("small snapshots/%d%s", tt.serves, export.SignatureExt)} {
				if n := countPrefix(got, once); n != 1 {
					t.Fatalf("reads %q: %q %d times, want once", got, once, n)
				}
			}
			assertNoFetched(t, mir)
		})
	}
}

func countPrefix(reads []string, p string) (n int) {
	for _, r := range reads {
		if strings.HasPrefix(r, p) {
			n++
		}
	}
	return n
}

func ms(trees ...map[string]string) []map[string]string { return trees }

// assertNoFetched fails if a manifest a run fetched is left in ROOT/.work.
func assertNoFetched(tb testing.TB, mir *export.Root) {
	tb.Helper()
	ents, err := os.ReadDir(mir.WorkDir())
	if err != nil && !os.IsNotExist(err) {
		tb.Fatal(err)
	}
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), export.ManifestExt) {
			tb.Fatalf("%s left in %s", e.Name(), mir.WorkDir())
		}
	}
}

// With several upstreams, the manifest the failover rule fetched to read
// an upstream's identity is the one the build copies from: each
// upstream's manifest of the new snapshot is fetched once, with a target
// (fetched ahead, both at once) or without.
func TestFailoverFetchesEachManifestOnce(t *testing.T) {
	for _, target := range []uint64{0, 2} {
		t.Run(fmt.Sprintf("target=%d", target), func(t *testing.T) {
			d := t.TempDir()
			a, b := root(t, d, "a", treeA1), root(t, d, "b", treeA1, treeA2)
			mir := export.New(fsys.OS(), filepath.Join(d, "mirror"))
			_, err := syncUps(t, mir, []string{a}, opts())
			testutil.Must(t, err)
			testutil.SnapshotRoot(t, a, 2, treeA2)

			ca, cb := &counting{Upstream: openLocals(t, []string{a})[0]}, &counting{Upstream: openLocals(t, []string{b})[0]}
			opt := opts()
			opt.Target = target
			res, err := mirror.SyncFrom(context.Background(), mir, []transport.Upstream{overlapping{ca}, overlapping{cb}}, opt)
			if err != nil || res.Snapshot != 2 || res.Upstream != a {
				t.Fatalf("sync = %+v, %v; want snapshot 2 from %s", res, err, a)
			}
			if ca.man != 1 || cb.man != 1 {
				t.Fatalf("manifests fetched: %d from the first upstream, %d from the second; want 1 and 1", ca.man, cb.man)
			}
			assertNoFetched(t, mir)
		})
	}
}
