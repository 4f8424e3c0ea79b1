package server_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/seqmirror/seqmirror/internal/export"
	"github.com/seqmirror/seqmirror/internal/fsys"
	"github.com/seqmirror/seqmirror/internal/server"
	"github.com/seqmirror/seqmirror/snapshot"
	"github.com/seqmirror/seqmirror/testutil"
)

// fixture is an export root published from src, with what a root holds
// besides (.work/, .lock, a temp file in a snapshot, seq/checked), served
// by a Handler.
type fixture struct {
	src, root string
	h         *server.Handler
}

// fixtureFiles are the files of the published tree.
var fixtureFiles = map[string]string{
	"a.txt":           "hello, world\n",
	"dir/x.txt":       "x content\n",
	"dir/sub/y.bin":   "yyyy",
	"<b>&'\".txt":     "html in the name\n",
	"space name.txt":  "spaces\n",
	"dir/.hidden":     "a dotfile is a file like any other\n",
	"colon:name.html": "<p>colons</p>\n",
}

func newFixture(tb testing.TB) *fixture {
	tb.Helper()
	dir := tb.TempDir()
	fx := &fixture{src: filepath.Join(dir, "src"), root: filepath.Join(dir, "root")}
	testutil.WriteTree(tb, fx.src, fixtureFiles)
	for link, target := range map[string]string{
		"link-in":      "a.txt",
		"dir/link-up":  "../a.txt",
		"dirlink":      "dir",
		"link-out":     "../../.lock",
		"link-abs":     "/etc/passwd",
		"dir/link-far": "../../../../../../etc/passwd",
	} {
		if err := os.Symlink(target, filepath.Join(fx.src, link)); err != nil {
			tb.Fatal(err)
		}
	}
	fx.publish(tb)
	testutil.WriteTree(tb, fx.root, map[string]string{
		".work/1/a.txt":                "work in progress",
		"snapshots/1/.a.txt.tmp-4242":  "a temp file",
		"seq/.end.tmp-4242":            "7\n",
		"seq/checked":                  `{"upstream":"x","upstream_snapshot":1,"snapshot":1}`,
		"snapshots/1.manifest.minisig": "a snapshot signature\n",
		"seq/timestamp.minisig":        "a timestamp\n",
	})
	h, err := server.NewHandler(server.Options{Root: fx.root})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { h.Close() })
	fx.h = h
	return fx
}

// publish publishes src into root (forced: a new snapshot each time).
func (fx *fixture) publish(tb testing.TB) {
	tb.Helper()
	opt := snapshot.DefaultOptions()
	opt.Force = true
	if _, err := snapshot.Publish(context.Background(), export.New(fsys.OS(), fx.root), fx.src, opt); err != nil {
		tb.Fatal(err)
	}
}

// get sends one request to the handler.
func (fx *fixture) get(tb testing.TB, method, target string, hdr map[string]string) *http.Response {
	tb.Helper()
	req := httptest.NewRequest(method, target, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	fx.h.ServeHTTP(rec, req)
	return rec.Result()
}
