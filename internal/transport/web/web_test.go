package web_test

import (
	"context"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/seqmirror/seqmirror/internal/export"
	"github.com/seqmirror/seqmirror/internal/fsys"
	"github.com/seqmirror/seqmirror/internal/server"
	"github.com/seqmirror/seqmirror/internal/transport/upstream"
	"github.com/seqmirror/seqmirror/internal/transport/web"
	"github.com/seqmirror/seqmirror/manifest"
	"github.com/seqmirror/seqmirror/seqfile"
	"github.com/seqmirror/seqmirror/testutil"
)

var files = map[string]string{"a.txt": "alpha\n", "d/b.txt": "bravo\n"}

// served is an export root serving snapshot 1 of files, and Go's file
// server of it behind wrap (which may misbehave before passing on).
func served(tb testing.TB, wrap func(next http.Handler) http.Handler) (*httptest.Server, []manifest.Entry) {
	tb.Helper()
	dir := tb.TempDir()
	recs := testutil.SnapshotRoot(tb, dir, 1, files)
	var h http.Handler = http.FileServer(http.Dir(dir))
	if wrap != nil {
		h = wrap(h)
	}
	s := httptest.NewServer(h)
	tb.Cleanup(s.Close)
	return s, recs
}

func open(tb testing.TB, addr string, opt upstream.Options) *web.Upstream {
	tb.Helper()
	u, err := web.Open(addr, fsys.OS(), opt)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { u.Close() })
	return u
}

// fetchAll fetches the regular files of recs into a fresh directory with
// its directories made, which it returns.
func fetchAll(tb testing.TB, u *web.Upstream, recs []manifest.Entry) (string, error) {
	tb.Helper()
	dst := tb.TempDir()
	var fs []manifest.Entry
	for _, e := range recs {
		switch e.Type {
		case manifest.Dir:
			if err := os.MkdirAll(filepath.Join(dst, e.Path), 0o755); err != nil {
				tb.Fatal(err)
			}
		case manifest.File:
			fs = append(fs, e)
		}
	}
	return dst, u.Fetch(context.Background(), 1, fs, dst)
}

func TestSameHostRedirectFollowed(t *testing.T) {
	s, recs := served(t, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if p, ok := strings.CutPrefix(r.URL.Path, "/old/"); ok {
				http.Redirect(w, r, "/"+p, http.StatusMovedPermanently)
				return
			}
			next.ServeHTTP(w, r)
		})
	})
	u := open(t, s.URL+"/old/", upstream.Options{})
	if n, _, err := u.Current(context.Background()); err != nil || n != 1 {
		t.Fatalf("Current = %d, %v", n, err)
	}
	if _, err := fetchAll(t, u, recs); err != nil {
		t.Fatal(err)
	}
}

// A 503 (or a dropped connection) is retried for that file alone.
func TestTransientFailureRetriedPerFile(t *testing.T) {
	var failed atomic.Int32
	s, recs := served(t, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.HasSuffix(r.URL.Path, "/b.txt") && failed.Add(1) <= 2 {
				http.Error(w, "busy", http.StatusServiceUnavailable)
				return
			}
			next.ServeHTTP(w, r)
		})
	})
	u := open(t, s.URL+"/", upstream.Options{})
	dst, err := fetchAll(t, u, recs)
	if err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(dst, "d", "b.txt")); err != nil || string(b) != "bravo\n" {
		t.Fatalf("d/b.txt = %q, %v", b, err)
	}
	if failed.Load() != 3 {
		t.Fatalf("b.txt asked for %d times, want 3", failed.Load())
	}
}

// A server that sends nothing times the request out once: the next call
// fails at once, without waiting again.
func TestStallTimesOutOnce(t *testing.T) {
	release := make(chan struct{})
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() { close(release); s.Close() })
	u := open(t, s.URL+"/", upstream.Options{Timeout: 200 * time.Millisecond})
	_, err := u.Seq(context.Background(), seqfile.End)
	if !errors.Is(err, upstream.ErrTimedOut) || !errors.Is(err, upstream.ErrUnavailable) {
		t.Fatalf("err = %v, want a timeout", err)
	}
	start := time.Now()
	_, _, err = u.Current(context.Background())
	if !errors.Is(err, upstream.ErrTimedOut) || time.Since(start) > 100*time.Millisecond {
		t.Fatalf("second call: %v after %v, want the timeout at once", err, time.Since(start))
	}
}

// HTTPS with the server's certificate trusted through a CA file, over
// HTTP/2 as the server offers it; without the CA file the certificate is
// refused clearly.
func TestHTTPSCAFile(t *testing.T) {
	dir := t.TempDir()
	testutil.SnapshotRoot(t, dir, 1, files)
	var h1 atomic.Int32
	fileServer := http.FileServer(http.Dir(dir))
	s := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor != 2 {
			h1.Add(1)
		}
		fileServer.ServeHTTP(w, r)
	}))
	s.EnableHTTP2 = true
	s.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake
	s.StartTLS()
	t.Cleanup(s.Close)
	ca := filepath.Join(t.TempDir(), "ca.pem")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.Certificate().Raw})
	if err := os.WriteFile(ca, pemBytes, 0o644); err != nil {
		t.Fatal(err)
	}
	u := open(t, s.URL+"/", upstream.Options{HTTP: upstream.HTTPOptions{CAFile: ca}})
	if n, since, err := u.Current(context.Background()); err != nil || n != 1 || since.IsZero() {
		t.Fatalf("Current = %d, %v, %v", n, since, err)
	}
	if h1.Load() != 0 {
		t.Errorf("%d requests over HTTP/1, want HTTP/2", h1.Load())
	}
	_, err := open(t, s.URL+"/", upstream.Options{}).Seq(context.Background(), seqfile.End)
	if !errors.Is(err, web.ErrCertificate) || !errors.Is(err, upstream.ErrRefused) {
		t.Fatalf("without the CA: err = %v, want ErrCertificate", err)
	}
	t.Logf("refused: %v", err)
	if _, err := web.Open(s.URL, fsys.OS(), upstream.Options{HTTP: upstream.HTTPOptions{CAFile: filepath.Join(dir, "seq", "end")}}); err == nil {
		t.Fatal("a CA file with no certificate was accepted")
	}
}

// Prober: a file has its size and Last-Modified, a directory answers
// with a redirect to its slash, a missing path is absent; ReadSmall reads
// files up to max, not directories.
func TestProber(t *testing.T) {
	s, _ := served(t, nil)
	u := open(t, s.URL+"/", upstream.Options{})
	ctx := context.Background()
	infos, err := u.Stat(ctx, []string{"snapshots/1", "snapshots/1.manifest", "seq/begin", "snapshots/2"})
	if err != nil {
		t.Fatal(err)
	}
	if !infos["snapshots/1"].Dir || !infos["snapshots/1.manifest"].Regular || infos["seq/begin"].Size != 2 || infos["seq/begin"].ModTime.IsZero() {
		t.Fatalf("Stat = %+v", infos)
	}
	if _, ok := infos["snapshots/2"]; ok {
		t.Fatal("a missing path is present")
	}
	got, err := u.ReadSmall(ctx, []string{"seq/end", "snapshots/1", "snapshots/1.manifest", "nothere"}, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || string(got["seq/end"].Data) != "1\n" {
		t.Fatalf("ReadSmall = %v", got)
	}
}

// The poll is one small GET per call: Seq "end" then Current.
func TestPollRequests(t *testing.T) {
	var paths []string
	s, _ := served(t, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			paths = append(paths, r.Method+" "+r.URL.Path)
			next.ServeHTTP(w, r)
		})
	})
	u := open(t, s.URL+"/", upstream.Options{})
	if _, err := u.Seq(context.Background(), seqfile.End); err != nil {
		t.Fatal(err)
	}
	if _, _, err := u.Current(context.Background()); err != nil {
		t.Fatal(err)
	}
	if want := "GET /seq/end,GET /seq/current"; strings.Join(paths, ",") != want {
		t.Fatalf("requests %v, want %s", paths, want)
	}
}

// Fetch reports its bytes to Options.Progress as files complete, ending
// at 100%.
func TestFetchProgress(t *testing.T) {
	s, recs := served(t, nil)
	var last [2]int64
	calls := 0
	u := open(t, s.URL+"/", upstream.Options{Workers: 2, Progress: func(b int64, pct int) {
		calls++
		last = [2]int64{b, int64(pct)}
	}})
	if _, err := fetchAll(t, u, recs); err != nil {
		t.Fatal(err)
	}
	if calls != 2 || last != [2]int64{int64(len("alpha\nbravo\n")), 100} {
		t.Fatalf("%d progress calls, last %v", calls, last)
	}
}

// An address where no export root is (a mistyped path) says so, rather
// than that the upstream serves nothing yet; a root that serves nothing
// yet is 0.
func TestNotARoot(t *testing.T) {
	s, _ := served(t, nil)
	_, _, err := open(t, s.URL+"/typo/", upstream.Options{}).Current(context.Background())
	if !errors.Is(err, web.ErrNotRoot) {
		t.Fatalf("err = %v, want ErrNotRoot", err)
	}
	t.Logf("refused: %v", err)
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "snapshots"), 0o755); err != nil {
		t.Fatal(err)
	}
	empty := httptest.NewServer(testutil.FileHandler(dir))
	t.Cleanup(empty.Close)
	if n, _, err := open(t, empty.URL+"/", upstream.Options{}).Current(context.Background()); err != nil || n != 0 {
		t.Fatalf("a root serving nothing yet: Current = %d, %v", n, err)
	}
}

// protoServer serves the export root of files through server.Serve (which
// takes HTTP/2 with prior knowledge beside HTTP/1.1) and records the
// protocol of each request.
func protoServer(tb testing.TB) (string, []manifest.Entry, func() []string) {
	tb.Helper()
	dir := tb.TempDir()
	recs := testutil.SnapshotRoot(tb, dir, 1, files)
	var mu sync.Mutex
	var protos []string
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		protos = append(protos, r.Proto+" "+r.URL.Path)
		mu.Unlock()
		http.FileServer(http.Dir(dir)).ServeHTTP(w, r)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- server.Serve(ctx, ln, h, server.ServerOptions{}) }()
	tb.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			tb.Error(err)
		}
	})
	return "http://" + ln.Addr().String() + "/", recs, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(protos)
	}
}

// A server that says it takes HTTP/2 with prior knowledge (server.Serve)
// gets the requests after the first as HTTP/2 streams; the files are
// the same.
func TestH2CAfterAdvertised(t *testing.T) {
	addr, recs, protos := protoServer(t)
	u := open(t, addr, upstream.Options{})
	if _, err := u.Seq(context.Background(), seqfile.End); err != nil {
		t.Fatal(err)
	}
	dst, err := fetchAll(t, u, recs)
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range files {
		if b, err := os.ReadFile(filepath.Join(dst, name)); err != nil || string(b) != want {
			t.Fatalf("%s: %q, %v; want %q", name, b, err, want)
		}
	}
	got := protos()
	slices.Sort(got[1:]) // the fetches come in any order
	want := []string{"HTTP/1.1 /seq/end", "HTTP/2.0 /snapshots/1/a.txt", "HTTP/2.0 /snapshots/1/d/b.txt"}
	if !slices.Equal(got, want) {
		t.Fatalf("requests %q, want %q", got, want)
	}
}

// A stock server never says so: everything stays HTTP/1.1. One that says
// so but does not take HTTP/2 costs a failed request, retried over
// HTTP/1.1, and the run goes on over HTTP/1.1.
func TestH2CFallsBack(t *testing.T) {
	for _, tc := range []struct {
		name      string
		advertise bool
	}{
		{"stock server", false},
		{"false advertisement", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var h2, h1 atomic.Int32
			s, recs := served(t, func(next http.Handler) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					switch {
					case r.Method == "PRI":
						// an HTTP/2 preface that an HTTP/1.1 server
						// takes for a request: answered 404 over
						// HTTP/1.1, which the client cannot read
					case r.ProtoMajor == 2:
						h2.Add(1)
					default:
						h1.Add(1)
					}
					if tc.advertise {
						w.Header().Set(export.H2CHeader, export.H2CPriorKnowledge)
					}
					next.ServeHTTP(w, r)
				})
			})
			u := open(t, s.URL+"/", upstream.Options{})
			if _, err := u.Seq(context.Background(), seqfile.End); err != nil {
				t.Fatal(err)
			}
			if _, err := fetchAll(t, u, recs); err != nil {
				t.Fatal(err)
			}
			if h2.Load() != 0 || h1.Load() != 3 {
				t.Fatalf("%d HTTP/2 and %d HTTP/1.1 requests served, want 0 and 3", h2.Load(), h1.Load())
			}
		})
	}
}

// A manifest is asked for in gzip as well as as it is, and one in gzip is
// decoded (from seqmirror's own server, which sends it so): the file
// written is the manifest's bytes. Nothing else is asked for in gzip.
func TestManifestInGzip(t *testing.T) {
	dir := t.TempDir()
	testutil.SnapshotRoot(t, dir, 1, files)
	h, err := server.NewHandler(server.Options{Root: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	var mu sync.Mutex
	asked := map[string]string{} // path -> Accept-Encoding
	sent := map[string]string{}  // path -> Content-Encoding
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		mu.Lock()
		asked[r.URL.Path], sent[r.URL.Path] = r.Header.Get("Accept-Encoding"), rec.Header().Get("Content-Encoding")
		mu.Unlock()
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())
	}))
	t.Cleanup(s.Close)
	u := open(t, s.URL+"/", upstream.Options{})
	dst := filepath.Join(t.TempDir(), "1.manifest")
	if err := u.FetchManifest(context.Background(), 1, dst); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(dst)
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(filepath.Join(dir, "snapshots", "1.manifest"))
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Fatalf("fetched manifest differs from the served one:\n%s\nwant\n%s", got, want)
	}
	if _, err := u.Seq(context.Background(), seqfile.End); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if asked["/snapshots/1.manifest"] != "gzip" || sent["/snapshots/1.manifest"] != "gzip" {
		t.Fatalf("manifest: asked with %q, sent with %q; want gzip both", asked["/snapshots/1.manifest"], sent["/snapshots/1.manifest"])
	}
	if asked["/seq/end"] != "identity" {
		t.Fatalf("seq/end asked with Accept-Encoding %q, want identity", asked["/seq/end"])
	}
}
