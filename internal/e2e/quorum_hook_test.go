package e2e

import (
	"context"
	"errors"
	"io"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/seqmirror/seqmirror/internal/fsys"
	"github.com/seqmirror/seqmirror/internal/trigger"
	"github.com/seqmirror/seqmirror/testutil"
)

// TestQuorumHook pushes with real `git push` to a bare repository whose
// post-receive hook is docs/hooks/post-receive, running the built publish:
// the pusher sees the quorum failure (exit 11) in its remote: lines while
// the push is accepted and the snapshot served; then, with two mirrors
// synced by mirror-sync while the hook waits, the quorum is reached.
func TestQuorumHook(t *testing.T) {
	for _, b := range []string{"git", "sh"} {
		testutil.RequireBinary(t, b)
	}
	tmp := t.TempDir()
	bin := testutil.BuildTools(t)
	root, src, bare := filepath.Join(tmp, "export"), filepath.Join(tmp, "data"), filepath.Join(tmp, "data.git")
	mirrors := []string{filepath.Join(tmp, "m1"), filepath.Join(tmp, "m2")}
	web := filepath.Join(tmp, "m3") // served over HTTP, never synced
	testutil.Must(t, os.MkdirAll(web, 0o755))
	webURL := testutil.StartFileServer(t, web) + "/"

	testutil.Must(t, os.MkdirAll(bare, 0o755))
	git(t, bare, "init", "-q", "--bare", "-b", "main")
	hook, err := os.ReadFile(testutil.RepoFile("docs/hooks/post-receive"))
	testutil.Must(t, err)
	testutil.Must(t, os.WriteFile(filepath.Join(bare, "hooks", "post-receive"), hook, 0o755))
	for _, kv := range [][2]string{{"root", root}, {"source", src}, {"quorum", "2"}, {"quorumTimeout", "1s"},
		{"publish", filepath.Join(bin, "publish")}} {
		git(t, bare, "config", "seqmirror."+kv[0], kv[1])
	}
	for _, m := range append(mirrors, webURL) {
		git(t, bare, "config", "--add", "seqmirror.mirror", m)
	}

	work := testutil.GitRepo(t, filepath.Join(tmp, "work"), 3)
	git(t, work, "remote", "add", "origin", bare)

	// 1. No mirror has it: the push is accepted, the snapshot served, and
	// the pusher reads why the quorum failed and publish's exit code.
	code, stderr := gitPush(t, work)
	if code != 0 {
		t.Fatalf("git push exited %d (a post-receive hook cannot reject a push):\n%s", code, stderr)
	}
	for _, want := range []string{
		`(?m)^remote: publish: mirror ` + regexp.QuoteMeta(mirrors[0]) + ` is behind: unreachable: `,
		`(?m)^remote: publish: mirror ` + regexp.QuoteMeta(webURL) + ` is behind: `,
		`(?m)^remote: publish: snapshot 1 is published; only 0 of 3 mirrors have it \(2 wanted\): quorum not reached within 1s`,
		`(?m)^remote: seqmirror: QUORUM NOT REACHED \(publish exit 11\): your push is accepted and snapshot 1 is served`,
	} {
		if !regexp.MustCompile(want).MatchString(stderr) {
			t.Errorf("the pusher's stderr does not match %s:\n%s", want, stderr)
		}
	}
	if b, err := os.ReadFile(filepath.Join(root, "current", "file2.txt")); err != nil || string(b) != "commit 2\n" {
		t.Errorf("the pushed tree is not served: %q, %v", b, err)
	}
	st, err := os.ReadFile(filepath.Join(root, "status.json"))
	testutil.Must(t, err)
	if !strings.Contains(string(st), `"reached": false`) {
		t.Errorf("status.json records no failed quorum:\n%s", st)
	}

	// 2. Two mirrors poll (mirror-sync every 100ms, as their cron or
	// daemon would) while the hook waits: the quorum is reached.
	git(t, bare, "config", "seqmirror.quorumTimeout", "60s")
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, m := range mirrors {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				_ = exec.Command(filepath.Join(bin, "mirror-sync"), "--root", m, "--upstream", root, "--quiet").Run()
				select {
				case <-stop:
					return
				case <-time.After(100 * time.Millisecond):
				}
			}
		}()
	}
	testutil.Must(t, os.WriteFile(filepath.Join(work, "new.txt"), []byte("new\n"), 0o644))
	git(t, work, "rm", "-q", "file2.txt") // deleted in the source too: the hook's own index
	git(t, work, "add", "-A")
	git(t, work, "commit", "-q", "-m", "new")
	code, stderr = gitPush(t, work)
	close(stop)
	wg.Wait()
	if code != 0 || !regexp.MustCompile(`(?m)^remote: seqmirror: published snapshot 2; 2 mirrors serve it \(quorum reached\) *$`).MatchString(stderr) {
		t.Errorf("git push exited %d; want the quorum reached for snapshot 2:\n%s", code, stderr)
	}
	for _, m := range mirrors {
		if b, err := os.ReadFile(filepath.Join(m, "current", "new.txt")); err != nil || string(b) != "new\n" {
			t.Errorf("mirror %s does not serve the push: %q, %v", m, b, err)
		}
		if _, err := os.Lstat(filepath.Join(m, "current", "file2.txt")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("mirror %s still serves the file the push deleted: %v", m, err)
		}
	}
}

// TestQuorumWaitInterrupted: a SIGTERM during the wait, after the flip
// (publish printed N), ends it as a quorum not reached (exit 11, recorded),
// not as "interrupted, the served snapshot is unchanged" (exit 130).
func TestQuorumWaitInterrupted(t *testing.T) {
	bin, tmp := testutil.BuildTools(t), t.TempDir()
	root, src := filepath.Join(tmp, "export"), filepath.Join(tmp, "src")
	testutil.WriteTree(t, src, map[string]string{"a.txt": "a"})
	cmd := exec.Command(filepath.Join(bin, "publish"), "--root", root, "--source", src, "--quorum", "1",
		"--mirror", filepath.Join(tmp, "m1"), "--quorum-timeout", "1m")
	var errb strings.Builder
	cmd.Stderr = &errb
	out, err := cmd.StdoutPipe()
	testutil.Must(t, err)
	testutil.Must(t, cmd.Start())
	line := make([]byte, 2)
	if _, err := io.ReadFull(out, line); err != nil || string(line) != "1\n" {
		t.Fatalf("publish printed %q, %v; want snapshot 1", line, err)
	}
	testutil.Must(t, cmd.Process.Signal(syscall.SIGTERM))
	err = cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 11 {
		t.Fatalf("publish: %v, want exit 11; stderr:\n%s", err, errb.String())
	}
	want := "publish: snapshot 1 is published; only 0 of 1 mirrors have it (1 wanted): quorum not reached: interrupted by SIGTERM\n"
	if !strings.Contains(errb.String(), want) || strings.Contains(errb.String(), "the served snapshot is unchanged") {
		t.Errorf("stderr:\n%s\nwant the line %q", errb.String(), want)
	}
	st, err := os.ReadFile(filepath.Join(root, "status.json"))
	testutil.Must(t, err)
	if !strings.Contains(string(st), `"reached": false`) {
		t.Errorf("status.json records no quorum:\n%s", st)
	}
}

// gitPush pushes main to origin from work and returns git's exit code and
// stderr (where the hook's output reaches the pusher).
func gitPush(t *testing.T, work string) (int, string) {
	t.Helper()
	cmd := exec.Command("git", "push", "origin", "main")
	cmd.Dir = work
	cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "HOME="+work)
	var errb strings.Builder
	cmd.Stderr = &errb
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, errb.String()
	case errors.As(err, &ee):
		return ee.ExitCode(), errb.String()
	}
	t.Fatalf("git push: %v", err)
	return 0, ""
}

// TestQuorumAfterNotify: publish sends its triggers before it waits. The
// only way the mirrors get the snapshot is the trigger: each receiver (the
// verifying handler a daemon serves) runs mirror-sync when triggered. Had
// publish waited first, the wait would time out before any trigger.
func TestQuorumAfterNotify(t *testing.T) {
	bin, tmp := testutil.BuildTools(t), t.TempDir()
	root, src := filepath.Join(tmp, "export"), filepath.Join(tmp, "src")
	testutil.WriteTree(t, src, map[string]string{"a.txt": "a"})
	secretFile := filepath.Join(tmp, "secret")
	testutil.Must(t, os.WriteFile(secretFile, []byte("0123456789abcdef0123456789abcdef\n"), 0o600))
	secret, err := trigger.ReadSecret(fsys.OS(), secretFile)
	testutil.Must(t, err)
	args := []string{"--root", root, "--source", src, "--quorum", "2", "--quorum-timeout", "20s", "--secret-file", secretFile}
	var wg sync.WaitGroup
	defer wg.Wait()
	for _, name := range []string{"m1", "m2", "m3"} {
		m := filepath.Join(tmp, name)
		args = append(args, "--mirror", m)
		if name == "m3" {
			continue // not triggered: late
		}
		accept := func(_ context.Context, msg trigger.Message) error {
			wg.Add(1)
			go func() { // a daemon only enqueues
				defer wg.Done()
				_ = exec.Command(filepath.Join(bin, "mirror-sync"), "--root", m, "--upstream", root, "--quiet").Run()
			}()
			return nil
		}
		srv := httptest.NewServer(trigger.NewVerifier(secret, time.Now).Handler(accept, nil))
		t.Cleanup(srv.Close)
		args = append(args, "--notify", srv.URL)
	}
	cmd := exec.Command(filepath.Join(bin, "publish"), args...)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("publish: %v\nstdout:\n%s\nstderr:\n%s", err, out.String(), errb.String())
	}
	if !regexp.MustCompile(`(?m)^quorum 2 of 3 after [0-9.]+s: \S+/m1 \S+/m2$`).MatchString(out.String()) {
		t.Errorf("stdout:\n%s\nwant the quorum of m1 and m2", out.String())
	}
}
