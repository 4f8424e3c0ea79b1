package cliapp_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/seqmirror/seqmirror/internal/export"
	"github.com/seqmirror/seqmirror/internal/fsys"
	"github.com/seqmirror/seqmirror/testutil"
)

// The clone recipes of docs/protocol.md section 6 and the README hold
// while current flips: `git clone "$(readlink -f ROOT/current)/scm/repo.git"`
// (resolve first) and `git clone file://ROOT/current/scm/repo.git` (git's
// upload-pack enters the repository once). A plain
// `git clone ROOT/current/scm/repo.git` resolves current again for every
// file it copies and, with current flipping every 10 ms, failed about one
// clone in 80.
func TestCloneRecipesWhileCurrentFlips(t *testing.T) {
	git := testutil.RequireBinary(t, "git")
	dir := t.TempDir()
	work, src, root := filepath.Join(dir, "work"), filepath.Join(dir, "src"), filepath.Join(dir, "root")
	bare := filepath.Join(src, "scm", "repo.git")
	gitRun := func(args ...string) {
		t.Helper()
		cmd := exec.Command(git, args...)
		cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "HOME="+dir)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	testutil.GitRepo(t, work, 4)
	gitRun("clone", "-q", "--bare", work, bare)
	publish := func() {
		t.Helper()
		if code, _, stderr := run(t, "publish", "--root", root, "--source", src, "--quiet"); code != 0 {
			t.Fatalf("publish: %d %s", code, stderr)
		}
	}
	publish()
	// Snapshot 2: more objects, repacked, with a commit-graph: most files
	// differ between the two snapshots.
	testutil.GitRepo(t, filepath.Join(dir, "work2"), 6)
	gitRun("-C", bare, "fetch", "-q", filepath.Join(dir, "work2"), "+main:refs/heads/other")
	gitRun("-C", bare, "gc", "-q")
	gitRun("-C", bare, "commit-graph", "write", "--reachable")
	publish()

	r := export.New(fsys.OS(), root)
	var flips atomic.Int64
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if err := r.Flip(uint64(1 + i%2)); err != nil {
				t.Error(err)
				return
			}
			flips.Add(1)
			time.Sleep(time.Millisecond)
		}
	}()
	recipes := []string{
		`git clone -q "$(readlink -f "$ROOT/current")/scm/repo.git" "$DST"`,
		`git clone -q "file://$ROOT/current/scm/repo.git" "$DST"`,
	}
	for i := 0; i < 12 || flips.Load() < 200; i++ {
		dst := filepath.Join(dir, fmt.Sprintf("clone%d", i))
		cmd := exec.Command("sh", "-c", recipes[i%2])
		cmd.Env = append(os.Environ(), "ROOT="+root, "DST="+dst, "GIT_CONFIG_NOSYSTEM=1", "HOME="+dir)
		if out, err := cmd.CombinedOutput(); err != nil {
			close(stop)
			<-done
			t.Fatalf("clone %d (%s) while current flips: %v\n%s", i, recipes[i%2], err, out)
		}
		testutil.GitFsck(t, dst)
		if i > 200 {
			break
		}
	}
	close(stop)
	<-done
	if n := flips.Load(); n < 200 {
		t.Fatalf("current flipped only %d times", n)
	}
}
