package cliapp_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/seqmirror/seqmirror/internal/cliapp"
	"github.com/seqmirror/seqmirror/internal/tree"
	"github.com/seqmirror/seqmirror/testutil"
)

// verify of a snapshot with more differences than it lists prints the
// first tree.DefaultMaxProblems and says how many more there are, and
// counts them all.
func TestVerifyListsBoundedProblems(t *testing.T) {
	dir := testutil.FastDir(t)
	src, root := filepath.Join(dir, "src"), filepath.Join(dir, "root")
	testutil.GenTree(t, src, 3, 1)
	if code, _, stderr := run(t, "publish", "--root", root, "--source", src); code != 0 {
		t.Fatalf("publish: %d %s", code, stderr)
	}
	extra := filepath.Join(root, "snapshots", "1", "extra")
	if err := os.Mkdir(extra, 0o755); err != nil {
		t.Fatal(err)
	}
	const more = 6
	for i := range tree.DefaultMaxProblems + more - 1 { // and extra itself
		if err := os.WriteFile(filepath.Join(extra, fmt.Sprint(i)), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	code, stdout, stderr := run(t, "publish", "verify", "--root", root)
	lines := strings.Split(strings.TrimSuffix(stdout, "\n"), "\n")
	if code != cliapp.ExitVerify || len(lines) != tree.DefaultMaxProblems+1 || lines[0] != "extra: not in manifest" ||
		lines[len(lines)-1] != fmt.Sprintf("... and %d more", more) {
		t.Fatalf("verify: exit %d, %d lines, first %q, last %q", code, len(lines), lines[0], lines[len(lines)-1])
	}
	if want := fmt.Sprintf("snapshot 1: %d paths differ", tree.DefaultMaxProblems+more); !strings.Contains(stderr, want) {
		t.Fatalf("stderr %q, want %q", stderr, want)
	}
	_, stdout, _ = run(t, "publish", "verify", "--root", root, "--json")
	var rep struct {
		Problems []tree.Problem `json:"problems"`
		More     int            `json:"more_problems"`
	}
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil || len(rep.Problems) != tree.DefaultMaxProblems || rep.More != more {
		t.Fatalf("--json: %d problems, more %d, %v", len(rep.Problems), rep.More, err)
	}
}
