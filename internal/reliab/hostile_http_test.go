package reliab

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/seqmirror/seqmirror/internal/cliapp"
	"github.com/seqmirror/seqmirror/internal/export"
	"github.com/seqmirror/seqmirror/internal/fsys"
	"github.com/seqmirror/seqmirror/internal/mirror"
	"github.com/seqmirror/seqmirror/internal/transport"
	"github.com/seqmirror/seqmirror/internal/transport/web"
	"github.com/seqmirror/seqmirror/internal/tree"
	"github.com/seqmirror/seqmirror/manifest"
	"github.com/seqmirror/seqmirror/seqfile"
	"github.com/seqmirror/seqmirror/testutil"
)

// overHTTP are the hostile cases (hostileCases) that attack a mirror
// through what it is served (manifests, seq files, file contents) and so
// hold over HTTP as they are. The others plant what a web server does not
// serve as such (fifos, devices, symlinks it follows, the current symlink
// it cannot show) or fault the mirror's own filesystem.
var overHTTP = map[string]bool{
	"dotdot path": true, "dotdot inside path": true, "absolute path": true, "duplicate path": true,
	"path below a symlinked directory": true, "symlink to outside then a write through it": true,
	"content does not match hash": true, "wrong manifest checksum": true, "record edited, checksum kept": true,
	"truncated manifest": true, "manifest records another snapshot": true, "garbage seq end": true,
	"huge seq end": true, "size claim bigger than the file": true, "size claim beyond MaxSize": true,
	forgedCase: true,
}

// TestHostileUpstreamHTTP runs the hostile table's content attacks with
// the crafted upstream served by nginx, as an admin serves an export root.
func TestHostileUpstreamHTTP(t *testing.T) {
	base := testutil.FastDir(t)
	fx := newHostileFixture(t, base)
	n := testutil.StartNginx(t, testutil.NginxExportRoot(base))
	ran := 0
	for i, tt := range hostileCases() {
		if !overHTTP[tt.name] {
			continue
		}
		ran++
		t.Run(tt.name, func(t *testing.T) {
			fx.run(t, filepath.Join(base, "hcase", fmt.Sprint(i)), tt, func(f fsys.FS, up, root string) error {
				rel, err := filepath.Rel(base, up)
				if err != nil {
					return err
				}
				return syncHTTP(f, n.URL("/"+filepath.ToSlash(rel)+"/"), root)
			})
			if t.Failed() {
				t.Logf("nginx log:\n%s", n.Log())
			}
		})
	}
	if ran != len(overHTTP) {
		t.Fatalf("ran %d cases, overHTTP names %d: a name changed", ran, len(overHTTP))
	}
}

// syncHTTP runs one mirror.Sync of root from the http(s) address addr.
func syncHTTP(f fsys.FS, addr, root string) error {
	r := export.New(f, root)
	u, err := transport.Open(addr, f, transport.Options{ScratchDir: r.WorkDir(), Workers: 2})
	if err != nil {
		return err
	}
	defer u.Close()
	_, err = mirror.Sync(context.Background(), r, u, oneRetry())
	return err
}

// misbehavior answers a request for one path of the upstream (below the
// root) in its own way; other requests are served from up.
type misbehavior func(w http.ResponseWriter, r *http.Request, up string)

const errorPage = "<html><head><title>Error</title></head><body><h1>Something went wrong</h1></body></html>\n"

func htmlErrorPage(w http.ResponseWriter, _ *http.Request, _ string) {
	w.Header().Set("Content-Type", "text/html")
	fmt.Fprint(w, errorPage)
}

// endlessManifest starts as a manifest does, then never ends.
func endlessManifest(w http.ResponseWriter, r *http.Request, up string) {
	fmt.Fprint(w, manifest.Magic+"\nsnapshot 2\n")
	endlessBody(w, r, up)
}

func endlessBody(w http.ResponseWriter, r *http.Request, _ string) {
	chunk := []byte(strings.Repeat("x", 32<<10))
	for r.Context().Err() == nil {
		if _, err := w.Write(chunk); err != nil {
			return
		}
	}
}

// truncatedBody declares the file's whole size, sends half and drops the
// connection.
func truncatedBody(w http.ResponseWriter, _ *http.Request, _ string) {
	w.Header().Set("Content-Length", fmt.Sprint(len("added\n")))
	fmt.Fprint(w, "add")
	w.(http.Flusher).Flush()
	panic(http.ErrAbortHandler)
}

func gzipped(w http.ResponseWriter, r *http.Request, up string) {
	w.Header().Set("Content-Encoding", "gzip")
	http.ServeFile(w, r, filepath.Join(up, filepath.FromSlash(strings.TrimPrefix(r.URL.Path, "/"))))
}

// offsite redirects to the same path on another host (localhost rather
// than 127.0.0.1) serving the same root.
func offsite(w http.ResponseWriter, r *http.Request, up string) {
	other := httptest.NewServer(testutil.FileHandler(up))
	defer func() { go func() { other.Close() }() }()
	u, _ := url.Parse(other.URL)
	http.Redirect(w, r, "http://localhost:"+u.Port()+r.URL.Path, http.StatusFound)
}

// webHostileCase is a web server that misbehaves on one path.
type webHostileCase struct {
	name string
	path string // below the root
	do   misbehavior
	want error
	exit int
	says string
	free int64 // if > 0, the mirror's disk reports only this much free
}

func webHostileCases() []webHostileCase {
	return []webHostileCase{
		{name: "HTML error page with 200 for a file", path: addedFile, do: htmlErrorPage,
			want: tree.ErrHashMismatch, exit: cliapp.ExitCorrupt, says: "HTML page"},
		{name: "HTML error page with 200 for seq/end", path: "seq/end", do: htmlErrorPage,
			want: seqfile.ErrCorrupt, exit: cliapp.ExitCorrupt, says: "HTML page"},
		{name: "HTML error page with 200 for the pointer", path: "seq/current", do: htmlErrorPage,
			want: export.ErrBadCurrent, exit: cliapp.ExitCorrupt, says: "HTML page"},
		{name: "HTML error page with 200 for the manifest", path: "snapshots/2.manifest", do: htmlErrorPage,
			want: manifest.ErrCorrupt, exit: cliapp.ExitCorrupt, says: "HTML page"},
		{name: "redirect to another host", path: addedFile, do: offsite,
			want: web.ErrRedirect, exit: cliapp.ExitRefusedUp, says: "another host"},
		{name: "endless body", path: addedFile, do: endlessBody,
			want: tree.ErrHashMismatch, exit: cliapp.ExitCorrupt, says: "more than the 6 bytes"},
		{name: "endless seq/end", path: "seq/end", do: endlessBody,
			want: seqfile.ErrCorrupt, exit: cliapp.ExitCorrupt},
		{name: "endless garbage as the manifest", path: "snapshots/2.manifest", do: endlessBody,
			want: manifest.ErrCorrupt, exit: cliapp.ExitCorrupt, says: "does not start with"},
		{name: "endless manifest on a small disk", path: "snapshots/2.manifest", do: endlessManifest, free: 8 << 20,
			want: syscall.ENOSPC, exit: cliapp.ExitFailure, says: "only 8388608 bytes are free here"},
		{name: "truncated body", path: addedFile, do: truncatedBody,
			want: mirror.ErrUpstreamBusy, exit: cliapp.ExitBusy, says: "ended before its Content-Length"},
		{name: "gzip it was not asked for", path: addedFile, do: gzipped,
			want: web.ErrEncoding, exit: cliapp.ExitCorrupt, says: "Content-Encoding"},
		{name: "a manifest said to be gzip, and not", path: "snapshots/2.manifest", do: gzipped,
			want: web.ErrEncoding, exit: cliapp.ExitCorrupt, says: "gzip"},
		{name: "gzip seq/end", path: "seq/end", do: gzipped,
			want: seqfile.ErrCorrupt, exit: cliapp.ExitCorrupt, says: "Content-Encoding"},
	}
}

// TestHostileWebServer mirrors a good upstream (serving snapshot 2) from a
// web server that misbehaves on one path: each is refused clearly,
// nothing is written outside ROOT, and the served snapshot is unchanged
// and verifies (hostileFixture.run).
func TestHostileWebServer(t *testing.T) {
	base := testutil.FastDir(t)
	fx := newHostileFixture(t, base)
	for i, tc := range webHostileCases() {
		t.Run(tc.name, func(t *testing.T) {
			tt := hostileCase{name: tc.name, craft: func(hostileUp) {}, want: tc.want, exit: tc.exit, says: tc.says}
			fx.run(t, filepath.Join(base, "wcase", fmt.Sprint(i)), tt, func(f fsys.FS, up, root string) error {
				files := testutil.FileHandler(up)
				s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					if r.URL.Path == "/"+tc.path {
						tc.do(w, r, up)
						return
					}
					files.ServeHTTP(w, r)
				}))
				defer s.Close()
				if tc.free > 0 {
					f = testutil.NewSmallDisk(tc.free)
				}
				return syncHTTP(f, s.URL+"/", root)
			})
		})
	}
}
