package examples_test

// These tests check that docs/protocol.md is precise enough to implement a
// compatible client: seqmirror_client.py was written from the document alone,
// and here it must agree with the Go implementation on real export roots.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/seqmirror/seqmirror/internal/export"
	"github.com/seqmirror/seqmirror/internal/fsys"
	"github.com/seqmirror/seqmirror/internal/tree"
	"github.com/seqmirror/seqmirror/manifest"
	"github.com/seqmirror/seqmirror/snapshot"
	"github.com/seqmirror/seqmirror/testutil"
)

// client runs seqmirror_client.py and returns its stdout, stderr and exit code.
func client(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	py := testutil.RequireBinary(t, "python3")
	script, err := filepath.Abs("seqmirror_client.py")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(py, append([]string{script}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		return stdout.String(), stderr.String(), exit.ExitCode()
	case err != nil:
		t.Fatalf("python3 %v: %v", args, err)
	}
	return stdout.String(), stderr.String(), 0
}

// awkward writes a source tree with every kind of name and entry the
// protocol must carry.
func awkward(t *testing.T, src string) {
	t.Helper()
	testutil.WriteTree(t, src, map[string]string{
		"a b%c.txt":             "spaces and a percent\n",
		"%41%2F":                "looks escaped, is not",
		"café/ünï cödé.txt":     "non-ASCII UTF-8\n",
		"new\nline":             "a newline in the name",
		"tab\there":             "and a tab",
		"latin1-\xe9":           "not UTF-8 at all",
		"empty":                 "",
		"ro":                    "read-only\n",
		"bin/run.sh":            "#!/bin/sh\necho hi\n",
		"deep/er/est/file":      "deep",
		"sub/x":                 "canonical order: sub < sub/x < sub! < sub.x",
		"sub!":                  "bang",
		"sub.x":                 "dot",
		"link to file":          "->a b%c.txt",
		"café/abs link":         "->/etc/passwd",
		"deep/dangling":         "->../nowhere/ü x",
		"deep/er/up":            "->../../sub",
		"dir with space/.dot":   "hidden",
		"dir with space/z\x7fz": "DEL byte",
	})
	if err := os.MkdirAll(filepath.Join(src, "empty dir"), 0o755); err != nil {
		t.Fatal(err)
	}
	// Larger than the client's 1 MiB read chunk and not a multiple of 32.
	big := make([]byte, 1<<20+37)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range big {
		big[i] = byte(r.Uint32())
	}
	if err := os.WriteFile(filepath.Join(src, "big.bin"), big, 0o644); err != nil {
		t.Fatal(err)
	}
	for name, mode := range map[string]os.FileMode{"empty": 0o444, "ro": 0o444, "bin/run.sh": 0o755} {
		if err := os.Chmod(filepath.Join(src, name), mode); err != nil {
			t.Fatal(err)
		}
	}
}

// published returns a fresh export root serving the awkward tree (twice
// published, so that snapshot 2 hard-links into snapshot 1).
func published(t *testing.T) (root string, n uint64) {
	t.Helper()
	dir := t.TempDir()
	src, root := filepath.Join(dir, "src"), filepath.Join(dir, "root")
	awkward(t, src)
	ctx := context.Background()
	for i := 0; i < 2; i++ {
		testutil.Touch(t, src, "changes", fmt.Sprint("round ", i))
		res, err := snapshot.Publish(ctx, export.New(fsys.OS(), root), src, snapshot.DefaultOptions())
		if err != nil {
			t.Fatal(err)
		}
		n = res.Snapshot
	}
	return root, n
}

func manifestPath(root string, n uint64) string {
	return filepath.Join(root, "snapshots", fmt.Sprintf("%d.manifest", n))
}

type verifyOut struct {
	Snapshot uint64 `json:"snapshot"`
	OK       bool   `json:"ok"`
	Problems []struct {
		Path   string `json:"path"`
		Reason string `json:"reason"`
	} `json:"problems"`
}

// verifyBoth runs the Python verify and tree.Verify on snapshot n and
// checks they name the same paths; it returns the Python exit code and paths.
func verifyBoth(t *testing.T, root string, n uint64, args ...string) (int, []string) {
	t.Helper()
	out, errOut, code := client(t, append([]string{"verify", root}, args...)...)
	var v verifyOut
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("verify output %q (stderr %q): %v", out, errOut, err)
	}
	var pyPaths []string
	for _, p := range v.Problems {
		pyPaths = append(pyPaths, p.Path)
	}
	f, err := os.Open(manifestPath(root, n))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, err := manifest.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, "snapshots", fmt.Sprint(n))
	problems, err := tree.Verify(context.Background(), fsys.OS(), dir, m, 2)
	if err != nil {
		t.Fatal(err)
	}
	var goPaths []string
	for _, p := range problems {
		goPaths = append(goPaths, manifest.Escape(p.Path))
	}
	if v.Snapshot != n || v.OK != (len(v.Problems) == 0) || !slices.Equal(pyPaths, goPaths) {
		t.Errorf("verify snapshot %d: python says %+v (exit %d), Go says %v", n, v, code, problems)
	}
	return code, pyPaths
}

type statusOut struct {
	Version   int        `json:"version"`
	Root      string     `json:"root"`
	Snapshot  uint64     `json:"snapshot"`
	Begin     uint64     `json:"begin"`
	End       uint64     `json:"end"`
	State     string     `json:"state"`
	Snapshots []uint64   `json:"snapshots"`
	Updated   *time.Time `json:"updated"`
	Problem   string     `json:"problem"`
}

// statusBoth compares the Python status with export.Root.Status().
func statusBoth(t *testing.T, root string) {
	t.Helper()
	want, err := export.New(fsys.OS(), root).Status()
	if err != nil {
		t.Fatalf("Go status: %v", err)
	}
	out, errOut, code := client(t, "status", root)
	var got statusOut
	if code != 0 || json.Unmarshal([]byte(out), &got) != nil {
		t.Fatalf("python status: exit %d, %q %q", code, out, errOut)
	}
	sameTime := (got.Updated == nil) == (want.Updated == nil) &&
		(got.Updated == nil || got.Updated.Equal(*want.Updated))
	if got.Version != want.Version || got.Root != want.Root || got.Snapshot != want.Snapshot ||
		got.Begin != want.Begin || got.End != want.End || got.State != want.State ||
		!slices.Equal(got.Snapshots, want.Snapshots) && len(got.Snapshots)+len(want.Snapshots) > 0 ||
		!sameTime || (got.Problem == "") != (want.Problem == "") {
		t.Errorf("status of %s:\npython %+v\nGo     %+v", root, got, want)
	}
}

func TestClientAcceptsWhatGoWrites(t *testing.T) {
	t.Parallel()
	root, n := published(t)
	if n != 2 {
		t.Fatalf("published snapshot %d, want 2", n)
	}
	for _, s := range []uint64{1, 2} {
		out, errOut, code := client(t, "check-manifest", manifestPath(root, s))
		f, _ := os.Open(manifestPath(root, s))
		_, count, err := manifest.Check(f)
		f.Close()
		if err != nil || code != 0 || !strings.Contains(out, fmt.Sprintf(": %d records", count)) {
			t.Errorf("check-manifest %d: exit %d, %q %q (Go: %d records, %v)", s, code, out, errOut, count, err)
		}
	}
	if code, paths := verifyBoth(t, root, n); code != 0 || len(paths) != 0 {
		t.Errorf("verify current: exit %d, %v", code, paths)
	}
	if code, _ := verifyBoth(t, root, 1, "1"); code != 0 {
		t.Errorf("verify 1: exit %d", code)
	}
	statusBoth(t, root)
}

func TestClientRefusesEditedManifest(t *testing.T) {
	t.Parallel()
	root, n := published(t)
	orig, err := os.ReadFile(manifestPath(root, n))
	if err != nil {
		t.Fatal(err)
	}
	// One byte in each part: header, snapshot line, a mode, a path, an
	// mtime, a hash, the count, the checksum, the final newline.
	footer := bytes.LastIndex(orig[:len(orig)-1], []byte("\n")) + 1
	at := map[string]int{
		"header": 3, "snapshot": bytes.IndexByte(orig, '\n') + 10,
		"mode":  bytes.Index(orig, []byte("\nf 0")) + 5,
		"path":  bytes.Index(orig, []byte("a%20b")) + 1,
		"mtime": bytes.Index(orig, []byte("\nd ")) + 10,
		"hash":  bytes.Index(orig, []byte(" e3b0c44298fc1c14")) + 5, // the empty file's SHA-256
		"count": footer + 4, "checksum": len(orig) - 3, "newline": len(orig) - 1,
	}
	for name, i := range at {
		bad := bytes.Clone(orig)
		bad[i] ^= 0x01
		if err := os.WriteFile(manifestPath(root, n), bad, 0o644); err != nil {
			t.Fatal(err)
		}
		if _, _, err := manifest.Check(bytes.NewReader(bad)); err == nil {
			t.Fatalf("%s: test bug: Go accepts the edited manifest", name)
		}
		if _, errOut, code := client(t, "check-manifest", manifestPath(root, n)); code != 7 {
			t.Errorf("check-manifest, byte %d (%s) edited: exit %d (%q), want 7", i, name, code, errOut)
		}
		if _, _, code := client(t, "verify", root); code != 7 {
			t.Errorf("verify, byte %d (%s) edited: exit %d, want 7", i, name, code)
		}
	}
}

// TestClientAgreesOnHostileManifests edits records and recomputes the
// checksum, so that only the record rules can catch the edit; Go's
// manifest.Check and the Python client must agree on every one.
func TestClientAgreesOnHostileManifests(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	reseal := func(version string, records ...string) []byte {
		var b bytes.Buffer
		b.WriteString("seqmirror-manifest " + version + "\nsnapshot 3\n")
		for _, r := range records {
			b.WriteString(r + "\n")
		}
		fmt.Fprintf(&b, "end %d %016x\n", len(records), xxhash.Sum64(b.Bytes()))
		return b.Bytes()
	}
	const h = " 0123456789abcdef "
	cases := map[string][]string{
		"ok":               {"d 0755 0 1 - a", "f 0644 1 -5" + h + "a/b", "l 0777 4 0 - a/c ../x", "f 0444 0 0" + h + "a%20b"},
		"ok empty":         {},
		"ok dots in name":  {"f 0644 1 1" + h + "..a", "f 0644 1 1" + h + "a.."},
		"ok odd symlink":   {"l 0777 10 0 - x /../x//y/."},
		"ok max size":      {"f 0644 1099511627776 1" + h + "x"},
		"ok symlink mode":  {"l 0755 1 0 - x y"},
		"dotdot":           {"d 0755 0 1 - a", "f 0644 1 1" + h + "a/../b"},
		"absolute":         {"f 0644 1 1" + h + "/a"},
		"order":            {"f 0644 1 1" + h + "b", "f 0644 1 1" + h + "a"},
		"slash order":      {"f 0644 1 1" + h + "a!", "d 0755 0 1 - a"},
		"duplicate":        {"f 0644 1 1" + h + "a", "f 0644 1 1" + h + "a"},
		"below symlink":    {"l 0777 1 0 - a b", "f 0644 1 1" + h + "a/x"},
		"below file":       {"f 0644 1 1" + h + "a", "f 0644 1 1" + h + "a/x"},
		"no parent":        {"f 0644 1 1" + h + "a/x"},
		"needless escape":  {"f 0644 1 1" + h + "%61"},
		"lowercase escape": {"f 0644 1 1" + h + "%c3%a9"},
		"raw space":        {"f 0644 1 1" + h + "a b"},
		"nul":              {"f 0644 1 1" + h + "a%00"},
		"mode 1644":        {"f 1644 1 1" + h + "a"},
		"too big":          {"f 0644 1099511627777 1" + h + "x"},
		"symlink size":     {"l 0777 2 0 - x y"},
		"symlink mtime":    {"l 0777 1 5 - x y"},
		"empty target":     {"l 0777 0 0 - x "},
		"dir size":         {"d 0755 4096 1 - a"},
		"dir hash":         {"d 0755 0 1" + h + "a"},
		"mtime -0":         {"f 0644 1 -0" + h + "a"},
		"mtime 01":         {"f 0644 1 01" + h + "a"},
		"ok mtime min":     {"f 0644 1 -9223372036854775808" + h + "a"},
		"mtime below min":  {"f 0644 1 -9223372036854775809" + h + "a"},
		"upper hash":       {"f 0644 1 1 0123456789ABCDEF a"},
		"trailing space":   {"f 0644 1 1" + h + "a "},
		"blank record":     {""},
	}
	// Version 2: the content field is a SHA-256, 64 lowercase hex digits.
	const d = " 5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03 "
	v2 := map[string][]string{
		"ok v2":              {"d 0755 0 1 - a", "f 0644 1 -5" + d + "a/b", "l 0777 4 0 - a/c ../x"},
		"ok v2 empty":        {},
		"v2 xxhash field":    {"f 0644 1 1" + h + "a"},
		"v2 zero digest":     {"f 0644 1 1 " + strings.Repeat("0", 64) + " a"},
		"v2 upper digest":    {"f 0644 1 1" + strings.ToUpper(d) + "a"},
		"v2 short digest":    {"f 0644 1 1" + d[:64] + " a"},
		"v2 dir with digest": {"d 0755 0 1" + d + "a"},
		"v2 dotdot":          {"d 0755 0 1 - a", "f 0644 1 1" + d + "a/../b"},
	}
	cases["v1 with a digest"] = []string{"f 0644 1 1" + d + "a"}
	for name, records := range v2 {
		cases["2:"+name] = records
	}
	for key, records := range cases {
		version, name := "1", key
		if v, n, ok := strings.Cut(key, ":"); ok {
			version, name = v, n
		}
		data := reseal(version, records...)
		file := filepath.Join(dir, "3.manifest")
		if err := os.WriteFile(file, data, 0o644); err != nil {
			t.Fatal(err)
		}
		_, _, goErr := manifest.Check(bytes.NewReader(data))
		_, errOut, code := client(t, "check-manifest", file)
		if (goErr == nil) != (code == 0) || code != 0 && code != 7 {
			t.Errorf("%s: Go says %v, python exits %d (%q)", name, goErr, code, errOut)
		}
		if strings.HasPrefix(name, "ok") != (goErr == nil) {
			t.Errorf("%s: test bug: Go says %v", name, goErr)
		}
	}
}

func TestClientVerifyFindsDamage(t *testing.T) {
	t.Parallel()
	root, n := published(t)
	snap := filepath.Join(root, "snapshots", fmt.Sprint(n))
	// Same size, same mtime: only the content hash can tell.
	victim := filepath.Join(snap, "café", "ünï cödé.txt")
	fi, err := os.Stat(victim)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(victim, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(victim, []byte("NON-ASCII UTF-8\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(victim, fi.ModTime(), fi.ModTime()); err != nil {
		t.Fatal(err)
	}
	code, paths := verifyBoth(t, root, n)
	if code != 1 || !slices.Equal(paths, []string{"caf%C3%A9/%C3%BCn%C3%AF%20c%C3%B6d%C3%A9.txt"}) {
		t.Errorf("content changed: exit %d, problems %q", code, paths)
	}
	// A mode change, an extra file and a missing symlink.
	if err := os.Chmod(filepath.Join(snap, "bin", "run.sh"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(snap, "new\nline.orig"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(snap, "deep", "dangling")); err != nil {
		t.Fatal(err)
	}
	code, paths = verifyBoth(t, root, n)
	if code != 1 || len(paths) != 4 {
		t.Errorf("four differences: exit %d, problems %q", code, paths)
	}
}

func TestClientStatusAgrees(t *testing.T) {
	t.Parallel()
	const max = "18446744073709551615\n"
	cases := map[string]func(root string) error{
		"fresh":    func(string) error { return nil },
		"updating": func(r string) error { return os.WriteFile(filepath.Join(r, "seq", "begin"), []byte("3\n"), 0o644) },
		"end ahead": func(r string) error {
			return os.WriteFile(filepath.Join(r, "seq", "end"), []byte("9\n"), 0o644)
		},
		"no seq":  func(r string) error { return os.RemoveAll(filepath.Join(r, "seq")) },
		"max seq": func(r string) error { return writeSeq(r, max, max) },
		"empty":   func(r string) error { return os.Remove(filepath.Join(r, "current")) },
		"empty while updating": func(r string) error {
			return errors.Join(os.Remove(filepath.Join(r, "current")), writeSeq(r, "3\n", "2\n"))
		},
		"torn: manifest gone":  func(r string) error { return os.Remove(manifestPath(r, 2)) },
		"torn while updating":  func(r string) error { return errors.Join(os.Remove(manifestPath(r, 2)), writeSeq(r, "3\n", "2\n")) },
		"torn: dangling":       func(r string) error { return setCurrent(r, "snapshots/9") },
		"torn: not snapshots/": func(r string) error { return setCurrent(r, "./snapshots/2") },
		"torn: leading zero":   func(r string) error { return setCurrent(r, "snapshots/02") },
		"torn: out of range":   func(r string) error { return setCurrent(r, "snapshots/18446744073709551616") },
		"torn: highest number": func(r string) error { return setCurrent(r, "snapshots/18446744073709551615") },
		"torn: not a symlink": func(r string) error {
			return errors.Join(os.Remove(filepath.Join(r, "current")), os.Mkdir(filepath.Join(r, "current"), 0o755))
		},
		"incomplete snapshots": func(r string) error {
			return errors.Join(os.Mkdir(filepath.Join(r, "snapshots", "7"), 0o755),
				os.WriteFile(manifestPath(r, 8), nil, 0o644), os.Remove(manifestPath(r, 1)))
		},
	}
	for name, mutate := range cases {
		root, _ := published(t)
		if err := mutate(root); err != nil {
			t.Fatal(name, err)
		}
		t.Run(name, func(t *testing.T) { statusBoth(t, root) })
	}

	// Garbage in seq/end: both must refuse (seqmirror's exit code 7).
	root, _ := published(t)
	for _, garbage := range []string{"garbage\x00\xff\n", "", "1", "01\n", " 1\n", "1 \n", "1\r\n",
		"+1\n", "-1\n", "0x1\n", "1\n\n", "18446744073709551616\n"} {
		if err := os.WriteFile(filepath.Join(root, "seq", "end"), []byte(garbage), 0o644); err != nil {
			t.Fatal(err)
		}
		_, goErr := export.New(fsys.OS(), root).Status()
		out, _, code := client(t, "status", root)
		if goErr == nil || code != 7 {
			t.Errorf("seq/end %q: Go status error %v; python exit %d, %q", garbage, goErr, code, out)
		}
	}
}

func writeSeq(root, begin, end string) error {
	return errors.Join(os.WriteFile(filepath.Join(root, "seq", "begin"), []byte(begin), 0o644),
		os.WriteFile(filepath.Join(root, "seq", "end"), []byte(end), 0o644))
}

func setCurrent(root, target string) error {
	cur := filepath.Join(root, "current")
	return errors.Join(os.Remove(cur), os.Symlink(target, cur))
}
