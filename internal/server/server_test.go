package server_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/seqmirror/seqmirror/internal/export"
	"github.com/seqmirror/seqmirror/internal/server"
	"github.com/seqmirror/seqmirror/testutil"
)

// serve runs Serve on 127.0.0.1 for the test and returns its base URL,
// the function that stops it and the channel of Serve's result. A
// *server.Handler is served as `serve` serves it, with the fast path
// (o.Files); noFast turns that off.
func serve(tb testing.TB, h http.Handler, o server.ServerOptions) (string, context.CancelFunc, <-chan error) {
	tb.Helper()
	if sh, ok := h.(*server.Handler); ok && o.Files == nil {
		o.Files = sh
	}
	if nf, ok := h.(noFast); ok {
		h = nf.Handler
	}
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
	testutil.SnapshotRoot(t, dir, 1, map[string]string{"big": string(big), "small": strings.Repeat("small file ", 300)})
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
	small := strings.Repeat("small file ", 300) // read whole, written from memory
	for _, c := range []struct {
		rng, want string
		code      int
	}{
		{"", small, 200},
		{"bytes=6-9", small[6:10], 206},
		{"bytes=-5", small[len(small)-5:], 206},
		{"bytes=0-0,5-6", "multipart", 206},
	} {
		req, _ := http.NewRequest("GET", base+"/snapshots/1/small", nil)
		if c.rng != "" {
			req.Header.Set("Range", c.rng)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		got := string(b)
		if c.want == "multipart" && strings.HasPrefix(resp.Header.Get("Content-Type"), "multipart/byteranges") {
			got = "multipart"
		}
		if resp.StatusCode != c.code || got != c.want {
			t.Errorf("small file, Range %q: %d %q", c.rng, resp.StatusCode, b)
		}
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

// writeCert writes a self-signed certificate for 127.0.0.1 and its key.
func writeCert(tb testing.TB, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		tb.Fatal(err)
	}
	kb, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		tb.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}), 0o600)
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// With a certificate, Serve speaks HTTPS, and HTTP/2 to a client that
// offers it.
func TestServeTLS(t *testing.T) {
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	testutil.SnapshotRoot(t, root, 1, map[string]string{"f": "over tls"})
	h, err := server.NewHandler(server.Options{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	certFile, keyFile, pool := writeCert(t, dir)
	base, _, _ := serve(t, h, server.ServerOptions{TLSCert: certFile, TLSKey: keyFile})
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}}
	resp, err := client.Get("https" + strings.TrimPrefix(base, "http") + "/snapshots/1/f")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "over tls" || resp.ProtoMajor != 2 {
		t.Fatalf("%s: %q", resp.Proto, b)
	}
}

// Serve answers HTTP/1.1 with the header that says it takes HTTP/2 with
// prior knowledge, and takes it: a big file goes out whole over an h2c
// stream, and a small one beside it on the same connection.
func TestServeH2C(t *testing.T) {
	dir := t.TempDir()
	big := strings.Repeat("0123456789abcdef", (3<<20)/16)
	testutil.SnapshotRoot(t, dir, 1, map[string]string{"big": big, "small": "small\n"})
	h, err := server.NewHandler(server.Options{Root: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	base, _, _ := serve(t, h, server.ServerOptions{})
	resp, err := http.Get(base + "/seq/end")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.ProtoMajor != 1 || resp.Header.Get(export.H2CHeader) != export.H2CPriorKnowledge {
		t.Fatalf("HTTP/1.1 answer: %s, %s: %q", resp.Proto, export.H2CHeader, resp.Header.Get(export.H2CHeader))
	}
	tr := &http.Transport{Protocols: new(http.Protocols)}
	tr.Protocols.SetUnencryptedHTTP2(true)
	defer tr.CloseIdleConnections()
	for name, want := range map[string]string{"big": big, "small": "small\n"} {
		resp, err := (&http.Client{Transport: tr}).Get(base + "/snapshots/1/" + name)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.ProtoMajor != 2 || resp.StatusCode != 200 || string(b) != want {
			t.Fatalf("%s over h2c: %s %s, %d bytes (want %d), %v", name, resp.Proto, resp.Status, len(b), len(want), err)
		}
	}
}
