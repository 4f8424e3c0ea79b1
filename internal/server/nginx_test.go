package server_test

import (
	"errors"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/seqmirror/seqmirror/internal/server"
	"github.com/seqmirror/seqmirror/testutil"
)

// The generated nginx block, in a real nginx, serves what a client needs
// with the Handler's cache headers, and nothing internal: at the top of a
// server and under a prefix.
func TestNginxConfig(t *testing.T) {
	fx := newFixture(t)
	var body strings.Builder
	for _, loc := range []string{"/", "/mirror/"} {
		conf, err := server.NginxConfig(fx.root, loc)
		if err != nil {
			t.Fatal(err)
		}
		body.WriteString(conf)
	}
	ng := testutil.StartNginx(t, body.String())
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	tests := []struct {
		name  string
		path  string
		code  int // 0: 403 or 404
		cache string
		body  string
	}{
		{name: "seq/begin", path: "seq/begin", code: 200, cache: noCache, body: "1\n"},
		{name: "seq/end", path: "seq/end", code: 200, cache: noCache, body: "1\n"},
		{name: "the pointer", path: "seq/current", code: 200, cache: noCache, body: "1\n"},
		{name: "status.json", path: "status.json", code: 200, cache: noCache, body: `"snapshot": 1`},
		{name: "a manifest", path: "snapshots/1.manifest", code: 200, cache: immutable, body: "seqmirror-manifest 2"},
		{name: "a snapshot file", path: "snapshots/1/a.txt", code: 200, cache: immutable, body: "hello, world"},
		{name: "a dotfile of the snapshot", path: "snapshots/1/dir/.hidden", code: 200, cache: immutable, body: "any other"},
		{name: "a snapshot's listing", path: "snapshots/1/", code: 200, cache: immutable, body: "dir/"},
		{name: "current", path: "current/dir/x.txt", code: 200, cache: noCache, body: "x content"},
		{name: "a listing through current", path: "current/", code: 200, cache: noCache, body: "a.txt"},
		{name: ".lock", path: ".lock"},
		{name: ".work", path: ".work/"},
		{name: "a file in .work", path: ".work/1/a.txt"},
		{name: "seq/checked", path: "seq/checked"},
		{name: "a temp seq file", path: "seq/.end.tmp-4242"},
		{name: "a temp file in a snapshot", path: "snapshots/1/.a.txt.tmp-4242"},
		{name: "a temp file through current", path: "current/.a.txt.tmp-4242"},
		{name: "the top's listing", path: ""},
		{name: "seq's listing", path: "seq/"},
		{name: "the snapshots' listing", path: "snapshots/"},
		{name: "a symlink out of the snapshot", path: "snapshots/1/link-out"},
		{name: "an absolute symlink", path: "snapshots/1/link-abs"},
		{name: "a symlink far up", path: "snapshots/1/dir/link-far"},
		{name: "through a directory symlink", path: "snapshots/1/dirlink/x.txt"},
		{name: "dot-dot", path: "snapshots/1/../../.lock"},
		{name: "encoded dot-dot", path: "snapshots/1/%2e%2e/%2e%2e/.lock"},
		{name: "encoded dot-dot into current", path: "current/%2e%2e/.lock"},
		{name: "the current symlink itself", path: "current"},
	}
	for _, loc := range []string{"/", "/mirror/"} {
		for _, tc := range tests {
			t.Run(loc+tc.name, func(t *testing.T) {
				resp, err := client.Get(ng.URL(loc + tc.path))
				if err != nil {
					t.Fatal(err)
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				code := resp.StatusCode
				if tc.code == 0 && code != 403 && code != 404 || tc.code != 0 && code != tc.code {
					t.Fatalf("GET %s: %d, want %d (0: 403 or 404)\n%s\n%s", loc+tc.path, code, tc.code, b, ng.Log())
				}
				if tc.cache != "" && resp.Header.Get("Cache-Control") != tc.cache {
					t.Errorf("Cache-Control %q, want %q", resp.Header.Get("Cache-Control"), tc.cache)
				}
				if !strings.Contains(string(b), tc.body) {
					t.Errorf("body does not hold %q:\n%s", tc.body, b)
				}
				for _, bad := range []string{"tmp-4242", "work in progress", "root:", "upstream_snapshot"} {
					if strings.Contains(string(b), bad) {
						t.Errorf("an internal file shows (%q):\n%s", bad, b)
					}
				}
			})
		}
	}
}

func TestNginxConfigRefusesUnsafePaths(t *testing.T) {
	tests := []struct{ name, root, loc string }{
		{name: "a relative root", root: "root", loc: "/"},
		{name: "a quote", root: `/srv/"x`, loc: "/"},
		{name: "a space", root: "/srv/x y", loc: "/"},
		{name: "a variable", root: "/srv/$x", loc: "/"},
		{name: "a semicolon", root: "/srv/x;", loc: "/"},
		{name: "a relative location", root: "/srv/x", loc: "mirror/"},
		{name: "a regex location", root: "/srv/x", loc: "/m(.*)/"},
		{name: "a dot-dot location", root: "/srv/x", loc: "/a/../"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := server.NginxConfig(tc.root, tc.loc); !errors.Is(err, server.ErrConfigPath) {
				t.Fatalf("NginxConfig(%q, %q): %v, want ErrConfigPath", tc.root, tc.loc, err)
			}
		})
	}
}

// docs/operating.md shows the block nginx-config prints, as it prints it.
func TestNginxConfigDoc(t *testing.T) {
	b, err := os.ReadFile(testutil.RepoFile("docs/operating.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(b), "`nginx-config`:")
	_, rest, ok2 := strings.Cut(rest, "```nginx\n")
	doc, _, ok3 := strings.Cut(rest, "```")
	if !ok || !ok2 || !ok3 {
		t.Fatal("docs/operating.md: no nginx block after `nginx-config`:")
	}
	want, err := server.NginxConfig("/srv/export", "/")
	if err != nil {
		t.Fatal(err)
	}
	if doc != want {
		t.Errorf("docs/operating.md's nginx block is not what NginxConfig prints; it prints:\n%s", want)
	}
}
