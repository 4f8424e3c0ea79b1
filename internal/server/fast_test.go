package server_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/seqmirror/seqmirror/internal/server"
	"github.com/seqmirror/seqmirror/testutil"
)

// noFast serves its Handler through net/http alone (serve's helper).
type noFast struct{ *server.Handler }

// exchange sends raw on a new connection to addr (host:port) and reads one
// answer (an answer to a HEAD has no body); the connection stays open.
func exchange(tb testing.TB, addr, raw string) (*http.Response, []byte, net.Conn, *bufio.Reader) {
	tb.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	br := bufio.NewReader(c)
	resp := send(tb, c, br, raw)
	return resp, readBody(tb, resp, raw), c, br
}

// send writes raw on c and reads the answer's head from br.
func send(tb testing.TB, c net.Conn, br *bufio.Reader, raw string) *http.Response {
	tb.Helper()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		tb.Fatal(err)
	}
	method := raw[:strings.IndexByte(raw, ' ')]
	resp, err := http.ReadResponse(br, &http.Request{Method: method})
	if err != nil {
		tb.Fatalf("%q: %v", raw, err)
	}
	return resp
}

// readBody reads the body of resp, the answer to raw.
func readBody(tb testing.TB, resp *http.Response, raw string) []byte {
	tb.Helper()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatalf("%q: body: %v", raw, err)
	}
	return b
}

// Every request gets the same answer with the fast path as through
// net/http alone — status, headers but Date, body — and the connection
// goes on serving after it (or closes as net/http closes it).
func TestFastPathSameAnswers(t *testing.T) {
	fx := newFixture(t)
	big := strings.Repeat("big file ", 9000) // over 32 KiB: sendfile
	testutil.WriteTree(t, fx.src, map[string]string{"big.dat": big, "d/small.json": `{"a":1}`})
	fx.publish(t) // snapshot 2
	fast, _, _ := serve(t, fx.h, server.ServerOptions{})
	slow, _, _ := serve(t, noFast{fx.h}, server.ServerOptions{})
	const host = "Host: mirror.example\r\n"
	for _, c := range []struct {
		name, raw string
		code      int
	}{
		{"small file", "GET /snapshots/2/a.txt HTTP/1.1\r\n" + host + "User-Agent: t\r\nAccept: */*\r\n\r\n", 200},
		{"json", "GET /snapshots/2/d/small.json HTTP/1.1\r\n" + host + "\r\n", 200},
		{"head", "HEAD /snapshots/2/dir/x.txt HTTP/1.1\r\n" + host + "\r\n", 200},
		{"big file", "GET /snapshots/2/big.dat HTTP/1.1\r\n" + host + "\r\n", 200},
		{"big file head", "HEAD /snapshots/2/big.dat HTTP/1.1\r\n" + host + "\r\n", 200},
		{"colon in the name", "GET /snapshots/2/colon:name.html HTTP/1.1\r\n" + host + "\r\n", 200},
		{"escaped name", "GET /snapshots/2/space%20name.txt HTTP/1.1\r\n" + host + "\r\n", 200},
		{"keep-alive said", "GET /snapshots/2/a.txt HTTP/1.1\r\n" + host + "connection: Keep-Alive\r\n\r\n", 200},
		{"older snapshot", "GET /snapshots/1/a.txt HTTP/1.1\r\n" + host + "\r\n", 200},
		{"range", "GET /snapshots/2/a.txt HTTP/1.1\r\n" + host + "Range: bytes=2-4\r\n\r\n", 206},
		{"range, lower case", "GET /snapshots/2/big.dat HTTP/1.1\r\n" + host + "range: bytes=-10\r\n\r\n", 206},
		{"if-none-match", "GET /snapshots/2/a.txt HTTP/1.1\r\n" + host + "If-None-Match: *\r\n\r\n", 304},
		{"if-modified-since", "GET /snapshots/2/a.txt HTTP/1.1\r\n" + host + "If-Modified-Since: Sun, 01 Jan 2090 00:00:00 GMT\r\n\r\n", 304},
		{"query", "GET /snapshots/2/a.txt?x=1 HTTP/1.1\r\n" + host + "\r\n", 200},
		{"listing", "GET /snapshots/2/ HTTP/1.1\r\n" + host + "\r\n", 200},
		{"directory", "GET /snapshots/2/dir HTTP/1.1\r\n" + host + "\r\n", 301},
		{"symlink", "GET /snapshots/2/link-in HTTP/1.1\r\n" + host + "\r\n", 302},
		{"symlink out", "GET /snapshots/2/link-out HTTP/1.1\r\n" + host + "\r\n", 404},
		{"missing", "GET /snapshots/2/nope HTTP/1.1\r\n" + host + "\r\n", 404},
		{"no such snapshot", "GET /snapshots/9/a.txt HTTP/1.1\r\n" + host + "\r\n", 404},
		{"temp file", "GET /snapshots/1/.a.txt.tmp-4242 HTTP/1.1\r\n" + host + "\r\n", 404},
		{"dot segment", "GET /snapshots/2/dir/../a.txt HTTP/1.1\r\n" + host + "\r\n", 404},
		{"double slash", "GET /snapshots/2//a.txt HTTP/1.1\r\n" + host + "\r\n", 404},
		{"seq end", "GET /seq/end HTTP/1.1\r\n" + host + "\r\n", 200},
		{"manifest", "GET /snapshots/2.manifest HTTP/1.1\r\n" + host + "\r\n", 200},
		{"work dir", "GET /.work/1/a.txt HTTP/1.1\r\n" + host + "\r\n", 404},
		{"post", "POST /snapshots/2/a.txt HTTP/1.1\r\n" + host + "Content-Length: 2\r\n\r\nhi", 405},
		{"put no body", "PUT /snapshots/2/a.txt HTTP/1.1\r\n" + host + "\r\n", 405},
		{"HTTP/1.0", "GET /snapshots/2/a.txt HTTP/1.0\r\n\r\n", 200},
		{"bare LF", "GET /snapshots/2/a.txt HTTP/1.1\n" + "Host: x\n\n", 200},
		{"no host", "GET /snapshots/2/a.txt HTTP/1.1\r\n\r\n", 400},
		{"two hosts", "GET /snapshots/2/a.txt HTTP/1.1\r\n" + host + host + "\r\n", 400},
		{"bad header", "GET /snapshots/2/a.txt HTTP/1.1\r\n" + host + "Bad Name: x\r\n\r\n", 400},
		{"folded header", "GET /snapshots/2/a.txt HTTP/1.1\r\n" + host + "X-A: b\r\n c\r\n\r\n", 200},
		{"connection close", "GET /snapshots/2/a.txt HTTP/1.1\r\n" + host + "Connection: close\r\n\r\n", 200},
		{"absolute form", "GET http://mirror.example/snapshots/2/a.txt HTTP/1.1\r\n" + host + "\r\n", 200},
		{"chunked", "GET /snapshots/2/a.txt HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 200},
	} {
		t.Run(c.name, func(t *testing.T) {
			var got [2]*http.Response
			var bodies [2][]byte
			for i, base := range []string{fast, slow} {
				addr := strings.TrimPrefix(base, "http://")
				resp, body, conn, br := exchange(t, addr, c.raw)
				got[i], bodies[i] = resp, body
				if resp.StatusCode != c.code {
					t.Fatalf("%s: %s, want %d", base, resp.Status, c.code)
				}
				if resp.Close {
					_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
					if n, err := br.Read(make([]byte, 1)); n != 0 || err == nil {
						t.Fatalf("%s: the connection stays open after an answer that closes it", base)
					}
					continue
				}
				next := "GET /snapshots/2/dir/x.txt HTTP/1.1\r\n" + host + "\r\n"
				resp = send(t, conn, br, next)
				if b := readBody(t, resp, next); resp.StatusCode != 200 || string(b) != fixtureFiles["dir/x.txt"] {
					t.Fatalf("%s: the next request on the connection: %s %q", base, resp.Status, b)
				}
			}
			if (got[0].Header.Get("Date") == "") != (got[1].Header.Get("Date") == "") {
				t.Errorf("Date: %q with the fast path, %q without", got[0].Header.Get("Date"), got[1].Header.Get("Date"))
			}
			got[0].Header.Del("Date")
			got[1].Header.Del("Date")
			if got[0].Status != got[1].Status || !equalHeader(got[0].Header, got[1].Header) || !bytes.Equal(bodies[0], bodies[1]) ||
				got[0].ContentLength != got[1].ContentLength || got[0].Close != got[1].Close {
				t.Errorf("fast path: %s %v %d bytes\nnet/http:  %s %v %d bytes", got[0].Status, got[0].Header, len(bodies[0]),
					got[1].Status, got[1].Header, len(bodies[1]))
			}
		})
	}
}

func equalHeader(a, b http.Header) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if strings.Join(v, "\n") != strings.Join(b[k], "\n") {
			return false
		}
	}
	return true
}

// Requests sent together (pipelined) are answered in order, the fast ones
// and one that goes to net/http, on one connection.
func TestFastPathPipelined(t *testing.T) {
	fx := newFixture(t)
	base, _, _ := serve(t, fx.h, server.ServerOptions{})
	req := func(p, extra string) string {
		return "GET " + p + " HTTP/1.1\r\nHost: h\r\n" + extra + "\r\n"
	}
	raw := req("/snapshots/1/a.txt", "") + req("/snapshots/1/dir/x.txt", "") + req("/snapshots/1/a.txt", "Range: bytes=0-4\r\n") +
		req("/snapshots/1/dir/sub/y.bin", "")
	c, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	for _, want := range []string{fixtureFiles["a.txt"], fixtureFiles["dir/x.txt"], fixtureFiles["a.txt"][:5], fixtureFiles["dir/sub/y.bin"]} {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		if string(b) != want {
			t.Fatalf("%s: %q, want %q", resp.Status, b, want)
		}
	}
}

// A head that does not come whole within HeaderTimeout, and a keep-alive
// connection idle for IdleTimeout, are closed; at shutdown, an idle
// connection is closed at once and Serve returns.
func TestFastPathTimeoutsAndShutdown(t *testing.T) {
	fx := newFixture(t)
	base, stop, done := serve(t, fx.h, server.ServerOptions{HeaderTimeout: 300 * time.Millisecond, IdleTimeout: 600 * time.Millisecond})
	addr := strings.TrimPrefix(base, "http://")
	closedWithin := func(c net.Conn, br *bufio.Reader, d time.Duration) time.Duration {
		t.Helper()
		start := time.Now()
		_ = c.SetReadDeadline(start.Add(d))
		if _, err := br.ReadByte(); err == nil || errors.Is(err, context.DeadlineExceeded) || isTimeout(err) {
			t.Fatalf("connection not closed within %v: %v", d, err)
		}
		return time.Since(start)
	}

	slow, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	io.WriteString(slow, "GET /snapshots/1/a.txt HTTP/1.1\r\nHost:")
	if took := closedWithin(slow, bufio.NewReader(slow), 5*time.Second); took < 200*time.Millisecond {
		t.Errorf("a slow head closed after %v, before HeaderTimeout", took)
	}

	_, _, idle, br := exchange(t, addr, "GET /snapshots/1/a.txt HTTP/1.1\r\nHost: h\r\n\r\n")
	if took := closedWithin(idle, br, 5*time.Second); took < 400*time.Millisecond {
		t.Errorf("an idle connection closed after %v, before IdleTimeout", took)
	}

	_, _, kept, br := exchange(t, addr, "GET /snapshots/1/a.txt HTTP/1.1\r\nHost: h\r\n\r\n")
	_, _, handed, br2 := exchange(t, addr, "GET /snapshots/1/a.txt HTTP/1.1\r\nHost: h\r\nRange: bytes=0-1\r\n\r\n")
	start := time.Now()
	stop()
	closedWithin(kept, br, 5*time.Second)
	closedWithin(handed, br2, 5*time.Second)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve after shutdown: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after its context ended")
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("shutdown with idle connections took %v", took)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// The fast path's answers are counted in the metrics like the others.
func TestFastPathMetrics(t *testing.T) {
	fx := newFixture(t)
	base, _, _ := serve(t, fx.h, server.ServerOptions{})
	for range 5 {
		_, body, _, _ := exchange(t, strings.TrimPrefix(base, "http://"), "GET /snapshots/1/a.txt HTTP/1.1\r\nHost: h\r\n\r\n")
		if string(body) != fixtureFiles["a.txt"] {
			t.Fatalf("%q", body)
		}
	}
	// A request is counted once its answer is written: the client may
	// read the last answer a moment before, so the scrape waits for it.
	wantBytes := float64(5 * len(fixtureFiles["a.txt"]))
	var reqs, bytes float64
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		mfs := fx.scrape(t)
		reqs = value(mfs, "seqmirror_http_requests_total", "class", "file", "code", "200")
		bytes = value(mfs, "seqmirror_http_response_bytes_total", "class", "file")
		if (reqs >= 5 && bytes >= wantBytes) || time.Now().After(deadline) {
			break
		}
	}
	if reqs != 5 {
		t.Errorf("file requests counted: %v, want 5", reqs)
	}
	if bytes != wantBytes {
		t.Errorf("file bytes counted: %v, want %v", bytes, wantBytes)
	}
}
