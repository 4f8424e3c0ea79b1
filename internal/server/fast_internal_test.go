package server

import (
	"bufio"
	"bytes"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/seqmirror/seqmirror/testutil"
)

// discardConn takes every write whole.
type discardConn struct {
	net.Conn
	n int64
}

func (c *discardConn) Write(b []byte) (int, error)      { c.n += int64(len(b)); return len(b), nil }
func (c *discardConn) SetWriteDeadline(time.Time) error { return nil }

// BenchmarkFastAnswer is the fast path's own cost of one small snapshot
// file (no network, no parsing): `go test -bench FastAnswer
// ./internal/server/`.
func BenchmarkFastAnswer(b *testing.B) {
	dir := b.TempDir()
	testutil.SnapshotRoot(b, dir, 1, map[string]string{"dir/x.dat": strings.Repeat("x", 3000)})
	h, err := NewHandler(Options{Root: dir})
	if err != nil {
		b.Fatal(err)
	}
	defer h.Close()
	c := &discardConn{}
	fc := &fastConn{s: newFastServer(h, nil, ServerOptions{}), c: c}
	fc.dl.conn = c
	req := request{target: "/snapshots/1/dir/x.dat"}
	b.ReportAllocs()
	for b.Loop() {
		if got := fc.answer(req); got != answerDone {
			b.Fatal(got)
		}
	}
}

// FuzzParseHead: a head parseHead takes is one net/http reads as the same
// plain request — method, path, HTTP/1.1, one Host, no body, no range or
// condition, keep-alive — so the fast path never answers what net/http
// would answer otherwise or refuse.
func FuzzParseHead(f *testing.F) {
	for _, s := range []string{
		"GET /snapshots/1/a.txt HTTP/1.1\r\nHost: h\r\n\r\n",
		"HEAD /snapshots/12/d/e:f.dat HTTP/1.1\r\nhost: 127.0.0.1:80\r\nUser-Agent: x\r\nConnection: keep-alive\r\n\r\n",
		"GET /snapshots/1/a.txt HTTP/1.1\r\nHost: h\r\nRange: bytes=1-2\r\n\r\n",
		"GET /snapshots/1/a.txt HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc",
		"GET /snapshots/1/a%20b HTTP/1.1\r\nHost: h\r\n\r\n",
		"GET /snapshots/1/../a HTTP/1.1\r\nHost: h\r\n\r\n",
		"GET /snapshots/1/a HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\n",
		"GET /snapshots/1/a HTTP/1.0\r\nHost: h\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		end := bytes.Index(b, []byte("\r\n\r\n"))
		if end < 0 {
			return
		}
		head := b[:end+4]
		req, ok := parseHead(head)
		if !ok {
			return
		}
		r, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(head)))
		if err != nil {
			t.Fatalf("parseHead took %q, net/http refuses it: %v", head, err)
		}
		wantMethod := http.MethodGet
		if req.head {
			wantMethod = http.MethodHead
		}
		switch {
		case r.Method != wantMethod || r.URL.Path != req.target || r.URL.RawQuery != "" || r.URL.RawPath != "":
			t.Fatalf("%q: net/http reads %s %q (raw %q, query %q), parseHead %s %q", head, r.Method, r.URL.Path, r.URL.RawPath, r.URL.RawQuery, wantMethod, req.target)
		case r.ProtoMajor != 1 || r.ProtoMinor != 1 || r.Close || r.ContentLength != 0 || len(r.TransferEncoding) > 0 || r.Host == "":
			t.Fatalf("%q: not a plain keep-alive HTTP/1.1 request to net/http: %+v", head, r)
		case !plainGet(r):
			t.Fatalf("%q: net/http sees a range or a condition", head)
		case !canonical(r.URL.Path) || isTemp(r.URL.Path):
			if !canonical(r.URL.Path) {
				t.Fatalf("%q: path not canonical", head)
			}
		}
		for _, k := range []string{"Upgrade", "Expect", "Te", "Trailer"} {
			if _, ok := r.Header[k]; ok {
				t.Fatalf("%q: carries %s", head, k)
			}
		}
	})
}
