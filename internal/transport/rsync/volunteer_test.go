package rsync_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/seqmirror/seqmirror/internal/export"
	"github.com/seqmirror/seqmirror/internal/fsys"
	"github.com/seqmirror/seqmirror/internal/mirror"
	"github.com/seqmirror/seqmirror/internal/transport"
	"github.com/seqmirror/seqmirror/seqfile"
	"github.com/seqmirror/seqmirror/testutil"
)

var volunteerScript = testutil.RepoFile("docs/volunteer-mirror.sh")

func TestVolunteerScriptLint(t *testing.T) {
	sh := testutil.RequireBinary(t, "sh")
	if out, err := exec.Command(sh, "-n", volunteerScript).CombinedOutput(); err != nil {
		t.Fatalf("sh -n: %v\n%s", err, out)
	}
	if dash, err := exec.LookPath("dash"); err == nil {
		if out, err := exec.Command(dash, "-n", volunteerScript).CombinedOutput(); err != nil {
			t.Fatalf("dash -n: %v\n%s", err, out)
		}
	}
	sc := testutil.RequireBinary(t, "shellcheck") // make test installs it
	if out, err := exec.Command(sc, "-s", "sh", volunteerScript).CombinedOutput(); err != nil {
		t.Fatalf("shellcheck: %v\n%s", err, out)
	}
}

// runVolunteer runs the script under sh (dash on Debian: no bash-isms).
func runVolunteer(tb testing.TB, up, root string, env ...string) (int, string) {
	tb.Helper()
	sh := testutil.RequireBinary(tb, "sh")
	testutil.RequireBinary(tb, "rsync")
	cmd := exec.Command(sh, volunteerScript, up, root)
	cmd.Env = append(append(os.Environ(), "BACKOFF=0"), env...)
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), string(out)
	}
	if err != nil {
		tb.Fatalf("run %s: %v", volunteerScript, err)
	}
	return 0, string(out)
}

func TestVolunteerScript(t *testing.T) {
	tmp := t.TempDir()
	src, master, vol := filepath.Join(tmp, "src"), filepath.Join(tmp, "master"), filepath.Join(tmp, "volunteer")
	paths := testutil.GenTree(t, src, 30, 6)
	testutil.WriteTree(t, src, map[string]string{"link": "->d00", "sp ace/x": "y"})
	testutil.GitRepo(t, filepath.Join(src, "repo"), 3)
	publish(t, master, src, 3)
	port := testutil.StartRsyncd(t, map[string]string{"master": master})
	up := fmt.Sprintf("rsync://127.0.0.1:%d/master", port)

	if code, out := runVolunteer(t, up, vol); code != 0 {
		t.Fatalf("first run: exit %d\n%s", code, out)
	}
	if n := verifyServed(t, vol); n != 1 {
		t.Fatalf("serves %d", n)
	}
	testutil.GitFsck(t, filepath.Join(vol, "current", "repo"))
	if target, err := os.Readlink(filepath.Join(vol, "current")); err != nil || target != "snapshots/1" {
		t.Fatalf("current -> %q, %v; want the relative snapshots/1", target, err)
	}
	checkSeq := func(want uint64) {
		t.Helper()
		p, err := seqfile.Counters(fsys.OS(), filepath.Join(vol, "seq"))
		if err != nil || p.Begin != want || p.End != want {
			t.Fatalf("volunteer seq %+v, %v; want begin = end = %d", p, err, want)
		}
	}
	checkSeq(1)
	checkPointer := func(want uint64) {
		t.Helper()
		if p, err := seqfile.Read(fsys.OS(), filepath.Join(vol, "seq", seqfile.Current)); err != nil || p != want {
			t.Fatalf("volunteer seq/current = %d, %v; want %d", p, err, want)
		}
	}
	checkPointer(1)

	// A root from before seq/current gets it from its next run, a no-op.
	if err := os.Remove(filepath.Join(vol, "seq", seqfile.Current)); err != nil {
		t.Fatal(err)
	}
	if code, out := runVolunteer(t, up, vol, "QUIET=1"); code != 0 || out != "" {
		t.Fatalf("no-op run: exit %d, output %q", code, out)
	}
	checkSeq(1)
	checkPointer(1)

	testutil.Touch(t, src, paths[1], "changed")
	publish(t, master, src, 3)
	if code, out := runVolunteer(t, up, vol); code != 0 {
		t.Fatalf("second run: exit %d\n%s", code, out)
	}
	if n := verifyServed(t, vol); n != 2 {
		t.Fatalf("serves %d", n)
	}
	checkSeq(2)
	checkPointer(2)
	same := filepath.Join("d00", "s00", "f00000.dat")
	if inode(t, filepath.Join(vol, "snapshots/1", same)) != inode(t, filepath.Join(vol, "snapshots/2", same)) {
		t.Error("unchanged file not hard-linked (--link-dest)")
	}

	// The volunteer's root is a proper export root: mirror-sync reads it.
	res, err := mirror.Sync(context.Background(), export.New(fsys.OS(), filepath.Join(tmp, "tier3")), openLocal(t, vol), mirror.DefaultOptions())
	if err != nil || res.Snapshot != 2 {
		t.Fatalf("mirror-sync from the volunteer: %+v %v", res, err)
	}

	// A master stuck mid-update: retry, then exit 5, still serving 2.
	testutil.Touch(t, src, paths[2], "changed again")
	publish(t, master, src, 3)
	if err := seqfile.Write(fsys.OS(), filepath.Join(master, "seq", "begin"), 99); err != nil {
		t.Fatal(err)
	}
	code, out := runVolunteer(t, up, vol, "RETRIES=1")
	if code != 5 || !strings.Contains(out, "retrying") {
		t.Fatalf("busy master: exit %d, want 5\n%s", code, out)
	}
	if n := verifyServed(t, vol); n != 2 {
		t.Fatalf("serves %d", n)
	}

	// Pruning keeps KEEP snapshots.
	if err := seqfile.Write(fsys.OS(), filepath.Join(master, "seq", "begin"), 3); err != nil {
		t.Fatal(err)
	}
	if code, out := runVolunteer(t, up, vol, "KEEP=2", "MIN_AGE=0"); code != 0 {
		t.Fatalf("exit %d\n%s", code, out)
	}
	snaps, err := export.New(fsys.OS(), vol).Snapshots()
	if err != nil || fmt.Sprint(snaps) != "[2 3]" {
		t.Fatalf("snapshots %v, %v; want [2 3]", snaps, err)
	}

	// A dead master: exit 5.
	if code, out := runVolunteer(t, "rsync://127.0.0.1:1/master", vol, "RSYNC_OPTS=--contimeout=2"); code != 5 {
		t.Fatalf("dead master: exit %d, want 5\n%s", code, out)
	}
}

func openLocal(tb testing.TB, dir string) *transport.Local {
	tb.Helper()
	l, err := transport.NewLocal(fsys.OS(), dir)
	if err != nil {
		tb.Fatal(err)
	}
	return l
}

// TestVolunteerPruneKeepsModes: pruning a snapshot must not change a file
// hard-linked (--link-dest) into the served one; MIN_AGE holds back a
// snapshot superseded too recently; the script writes status.json.
func TestVolunteerPruneKeepsModes(t *testing.T) {
	tmp := t.TempDir()
	src, master, vol := filepath.Join(tmp, "src"), filepath.Join(tmp, "master"), filepath.Join(tmp, "volunteer")
	testutil.WriteTree(t, src, map[string]string{"ro.txt": "read only", "a.txt": "one", "d/x": "x"})
	if err := os.Chmod(filepath.Join(src, "ro.txt"), 0o444); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(src, "d"), 0o555); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Chmod(filepath.Join(src, "d"), 0o755) })
	publish(t, master, src, 3)
	port := testutil.StartRsyncd(t, map[string]string{"master": master})
	up := fmt.Sprintf("rsync://127.0.0.1:%d/master", port)
	run := func(want int, env ...string) string {
		t.Helper()
		code, out := runVolunteer(t, up, vol, env...)
		if code != want {
			t.Fatalf("exit %d, want %d\n%s", code, want, out)
		}
		return out
	}
	run(0)
	testutil.Touch(t, src, "a.txt", "two")
	publish(t, master, src, 3)
	run(0, "KEEP=1", "MIN_AGE=0")
	if n := verifyServed(t, vol); n != 2 {
		t.Fatalf("serves %d", n)
	}
	checkSnapshots(t, vol, "[2]")
	checkStatusFile(t, vol, up)

	// The default MIN_AGE (1h) keeps snapshot 2, superseded just now.
	testutil.Touch(t, src, "a.txt", "three")
	publish(t, master, src, 3)
	run(0, "KEEP=1")
	checkSnapshots(t, vol, "[2 3]")
	verifyServed(t, vol)
	run(0, "KEEP=1", "MIN_AGE=2h")
	checkSnapshots(t, vol, "[2 3]")
	run(0, "KEEP=1", "MIN_AGE=0s")
	checkSnapshots(t, vol, "[3]")
	verifyServed(t, vol)
	run(2, "MIN_AGE=1y")

	// A failed run notes last_error; the next good run (a no-op) clears it.
	if code, out := runVolunteer(t, "rsync://127.0.0.1:1/master", vol, "RSYNC_OPTS=--contimeout=2"); code != 5 {
		t.Fatalf("dead master: exit %d, want 5\n%s", code, out)
	}
	s := readStatusFile(t, vol)
	if s.LastError == "" || s.LastErrorAt == nil || s.Snapshot != 3 {
		t.Fatalf("status.json after a failure: %+v", s)
	}
	run(0)
	if s := checkStatusFile(t, vol, up); s.LastError != "" || s.LastErrorAt != nil {
		t.Fatalf("status.json after a good run: %+v", s)
	}

	// A torn root (current points elsewhere) is reported as the Go tools do.
	cur := filepath.Join(vol, "current")
	if err := os.Remove(cur); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("elsewhere", cur); err != nil {
		t.Fatal(err)
	}
	run(1)
	live, _ := export.New(fsys.OS(), vol).Status()
	if s := readStatusFile(t, vol); s.State != export.StateTorn || live.State != export.StateTorn || s.Problem == "" || s.LastError == "" {
		t.Fatalf("status.json of a torn root: %+v", s)
	}
}

func checkSnapshots(tb testing.TB, root, want string) {
	tb.Helper()
	snaps, err := export.New(fsys.OS(), root).Snapshots()
	if err != nil || fmt.Sprint(snaps) != want {
		tb.Fatalf("snapshots %v, %v; want %s", snaps, err, want)
	}
}

func readStatusFile(tb testing.TB, root string) export.Status {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join(root, export.StatusName))
	if err != nil {
		tb.Fatal(err)
	}
	var s export.Status
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		tb.Fatalf("status.json: %v\n%s", err, b)
	}
	return s
}

// checkStatusFile checks that the status.json the script wrote agrees with
// the live state the Go tools compute.
func checkStatusFile(tb testing.TB, root, up string) export.Status {
	tb.Helper()
	got := readStatusFile(tb, root)
	live, err := export.New(fsys.OS(), root).Status()
	if err != nil {
		tb.Fatal(err)
	}
	if got.Updated == nil || live.Updated == nil || got.Updated.Sub(*live.Updated).Abs() > 5*time.Second {
		tb.Errorf("updated %v, current flipped at %v", got.Updated, live.Updated)
	}
	live.Upstream = up
	got.Updated, live.Updated = nil, nil
	got.LastError, got.LastErrorAt, live.LastError, live.LastErrorAt = "", nil, "", nil
	if fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", live) {
		tb.Errorf("status.json %+v\nlive        %+v", got, live)
	}
	return readStatusFile(tb, root)
}

// A daemon that answers and refuses (an unknown module; a refused option)
// needs a human: the volunteer script exits 8 at once, quoting rsync,
// without its backoff (which took 30+60+120 s and then said the snapshot
// "changed or vanished").
func TestVolunteerRefusalsExit8(t *testing.T) {
	src, master := t.TempDir(), t.TempDir()
	testutil.WriteTree(t, src, map[string]string{"a": "1"})
	publish(t, master, src, 3)
	d := testutil.StartRsyncdConfig(t, fmt.Sprintf("\n[m]\n  path = %s\n  refuse options = checksum\n", master))
	for _, tc := range []struct {
		name  string
		up    string
		env   []string
		quote string
	}{
		{name: "unknown module", up: d.URL("nope"), quote: "@ERROR: Unknown module"},
		{name: "refused option", up: d.URL("m"), env: []string{"RSYNC_OPTS=--checksum"}, quote: "configured to refuse"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			code, out := runVolunteer(t, tc.up, filepath.Join(t.TempDir(), "vol"), append(tc.env, "BACKOFF=5")...)
			if code != 8 || !strings.Contains(out, tc.quote) || !strings.Contains(out, "refused the request") {
				t.Fatalf("exit %d, want 8 quoting %q:\n%s", code, tc.quote, out)
			}
			if d := time.Since(start); d > 4*time.Second {
				t.Errorf("took %s: a refusal must not be retried", d)
			}
		})
	}
}
