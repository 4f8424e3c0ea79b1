package cliapp_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/seqmirror/seqmirror/internal/cliapp"
	"github.com/seqmirror/seqmirror/testutil"
)

// run runs one of the apps in-process and returns its exit code and output.
func run(tb testing.TB, app string, args ...string) (int, string, string) {
	tb.Helper()
	var out, errb bytes.Buffer
	build := cliapp.PublishApp
	if app == "mirror-sync" {
		build = cliapp.MirrorApp
	}
	code := cliapp.Run(context.Background(), build(&out, &errb), append([]string{app}, args...))
	return code, out.String(), errb.String()
}

func TestVerifyRepair(t *testing.T) {
	dir := t.TempDir()
	src, master, mirror := filepath.Join(dir, "src"), filepath.Join(dir, "master"), filepath.Join(dir, "mirror")
	testutil.GenTree(t, src, 40, 1)
	if code, _, stderr := run(t, "publish", "--root", master, "--source", src); code != 0 {
		t.Fatalf("publish: %d %s", code, stderr)
	}
	if code, _, stderr := run(t, "mirror-sync", "--upstream", master, "--root", mirror); code != 0 {
		t.Fatalf("mirror-sync: %d %s", code, stderr)
	}
	// Damage one file of the mirror's served snapshot (replace it, so the
	// master's inode is not touched), and remove another.
	victim := filepath.Join(mirror, "current", "d01", "s00", "f00001.dat")
	if err := os.Remove(victim); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(victim, []byte("bit rot"), 0o644); err != nil {
		t.Fatal(err)
	}
	gone := filepath.Join(mirror, "current", "d02", "s00", "f00002.dat")
	if err := os.Remove(gone); err != nil {
		t.Fatal(err)
	}

	code, stdout, _ := run(t, "mirror-sync", "verify", "--root", mirror)
	if code != cliapp.ExitVerify || !strings.Contains(stdout, "d01/s00/f00001.dat") || !strings.Contains(stdout, "d02/s00/f00002.dat: missing") {
		t.Fatalf("verify of a damaged mirror: exit %d, stdout:\n%s", code, stdout)
	}
	if code, _, stderr := run(t, "mirror-sync", "verify", "--root", mirror, "--repair"); code != cliapp.ExitUsage || !strings.Contains(stderr, "--upstream") {
		t.Fatalf("--repair without --upstream: exit %d, stderr %s", code, stderr)
	}
	code, stdout, stderr := run(t, "mirror-sync", "verify", "--root", mirror, "--repair", "--upstream", master)
	if code != 0 || !strings.Contains(stdout, "OK") || !strings.Contains(stderr, "repaired 2 paths") {
		t.Fatalf("repair: exit %d\nstdout %s\nstderr %s", code, stdout, stderr)
	}
	if code, _, _ := run(t, "publish", "verify", "--root", master); code != 0 {
		t.Fatalf("repair touched the master: verify exit %d", code)
	}
}
