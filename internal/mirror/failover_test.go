package mirror_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/seqmirror/seqmirror/internal/export"
	"github.com/seqmirror/seqmirror/internal/fsys"
	"github.com/seqmirror/seqmirror/internal/mirror"
	"github.com/seqmirror/seqmirror/internal/transport"
	"github.com/seqmirror/seqmirror/testutil"
)

// Trees of two masters that number their snapshots independently: the
// snapshots of masterA are one history, masterB's snapshot 2 is another.
var (
	treeA1 = map[string]string{"README": "one", "a/x": "x"}
	treeA2 = map[string]string{"README": "two", "a/x": "x"}
	treeA3 = map[string]string{"README": "three", "a/x": "x"}
	treeB1 = map[string]string{"OTHER": "another master's one"}
	treeB2 = map[string]string{"OTHER": "another master's two"}
)

// root makes an export root below d serving, one after the other, the
// given snapshots (number -> tree), and returns its path.
func root(tb testing.TB, d, name string, snaps ...map[string]string) string {
	tb.Helper()
	dir := filepath.Join(d, name)
	for i, files := range snaps {
		testutil.SnapshotRoot(tb, dir, uint64(i+1), files)
	}
	return dir
}

// openLocals opens each address as a local upstream.
func openLocals(tb testing.TB, addrs []string) []transport.Upstream {
	tb.Helper()
	var ups []transport.Upstream
	for _, a := range addrs {
		u, err := transport.NewLocal(fsys.OS(), a)
		testutil.Must(tb, err)
		ups = append(ups, u)
	}
	return ups
}

func syncUps(tb testing.TB, mir *export.Root, addrs []string, opt mirror.Options) (mirror.Result, error) {
	tb.Helper()
	return mirror.SyncFrom(context.Background(), mir, openLocals(tb, addrs), opt)
}

func states(res mirror.Result) []string {
	var out []string
	for _, p := range res.Upstreams {
		out = append(out, p.State)
	}
	return out
}

// The failover rule (docs/protocol.md section 4, "Several upstreams"), with
// real roots: setup makes the roots below d (and may sync mir first) and
// returns the upstreams in priority order.
func TestFailover(t *testing.T) {
	tests := []struct {
		name     string
		setup    func(t *testing.T, d string, mir *export.Root) []string
		rollback bool
		want     uint64 // served after the run
		from     int    // index of the upstream the run followed (-1: any)
		states   []string
		wantErr  error
	}{
		{
			name: "first down: the second is used",
			setup: func(t *testing.T, d string, _ *export.Root) []string {
				return []string{filepath.Join(d, "unmounted"), root(t, d, "b", treeA1)}
			},
			want: 1, from: 1, states: []string{export.PolledUnavailable, export.PolledChosen},
		},
		{
			name: "first behind: the second, newer, is used",
			setup: func(t *testing.T, d string, _ *export.Root) []string {
				return []string{root(t, d, "a", treeA1), root(t, d, "b", treeA1, treeA2)}
			},
			want: 2, from: 1, states: []string{export.PolledBehind, export.PolledChosen},
		},
		{
			name: "level: the first in priority is used, the second is level",
			setup: func(t *testing.T, d string, _ *export.Root) []string {
				return []string{root(t, d, "a", treeA1, treeA2), root(t, d, "b", treeA1, treeA2)}
			},
			want: 2, from: 0, states: []string{export.PolledChosen, export.PolledLevel},
		},
		{
			name: "same number, another manifest: the second is diverged and left out",
			setup: func(t *testing.T, d string, _ *export.Root) []string {
				return []string{root(t, d, "a", treeA1, treeA2), root(t, d, "b", treeB1, treeB2)}
			},
			want: 2, from: 0, states: []string{export.PolledChosen, export.PolledDiverged},
		},
		{
			name: "same number, another manifest than the mirror's: the first is diverged",
			setup: func(t *testing.T, d string, mir *export.Root) []string {
				b := root(t, d, "b", treeA1, treeA2)
				_, err := syncUps(t, mir, []string{b}, opts())
				testutil.Must(t, err)
				return []string{root(t, d, "a", treeB1, treeB2), b}
			},
			want: 2, from: 1, states: []string{export.PolledDiverged, export.PolledChosen},
		},
		{
			name: "every upstream serving the number diverged: refused",
			setup: func(t *testing.T, d string, mir *export.Root) []string {
				b := root(t, d, "b", treeA1, treeA2)
				_, err := syncUps(t, mir, []string{b}, opts())
				testutil.Must(t, err)
				testutil.Must(t, os.RemoveAll(b))
				return []string{root(t, d, "a", treeB1, treeB2), b}
			},
			want: 2, from: -1, states: []string{export.PolledDiverged, export.PolledUnavailable}, wantErr: mirror.ErrDiverged,
		},
		{
			name: "a new upstream from another master with a higher number: refused",
			setup: func(t *testing.T, d string, mir *export.Root) []string {
				a := root(t, d, "a", treeA1)
				_, err := syncUps(t, mir, []string{a}, opts())
				testutil.Must(t, err)
				testutil.Must(t, os.RemoveAll(a))
				return []string{a, root(t, d, "b", treeB1, treeB2)}
			},
			want: 1, from: -1, states: []string{export.PolledUnavailable, export.PolledDiverged}, wantErr: mirror.ErrDiverged,
		},
		{
			name: "never roll back: the only one up is behind the mirror",
			setup: func(t *testing.T, d string, mir *export.Root) []string {
				a := root(t, d, "a", treeA1, treeA2, treeA3)
				_, err := syncUps(t, mir, []string{a}, opts())
				testutil.Must(t, err)
				testutil.Must(t, os.RemoveAll(a))
				return []string{a, root(t, d, "b", treeA1, treeA2)}
			},
			want: 3, from: 1, states: []string{export.PolledUnavailable, export.PolledChosen},
		},
		{
			name: "never roll back: the upstream followed went back, the other is down",
			setup: func(t *testing.T, d string, mir *export.Root) []string {
				a := root(t, d, "a", treeA1, treeA2, treeA3)
				_, err := syncUps(t, mir, []string{a}, opts())
				testutil.Must(t, err)
				rollBack(t, export.New(fsys.OS(), a), 2)
				return []string{filepath.Join(d, "unmounted"), a}
			},
			want: 3, from: 1, states: []string{export.PolledUnavailable, export.PolledChosen}, wantErr: mirror.ErrRollback,
		},
		{
			name: "rolled back with --allow-rollback",
			setup: func(t *testing.T, d string, mir *export.Root) []string {
				a := root(t, d, "a", treeA1, treeA2, treeA3)
				_, err := syncUps(t, mir, []string{a}, opts())
				testutil.Must(t, err)
				rollBack(t, export.New(fsys.OS(), a), 2)
				return []string{filepath.Join(d, "unmounted"), a}
			},
			rollback: true, want: 2, from: 1, states: []string{export.PolledUnavailable, export.PolledChosen},
		},
		{
			name: "all down: unavailable",
			setup: func(_ *testing.T, d string, _ *export.Root) []string {
				return []string{filepath.Join(d, "unmounted"), filepath.Join(d, "gone")}
			},
			want: 0, from: -1, states: []string{export.PolledUnavailable, export.PolledUnavailable}, wantErr: transport.ErrUnavailable,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := t.TempDir()
			mir := export.New(fsys.OS(), filepath.Join(d, "mirror"))
			addrs := tt.setup(t, d, mir)
			opt := opts()
			opt.AllowRollback = tt.rollback
			res, err := syncUps(t, mir, addrs, opt)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			t.Logf("result %+v, err %v", res, err)
			if got, _ := mir.Current(); got != tt.want {
				t.Fatalf("mirror serves %d, want %d", got, tt.want)
			}
			if !slices.Equal(states(res), tt.states) {
				t.Fatalf("states %v, want %v", states(res), tt.states)
			}
			p, ok := mir.LastPoll()
			if tt.from >= 0 {
				if res.Upstream != addrs[tt.from] || !ok || p.Upstream != addrs[tt.from] || len(p.Upstreams) != len(addrs) {
					t.Fatalf("followed %s (poll record %+v), want %s", res.Upstream, p, addrs[tt.from])
				}
			}
			if tt.from >= 0 && tt.wantErr == nil && res.Changed {
				requireMirrors(t, export.New(fsys.OS(), addrs[tt.from]), mir, tt.want)
			}
			if st := readStatus(t, mir); tt.wantErr == nil && res.Changed && st.Upstream != addrs[tt.from] {
				t.Fatalf("status.json names %s, want %s", st.Upstream, addrs[tt.from])
			}
		})
	}
}

func readStatus(tb testing.TB, r *export.Root) export.Status {
	tb.Helper()
	var st export.Status
	b, err := os.ReadFile(r.Path(export.StatusName))
	if err != nil {
		return st
	}
	testutil.Must(tb, json.Unmarshal(b, &st))
	return st
}

// counting counts the requests an upstream gets.
type counting struct {
	transport.Upstream
	seq, cur, man, status int
}

func (c *counting) Seq(ctx context.Context, name string) (uint64, error) {
	c.seq++
	return c.Upstream.Seq(ctx, name)
}

func (c *counting) Current(ctx context.Context) (uint64, time.Time, error) {
	c.cur++
	return c.Upstream.Current(ctx)
}

func (c *counting) FetchManifest(ctx context.Context, n uint64, dst string) error {
	c.man++
	return c.Upstream.FetchManifest(ctx, n, dst)
}

func (c *counting) FetchStatus(ctx context.Context) ([]byte, error) {
	c.status++
	return c.Upstream.FetchStatus(ctx)
}

func (c *counting) total() int { return c.seq + c.cur + c.man + c.status }

// The no-op poll stays what it was with one upstream (seq/end, which the
// .upstream record vouches for, nothing else: no current, no status.json,
// no manifest); with several, a
// stable no-op poll reads each one's seq/end and current and fetches no
// manifest, once the first poll recorded the peers' identities.
func TestFailoverNoopRequests(t *testing.T) {
	d := t.TempDir()
	mir := export.New(fsys.OS(), filepath.Join(d, "mirror"))
	a, b := root(t, d, "a", treeA1, treeA2), root(t, d, "b", treeA1, treeA2)
	_, err := syncUps(t, mir, []string{a}, opts())
	testutil.Must(t, err)

	one := &counting{Upstream: openLocals(t, []string{a})[0]}
	res, err := mirror.SyncFrom(context.Background(), mir, []transport.Upstream{one}, opts())
	testutil.Must(t, err)
	if res.Changed || one.seq != 1 || one.total() != 1 {
		t.Fatalf("one upstream, no-op: %+v; requests %+v, want seq/end only", res, *one)
	}

	for i, wantMan := range []int{1, 0, 0} { // b's manifest compared once
		ups := openLocals(t, []string{a, b})
		ca, cb := &counting{Upstream: ups[0]}, &counting{Upstream: ups[1]}
		res, err := mirror.SyncFrom(context.Background(), mir, []transport.Upstream{ca, cb}, opts())
		testutil.Must(t, err)
		if res.Changed || ca.man != 0 || cb.man != wantMan || ca.status+cb.status != 0 || ca.seq != 1 || cb.seq != 1 {
			t.Fatalf("poll %d of two level upstreams: %+v; requests a %+v b %+v", i, res, *ca, *cb)
		}
		if !slices.Equal(states(res), []string{export.PolledChosen, export.PolledLevel}) {
			t.Fatalf("states %v", states(res))
		}
	}
}
