package rsync

import (
	"errors"
	"strings"
	"testing"

	"github.com/seqmirror/seqmirror/internal/transport/upstream"
)

func TestParseAddress(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    Address
		source  string // Source("seq/end")
		notAddr bool
		bad     bool
	}{
		{name: "daemon url", in: "rsync://mirror.example.org/pub", want: Address{Kind: Daemon, Host: "mirror.example.org", Module: "pub"}, source: "rsync://mirror.example.org/pub/seq/end"},
		{name: "daemon url port path", in: "rsync://u@127.0.0.1:8873/pub/a/b/", want: Address{Kind: Daemon, User: "u", Host: "127.0.0.1", Port: 8873, Module: "pub", Path: "a/b"}, source: "rsync://u@127.0.0.1:8873/pub/a/b/seq/end"},
		{name: "daemon url ipv6", in: "rsync://[::1]:873/pub", want: Address{Kind: Daemon, Host: "::1", Port: 873, Module: "pub"}, source: "rsync://[::1]:873/pub/seq/end"},
		{name: "double colon", in: "host::mod/x", want: Address{Kind: Daemon, Host: "host", Module: "mod", Path: "x"}, source: "rsync://host/mod/x/seq/end"},
		{name: "double colon module only", in: "u@host::mod", want: Address{Kind: Daemon, User: "u", Host: "host", Module: "mod"}},
		{name: "shell absolute", in: "backup@master:/srv/export", want: Address{Kind: Shell, User: "backup", Host: "master", Path: "/srv/export"}, source: "backup@master:/srv/export/seq/end"},
		{name: "shell relative", in: "master:export/", want: Address{Kind: Shell, Host: "master", Path: "export"}},
		{name: "shell root", in: "master:/", want: Address{Kind: Shell, Host: "master", Path: "/"}, source: "master:/seq/end"},
		{name: "shell dash path", in: "master:-x", want: Address{Kind: Shell, Host: "master", Path: "./-x"}},
		{name: "shell ipv6", in: "[::1]:/srv", want: Address{Kind: Shell, Host: "::1", Path: "/srv"}, source: "[::1]:/srv/seq/end"},
		{name: "local absolute", in: "/srv/export", notAddr: true},
		{name: "local relative with colon", in: "./a:b", notAddr: true},
		{name: "local dir with colon after slash", in: "srv/a:b", notAddr: true},
		{name: "no module", in: "rsync://host/", bad: true},
		{name: "no module double colon", in: "host::", bad: true},
		{name: "no host", in: "rsync:///mod", bad: true},
		{name: "dash host", in: "-e:/x", bad: true},
		{name: "dash host daemon", in: "rsync://-oProxy/mod", bad: true},
		{name: "dotdot", in: "rsync://h/mod/../etc", bad: true},
		{name: "dotdot shell", in: "h:/srv/../etc", bad: true},
		{name: "bad port", in: "rsync://h:99999/mod", bad: true},
		{name: "port junk", in: "rsync://h:08/mod", bad: true},
		{name: "shell no path", in: "h:", bad: true},
		{name: "newline", in: "rsync://h/mod/a\nb", bad: true},
		{name: "space in host", in: "rsync://h x/mod", bad: true},
		{name: "shell metachar host", in: "h;rm:/x", bad: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseAddress(tc.in)
			switch {
			case tc.notAddr:
				if !errors.Is(err, errNotRsync) || IsAddress(tc.in) {
					t.Fatalf("ParseAddress(%q) = %+v, %v; want not an rsync address", tc.in, got, err)
				}
				return
			case tc.bad:
				if !errors.Is(err, upstream.ErrBadAddress) || !IsAddress(tc.in) {
					t.Fatalf("ParseAddress(%q) = %+v, %v; want ErrBadAddress", tc.in, got, err)
				}
				return
			case err != nil:
				t.Fatalf("ParseAddress(%q): %v", tc.in, err)
			}
			if got != tc.want {
				t.Fatalf("ParseAddress(%q) = %+v, want %+v", tc.in, got, tc.want)
			}
			if tc.source != "" {
				if s := got.Source("seq/end"); s != tc.source {
					t.Errorf("Source = %q, want %q", s, tc.source)
				}
			}
			again, err := ParseAddress(got.String())
			if err != nil || again != got {
				t.Errorf("round trip %q -> %q -> %+v, %v", tc.in, got.String(), again, err)
			}
		})
	}
}

func FuzzParseAddress(f *testing.F) {
	for _, s := range []string{"rsync://h/m", "rsync://u@[::1]:873/m/p/q", "h::m/p", "h:/p", "u@[fe80::1]:x", "/local", "a:b", "rsync://h:1/m/../x", "-e:x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := ParseAddress(s)
		if err != nil {
			if !errors.Is(err, errNotRsync) && !errors.Is(err, upstream.ErrBadAddress) {
				t.Fatalf("ParseAddress(%q): unexpected error kind %v", s, err)
			}
			return
		}
		if a.Host == "" || strings.HasPrefix(a.Host, "-") || strings.HasPrefix(a.User, "-") {
			t.Fatalf("ParseAddress(%q) = %+v: bad host", s, a)
		}
		if a.Kind == Daemon && (a.Module == "" || strings.HasPrefix(a.Module, "-")) {
			t.Fatalf("ParseAddress(%q) = %+v: bad module", s, a)
		}
		if a.Kind == Shell && strings.HasPrefix(a.Path, "-") {
			t.Fatalf("ParseAddress(%q) = %+v: path reads as an option", s, a)
		}
		for _, el := range strings.Split(a.Path, "/") {
			if el == ".." {
				t.Fatalf("ParseAddress(%q) = %+v: .. in path", s, a)
			}
		}
		if strings.ContainsAny(a.Path+a.Host+a.User+a.Module, "\x00\n\r") {
			t.Fatalf("ParseAddress(%q) = %+v: control character", s, a)
		}
		again, err := ParseAddress(a.String())
		if err != nil || again != a {
			t.Fatalf("round trip %q -> %q -> %+v, %v (want %+v)", s, a.String(), again, err, a)
		}
	})
}

func TestParseProgressLine(t *testing.T) {
	tests := []struct {
		name    string
		line    string
		bytes   int64
		percent int
		ok      bool
	}{
		{name: "progress2", line: "      1,234,567  45%   10.00MB/s    0:00:01 (xfr#1, to-chk=0/3)", bytes: 1234567, percent: 45, ok: true},
		{name: "done", line: "          3,072 100%    2.93MB/s    0:00:00 (xfr#3, to-chk=0/4)", bytes: 3072, percent: 100, ok: true},
		{name: "other", line: "sending incremental file list", ok: false},
		{name: "empty", line: "", ok: false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, p, ok := ParseProgressLine(tc.line)
			if b != tc.bytes || p != tc.percent || ok != tc.ok {
				t.Fatalf("ParseProgressLine(%q) = %d, %d, %v", tc.line, b, p, ok)
			}
		})
	}
}
