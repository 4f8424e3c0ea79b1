package rsync_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/seqmirror/seqmirror/internal/fsys"
	"github.com/seqmirror/seqmirror/seqfile"
	"github.com/seqmirror/seqmirror/testutil"
)

// blockFromDoc returns the sh code block after "`LABEL`:" in
// docs/classic.md.
func blockFromDoc(tb testing.TB, label string) string {
	tb.Helper()
	return testutil.DocBlock(tb, "docs/classic.md", label)
}

// TestClassicScriptsLint checks the scripts docs/classic.md gives with sh -n
// and shellcheck.
func TestClassicScriptsLint(t *testing.T) {
	sh := testutil.RequireBinary(t, "sh")
	sc := testutil.RequireBinary(t, "shellcheck") // make test installs it
	for _, label := range []string{"seq-update", "hooks/pre-receive", "hooks/post-receive"} {
		p := filepath.Join(t.TempDir(), "script")
		if err := os.WriteFile(p, []byte(blockFromDoc(t, label)), 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command(sh, "-n", p).CombinedOutput(); err != nil {
			t.Errorf("%s: sh -n: %v\n%s", label, err, out)
		}
		if out, err := exec.Command(sc, "-s", "sh", p).CombinedOutput(); err != nil {
			t.Errorf("%s: shellcheck: %v\n%s", label, err, out)
		}
	}
}

// gitServer is a classic master set up as docs/classic.md says: bare
// repositories below dir, counters in seq, seq-update on the PATH.
type gitServer struct {
	dir, seq, bare, seqUpdate string
}

// newGitServer installs the documented seq-update (on the PATH, for the
// hooks), a bare repository proj.git with the documented setup and hooks,
// and counters at 0. configs are extra `git config` pairs for the bare
// repository.
func newGitServer(tb testing.TB, dir string, configs ...string) *gitServer {
	tb.Helper()
	testutil.RequireBinary(tb, "flock")
	sh := testutil.RequireBinary(tb, "sh")
	s := &gitServer{dir: dir, seq: filepath.Join(dir, "seq"), bare: filepath.Join(dir, "proj.git"), seqUpdate: filepath.Join(dir, "bin", "seq-update")}
	bin := filepath.Dir(s.seqUpdate)
	if err := os.MkdirAll(bin, 0o755); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(s.seqUpdate, []byte(blockFromDoc(tb, "seq-update")), 0o755); err != nil {
		tb.Fatal(err)
	}
	tb.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	if err := os.MkdirAll(s.bare, 0o755); err != nil {
		tb.Fatal(err)
	}
	git(tb, s.bare, "init", "-q", "--bare", "-b", "main")
	setup := strings.ReplaceAll(blockFromDoc(tb, "repository setup"), "/srv/git/seq", s.seq)
	cmd := exec.Command(sh, "-ec", setup)
	cmd.Dir = s.bare
	if out, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("repository setup:\n%s\n%v\n%s", setup, err, out)
	}
	for i := 0; i+1 < len(configs); i += 2 {
		git(tb, s.bare, "config", configs[i], configs[i+1])
	}
	for _, h := range []string{"pre-receive", "post-receive"} {
		if err := os.WriteFile(filepath.Join(s.bare, "hooks", h), []byte(blockFromDoc(tb, "hooks/"+h)), 0o755); err != nil {
			tb.Fatal(err)
		}
	}
	writeSeq(tb, dir, "begin", 0)
	writeSeq(tb, dir, "end", 0)
	return s
}

func (s *gitServer) counters(tb testing.TB) seqfile.Pair {
	tb.Helper()
	p, err := seqfile.Counters(fsys.OS(), s.seq)
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

func git(tb testing.TB, dir string, args ...string) string {
	tb.Helper()
	cmd := exec.Command(testutil.RequireBinary(tb, "git"), args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.org",
		"GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.org", "GIT_CONFIG_NOSYSTEM=1", "HOME="+dir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		tb.Fatalf("git %v in %s: %v\n%s", args, dir, err, out)
	}
	return string(out)
}

// TestClassicGitHooks: a git server with the documented hook pair is a
// classic master; its mirror's repositories pass git fsck.
func TestClassicGitHooks(t *testing.T) {
	tmp := t.TempDir()
	srv := filepath.Join(tmp, "git")
	gs := newGitServer(t, srv)
	bare, seqDir := gs.bare, gs.seq
	work := testutil.GitRepo(t, filepath.Join(tmp, "work"), 3)
	git(t, work, "push", "-q", bare, "main")
	checkPair := func(want uint64) {
		t.Helper()
		p, err := seqfile.Counters(fsys.OS(), seqDir)
		if err != nil || p.Begin != want || p.End != want {
			t.Fatalf("after push: seq %+v, %v; want begin = end = %d", p, err, want)
		}
	}
	checkPair(1)

	port := testutil.StartRsyncd(t, map[string]string{"git": srv})
	mir := filepath.Join(tmp, "mirror")
	args := []string{"--classic", "--upstream", fmt.Sprintf("rsync://127.0.0.1:%d/git", port), "--root", mir}
	if code, out, errs := runMirror(t, args...); code != 0 || strings.TrimSpace(out) != "1" {
		t.Fatalf("classic sync: exit %d %s %s", code, out, errs)
	}
	testutil.GitFsck(t, filepath.Join(mir, "current", "proj.git"))

	gitCommit(t, work, "after mirroring")
	git(t, work, "push", "-q", bare, "main")
	checkPair(2)
	statusArgs := []string{"status", "--upstream", args[2], "--root", mir}
	if code, out, errs := runMirror(t, statusArgs...); code != 0 || !strings.Contains(out, "state      stale\n") || !strings.Contains(out, "at seq/end 2 (the served snapshot was copied at 1)") {
		t.Fatalf("status of a classic mirror behind its master: exit %d\n%s%s", code, out, errs)
	}
	if code, out, errs := runMirror(t, args...); code != 0 || strings.TrimSpace(out) != "2" {
		t.Fatalf("classic sync: exit %d %s %s", code, out, errs)
	}
	testutil.GitFsck(t, filepath.Join(mir, "current", "proj.git"))
	head := strings.TrimSpace(git(t, bare, "rev-parse", "main"))
	if got := strings.TrimSpace(git(t, filepath.Join(mir, "current", "proj.git"), "-c", "safe.directory=*", "rev-parse", "main")); got != head {
		t.Fatalf("mirrored main is %s, master has %s", got, head)
	}
	verifyServed(t, mir)
}

// TestClassicRefusesSnapshotMaster: --classic against a master that
// publishes snapshots copies nothing and says to drop --classic.
func TestClassicRefusesSnapshotMaster(t *testing.T) {
	tmp := t.TempDir()
	src, master, mir := filepath.Join(tmp, "src"), filepath.Join(tmp, "master"), filepath.Join(tmp, "mirror")
	testutil.WriteTree(t, src, map[string]string{"a": "x"})
	publish(t, master, src, 3)
	port := testutil.StartRsyncd(t, map[string]string{"master": master})
	code, out, errs := runMirror(t, "--classic", "--upstream", fmt.Sprintf("rsync://127.0.0.1:%d/master", port), "--root", mir)
	if code != 1 || !strings.Contains(errs, "upstream publishes snapshots") || !strings.Contains(errs, "hint: ") {
		t.Fatalf("exit %d, want 1 with a hint\n%s%s", code, out, errs)
	}
	if _, err := os.Lstat(filepath.Join(mir, "current")); err == nil {
		t.Fatal("a snapshot was made")
	}
}

// TestClassicWritersShareLock: a `seq-update run` job and a push that
// overlap keep the tree marked busy until both are done, and the counters
// never go back (docs/classic.md: one lock, updates in flight counted).
func TestClassicWritersShareLock(t *testing.T) {
	sh := testutil.RequireBinary(t, "sh")
	tmp := t.TempDir()
	gs := newGitServer(t, filepath.Join(tmp, "git"))
	work := testutil.GitRepo(t, filepath.Join(tmp, "work"), 2)
	git(t, work, "push", "-q", gs.bare, "main")
	port := testutil.StartRsyncd(t, map[string]string{"git": gs.dir})
	mir := filepath.Join(tmp, "mirror")
	sync := func(want int) {
		t.Helper()
		code, out, errs := runMirror(t, "--classic", "--upstream", fmt.Sprintf("rsync://127.0.0.1:%d/git", port),
			"--root", mir, "--quiet", "--retries", "0", "--backoff", "0")
		if code != want {
			t.Fatalf("classic sync: exit %d, want %d\n%s%s", code, want, out, errs)
		}
	}
	sync(0)

	// A job that changes the tree until told to stop, run through the wrapper.
	started, stop := filepath.Join(tmp, "started"), filepath.Join(tmp, "stop")
	job := exec.Command(sh, gs.seqUpdate, gs.seq, "run", sh, "-c",
		`echo half >"$2"; : >"$0"; while [ ! -e "$1" ]; do sleep 0.02; done; echo whole >"$2"`,
		started, stop, filepath.Join(gs.dir, "other.txt"))
	var jobOut strings.Builder
	job.Stdout, job.Stderr = &jobOut, &jobOut
	if err := job.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = os.WriteFile(stop, nil, 0o644); _ = job.Wait() }()
	for i := 0; ; i++ {
		if _, err := os.Stat(started); err == nil {
			break
		}
		if i > 500 {
			t.Fatalf("the job did not start:\n%s", jobOut.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	during := gs.counters(t)

	// A push during the job: when it is done, the job still is not.
	gitCommit(t, work, "during the job")
	git(t, work, "push", "-q", gs.bare, "main")
	p := gs.counters(t)
	if p.Idle() || p.Begin <= during.Begin || p.End < during.End {
		t.Fatalf("after a push during a job: seq %+v (%+v when the job started); want begin > end, neither gone back", p, during)
	}
	sync(5) // the tree is busy: the mirror waits

	if err := os.WriteFile(stop, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := job.Wait(); err != nil {
		t.Fatalf("seq-update run: %v\n%s", err, jobOut.String())
	}
	if q := gs.counters(t); !q.Idle() || q.End != p.Begin {
		t.Fatalf("after the job: seq %+v; want begin = end = %d", q, p.Begin)
	}
	sync(0)
	testutil.GitFsck(t, filepath.Join(mir, "current", "proj.git"))
	if b, err := os.ReadFile(filepath.Join(mir, "current", "other.txt")); err != nil || string(b) != "whole\n" {
		t.Fatalf("mirrored other.txt = %q, %v", b, err)
	}

	// A failing job still closes its bracket and passes its exit code on.
	err := exec.Command(sh, gs.seqUpdate, gs.seq, "run", "false").Run()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("seq-update run false: %v, want exit 1", err)
	}
	if q := gs.counters(t); !q.Idle() || q.End != p.Begin+1 {
		t.Fatalf("after a failed job: seq %+v; want begin = end = %d", q, p.Begin+1)
	}
}

// TestClassicGitMaintenanceInsideBracket: git's auto gc (here after every
// second push: gc.autoPackLimit=2) runs before post-receive sets seq/end,
// never after, so a mirror never copies packs being replaced.
func TestClassicGitMaintenanceInsideBracket(t *testing.T) {
	tmp := t.TempDir()
	gs := newGitServer(t, filepath.Join(tmp, "git"), "gc.autoPackLimit", "2", "receive.unpackLimit", "1")
	work := testutil.GitRepo(t, filepath.Join(tmp, "work"), 1)
	port := testutil.StartRsyncd(t, map[string]string{"git": gs.dir})
	mir := filepath.Join(tmp, "mirror")
	const pushes = 4
	for i := range pushes {
		gitCommit(t, work, fmt.Sprintf("push %d", i))
		git(t, work, "push", "-q", gs.bare, "main")
		settleGit(t, gs.bare)
		if p := gs.counters(t); !p.Idle() {
			t.Fatalf("push %d: seq %+v not idle", i, p)
		}
		end, err := os.Stat(filepath.Join(gs.seq, "end"))
		if err != nil {
			t.Fatal(err)
		}
		if p, at := newestBelow(t, gs.bare); at.After(end.ModTime()) {
			t.Fatalf("push %d: %s changed at %s, after seq/end was written (%s)", i, p, at.Format(time.RFC3339Nano), end.ModTime().Format(time.RFC3339Nano))
		}
		if code, out, errs := runMirror(t, "--classic", "--upstream", fmt.Sprintf("rsync://127.0.0.1:%d/git", port), "--root", mir, "--quiet"); code != 0 {
			t.Fatalf("classic sync: exit %d\n%s%s", code, out, errs)
		}
		testutil.GitFsck(t, filepath.Join(mir, "current", "proj.git"))
	}
	packs, err := filepath.Glob(filepath.Join(gs.bare, "objects", "pack", "*.pack"))
	if err != nil || len(packs) >= pushes {
		t.Fatalf("%d packs after %d pushes: git's auto gc never ran (%v)", len(packs), pushes, err)
	}
}

// settleGit waits for a detached git gc (gc.pid) in the repository at dir.
func settleGit(tb testing.TB, dir string) {
	tb.Helper()
	time.Sleep(100 * time.Millisecond)
	for i := 0; i < 500; i++ {
		if _, err := os.Stat(filepath.Join(dir, "gc.pid")); err != nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	tb.Fatalf("git gc in %s did not finish", dir)
}

// newestBelow returns the path below dir (dir included) with the newest
// mtime, and that mtime.
func newestBelow(tb testing.TB, dir string) (string, time.Time) {
	tb.Helper()
	var newest string
	var at time.Time
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if fi.ModTime().After(at) {
			newest, at = p, fi.ModTime()
		}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	return newest, at
}
