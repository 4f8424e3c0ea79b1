package snapshot_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/seqmirror/seqmirror/internal/export"
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
	testutil.Must(tb, err)
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
		"scm/repo.git/objects/pack/pack-0123.keep",
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
		"plain/objects/pack/pack-1.keep",
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

// Item 21, with real git: a push held in one of its hooks while publish
// runs. In pre-receive its objects are in a quarantine directory (mode
// 0700); in reference-transaction ("prepared") its pack has been moved in
// with receive-pack's .keep (mode 0600) and its refs are locked (*.lock).
// Publish leaves all of it out, the snapshot's repository passes git fsck
// --full, and the push lands in the next snapshot.
func TestPublishDuringPush(t *testing.T) {
	tests := []struct {
		name  string
		hook  string // the hook that holds the push
		when  string // the hook's $1 when it holds ("" for any)
		globs []string
	}{
		{name: "quarantine", hook: "pre-receive", globs: []string{"objects/tmp_objdir-*"}},
		{name: "pack moved in, refs locked", hook: "reference-transaction", when: "prepared",
			globs: []string{"objects/pack/*.keep", "refs/heads/main.lock"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := t.TempDir()
			src := filepath.Join(d, "src")
			bare := filepath.Join(src, "scm", "repo.git")
			testutil.Must(t, os.MkdirAll(bare, 0o755))
			git(t, bare, "init", "-q", "--bare", "-b", "main")
			git(t, bare, "config", "receive.unpackLimit", "1") // a pack (and its .keep), not loose objects
			work := testutil.GitRepo(t, filepath.Join(d, "work"), 3)
			git(t, work, "push", "-q", bare, "main")
			push := holdPush(t, d, bare, work, tt.hook, tt.when)
			defer func() {
				push.release()
				push.cmd.Wait() // a second Wait only returns an error
			}()
			for _, g := range tt.globs {
				if m, _ := filepath.Glob(filepath.Join(bare, g)); len(m) == 0 {
					t.Fatalf("no %s while the push is held: the test captures nothing", g)
				}
			}
			r := newRoot(t)
			res := publish(t, r, src, fastOpts())
			for _, p := range manifestPaths(t, r, res.Snapshot) {
				if strings.Contains(p, "tmp_objdir-") || strings.HasSuffix(p, ".keep") || strings.HasSuffix(p, ".lock") {
					t.Fatalf("published the push's transient %s", p)
				}
			}
			testutil.GitFsck(t, filepath.Join(r.SnapshotDir(res.Snapshot), "scm", "repo.git"))
			push.release()
			if err := push.cmd.Wait(); err != nil {
				t.Fatalf("push: %v\n%s", err, push.out)
			}
			res = publish(t, r, src, fastOpts())
			snapRepo := filepath.Join(r.SnapshotDir(res.Snapshot), "scm", "repo.git")
			testutil.GitFsck(t, snapRepo)
			if b, err := gitRun(t, snapRepo, "-c", "safe.directory=*", "log", "-1", "--format=%s", "main").Output(); err != nil || strings.TrimSpace(string(b)) != "in flight" {
				t.Fatalf("the published repository's main after the push: %q, %v", b, err)
			}
		})
	}
}

// heldPush is a git push waiting in one of the receiving repository's hooks.
type heldPush struct {
	cmd     *exec.Cmd
	out     *testutil.SyncBuffer
	release func()
}

// holdPush commits in work and pushes it to bare, whose hook (when its $1
// is when, or always if when is "") waits until release is called; it
// returns once the push is held.
func holdPush(t *testing.T, d, bare, work, hook, when string) *heldPush {
	t.Helper()
	held, release := filepath.Join(d, "held"), filepath.Join(d, "release")
	cond := "true"
	if when != "" {
		cond = `[ "$1" = ` + when + ` ]`
	}
	script := "#!/bin/sh\nif " + cond + "; then\n  touch '" + held + "'\n  while [ ! -e '" + release + "' ]; do sleep 0.02; done\nfi\ncat >/dev/null\nexit 0\n"
	testutil.Must(t, os.WriteFile(filepath.Join(bare, "hooks", hook), []byte(script), 0o755))
	testutil.Touch(t, work, "new.txt", "pushed while publishing")
	git(t, work, "add", "-A")
	git(t, work, "commit", "-q", "-m", "in flight")
	p := &heldPush{cmd: gitRun(t, work, "push", "-q", bare, "main"), out: &testutil.SyncBuffer{}}
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	testutil.Must(t, p.cmd.Start())
	var once bool
	p.release = func() {
		if !once {
			once = true
			os.WriteFile(release, nil, 0o644)
		}
	}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if _, err := os.Stat(held); err == nil {
			return p
		}
		if time.Now().After(deadline) {
			p.release()
			p.cmd.Wait()
			t.Fatalf("the push never reached its %s hook\n%s", hook, p.out)
		}
	}
}
