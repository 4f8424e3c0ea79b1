package mirror_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/seqmirror/seqmirror/internal/export"
	"github.com/seqmirror/seqmirror/internal/filter"
	"github.com/seqmirror/seqmirror/internal/fsys"
	"github.com/seqmirror/seqmirror/internal/mirror"
	"github.com/seqmirror/seqmirror/internal/server"
	"github.com/seqmirror/seqmirror/internal/transport"
	"github.com/seqmirror/seqmirror/testutil"
)

// partialNet is a transport for the partial mirror tests: addr serves the
// export root dir (the master's or the tier-1 mirror's) as it would be
// served in production, and requests (if not nil) counts what it got.
type partialNet struct {
	name  string
	serve func(tb testing.TB, roots map[string]string) (addr func(name string) string, requests func() int64)
}

var partialNets = []partialNet{
	{name: "local", serve: func(tb testing.TB, roots map[string]string) (func(string) string, func() int64) {
		return func(name string) string { return roots[name] }, nil
	}},
	{name: "rsync", serve: func(tb testing.TB, roots map[string]string) (func(string) string, func() int64) {
		d := testutil.StartRsyncdServer(tb, roots)
		return d.URL, nil
	}},
	{name: "nginx", serve: func(tb testing.TB, roots map[string]string) (func(string) string, func() int64) {
		var b strings.Builder
		for name, dir := range roots {
			b.WriteString("location /" + name + "/ { alias " + dir + "/; }\n")
		}
		b.WriteString("location ~ (^|/)\\.work(/|$) { return 404; }\n")
		n := testutil.StartNginx(tb, b.String())
		return func(name string) string { return n.URL("/" + name + "/") },
			func() int64 { return settled(func() int64 { return int64(strings.Count(n.AccessLog(), "\n")) }) }
	}},
	{name: "serve", serve: func(tb testing.TB, roots map[string]string) (func(string) string, func() int64) {
		var count atomic.Int64
		mux := http.NewServeMux()
		for name, dir := range roots {
			h, err := server.NewHandler(server.Options{Root: dir})
			testutil.Must(tb, err)
			mux.Handle("/"+name+"/", http.StripPrefix("/"+name, h))
		}
		s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			count.Add(1)
			mux.ServeHTTP(w, r)
		}))
		tb.Cleanup(s.Close)
		return func(name string) string { return s.URL + "/" + name + "/" }, count.Load
	}},
}

// settled returns count once it has not changed for a moment: nginx logs
// a request after answering it.
func settled(count func() int64) int64 {
	last, quiet := count(), 0
	for deadline := time.Now().Add(5 * time.Second); quiet < 4 && time.Now().Before(deadline); {
		time.Sleep(30 * time.Millisecond)
		if c := count(); c == last {
			quiet++
		} else {
			last, quiet = c, 0
		}
	}
	return last
}

// syncAddr syncs mir from the upstream at addr.
func syncAddr(tb testing.TB, addr string, mir *export.Root, opt mirror.Options) mirror.Result {
	tb.Helper()
	testutil.Must(tb, mir.Init())
	up, err := transport.Open(addr, fsys.OS(), transport.Options{ScratchDir: mir.WorkDir()})
	testutil.Must(tb, err)
	defer up.Close()
	res, err := mirror.Sync(context.Background(), mir, up, opt)
	testutil.Must(tb, err)
	return res
}

// Partial mirrors over every transport: a tier 1 that widens and narrows
// without a full copy, a tier 2 that narrows further and copies the full
// manifest down, and no-op polls that stay one request over HTTP.
func TestPartialOverTransports(t *testing.T) {
	for _, tn := range partialNets {
		t.Run(tn.name, func(t *testing.T) {
			w := newWorld(t, partialFiles)
			n := w.publish(t)
			testutil.Must(t, w.mir.Init())
			addr, requests := tn.serve(t, map[string]string{"up": w.up.Dir, "t1": w.mir.Dir})
			opt1 := opts()
			opt1.Filter = mustFilter(t, onlyA...)
			res := syncAddr(t, addr("up"), w.mir, opt1)
			if res.Fetched != 2 {
				t.Fatalf("tier 1: %+v, want 2 files fetched", res)
			}
			checkPartial(t, w.mir, w.up, filter.Of(opt1.Filter))

			// Widen: only the two files of b.git come over the wire.
			opt1.Filter = mustFilter(t, aAndB...)
			res = syncAddr(t, addr("up"), w.mir, opt1)
			if res.Snapshot != n || res.Fetched != 2 || res.Linked != 2 {
				t.Fatalf("widen: %+v, want snapshot %d again, 2 fetched and 2 linked", res, n)
			}
			checkPartial(t, w.mir, w.up, filter.Of(opt1.Filter))

			// Tier 2 narrows further, from the partial tier 1.
			t2 := export.New(fsys.OS(), filepath.Join(t.TempDir(), "t2"))
			opt2 := opts()
			opt2.Filter = mustFilter(t, "- /scm/a.git/")
			res = syncAddr(t, addr("t1"), t2, opt2)
			if got, want := files(t, t2), "scm/b.git/HEAD scm/b.git/objects/x"; got != want || res.Fetched != 2 {
				t.Fatalf("tier 2: files %q (%+v), want %q fetched", got, res, want)
			}
			checkPartial(t, t2, w.up, filter.Of(opt1.Filter, opt2.Filter))

			// A no-op poll of the partial tier 2: one request over HTTP.
			var before int64
			if requests != nil {
				before = requests()
			}
			if res = syncAddr(t, addr("t1"), t2, opt2); res.Changed {
				t.Fatalf("tier 2 no-op: %+v", res)
			}
			if requests != nil {
				if got := requests() - before; got != 1 {
					t.Fatalf("the no-op poll of a partial mirror made %d requests, want 1 (GET seq/end)", got)
				}
			}

			// Tier 1 narrows back: nothing fetched; tier 2 follows, nothing fetched.
			opt1.Filter = mustFilter(t, "+ /scm/", "+ /scm/b.git/", "+ /scm/b.git/HEAD", "- *")
			opt1.MaxDelete = 0
			if res = syncAddr(t, addr("up"), w.mir, opt1); res.Fetched != 0 || !res.Changed {
				t.Fatalf("tier 1 narrows: %+v, want a new copy with nothing fetched", res)
			}
			if res = syncAddr(t, addr("t1"), t2, opt2); res.Fetched != 0 || !res.Changed {
				t.Fatalf("tier 2 after tier 1 narrowed: %+v, want a new copy with nothing fetched", res)
			}
			if got, want := files(t, t2), "scm/b.git/HEAD"; got != want {
				t.Fatalf("tier 2: files %q, want %q", got, want)
			}
			checkPartial(t, t2, w.up, filter.Of(opt1.Filter, opt2.Filter))
		})
	}
}
