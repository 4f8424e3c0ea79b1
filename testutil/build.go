package testutil

import (
	"os/exec"
	"testing"
)

// BuildTools builds publish and mirror-sync (as make build does) into a
// temporary directory of tb and returns it. The Go build cache makes a
// second build in the same run a link only.
func BuildTools(tb testing.TB) string {
	tb.Helper()
	dir := tb.TempDir()
	cmd := exec.Command("go", "build", "-tags", "urfave_cli_no_docs", "-o", dir+"/", "github.com/seqmirror/seqmirror/cmd/...")
	if out, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("go build: %v\n%s", err, out)
	}
	return dir
}
