package server_test

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

func body(tb testing.TB, resp *http.Response) string {
	tb.Helper()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatal(err)
	}
	return string(b)
}

// A plain GET or HEAD of a small file is answered without
// http.ServeContent; its answer is the one ServeContent gives (asked
// here through a condition that holds, which takes its path).
func TestPlainGetAsServeContent(t *testing.T) {
	fx := newFixture(t)
	for _, method := range []string{"GET", "HEAD"} {
		plain := fx.get(t, method, "/snapshots/1/dir/x.txt", nil)
		full := fx.get(t, method, "/snapshots/1/dir/x.txt", map[string]string{"If-Modified-Since": "Mon, 02 Jan 2006 15:04:05 GMT"})
		if plain.StatusCode != 200 || full.StatusCode != 200 {
			t.Fatalf("%s: %d and %d", method, plain.StatusCode, full.StatusCode)
		}
		for _, k := range []string{"Accept-Ranges", "Last-Modified", "Content-Length", "Content-Type", "Etag", "Cache-Control"} {
			if p, f := plain.Header.Values(k), full.Header.Values(k); strings.Join(p, ",") != strings.Join(f, ",") || len(p) != 1 {
				t.Errorf("%s %s: %q, ServeContent's %q", method, k, p, f)
			}
		}
		if p, f := body(t, plain), body(t, full); p != f {
			t.Errorf("%s body: %q, ServeContent's %q", method, p, f)
		}
	}
}
