package rsync_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/seqmirror/seqmirror/fsys"
	"github.com/seqmirror/seqmirror/seqfile"
	"github.com/seqmirror/seqmirror/testutil"
)

// hookFromDoc returns the sh code block that follows "`hooks/NAME`:" in
// docs/classic.md, so the documented hooks are the tested ones.
func hookFromDoc(tb testing.TB, name string) string {
	tb.Helper()
	b, err := os.ReadFile("../../docs/classic.md")
	if err != nil {
		tb.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(b), "`hooks/"+name+"`:")
	if !ok {
		tb.Fatalf("docs/classic.md has no hooks/%s", name)
	}
	_, rest, ok = strings.Cut(rest, "```sh\n")
	body, _, ok2 := strings.Cut(rest, "```")
	if !ok || !ok2 {
		tb.Fatalf("docs/classic.md: no code block after hooks/%s", name)
	}
	return body
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
	testutil.RequireBinary(t, "flock")
	tmp := t.TempDir()
	srv := filepath.Join(tmp, "git")
	bare := filepath.Join(srv, "proj.git")
	seqDir := filepath.Join(srv, "seq")
	if err := os.MkdirAll(bare, 0o755); err != nil {
		t.Fatal(err)
	}
	git(t, bare, "init", "-q", "--bare", "-b", "main")
	git(t, bare, "config", "seqmirror.seqdir", seqDir)
	for _, h := range []string{"pre-receive", "post-receive"} {
		if err := os.WriteFile(filepath.Join(bare, "hooks", h), []byte(hookFromDoc(t, h)), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	writeSeq(t, srv, "begin", 0)
	writeSeq(t, srv, "end", 0)
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
	args := []string{"--classic", "--upstream", fmt.Sprintf("rsync://127.0.0.1:%d/git", port), "--root", mir, "--quiet"}
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
