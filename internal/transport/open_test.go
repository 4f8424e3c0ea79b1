package transport_test

import (
	"errors"
	"path/filepath"
	"testing"

	"github.com/seqmirror/seqmirror/internal/fsys"
	"github.com/seqmirror/seqmirror/internal/transport"
)

// Open picks the transport from the address and opens it with its options:
// the upstream it returns needs nothing set afterwards.
func TestOpen(t *testing.T) {
	dir := t.TempDir()
	port := transport.Options{Rsync: transport.RsyncOptions{Port: 8873}}
	tests := []struct {
		name string
		addr string
		opt  transport.Options
		want string // the upstream's String()
		err  error
	}{
		{name: "empty", addr: "", err: transport.ErrBadAddress},
		{name: "bad rsync address", addr: "rsync://-oProxyCommand=x/m", err: transport.ErrBadAddress},
		{name: "path", addr: dir, want: dir},
		{name: "relative path", addr: ".", want: mustAbs(t, ".")},
		{name: "rsync daemon", addr: "host::mod/sub", want: "rsync://host/mod/sub"},
		{name: "daemon port from the options", addr: "host::mod", opt: port, want: "rsync://host:8873/mod"},
		{name: "the address's own port wins", addr: "rsync://host:99/mod", opt: port, want: "rsync://host:99/mod"},
		{name: "remote shell takes no port", addr: "host:/srv/pub", opt: port, want: "host:/srv/pub"},
		{name: "http", addr: "http://host:8080/pub", want: "http://host:8080/pub/"},
		{name: "https, scheme in capitals", addr: "HTTPS://host/", want: "https://host/"},
		{name: "http without a host", addr: "http:///srv", err: transport.ErrBadAddress},
		{name: "http with credentials", addr: "https://u:p@host/pub", err: transport.ErrBadAddress},
		{name: "http with a query", addr: "https://host/pub?x=1", err: transport.ErrBadAddress},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up, err := transport.Open(tt.addr, fsys.OS(), tt.opt)
			if tt.err != nil {
				if !errors.Is(err, tt.err) || up != nil {
					t.Fatalf("Open(%q) = %v, %v; want nil and an error wrapping %v", tt.addr, up, err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer up.Close()
			if got := up.String(); got != tt.want {
				t.Fatalf("Open(%q) is %q, want %q", tt.addr, got, tt.want)
			}
		})
	}
}

func mustAbs(tb testing.TB, p string) string {
	tb.Helper()
	a, err := filepath.Abs(p)
	if err != nil {
		tb.Fatal(err)
	}
	return a
}
