package cliapp_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/seqmirror/seqmirror/internal/cliapp"
	"github.com/seqmirror/seqmirror/manifest"
	"github.com/seqmirror/seqmirror/testutil"
)

// verify checks a version 2 manifest's whole SHA-256: a file rewritten in
// place whose record was fixed up so that its 64-bit hash matches is a
// difference, named by its digest.
func TestVerifyForgedDigest(t *testing.T) {
	dir := testutil.FastDir(t)
	src, root := filepath.Join(dir, "src"), filepath.Join(dir, "root")
	testutil.WriteTree(t, src, map[string]string{"a/file.txt": "original\n", "b.txt": "other\n"})
	if code, _, stderr := run(t, "publish", "--root", root, "--source", src); code != 0 {
		t.Fatalf("publish: %d %s", code, stderr)
	}
	man := filepath.Join(root, "snapshots", "1.manifest")
	if b, _ := os.ReadFile(man); !strings.HasPrefix(string(b), manifest.Magic+"\n") {
		t.Fatalf("publish wrote %.30q, want version 2", b)
	}
	testutil.ForgeRecord(t, man, filepath.Join(root, "snapshots", "1"), "a/file.txt", "ORIGINAL\n")
	code, stdout, stderr := run(t, "publish", "verify", "--root", root)
	want := regexp.MustCompile(`^a/file.txt: content hash sha256:[0-9a-f]{64}, manifest says sha256:[0-9a-f]{64}\n$`)
	if code != cliapp.ExitVerify || !want.MatchString(stdout) {
		t.Fatalf("verify: exit %d, stdout %q, stderr %q; want %d and %v", code, stdout, stderr, cliapp.ExitVerify, want)
	}
}

// A root published before version 2 (a version 1 manifest) still mirrors
// and verifies: the mirror keeps its upstream's manifest as it is, and
// checks every file by its xxhash64. A publish into such a root writes
// version 2, copying the files it cannot take a digest for.
func TestVersion1RootMirrorsAndVerifies(t *testing.T) {
	dir := testutil.FastDir(t)
	up, mirror, src := filepath.Join(dir, "up"), filepath.Join(dir, "mirror"), filepath.Join(dir, "src")
	files := map[string]string{"a/file.txt": "original\n", "b.txt": "other content\n"}
	testutil.SnapshotRootVersion(t, up, 1, files, manifest.Version1)
	if code, _, stderr := run(t, "mirror-sync", "--upstream", up, "--root", mirror); code != 0 {
		t.Fatalf("mirror-sync of a version 1 root: %d %s", code, stderr)
	}
	b, err := os.ReadFile(filepath.Join(mirror, "snapshots", "1.manifest"))
	testutil.Must(t, err)
	if !strings.HasPrefix(string(b), manifest.Magic1+"\n") {
		t.Fatalf("the mirror's manifest starts %.30q, want its upstream's version 1", b)
	}
	for _, app := range []string{"mirror-sync", "publish"} {
		root := map[string]string{"mirror-sync": mirror, "publish": up}[app]
		if code, stdout, stderr := run(t, app, "verify", "--root", root); code != 0 {
			t.Fatalf("%s verify of a version 1 snapshot: %d %s %s", app, code, stdout, stderr)
		}
	}
	// A damaged file of a version 1 snapshot is found by its xxhash64.
	testutil.CorruptInPlace(t, filepath.Join(mirror, "snapshots", "1", "b.txt"))
	code, stdout, _ := run(t, "mirror-sync", "verify", "--root", mirror)
	if want := regexp.MustCompile(`^b.txt: content hash [0-9a-f]{16}, manifest says [0-9a-f]{16}\n$`); code != cliapp.ExitVerify || !want.MatchString(stdout) {
		t.Fatalf("verify of a damaged version 1 file: exit %d, %q", code, stdout)
	}
	// The next publish writes version 2, though nothing changed.
	testutil.WriteTree(t, src, files)
	for rel := range files {
		testutil.Must(t, os.Chtimes(filepath.Join(src, rel), testutil.FixtureMTime, testutil.FixtureMTime))
	}
	testutil.Must(t, os.Chtimes(filepath.Join(src, "a"), testutil.FixtureMTime, testutil.FixtureMTime))
	if code, _, stderr := run(t, "publish", "--root", up, "--source", src); code != 0 {
		t.Fatalf("publish into a version 1 root: %d %s", code, stderr)
	}
	b, err = os.ReadFile(filepath.Join(up, "snapshots", "2.manifest"))
	testutil.Must(t, err)
	if !strings.HasPrefix(string(b), manifest.Magic+"\n") {
		t.Fatalf("publish into a version 1 root wrote %.30q (want snapshot 2, version 2)", b)
	}
	if code, stdout, stderr := run(t, "publish", "verify", "--root", up); code != 0 {
		t.Fatalf("publish verify: %d %s %s", code, stdout, stderr)
	}
}
