package server_test

import (
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A manifest comes in gzip to a request that takes it, the same bytes
// once decoded, under an ETag of its own (so that a cache keeps both);
// as it is otherwise: no gzip asked for, gzip;q=0, a range, HEAD of it
// as it is. Every answer says Vary: Accept-Encoding.
func TestManifestGzip(t *testing.T) {
	fx := newFixture(t)
	plain, err := os.ReadFile(filepath.Join(fx.root, "snapshots", "1.manifest"))
	if err != nil {
		t.Fatal(err)
	}
	tag := fx.get(t, "GET", "/snapshots/1.manifest", nil).Header.Get("ETag")
	if tag == "" {
		t.Fatal("no ETag on the manifest")
	}
	gzTag := strings.TrimSuffix(tag, `"`) + `-gz"`
	tests := []struct {
		name   string
		method string
		hdr    map[string]string
		code   int
		gz     bool
		tag    string
	}{
		{name: "gzip asked for", method: "GET", hdr: map[string]string{"Accept-Encoding": "gzip"}, code: 200, gz: true, tag: gzTag},
		{name: "among others", method: "GET", hdr: map[string]string{"Accept-Encoding": "br;q=1.0, gzip;q=0.5, identity"}, code: 200, gz: true, tag: gzTag},
		{name: "HEAD in gzip", method: "HEAD", hdr: map[string]string{"Accept-Encoding": "gzip"}, code: 200, gz: true, tag: gzTag},
		{name: "not asked for", method: "GET", code: 200, tag: tag},
		{name: "identity only", method: "GET", hdr: map[string]string{"Accept-Encoding": "identity"}, code: 200, tag: tag},
		{name: "gzip refused", method: "GET", hdr: map[string]string{"Accept-Encoding": "gzip;q=0, identity"}, code: 200, tag: tag},
		{name: "a range", method: "GET", hdr: map[string]string{"Accept-Encoding": "gzip", "Range": "bytes=0-9"}, code: 206, tag: tag},
		{name: "revalidated in gzip", method: "GET", hdr: map[string]string{"Accept-Encoding": "gzip", "If-None-Match": gzTag}, code: 304, tag: gzTag},
		{name: "revalidated as it is", method: "GET", hdr: map[string]string{"If-None-Match": tag}, code: 304, tag: tag},
		{name: "the other encoding's tag", method: "GET", hdr: map[string]string{"Accept-Encoding": "gzip", "If-None-Match": tag}, code: 200, gz: true, tag: gzTag},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp := fx.get(t, tc.method, "/snapshots/1.manifest", tc.hdr)
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.code {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.code)
			}
			if got := resp.Header.Get("ETag"); got != tc.tag {
				t.Errorf("ETag %s, want %s", got, tc.tag)
			}
			if v := resp.Header.Get("Vary"); v != "Accept-Encoding" {
				t.Errorf("Vary %q, want Accept-Encoding", v)
			}
			if ce := resp.Header.Get("Content-Encoding"); (ce == "gzip") != tc.gz {
				t.Fatalf("Content-Encoding %q, gzip wanted: %v", ce, tc.gz)
			}
			switch {
			case tc.code != 200 || tc.method == "HEAD":
				return
			case tc.gz:
				zr, err := gzip.NewReader(bytes.NewReader(body))
				if err != nil {
					t.Fatal(err)
				}
				if got, err := io.ReadAll(zr); err != nil || !bytes.Equal(got, plain) {
					t.Fatalf("decoded body (%d bytes, %v) is not the manifest (%d bytes)", len(got), err, len(plain))
				}
				if len(body) >= len(plain) {
					t.Errorf("gzip of %d bytes for a manifest of %d", len(body), len(plain))
				}
			case !bytes.Equal(body, plain):
				t.Fatalf("body is not the manifest as it is")
			}
		})
	}
}
