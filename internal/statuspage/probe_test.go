package statuspage_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/seqmirror/seqmirror/internal/export"
	"github.com/seqmirror/seqmirror/internal/fsys"
	"github.com/seqmirror/seqmirror/internal/statuspage"
	"github.com/seqmirror/seqmirror/internal/transport"
	"github.com/seqmirror/seqmirror/testutil"
)

// TestProbe reads real downstream roots, over a path and over HTTP, in
// each state, compared with this server serving snapshot 5 (flipped to 5
// at selfFlip).
func TestProbe(t *testing.T) {
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	selfFlip := now.Add(-90 * time.Second)
	self := t.TempDir()
	for n := uint64(1); n <= 5; n++ {
		testutil.SnapshotRoot(t, self, n, map[string]string{"a": "x"})
	}
	testutil.Must(t, os.Chtimes(filepath.Join(self, "snapshots", "4.manifest"), selfFlip.Add(-time.Hour), selfFlip.Add(-time.Hour)))
	testutil.Must(t, os.Chtimes(filepath.Join(self, "snapshots", "5.manifest"), selfFlip, selfFlip))
	selfRoot, err := transport.NewLocal(fsys.OS(), self)
	testutil.Must(t, err)
	status := `{"version":1,"last_error":"disk full","lineage":[` +
		`{"name":"m","address":"rsync://m/pub","snapshot":5,"since":"2026-11-28T11:58:00Z"},` +
		`{"name":"t1","address":"http://t1/pub","snapshot":5,"since":"2026-11-28T11:58:00.4Z"}]}`
	cases := []struct {
		name    string
		snap    uint64
		damage  func(t *testing.T, dir string)
		unreach bool
		state   string
		behind  uint64
		lag     time.Duration
		errText string
		hops    int
	}{
		{name: "fresh", snap: 5, state: "fresh"},
		{name: "stale", snap: 3, state: "stale", behind: 2, lag: time.Hour + 90*time.Second},
		{name: "updating", snap: 5, state: "updating", damage: func(t *testing.T, dir string) {
			testutil.Must(t, os.WriteFile(filepath.Join(dir, "seq", "begin"), []byte("6\n"), 0o644))
		}},
		{name: "torn", snap: 5, state: "torn", errText: "not complete", damage: func(t *testing.T, dir string) {
			testutil.Must(t, os.Remove(filepath.Join(dir, "snapshots", "5.manifest")))
		}},
		{name: "status.json read", snap: 5, state: "fresh", errText: "disk full", hops: 2, damage: func(t *testing.T, dir string) {
			testutil.Must(t, os.WriteFile(filepath.Join(dir, "status.json"), []byte(status), 0o644))
		}},
		{name: "unreachable", unreach: true, state: "unreachable", errText: "127.0.0.1:1"},
	}
	for _, via := range []string{"path", "http"} {
		for _, tc := range cases {
			t.Run(via+"/"+tc.name, func(t *testing.T) {
				dir := t.TempDir()
				for n := uint64(1); n <= tc.snap; n++ {
					testutil.SnapshotRoot(t, dir, n, map[string]string{"a": "x"})
				}
				if tc.damage != nil {
					tc.damage(t, dir)
				}
				addr := dir
				switch {
				case tc.unreach:
					addr = "http://127.0.0.1:1/pub"
				case via == "http":
					addr = testutil.StartFileServer(t, dir)
				}
				up, err := transport.Open(addr, fsys.OS(), transport.Options{})
				testutil.Must(t, err)
				defer up.Close()
				d, hops := statuspage.Probe(context.Background(), up, statuspage.ProbeArgs{Name: "d", URL: addr, Ours: 5, Self: selfRoot, Now: now})
				if d.State != tc.state || d.LagSnapshots != tc.behind || d.Lag != tc.lag || len(hops) != tc.hops {
					t.Errorf("got %+v and %d hops, want %s, %d behind for %v, %d hops", d, len(hops), tc.state, tc.behind, tc.lag, tc.hops)
				}
				if !strings.Contains(d.Error, tc.errText) || (tc.errText == "") != (d.Error == "") {
					t.Errorf("error %q, want one with %q", d.Error, tc.errText)
				}
				if tc.unreach != d.LastSeen.IsZero() || (!tc.unreach && d.Snapshot != tc.snap) {
					t.Errorf("snapshot %d last seen %v", d.Snapshot, d.LastSeen)
				}
				if tc.hops > 0 && (hops[1].Name != "t1" || hops[1].Since.Sub(hops[0].Since) != 400*time.Millisecond) {
					t.Errorf("lineage %+v", hops)
				}
			})
		}
	}
}

func TestMerge(t *testing.T) {
	seen := time.Date(2026, 11, 28, 11, 0, 0, 0, time.UTC)
	prev := statuspage.Downstream{Name: "d", State: export.StateFresh, Snapshot: 7, LastSeen: seen}
	cases := []struct {
		name string
		cur  statuspage.Downstream
		want statuspage.Downstream
	}{
		{name: "unreachable keeps what was seen", cur: statuspage.Downstream{Name: "d", State: export.StateUnreachable, Error: "refused"},
			want: statuspage.Downstream{Name: "d", State: export.StateUnreachable, Snapshot: 7, LastSeen: seen, Error: "refused"}},
		{name: "reached replaces it", cur: statuspage.Downstream{Name: "d", State: export.StateStale, Snapshot: 6, LastSeen: seen.Add(time.Minute)},
			want: statuspage.Downstream{Name: "d", State: export.StateStale, Snapshot: 6, LastSeen: seen.Add(time.Minute)}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := statuspage.Merge(prev, tc.cur); got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestAddArrival(t *testing.T) {
	at := func(n uint64, ms int) time.Time {
		return time.Date(2026, 11, 28, 11, int(n), 0, 0, time.UTC).Add(time.Duration(ms) * time.Millisecond)
	}
	lin := func(n uint64, names ...string) []statuspage.Hop {
		var hops []statuspage.Hop
		for i, name := range names {
			hops = append(hops, statuspage.Hop{Name: name, Snapshot: n, Since: at(n, 300*i)})
		}
		return hops
	}
	var h []statuspage.Propagation
	h = statuspage.AddArrival(h, lin(1, "m", "t1"), 3)
	h = statuspage.AddArrival(h, lin(1, "m", "t1", "t2"), 3)
	h = statuspage.AddArrival(h, lin(1, "m", "t1", "t2"), 3) // again: no second arrival
	h = statuspage.AddArrival(h, lin(2, "m"), 3)             // the master alone: nothing
	h = statuspage.AddArrival(h, []statuspage.Hop{{Name: "m", Snapshot: 2, Since: at(2, 0)}, {Name: "x", Snapshot: 2}}, 3)
	for n := uint64(2); n <= 4; n++ {
		h = statuspage.AddArrival(h, lin(n, "m", "t1"), 3)
	}
	if len(h) != 3 || h[0].Snapshot != 4 || h[2].Snapshot != 2 {
		t.Fatalf("history %+v, want snapshots 4, 3, 2", h)
	}
	h = statuspage.AddArrival(h, lin(2, "m", "t1", "t2"), 3)
	p := h[2]
	if p.Flipped != at(2, 0) || len(p.Arrivals) != 2 || p.Arrivals[1] != (statuspage.Arrival{Mirror: "t2", Tier: 2, At: at(2, 600)}) {
		t.Errorf("snapshot 2: %+v", p)
	}
	if d := p.Delay(p.Arrivals[0]); d != 300*time.Millisecond {
		t.Errorf("tier-1 delay %v", d)
	}
}
