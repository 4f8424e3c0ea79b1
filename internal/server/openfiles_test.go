package server_test

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/seqmirror/seqmirror/internal/server"
)

// openUnder counts this process's descriptors open on files below dir.
func openUnder(tb testing.TB, dir string) int {
	tb.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		tb.Fatal(err)
	}
	n := 0
	for _, e := range ents {
		if p, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name())); err == nil && strings.HasPrefix(p, dir+"/snapshots/") {
			n++
		}
	}
	return n
}

// withHandler replaces fx's Handler by one made with o (Root set).
func (fx *fixture) withHandler(tb testing.TB, o server.Options) {
	tb.Helper()
	o.Root = fx.root
	h, err := server.NewHandler(o)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { h.Close() })
	fx.h.Close()
	fx.h = h
}

func body(tb testing.TB, resp *http.Response) string {
	tb.Helper()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatal(err)
	}
	return string(b)
}

// A small snapshot file once served stays open: it is served from there
// (here, after its name is gone from disk), at most OpenFiles of them,
// until its snapshot's index goes (its manifest replaced, here).
func TestOpenFilesKept(t *testing.T) {
	for _, tc := range []struct {
		name      string
		openFiles int
		wantKept  bool
	}{
		{"kept", 8, true},
		{"none (the default)", 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fx := newFixture(t)
			fx.withHandler(t, server.Options{OpenFiles: tc.openFiles})
			p := filepath.Join(fx.root, "snapshots", "1", "a.txt")
			resp := fx.get(t, "GET", "/snapshots/1/a.txt", nil)
			if resp.StatusCode != 200 || body(t, resp) != fixtureFiles["a.txt"] {
				t.Fatalf("first GET: %d", resp.StatusCode)
			}
			if err := os.Remove(p); err != nil {
				t.Fatal(err)
			}
			resp = fx.get(t, "GET", "/snapshots/1/a.txt", nil)
			if kept := resp.StatusCode == 200 && body(t, resp) == fixtureFiles["a.txt"]; kept != tc.wantKept {
				t.Fatalf("GET after the name went: %d, kept %v, want %v", resp.StatusCode, kept, tc.wantKept)
			}
			if !tc.wantKept {
				return
			}
			// A new manifest file (same bytes): a new index after the
			// recheck interval, and the old one's files closed.
			m := filepath.Join(fx.root, "snapshots", "1.manifest")
			b, err := os.ReadFile(m)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(m+".new", b, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(m+".new", m); err != nil {
				t.Fatal(err)
			}
			time.Sleep(1100 * time.Millisecond)
			if resp := fx.get(t, "GET", "/snapshots/1/a.txt", nil); resp.StatusCode == 200 {
				t.Fatalf("GET after a new index: 200, want an error (the file is gone)")
			}
			if n := openUnder(t, fx.root); n != 0 {
				t.Fatalf("%d files of the old index still open", n)
			}
		})
	}
}

// At most OpenFiles files stay open.
func TestOpenFilesBound(t *testing.T) {
	fx := newFixture(t)
	fx.withHandler(t, server.Options{OpenFiles: 2})
	for _, name := range []string{"a.txt", "dir/x.txt", "dir/sub/y.bin", "space name.txt", "a.txt"} {
		resp := fx.get(t, "GET", "/snapshots/1/"+strings.ReplaceAll(name, " ", "%20"), nil)
		if resp.StatusCode != 200 || body(t, resp) != fixtureFiles[name] {
			t.Fatalf("%s: %d", name, resp.StatusCode)
		}
		if n := openUnder(t, fx.root); n > 2 {
			t.Fatalf("after %s: %d files open, want at most 2", name, n)
		}
	}
	fx.h.Close()
	if n := openUnder(t, fx.root); n != 0 {
		t.Fatalf("after Close: %d files open", n)
	}
}

// A plain GET or HEAD of a small file is answered without
// http.ServeContent; its answer is the one ServeContent gives (asked
// here through a condition that holds, which takes its path).
func TestPlainGetAsServeContent(t *testing.T) {
	fx := newFixture(t)
	for _, method := range []string{"GET", "HEAD"} {
		plain := fx.get(t, method, "/snapshots/1/dir/x.txt", nil)
		full := fx.get(t, method, "/snapshots/1/dir/x.txt", map[string]string{"If-Modified-Since": "Mon, 02 Jan 2006 15:04:05 GMT"})
		if plain.StatusCode != 200 || full.StatusCode != 200 {
			t.Fatalf("%s: %d and %d", method, plain.StatusCode, full.StatusCode)
		}
		for _, k := range []string{"Accept-Ranges", "Last-Modified", "Content-Length", "Content-Type", "Etag", "Cache-Control"} {
			if p, f := plain.Header.Values(k), full.Header.Values(k); strings.Join(p, ",") != strings.Join(f, ",") || len(p) != 1 {
				t.Errorf("%s %s: %q, ServeContent's %q", method, k, p, f)
			}
		}
		if p, f := body(t, plain), body(t, full); p != f {
			t.Errorf("%s body: %q, ServeContent's %q", method, p, f)
		}
	}
}
