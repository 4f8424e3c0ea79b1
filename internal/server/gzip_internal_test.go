package server

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// The compressed bytes are made once per manifest, and kept for at most
// gzipKeep manifests.
func TestGzipCacheOnce(t *testing.T) {
	var c gzipCache
	read := 0
	for range 3 {
		gz, err := c.get(`"a"`, &readCounter{r: strings.NewReader("manifest a"), n: &read})
		if err != nil || len(gz) == 0 {
			t.Fatal(gz, err)
		}
	}
	if read != 1 || len(c.list) != 1 {
		t.Fatalf("the manifest was read %d times (%d entries), want once", read, len(c.list))
	}
	for i := range gzipKeep + 2 {
		if _, err := c.get(string(rune('b'+i)), strings.NewReader("x")); err != nil {
			t.Fatal(err)
		}
	}
	if len(c.list) != gzipKeep {
		t.Fatalf("%d entries kept, want %d", len(c.list), gzipKeep)
	}
}

// readCounter counts the readers that were read from.
type readCounter struct {
	r    io.Reader
	n    *int
	seen bool
}

func (c *readCounter) Read(p []byte) (int, error) {
	if !c.seen {
		c.seen = true
		*c.n++
	}
	return c.r.Read(p)
}

func TestWantsGzip(t *testing.T) {
	for _, tc := range []struct {
		name string
		ae   []string
		rng  string
		want bool
	}{
		{name: "none"},
		{name: "gzip", ae: []string{"gzip"}, want: true},
		{name: "upper case", ae: []string{"GZIP"}, want: true},
		{name: "a list", ae: []string{"deflate, gzip;q=0.8"}, want: true},
		{name: "two headers", ae: []string{"br", "gzip"}, want: true},
		{name: "q=0", ae: []string{"gzip;q=0"}},
		{name: "q = 0.000", ae: []string{"gzip; q=0.000"}},
		{name: "Q=0", ae: []string{"gzip;Q=0"}},
		{name: "x-gzip", ae: []string{"x-gzip"}},
		{name: "a range", ae: []string{"gzip"}, rng: "bytes=0-1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, _ := http.NewRequest("GET", "/", nil)
			for _, v := range tc.ae {
				r.Header.Add("Accept-Encoding", v)
			}
			if tc.rng != "" {
				r.Header.Set("Range", tc.rng)
			}
			if got := wantsGzip(r); got != tc.want {
				t.Fatalf("wantsGzip = %v, want %v", got, tc.want)
			}
		})
	}
}

// wantsGzip never takes a header without the token gzip, never one with a
// Range, and never panics.
func FuzzWantsGzip(f *testing.F) {
	for _, s := range []string{"gzip", "gzip;q=0", "br, gzip;q=0.5", "x-gzip", ";;,", "gzip;q=", "GZIP ; Q = 0.000"} {
		f.Add(s, false)
	}
	f.Fuzz(func(t *testing.T, ae string, rng bool) {
		r, _ := http.NewRequest("GET", "/", nil)
		r.Header.Set("Accept-Encoding", ae)
		if rng {
			r.Header.Set("Range", "bytes=0-1")
		}
		got := wantsGzip(r)
		if got && (rng || !strings.Contains(strings.ToLower(ae), "gzip")) {
			t.Fatalf("wantsGzip(%q, range %v) = true", ae, rng)
		}
	})
}
