package daemon_test

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/seqmirror/seqmirror/internal/daemon"
	"github.com/seqmirror/seqmirror/internal/export"
	"github.com/seqmirror/seqmirror/internal/fsys"
	"github.com/seqmirror/seqmirror/internal/server"
	"github.com/seqmirror/seqmirror/internal/statuspage"
	"github.com/seqmirror/seqmirror/testutil"
)

// clock is an injected clock the test moves.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) set(t time.Time) { c.mu.Lock(); c.t = t; c.mu.Unlock() }
func settings(urls ...string) func() (daemon.Settings, error) {
	return func() (daemon.Settings, error) { return daemon.Settings{Secret: secret, Downstream: urls}, nil }
}

// hop is one hop of a lineage as a status.json records it.
type hop struct {
	Name     string    `json:"name"`
	Address  string    `json:"address"`
	Snapshot uint64    `json:"snapshot"`
	Since    time.Time `json:"since"`
}

// downstreamRoot serves an export root at snapshot n, whose status.json
// records the lineage master -> t1 -> name, the hops 300 ms and 400 ms
// after the master's flip at flip; it returns the server.
func downstreamRoot(tb testing.TB, name string, n uint64, flip time.Time) *httptest.Server {
	tb.Helper()
	dir := filepath.Join(tb.TempDir(), name)
	testutil.SnapshotRoot(tb, dir, n, map[string]string{"a.txt": "a\n"})
	st, err := json.Marshal(map[string]any{"version": 1, "snapshot": n, "lineage": []hop{
		{"master", "http://master", n, flip},
		{"t1", "http://t1", n, flip.Add(300 * time.Millisecond)},
		{name, "", n, flip.Add(700 * time.Millisecond)},
	}})
	testutil.Must(tb, err)
	testutil.Must(tb, os.WriteFile(filepath.Join(dir, export.StatusName), st, 0o644))
	h, err := server.NewHandler(server.Options{Root: dir})
	testutil.Must(tb, err)
	srv := httptest.NewServer(h)
	tb.Cleanup(func() { srv.Close(); h.Close() })
	return srv
}

// waitPage waits until the daemon's page satisfies ok.
func waitPage(tb testing.TB, d *daemon.Daemon, what string, ok func(statuspage.Page) bool) statuspage.Page {
	tb.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		p, err := d.Page(context.Background())
		testutil.Must(tb, err)
		if ok(p) {
			return p
		}
		if time.Now().After(deadline) {
			tb.Fatalf("page not %s within 5s: %+v", what, p.Downstreams)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func probedAll(p statuspage.Page) bool {
	for _, r := range p.Downstreams {
		if r.State == daemon.StateUnprobed {
			return false
		}
	}
	return true
}

// The page's data: this server from its root, its downstream mirrors as
// the probe after a sync found them (fresh, stale by one snapshot,
// unreachable), in the order configured, named by their lineage, seen at
// the injected clock's time; the arrivals their lineages tell. A mirror
// that stops answering keeps what was last seen of it.
func TestPageData(t *testing.T) {
	flip := time.Date(2026, 11, 28, 9, 0, 0, 0, time.UTC)
	clk := &clock{t: flip.Add(time.Hour)}
	fresh, stale := downstreamRoot(t, "fresh.example", 2, flip), downstreamRoot(t, "stale.example", 1, flip.Add(-time.Minute))
	gone := httptest.NewServer(http.NotFoundHandler())
	gone.Close()
	root := filepath.Join(t.TempDir(), "root")
	testutil.SnapshotRoot(t, root, 1, map[string]string{"a.txt": "a\n"})
	testutil.SnapshotRoot(t, root, 2, map[string]string{"a.txt": "b\n"})
	own := []export.Hop{{Name: "master", Address: "http://master", Snapshot: 2, Since: flip},
		{Name: "t1", Snapshot: 2, Since: flip.Add(300 * time.Millisecond)}}
	recordLineage(t, root, own)
	f := newFake(2)
	urls := []string{fresh.URL, stale.URL + daemon.TriggerPath, gone.URL}
	r := start(t, daemon.Config{Root: root, Sync: f.sync, Load: settings(urls...), Name: "t1", Now: clk.now,
		Forward: func(context.Context, string, []byte, uint64) error { return nil }})

	p := waitPage(t, r.d, "probed", probedAll)
	if p.Server.Name != "t1" || p.Server.Snapshot != 2 || p.Server.State != export.StateFresh || !p.Now.Equal(clk.now()) {
		t.Errorf("server %+v at %v", p.Server, p.Now)
	}
	if len(p.Lineage) != 2 || !reflect.DeepEqual(p.Lineage[0], statuspage.Hop(own[0])) || !reflect.DeepEqual(p.Lineage[1], statuspage.Hop(own[1])) {
		t.Errorf("lineage %+v, want its status.json's %+v", p.Lineage, own)
	}
	want := []struct {
		name, url, state string
		snapshot, behind uint64
	}{
		{"fresh.example", fresh.URL + "/", export.StateFresh, 2, 0},
		{"stale.example", stale.URL + "/", export.StateStale, 1, 1},
		{strings.TrimPrefix(gone.URL, "http://"), gone.URL + "/", export.StateUnreachable, 0, 0},
	}
	if len(p.Downstreams) != len(want) {
		t.Fatalf("%d rows, want %d", len(p.Downstreams), len(want))
	}
	for i, w := range want {
		got := p.Downstreams[i]
		if got.Name != w.name || got.URL != w.url || got.State != w.state || got.Snapshot != w.snapshot || got.LagSnapshots != w.behind {
			t.Errorf("row %d = %+v, want %+v", i, got, w)
		}
		if seen := w.state != export.StateUnreachable; seen != got.LastSeen.Equal(clk.now()) {
			t.Errorf("row %s last seen %v (now %v)", w.name, got.LastSeen, clk.now())
		}
	}
	if p.Downstreams[2].Error == "" {
		t.Error("the unreachable row says nothing of why")
	}
	checkHistory(t, p.History, flip)

	seen := clk.now()
	clk.set(seen.Add(time.Minute))
	fresh.Close()
	r.d.Trigger(0) // a poll: a sync, then a round of probes
	p = waitPage(t, r.d, "showing fresh.example unreachable", func(p statuspage.Page) bool {
		return p.Downstreams[0].State == export.StateUnreachable
	})
	if row := p.Downstreams[0]; row.Snapshot != 2 || !row.LastSeen.Equal(seen) || row.Name != "fresh.example" {
		t.Errorf("after it stopped answering: %+v, want snapshot 2 and name as last seen at %v", row, seen)
	}
}

// checkHistory: the arrivals of snapshot 2 (this server's own, tier 1, and
// fresh.example's, tier 2) and 1 (stale.example's), the master's flips
// from the lineages.
func checkHistory(t *testing.T, h []statuspage.Propagation, flip time.Time) {
	t.Helper()
	if len(h) != 2 || h[0].Snapshot != 2 || h[1].Snapshot != 1 || len(h[1].Arrivals) != 1 {
		t.Fatalf("history %+v, want snapshots 2 and 1", h)
	}
	a := h[0].Arrivals
	if !h[0].Flipped.Equal(flip) || len(a) != 2 {
		t.Fatalf("snapshot 2's propagation %+v", h[0])
	}
	if a[0].Mirror != "t1" || a[0].Tier != 1 || h[0].Delay(a[0]) != 300*time.Millisecond ||
		a[1].Mirror != "fresh.example" || a[1].Tier != 2 || h[0].Delay(a[1]) != 700*time.Millisecond {
		t.Errorf("snapshot 2's arrivals %+v", a)
	}
}

// recordLineage records lineage in the status.json of the root at dir.
func recordLineage(tb testing.TB, dir string, lineage []export.Hop) {
	tb.Helper()
	r := export.New(fsys.OS(), dir)
	st, err := r.Status()
	testutil.Must(tb, err)
	st.Lineage = lineage
	testutil.Must(tb, r.WriteStatus(st))
}

// The page is GET and HEAD of /status on the daemon's server, beside the
// root it serves (/status.json is still the root's); any other method is
// 405.
func TestPageServed(t *testing.T) {
	f := newFake(1)
	r := start(t, daemon.Config{Sync: f.sync, Name: "mirror-under-test"})
	f.waitSync(t, 1)
	resp, err := http.Get(r.url + daemon.StatusPath)
	testutil.Must(t, err)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") ||
		!strings.Contains(resp.Header.Get("Content-Security-Policy"), "default-src 'none'") {
		t.Fatalf("GET /status: %d %v", resp.StatusCode, resp.Header)
	}
	if body := get(t, r.url+daemon.StatusPath); !strings.Contains(body, "mirror-under-test") {
		t.Errorf("page does not name the server:\n%s", body)
	}
	p, err := r.d.Page(context.Background())
	testutil.Must(t, err)
	if len(p.Lineage) != 1 || p.Lineage[0].Name != "mirror-under-test" || p.Lineage[0].Snapshot != 1 {
		t.Errorf("lineage %+v, want this server alone (its status.json records none)", p.Lineage)
	}
	if code := post(t, r.url+daemon.StatusPath); code != http.StatusMethodNotAllowed {
		t.Errorf("POST /status: %d, want 405", code)
	}
	testutil.Must(t, export.New(fsys.OS(), r.root).RecordStatus(""))
	if body := get(t, r.url+"/"+export.StatusName); !strings.HasPrefix(body, "{") {
		t.Errorf("GET /status.json = %q, want the root's status.json", body)
	}
	resp, err = http.Get(r.url + daemon.StatusPath + "/")
	testutil.Must(t, err)
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /status/: %d, want 404", resp.StatusCode)
	}
}

// A downstream that accepts connections and never answers delays no sync;
// its probe ends at Timing.ProbeTimeout, and the row says unreachable.
// A stop does not wait for a probe in progress.
func TestProbeNeverDelaysSync(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	testutil.Must(t, err)
	defer ln.Close()
	go func() { // accept, hold, never answer
		var held []net.Conn
		for {
			c, err := ln.Accept()
			if err != nil {
				for _, c := range held {
					c.Close()
				}
				return
			}
			held = append(held, c)
		}
	}()
	for _, tc := range []struct {
		name    string
		timeout time.Duration
	}{
		{name: "probe ends at its timeout", timeout: 700 * time.Millisecond},
		{name: "stop during a probe", timeout: time.Minute},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(1)
			timing := daemon.DefaultTiming()
			timing.Interval, timing.Backoff, timing.ProbeTimeout = time.Hour, 20*time.Millisecond, tc.timeout
			r := start(t, daemon.Config{Sync: f.sync, Load: settings("http://" + ln.Addr().String()), Timing: timing,
				Forward: func(context.Context, string, []byte, uint64) error { return nil }})
			f.waitSync(t, 1) // its probe round starts and hangs
			time.Sleep(50 * time.Millisecond)
			begin := time.Now()
			r.d.Trigger(0)
			f.waitSync(t, 2)
			if d := time.Since(begin); d > 500*time.Millisecond {
				t.Errorf("the sync after a trigger started %v later, with a probe hanging", d)
			}
			if tc.timeout == time.Minute {
				begin = time.Now()
				testutil.Must(t, r.stop())
				if d := time.Since(begin); d > 2*time.Second {
					t.Errorf("stop took %v with a probe hanging", d)
				}
				return
			}
			p := waitPage(t, r.d, "showing the hung mirror unreachable", func(p statuspage.Page) bool {
				return p.Downstreams[0].State == export.StateUnreachable
			})
			t.Logf("hung downstream: %s", p.Downstreams[0].Error)
		})
	}
}
