package cliapp_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/seqmirror/seqmirror/internal/cliapp"
	"github.com/seqmirror/seqmirror/snapshot"
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

// publishJSON runs publish --json and decodes its result.
func publishJSON(tb testing.TB, args ...string) snapshot.PublishResult {
	tb.Helper()
	code, stdout, stderr := run(tb, "publish", append(args, "--json")...)
	if code != 0 {
		tb.Fatalf("publish %v: exit %d\n%s", args, code, stderr)
	}
	var res snapshot.PublishResult
	if err := json.Unmarshal([]byte(stdout), &res); err != nil {
		tb.Fatalf("publish --json: %v\n%s", err, stdout)
	}
	return res
}

// Issue 11 item 8: a forced republish after a served file was damaged in
// place (same size and mtime) copies that file afresh from the source, so
// the new snapshot verifies and a new mirror of it syncs.
func TestForceRepublishRepairsDamage(t *testing.T) {
	dir := t.TempDir()
	src, master, mirror := filepath.Join(dir, "src"), filepath.Join(dir, "master"), filepath.Join(dir, "mirror")
	testutil.GenTree(t, src, 40, 1)
	publishJSON(t, "--root", master, "--source", src)
	testutil.CorruptInPlace(t, filepath.Join(master, "snapshots", "1", "d01", "s00", "f00001.dat"))
	if code, stdout, _ := run(t, "publish", "verify", "--root", master); code != cliapp.ExitVerify || !strings.Contains(stdout, "d01/s00/f00001.dat: content hash") {
		t.Fatalf("verify of the damaged snapshot: exit %d\n%s", code, stdout)
	}
	res := publishJSON(t, "--root", master, "--source", src, "--force")
	if res.Snapshot != 2 || res.Copied != 1 || res.Linked != 39 {
		t.Errorf("publish --force: %+v, want snapshot 2, the damaged file copied, 39 linked", res)
	}
	if code, stdout, _ := run(t, "publish", "verify", "--root", master); code != 0 {
		t.Fatalf("the republished snapshot does not verify: exit %d\n%s", code, stdout)
	}
	if code, _, stderr := run(t, "mirror-sync", "--upstream", master, "--root", mirror); code != 0 {
		t.Fatalf("a new mirror of the republished snapshot: exit %d\n%s", code, stderr)
	}
}

// Issue 11 item 10 (publish): files moved away and back are linked from
// the older snapshot that still has them, not copied again.
func TestPublishLinksFromOlderSnapshot(t *testing.T) {
	dir := t.TempDir()
	src, master := filepath.Join(dir, "src"), filepath.Join(dir, "master")
	testutil.GenTree(t, src, 40, 1)
	publishJSON(t, "--root", master, "--source", src)
	if err := os.Rename(filepath.Join(src, "d01"), filepath.Join(src, "moved")); err != nil {
		t.Fatal(err)
	}
	if res := publishJSON(t, "--root", master, "--source", src); res.Snapshot != 2 {
		t.Fatalf("publish after the move: %+v", res)
	}
	if err := os.Rename(filepath.Join(src, "moved"), filepath.Join(src, "d01")); err != nil {
		t.Fatal(err)
	}
	res := publishJSON(t, "--root", master, "--source", src)
	if res.Snapshot != 3 || res.Copied != 0 || res.Linked != 40 {
		t.Errorf("publish after moving back: %+v, want snapshot 3, copied 0, linked 40", res)
	}
	p := filepath.Join("d01", "s00", "f00001.dat")
	if testutil.Inode(t, filepath.Join(master, "snapshots", "1", p)) != testutil.Inode(t, filepath.Join(master, "snapshots", "3", p)) {
		t.Errorf("%s of snapshot 3 is not a link to snapshot 1's", p)
	}
	if code, stdout, _ := run(t, "publish", "verify", "--root", master, "--all"); code != 0 {
		t.Fatalf("verify --all: exit %d\n%s", code, stdout)
	}
}

// Issue 11 items 8 and 9: verify --repair replaces a file damaged in place
// in every retained snapshot that shares its inode, by rename of a fresh
// file (the damaged inode is never written), on the master from the source
// and on a mirror from its upstream.
func TestRepairEverySnapshotSharingDamage(t *testing.T) {
	dir := t.TempDir()
	src, master, mirror := filepath.Join(dir, "src"), filepath.Join(dir, "master"), filepath.Join(dir, "mirror")
	testutil.GenTree(t, src, 40, 1)
	publishJSON(t, "--root", master, "--source", src)
	mirrorSync(t, master, mirror)
	testutil.Touch(t, src, "new.txt", "new")
	publishJSON(t, "--root", master, "--source", src)
	mirrorSync(t, master, mirror)
	p := filepath.Join("d01", "s00", "f00001.dat")
	for _, tc := range []struct {
		name, tool, root string
		repair           []string
	}{
		{"publish", "publish", master, []string{"--source", src}},
		{"mirror-sync", "mirror-sync", mirror, []string{"--upstream", master}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			snap := func(n string) string { return filepath.Join(tc.root, "snapshots", n, p) }
			bad := testutil.Inode(t, snap("2"))
			if testutil.Inode(t, snap("1")) != bad {
				t.Fatalf("%s not shared by the two snapshots", p)
			}
			testutil.CorruptInPlace(t, snap("2"))
			code, stdout, _ := run(t, tc.tool, "verify", "--root", tc.root, "--all")
			if code != cliapp.ExitVerify || strings.Count(stdout, "d01/s00/f00001.dat: content hash") != 2 {
				t.Fatalf("verify --all of the damage: exit %d\n%s", code, stdout)
			}
			code, stdout, stderr := run(t, tc.tool, append([]string{"verify", "--root", tc.root, "--repair"}, tc.repair...)...)
			if code != 0 || !strings.Contains(stderr, "repaired 1 path in snapshot 2, and 1 copy in other snapshots") {
				t.Fatalf("verify --repair: exit %d\nstdout %s\nstderr %s", code, stdout, stderr)
			}
			if testutil.Inode(t, snap("1")) == bad || testutil.Inode(t, snap("2")) == bad {
				t.Errorf("a snapshot still holds the damaged inode")
			}
			if testutil.Inode(t, snap("1")) != testutil.Inode(t, snap("2")) {
				t.Errorf("the repaired copies are not one inode")
			}
			if code, stdout, _ := run(t, tc.tool, "verify", "--root", tc.root, "--all"); code != 0 {
				t.Fatalf("verify --all after the repair: exit %d\n%s", code, stdout)
			}
		})
	}
}

// Issue 11 item 8: publish verify --repair cannot repair from a source
// whose file no longer has the recorded content; it says so and exits 3.
func TestPublishRepairSourceChanged(t *testing.T) {
	dir := t.TempDir()
	src, master := filepath.Join(dir, "src"), filepath.Join(dir, "master")
	testutil.GenTree(t, src, 10, 1)
	publishJSON(t, "--root", master, "--source", src)
	p := filepath.Join("d01", "s00", "f00001.dat")
	testutil.CorruptInPlace(t, filepath.Join(master, "snapshots", "1", p))
	testutil.Touch(t, src, filepath.ToSlash(p), "edited since")
	code, stdout, stderr := run(t, "publish", "verify", "--root", master, "--repair", "--source", src)
	if code != cliapp.ExitVerify || !strings.Contains(stderr, "cannot repair d01/s00/f00001.dat") || !strings.Contains(stderr, "hint: `publish --force`") || !strings.Contains(stdout, "d01/s00/f00001.dat: content hash") {
		t.Fatalf("repair from a changed source: exit %d\nstdout %s\nstderr %s", code, stdout, stderr)
	}
	if code, _, stderr := run(t, "publish", "verify", "--root", master, "--repair"); code != cliapp.ExitUsage || !strings.Contains(stderr, "--source") {
		t.Fatalf("--repair without --source: exit %d\n%s", code, stderr)
	}
}

func mirrorSync(tb testing.TB, upstream, root string) {
	tb.Helper()
	if code, _, stderr := run(tb, "mirror-sync", "--upstream", upstream, "--root", root); code != 0 {
		tb.Fatalf("mirror-sync: exit %d\n%s", code, stderr)
	}
}
