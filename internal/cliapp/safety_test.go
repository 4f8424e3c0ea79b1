package cliapp_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/seqmirror/seqmirror/testutil"
)

// A port given with --rsync-opt=--port=N is the address's port: status
// (and status.json) show it instead of dropping it.
func TestStatusShowsRsyncOptPort(t *testing.T) {
	dir := t.TempDir()
	src, master, mirror := filepath.Join(dir, "src"), filepath.Join(dir, "master"), filepath.Join(dir, "mirror")
	testutil.WriteTree(t, src, map[string]string{"a.txt": "a"})
	if code, _, stderr := run(t, "publish", "--root", master, "--source", src); code != 0 {
		t.Fatalf("publish: %d %s", code, stderr)
	}
	port := testutil.StartRsyncd(t, map[string]string{"pub": master})
	opt := fmt.Sprintf("--rsync-opt=--port=%d", port)
	want := fmt.Sprintf("rsync://127.0.0.1:%d/pub", port)
	if code, _, stderr := run(t, "mirror-sync", "--upstream", "rsync://127.0.0.1/pub", "--root", mirror, opt); code != 0 {
		t.Fatalf("mirror-sync: %d %s", code, stderr)
	}
	code, stdout, stderr := run(t, "mirror-sync", "status", "--root", mirror, "--upstream", "rsync://127.0.0.1/pub", opt)
	if code != 0 || !strings.Contains(stdout, "upstream   "+want+" serves 1") {
		t.Fatalf("status: exit %d, want the upstream shown as %s\n%s%s", code, want, stdout, stderr)
	}
	if b, err := os.ReadFile(filepath.Join(mirror, "status.json")); err != nil || !strings.Contains(string(b), `"upstream": "`+want+`"`) {
		t.Fatalf("status.json does not name %s: %v\n%s", want, err, b)
	}
}
