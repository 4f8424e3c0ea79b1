package server_test

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/seqmirror/seqmirror/internal/server"
	"github.com/seqmirror/seqmirror/testutil"
)

// serve runs Serve on 127.0.0.1 for the test and returns its base URL,
// the function that stops it and the channel of Serve's result.
func serve(tb testing.TB, h http.Handler, o server.ServerOptions) (string, context.CancelFunc, <-chan error) {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done, stopped := make(chan error, 1), make(chan struct{})
	go func() { done <- server.Serve(ctx, ln, h, o); close(stopped) }()
	tb.Cleanup(func() { cancel(); <-stopped })
	return "http://" + ln.Addr().String(), cancel, done
}

// A big file goes out whole and in ranges over a real connection
// (sendfile, in chunks that move the write deadline); the server shuts
// down gracefully when its context ends.
func TestServeBigFileAndShutdown(t *testing.T) {
	dir := t.TempDir()
	big := bytes.Repeat([]byte("0123456789abcdef"), (9<<20)/16+3)
	testutil.SnapshotRoot(t, dir, 1, map[string]string{"big": string(big), "small": "s"})
	h, err := server.NewHandler(server.Options{Root: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	base, stop, done := serve(t, h, server.ServerOptions{})
	resp, err := http.Get(base + "/snapshots/1/big")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !bytes.Equal(b, big) {
		t.Fatalf("big file: %d bytes, want %d", len(b), len(big))
	}
	req, _ := http.NewRequest("GET", base+"/snapshots/1/big", nil)
	req.Header.Set("Range", "bytes=5000000-")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 206 || !bytes.Equal(b, big[5000000:]) {
		t.Fatalf("range: %d, %d bytes", resp.StatusCode, len(b))
	}
	stop()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve after shutdown: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Serve did not return after its context ended")
	}
}

// With MaxConns 1, a second connection is not served while the first is
// open.
func TestConnectionLimit(t *testing.T) {
	dir := t.TempDir()
	testutil.SnapshotRoot(t, dir, 1, map[string]string{"f": "f"})
	h, err := server.NewHandler(server.Options{Root: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	base, _, _ := serve(t, h, server.ServerOptions{MaxConns: 1})
	addr := base[len("http://"):]
	first, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := first.Write([]byte("GET /seq/end HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	if n, err := first.Read(buf); err != nil || !bytes.HasPrefix(buf[:n], []byte("HTTP/1.1 200")) {
		t.Fatalf("first connection: %q %v", buf[:n], err)
	}
	second, err := net.Dial("tcp", addr) // the kernel accepts it; the server does not
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	second.Write([]byte("GET /seq/end HTTP/1.1\r\nHost: x\r\n\r\n"))
	second.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if n, err := second.Read(buf); err == nil {
		t.Fatalf("second connection served while the first is open: %q", buf[:n])
	}
	first.Close()
	second.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := second.Read(buf); err != nil || !bytes.HasPrefix(buf[:n], []byte("HTTP/1.1 200")) {
		t.Fatalf("second connection after the first closed: %q %v", buf[:n], err)
	}
}

// Serve refuses a TLS pair it cannot load.
func TestServeBadTLS(t *testing.T) {
	dir := t.TempDir()
	testutil.SnapshotRoot(t, dir, 1, map[string]string{"f": "f"})
	h, err := server.NewHandler(server.Options{Root: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	cert := filepath.Join(dir, "cert.pem")
	os.WriteFile(cert, []byte("not a certificate"), 0o644)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := server.Serve(context.Background(), ln, h, server.ServerOptions{TLSCert: cert, TLSKey: cert}); err == nil {
		t.Fatal("Serve with a bad certificate: no error")
	}
}
