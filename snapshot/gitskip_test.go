package snapshot_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/seqmirror/seqmirror/export"
	"github.com/seqmirror/seqmirror/testutil"
)

// gitRun runs git in dir with a fixed identity and no user config.
func gitRun(tb testing.TB, dir string, args ...string) *exec.Cmd {
	tb.Helper()
	cmd := exec.Command(testutil.RequireBinary(tb, "git"), args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.org",
		"GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.org", "GIT_CONFIG_NOSYSTEM=1", "HOME="+dir)
	return cmd
}

func git(tb testing.TB, dir string, args ...string) {
	tb.Helper()
	if out, err := gitRun(tb, dir, args...).CombinedOutput(); err != nil {
		tb.Fatalf("git %v: %v\n%s", args, err, out)
	}
}

func manifestPaths(tb testing.TB, r *export.Root, n uint64) []string {
	tb.Helper()
	m, err := r.ReadManifest(n)
	must(tb, err)
	var out []string
	for _, e := range m.Entries {
		out = append(out, e.Path)
	}
	return out
}

// Item 21: publish leaves git's transient files out of git directories
// (bare or .git) and only there.
func TestPublishLeavesOutGitTransients(t *testing.T) {
	src := filepath.Join(t.TempDir(), "src")
	testutil.GitRepo(t, filepath.Join(src, "work"), 2)
	git(t, src, "init", "-q", "--bare", "scm/repo.git")
	transient := []string{
		"scm/repo.git/objects/tmp_objdir-incoming-Ab12Cd/pack/tmp_pack_x",
		"scm/repo.git/objects/incoming-Xy9/ab",
		"scm/repo.git/objects/pack/tmp_pack_Qw3",
		"scm/repo.git/objects/ab/tmp_obj_Zz1",
		"scm/repo.git/refs/heads/main.lock",
		"scm/repo.git/packed-refs.lock",
		"scm/repo.git/config.lock",
		"work/.git/index.lock",
		"work/.git/refs/heads/topic.lock",
	}
	kept := []string{
		"work/notes.lock", // in the working tree, not in .git
		"plain/objects/tmp_objdir-incoming-1/x",
		"plain/objects/pack/tmp_pack_1",
		"plain/HEAD.lock",
		"scm/repo.git/objects/info/packs",
	}
	files := map[string]string{}
	for _, p := range append(append([]string{}, transient...), kept...) {
		files[p] = "x"
	}
	testutil.WriteTree(t, src, files)
	r := newRoot(t)
	res := publish(t, r, src, fastOpts())
	got := strings.Join(manifestPaths(t, r, res.Snapshot), "\n") + "\n"
	for _, p := range transient {
		if strings.Contains(got, p+"\n") {
			t.Errorf("published git's transient %s", p)
		}
	}
	if strings.Contains(got, "tmp_objdir-incoming-Ab12Cd") {
		t.Errorf("published the quarantine directory")
	}
	for _, p := range append(kept, "scm/repo.git/HEAD", "work/.git/HEAD", "work/file0.txt") {
		if !strings.Contains(got, p+"\n") {
			t.Errorf("left out %s, which is not one of git's transients", p)
		}
	}
}

// Item 21, with real git: a push held in its pre-receive hook has its
// objects in a quarantine directory (mode 0700); a publish meanwhile leaves
// it out, and the snapshot's repository passes git fsck --full.
func TestPublishDuringPush(t *testing.T) {
	d := t.TempDir()
	src := filepath.Join(d, "src")
	bare := filepath.Join(src, "scm", "repo.git")
	must(t, os.MkdirAll(bare, 0o755))
	git(t, bare, "init", "-q", "--bare", "-b", "main")
	work := testutil.GitRepo(t, filepath.Join(d, "work"), 3)
	git(t, work, "push", "-q", bare, "main")
	held, release := filepath.Join(d, "held"), filepath.Join(d, "release")
	hook := "#!/bin/sh\ntouch '" + held + "'\nwhile [ ! -e '" + release + "' ]; do sleep 0.02; done\n"
	must(t, os.WriteFile(filepath.Join(bare, "hooks", "pre-receive"), []byte(hook), 0o755))
	testutil.Touch(t, work, "new.txt", "pushed while publishing")
	git(t, work, "add", "-A")
	git(t, work, "commit", "-q", "-m", "in flight")
	push := gitRun(t, work, "push", "-q", bare, "main")
	out := &testutil.SyncBuffer{}
	push.Stdout, push.Stderr = out, out
	must(t, push.Start())
	defer func() {
		os.WriteFile(release, nil, 0o644)
		push.Wait()
	}()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if _, err := os.Stat(held); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the push never reached its pre-receive hook\n%s", out)
		}
	}
	q, _ := filepath.Glob(filepath.Join(bare, "objects", "tmp_objdir-*"))
	if len(q) == 0 {
		t.Fatal("no quarantine directory while the push is held: the test captures nothing")
	}
	r := newRoot(t)
	res := publish(t, r, src, fastOpts())
	for _, p := range manifestPaths(t, r, res.Snapshot) {
		if strings.Contains(p, "tmp_objdir-") {
			t.Fatalf("published the push's quarantine: %s", p)
		}
	}
	testutil.GitFsck(t, filepath.Join(r.SnapshotDir(res.Snapshot), "scm", "repo.git"))
	must(t, os.WriteFile(release, nil, 0o644))
	if err := push.Wait(); err != nil {
		t.Fatalf("push: %v\n%s", err, out)
	}
	res = publish(t, r, src, fastOpts())
	snapRepo := filepath.Join(r.SnapshotDir(res.Snapshot), "scm", "repo.git")
	testutil.GitFsck(t, snapRepo)
	if b, err := gitRun(t, snapRepo, "-c", "safe.directory=*", "log", "-1", "--format=%s", "main").Output(); err != nil || strings.TrimSpace(string(b)) != "in flight" {
		t.Fatalf("the published repository's main after the push: %q, %v", b, err)
	}
}
