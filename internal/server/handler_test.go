package server_test

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cespare/xxhash/v2"
	"github.com/seqmirror/seqmirror/manifest"
	"github.com/seqmirror/seqmirror/testutil"
)

const (
	immutable = "public, max-age=31536000, immutable"
	noCache   = "no-cache"
)

func TestHandler(t *testing.T) {
	fx := newFixture(t)
	// A snapshot file's ETag is its record's 64-bit hash (of a version 2
	// record: the first 16 hex digits of its SHA-256) and its size.
	aTag := fmt.Sprintf(`"%s-%d"`, testutil.SumOf(fixtureFiles["a.txt"], manifest.Version2).Digest.String()[:16], len(fixtureFiles["a.txt"]))
	tests := []struct {
		name     string
		method   string // "" for GET
		path     string
		hdr      map[string]string
		code     int
		want     map[string]string // headers ("-": absent)
		body     string            // a substring of the body
		bodyNone bool              // the body must be empty
	}{
		// What a client of the layout reads.
		{name: "seq/begin", path: "/seq/begin", code: 200, want: map[string]string{"Cache-Control": noCache}, body: "1\n"},
		{name: "seq/end", path: "/seq/end", code: 200, want: map[string]string{"Cache-Control": noCache}, body: "1\n"},
		{name: "the pointer", path: "/seq/current", code: 200, want: map[string]string{"Cache-Control": noCache, "Content-Type": "text/plain; charset=utf-8"}, body: "1\n"},
		{name: "status.json", path: "/status.json", code: 200, want: map[string]string{"Cache-Control": noCache, "Content-Type": "application/json"}, body: `"snapshot": 1`},
		{name: "a signature", path: "/snapshots/1.manifest.minisig", code: 200, want: map[string]string{"Cache-Control": immutable}, body: "a snapshot signature\n"},
		{name: "no signature", path: "/snapshots/2.manifest.minisig", code: 404},
		{name: "the timestamp", path: "/seq/timestamp.minisig", code: 200, want: map[string]string{"Cache-Control": noCache}, body: "a timestamp\n"},
		{name: "a manifest", path: "/snapshots/1.manifest", code: 200, want: map[string]string{"Cache-Control": immutable}, body: "seqmirror-manifest 2\nsnapshot 1\n"},
		{name: "a snapshot file", path: "/snapshots/1/a.txt", code: 200,
			want: map[string]string{"Cache-Control": immutable, "ETag": aTag, "Content-Type": "text/plain; charset=utf-8", "Accept-Ranges": "bytes"}, body: "hello, world\n"},
		{name: "a file in a directory", path: "/snapshots/1/dir/sub/y.bin", code: 200, want: map[string]string{"Content-Type": "application/octet-stream"}, body: "yyyy"},
		{name: "a dotfile of the snapshot", path: "/snapshots/1/dir/.hidden", code: 200, body: "any other"},
		{name: "an escaped name", path: "/snapshots/1/space%20name.txt", code: 200, body: "spaces"},
		{name: "HEAD", method: "HEAD", path: "/snapshots/1/a.txt", code: 200, want: map[string]string{"Content-Length": "13", "ETag": aTag}, bodyNone: true},
		{name: "Range", path: "/snapshots/1/a.txt", hdr: map[string]string{"Range": "bytes=7-11"}, code: 206, want: map[string]string{"Content-Range": "bytes 7-11/13", "ETag": aTag}, body: "world"},
		{name: "If-None-Match", path: "/snapshots/1/a.txt", hdr: map[string]string{"If-None-Match": aTag}, code: 304, bodyNone: true},
		{name: "If-None-Match, another tag", path: "/snapshots/1/a.txt", hdr: map[string]string{"If-None-Match": `"0-1"`}, code: 200, body: "hello"},
		{name: "If-Modified-Since", path: "/snapshots/1/a.txt", hdr: map[string]string{"If-Modified-Since": "Mon, 01 Jan 2001 00:00:00 GMT"}, code: 200},
		{name: "If-Modified-Since later", path: "/snapshots/1/a.txt", hdr: map[string]string{"If-Modified-Since": "Fri, 01 Jan 2100 00:00:00 GMT"}, code: 304},
		{name: "If-None-Match on a seq file", path: "/seq/end", hdr: map[string]string{"If-None-Match": fmt.Sprintf(`"%016x"`, xxhash.Sum64String("1\n"))}, code: 304},

		// Listings.
		{name: "the root's listing", path: "/", code: 200, want: map[string]string{"Cache-Control": noCache}, body: `<a href="./snapshots/">snapshots/</a>`},
		{name: "a snapshot's listing", path: "/snapshots/1/", code: 200, want: map[string]string{"Content-Type": "text/html; charset=utf-8", "Cache-Control": immutable}, body: `<a href="./dir/">dir/</a>`},
		{name: "a listing escapes names", path: "/snapshots/1/", code: 200, body: `<a href="./%3Cb%3E&amp;%27%22.txt">&lt;b&gt;&amp;&#39;&#34;.txt</a>`},
		{name: "a listing makes a colon harmless", path: "/snapshots/1/", code: 200, body: `href="./colon:name.html"`},
		{name: "the snapshots' listing", path: "/snapshots/", code: 200, body: `<a href="./1.manifest">1.manifest</a>`},
		{name: "seq's listing", path: "/seq/", code: 200, body: `<a href="./current">current</a>`},
		{name: "a directory without its slash", path: "/snapshots/1/dir", code: 301, want: map[string]string{"Location": "/snapshots/1/dir/"}},
		{name: "a snapshot without its slash", path: "/snapshots/1", code: 301, want: map[string]string{"Location": "/snapshots/1/"}},
		{name: "a file with a slash", path: "/snapshots/1/a.txt/", code: 404},

		// /current/.
		{name: "current redirects", path: "/current/dir/x.txt", code: 302, want: map[string]string{"Location": "/snapshots/1/dir/x.txt", "Cache-Control": noCache}},
		{name: "current keeps escapes", path: "/current/space%20name.txt", code: 302, want: map[string]string{"Location": "/snapshots/1/space%20name.txt"}},
		{name: "current/ redirects to the snapshot", path: "/current/", code: 302, want: map[string]string{"Location": "/snapshots/1/"}},

		// Symlinks of the snapshot.
		{name: "a symlink inside", path: "/snapshots/1/link-in", code: 302, want: map[string]string{"Location": "/snapshots/1/a.txt"}},
		{name: "a symlink up, still inside", path: "/snapshots/1/dir/link-up", code: 302, want: map[string]string{"Location": "/snapshots/1/a.txt"}},
		{name: "through a directory symlink", path: "/snapshots/1/dirlink/x.txt", code: 302, want: map[string]string{"Location": "/snapshots/1/dir/x.txt"}},
		{name: "a directory symlink's listing", path: "/snapshots/1/dirlink/", code: 302, want: map[string]string{"Location": "/snapshots/1/dir/"}},
		{name: "a symlink out of the snapshot", path: "/snapshots/1/link-out", code: 404, body: "404"},
		{name: "an absolute symlink", path: "/snapshots/1/link-abs", code: 404},
		{name: "a symlink far up", path: "/snapshots/1/dir/link-far", code: 404},

		// Never served.
		{name: ".lock", path: "/.lock", code: 404},
		{name: ".work", path: "/.work/", code: 404},
		{name: "a file in .work", path: "/.work/1/a.txt", code: 404},
		{name: "the current symlink as a file", path: "/current", code: 302},
		{name: "seq/checked", path: "/seq/checked", code: 404},
		{name: "a temp seq file", path: "/seq/.end.tmp-4242", code: 404},
		{name: "a temp file in a snapshot", path: "/snapshots/1/.a.txt.tmp-4242", code: 404},
		{name: "a temp file is not listed", path: "/snapshots/1/", code: 200, want: map[string]string{}, body: "dir/"},
		{name: "no such snapshot", path: "/snapshots/2/a.txt", code: 404},
		{name: "a number with a leading zero", path: "/snapshots/01/a.txt", code: 404},
		{name: "no such file", path: "/snapshots/1/nope", code: 404},
		{name: "POST", method: "POST", path: "/snapshots/1/a.txt", code: 405, want: map[string]string{"Allow": "GET, HEAD"}},

		// Paths that are not clean.
		{name: "dot-dot", path: "/snapshots/1/../../.lock", code: 404},
		{name: "dot-dot at the top", path: "/../.lock", code: 404},
		{name: "encoded dot-dot", path: "/snapshots/1/%2e%2e/%2e%2e/.lock", code: 404},
		{name: "encoded slashes", path: "/snapshots/1/..%2f..%2f.lock", code: 404},
		{name: "dot segment", path: "/snapshots/1/./a.txt", code: 404},
		{name: "double slash", path: "/snapshots/1//a.txt", code: 404},
		{name: "double slash at the top", path: "//etc/passwd", code: 404},
		{name: "NUL", path: "/snapshots/1/a.txt%00", code: 404},
		{name: "dot-dot into current", path: "/current/../.lock", code: 404},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			method := tc.method
			if method == "" {
				method = "GET"
			}
			resp := fx.get(t, method, tc.path, tc.hdr)
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.code {
				t.Fatalf("%s %s: %d, want %d\n%s", method, tc.path, resp.StatusCode, tc.code, b)
			}
			for k, v := range tc.want {
				if got := resp.Header.Get(k); got != v && !(v == "-" && got == "") {
					t.Errorf("%s: %q, want %q", k, got, v)
				}
			}
			if !strings.Contains(string(b), tc.body) {
				t.Errorf("body does not hold %q:\n%s", tc.body, b)
			}
			if tc.bodyNone && len(b) != 0 {
				t.Errorf("body not empty: %q", b)
			}
			if strings.Contains(string(b), "tmp-4242") || strings.Contains(string(b), "work in progress") {
				t.Errorf("an internal file shows:\n%s", b)
			}
		})
	}
}

// A symlink planted on disk in a snapshot (not in the manifest), or a
// file swapped for one, is not followed.
func TestSymlinkOnDisk(t *testing.T) {
	fx := newFixture(t)
	snap := filepath.Join(fx.root, "snapshots", "1")
	if err := os.Symlink("/etc/passwd", filepath.Join(snap, "planted")); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(snap, "dir", "x.txt")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc/passwd", filepath.Join(snap, "dir", "x.txt")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(snap, "dir", "sub"), filepath.Join(fx.root, "sub")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../../../sub", filepath.Join(snap, "dir", "sub")); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/snapshots/1/planted", "/snapshots/1/dir/x.txt", "/snapshots/1/dir/sub/y.bin", "/snapshots/1/dir/sub/"} {
		resp := fx.get(t, "GET", p, nil)
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 404 || strings.Contains(string(b), "root:") || strings.Contains(string(b), "yyyy") {
			t.Errorf("%s: %d %q, want 404", p, resp.StatusCode, b)
		}
	}
}

// A file whose size is not its record's is refused, not served with the
// record's ETag.
func TestDamagedFile(t *testing.T) {
	fx := newFixture(t)
	p := filepath.Join(fx.root, "snapshots", "1", "a.txt")
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte("bit rot, longer"), 0o644); err != nil {
		t.Fatal(err)
	}
	if resp := fx.get(t, "GET", "/snapshots/1/a.txt", nil); resp.StatusCode != http.StatusInternalServerError || resp.Header.Get("ETag") != "" {
		t.Fatalf("damaged file: %d, ETag %q", resp.StatusCode, resp.Header.Get("ETag"))
	}
}

// /current/ redirects into the snapshot served at the moment of the
// request: a flip moves it.
func TestCurrentFollowsFlip(t *testing.T) {
	fx := newFixture(t)
	if loc := fx.get(t, "GET", "/current/a.txt", nil).Header.Get("Location"); loc != "/snapshots/1/a.txt" {
		t.Fatalf("before the flip: %q", loc)
	}
	testutil.WriteTree(t, fx.src, map[string]string{"a.txt": "new content\n"})
	fx.publish(t)
	resp := fx.get(t, "GET", "/current/a.txt", nil)
	if loc := resp.Header.Get("Location"); loc != "/snapshots/2/a.txt" {
		t.Fatalf("after the flip: %q", loc)
	}
	b, _ := io.ReadAll(fx.get(t, "GET", "/snapshots/2/a.txt", nil).Body)
	if string(b) != "new content\n" {
		t.Fatalf("snapshot 2's a.txt: %q", b)
	}
	b, _ = io.ReadAll(fx.get(t, "GET", "/snapshots/1/a.txt", nil).Body)
	if string(b) != fixtureFiles["a.txt"] {
		t.Fatalf("snapshot 1's a.txt: %q", b)
	}
	// A root without the pointer (written before it existed): the current
	// symlink says.
	if err := os.Remove(filepath.Join(fx.root, "seq", "current")); err != nil {
		t.Fatal(err)
	}
	if loc := fx.get(t, "GET", "/current/a.txt", nil).Header.Get("Location"); loc != "/snapshots/2/a.txt" {
		t.Fatalf("without the pointer: %q", loc)
	}
	if b, _ := io.ReadAll(fx.get(t, "GET", "/seq/current", nil).Body); string(b) != "2\n" {
		t.Fatalf("seq/current without the file: %q", b)
	}
}
