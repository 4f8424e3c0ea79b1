package cliapp_test

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/seqmirror/seqmirror/internal/cliapp"
	"github.com/seqmirror/seqmirror/testutil"
)

// freeAddr returns a 127.0.0.1 address no one listens on (just now).
func freeAddr(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// waitHTTP GETs url until it answers 200 (10s at most) and returns the body.
func waitHTTP(tb testing.TB, url string) string {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(url)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return string(b)
			}
			err = nil
		}
		if time.Now().After(deadline) {
			tb.Fatalf("GET %s: no 200 within 10s (%v)", url, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// `serve` of both tools starts, answers, and exits 0 when its context is
// cancelled by SIGTERM (as Main's is); with --quiet it prints nothing.
func TestServe(t *testing.T) {
	dir := t.TempDir()
	src, root := filepath.Join(dir, "src"), filepath.Join(dir, "root")
	testutil.WriteTree(t, src, map[string]string{"a.txt": "a\n", "d/b.txt": "b\n"})
	if code, _, stderr := run(t, "publish", "--root", root, "--source", src, "--quiet"); code != 0 {
		t.Fatalf("publish: %d %s", code, stderr)
	}
	for _, tc := range []struct {
		name  string
		app   string
		quiet bool
	}{{"publish serve --quiet", "publish", true}, {"mirror-sync serve", "mirror-sync", false}} {
		t.Run(tc.name, func(t *testing.T) {
			addr := freeAddr(t)
			build := cliapp.PublishApp
			if tc.app == "mirror-sync" {
				build = cliapp.MirrorApp
			}
			args := []string{tc.app, "serve", "--root", root, "--listen", addr}
			if tc.quiet {
				args = append(args, "--quiet")
			}
			ctx, cancel := context.WithCancelCause(context.Background())
			var out, errb bytes.Buffer
			code := make(chan int, 1)
			go func() { code <- cliapp.Run(ctx, build(&out, &errb), args) }()
			if got := waitHTTP(t, "http://"+addr+"/current/d/b.txt"); got != "b\n" {
				t.Fatalf("/current/d/b.txt: %q", got)
			}
			if got := waitHTTP(t, "http://"+addr+"/seq/current"); got != "1\n" {
				t.Fatalf("/seq/current: %q", got)
			}
			cancel(cliapp.Interrupted{Signal: syscall.SIGTERM})
			select {
			case c := <-code:
				if c != 0 {
					t.Fatalf("exit %d after SIGTERM, stderr %s", c, errb.String())
				}
			case <-time.After(15 * time.Second):
				t.Fatal("serve did not stop on SIGTERM")
			}
			if out.Len() != 0 {
				t.Errorf("stdout: %q", out.String())
			}
			if tc.quiet && errb.Len() != 0 {
				t.Errorf("--quiet, stderr: %q", errb.String())
			}
			if !tc.quiet && (!strings.Contains(errb.String(), "serving "+root+" on http://"+addr) || !strings.Contains(errb.String(), "interrupted by SIGTERM; stopped")) {
				t.Errorf("stderr: %q", errb.String())
			}
		})
	}
}

func TestServeUsage(t *testing.T) {
	root := t.TempDir()
	testutil.SnapshotRoot(t, root, 1, map[string]string{"f": "f"})
	tests := []struct {
		name string
		args []string
		code int
		err  string
	}{
		{name: "no root", args: []string{"serve"}, code: cliapp.ExitUsage, err: "--root is required"},
		{name: "a cert without a key", args: []string{"serve", "--root", root, "--tls-cert", "c.pem"}, code: cliapp.ExitUsage, err: "--tls-cert and --tls-key"},
		{name: "no connections", args: []string{"serve", "--root", root, "--max-conns", "0"}, code: cliapp.ExitUsage, err: "--max-conns"},
		{name: "not a root", args: []string{"serve", "--root", t.TempDir()}, code: cliapp.ExitFailure, err: "create it with publish or mirror-sync first"},
		{name: "a bad address", args: []string{"serve", "--root", root, "--listen", "127.0.0.1:99999"}, code: cliapp.ExitFailure, err: "listen on 127.0.0.1:99999"},
		{name: "nginx-config, a bad location", args: []string{"serve", "nginx-config", "--root", root, "--location", "/a b/"}, code: cliapp.ExitUsage, err: "location"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := run(t, "mirror-sync", tc.args...)
			if code != tc.code || !strings.Contains(stderr, tc.err) {
				t.Fatalf("exit %d, want %d; stderr %q, want %q in it", code, tc.code, stderr, tc.err)
			}
		})
	}
}

// serve nginx-config prints the block for the absolute root (the nginx
// test of internal/server runs it in a real nginx).
func TestServeNginxConfig(t *testing.T) {
	root := t.TempDir()
	testutil.SnapshotRoot(t, root, 1, map[string]string{"f": "f"})
	code, stdout, stderr := run(t, "publish", "serve", "nginx-config", "--root", root, "--location", "/mirror/")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{"location ^~ /mirror/ {", "alias " + root + "/;", "disable_symlinks on from=" + root + ";", `add_header Cache-Control "no-cache" always;`} {
		if !strings.Contains(stdout, want) {
			t.Errorf("no %q in:\n%s", want, stdout)
		}
	}
}
