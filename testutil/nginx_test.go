package testutil_test

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/seqmirror/seqmirror/testutil"
)

// StartNginx serves a temp dir (mode 0700, as t.TempDir makes it) on
// 127.0.0.1, running as whoever runs the test.
func TestStartNginx(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "f"), []byte("hello\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	n := testutil.StartNginx(t, "root "+dir+";")
	resp, err := http.Get(n.URL("/f"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || string(b) != "hello\n" {
		t.Fatalf("GET /f: %s %q\n%s", resp.Status, b, n.Log())
	}
}
