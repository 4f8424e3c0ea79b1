package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/seqmirror/seqmirror/testutil"
)

// walk is one admin's installation: the tools in prefix, and the
// directories the docs call /srv/... mapped to temporary ones.
type walk struct {
	t      *testing.T
	tmp    string
	prefix string
	srv    map[string]string // documented path or address -> real one
}

// cronEnv is the environment Debian's cron gives a job.
func (w *walk) cronEnv() []string {
	return []string{"PATH=/usr/bin:/bin", "SHELL=/bin/sh", "HOME=" + w.tmp, "LOGNAME=root", "LANG=C"}
}

func newWalk(t *testing.T) *walk {
	t.Helper()
	for _, b := range []string{"rsync", "git", "make", "sh", "flock"} {
		testutil.RequireBinary(t, b)
	}
	tmp := t.TempDir()
	w := &walk{t: t, tmp: tmp, prefix: filepath.Join(tmp, "prefix")}
	cmd := exec.Command("make", "install", "PREFIX="+w.prefix, "BIN="+filepath.Join(tmp, "build"))
	cmd.Dir = testutil.RepoFile("")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make install: %v\n%s", err, out)
	}
	for _, f := range []string{"bin/publish", "bin/mirror-sync", "bin/seqmirror-volunteer-mirror", "share/man/man1/publish.1", "share/man/man1/mirror-sync.1"} {
		if _, err := os.Stat(filepath.Join(w.prefix, f)); err != nil {
			t.Fatalf("make install did not install %s: %v", f, err)
		}
	}
	w.srv = map[string]string{"/usr/local/bin/": w.prefix + "/bin/"}
	for _, d := range []string{"export", "data", "mirror", "mirror2", "volunteer", "git", "gitmirror"} {
		w.srv["/srv/"+d] = filepath.Join(tmp, "srv", d)
	}
	return w
}

// set maps a documented name (an address) to a real one.
func (w *walk) set(doc, real string) { w.srv[doc] = real }

// path is the real directory the docs call /srv/NAME.
func (w *walk) path(name string) string { return w.srv["/srv/"+name] }

// real rewrites a documented command line to this installation.
func (w *walk) real(line string) string {
	keys := make([]string, 0, len(w.srv))
	for k := range w.srv {
		keys = append(keys, k)
	}
	// One pass, longest first, so that /srv/mirror2 is not read as
	// /srv/mirror + "2" and nothing is replaced twice.
	sort.Slice(keys, func(i, j int) bool { return len(keys[i]) > len(keys[j]) })
	var pairs []string
	for _, k := range keys {
		pairs = append(pairs, k, w.srv[k])
	}
	line = strings.NewReplacer(pairs...).Replace(line)
	return line
}

// cronLine returns the one crontab line of doc that contains substr,
// without its five time fields.
func (w *walk) cronLine(doc, substr string) string {
	w.t.Helper()
	var found []string
	for _, l := range testutil.DocLines(w.t, doc, substr) {
		if f := strings.Fields(l); len(f) > 5 && strings.Trim(f[0], "0123456789*/,-") == "" {
			found = append(found, strings.Join(f[5:], " "))
		}
	}
	if len(found) != 1 {
		w.t.Fatalf("%s: want one crontab line with %q, found %q", doc, substr, found)
	}
	return found[0]
}

// cron runs a crontab command as cron does (sh -c, cron's environment) and
// requires that it succeeds and prints nothing: cron mails every byte.
func (w *walk) cron(cmdline string) {
	w.t.Helper()
	line := w.real(cmdline)
	w.t.Logf("cron: %s", line)
	cmd := exec.Command("/bin/sh", "-c", line)
	cmd.Env, cmd.Dir = w.cronEnv(), w.tmp
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil || out.Len() > 0 {
		w.t.Fatalf("cron job %q: %v; it printed (cron would mail it):\n%s", line, err, out.String())
	}
}

// tool runs an installed tool and returns its exit code and output.
func (w *walk) tool(name string, args ...string) (int, string) {
	w.t.Helper()
	cmd := exec.Command(filepath.Join(w.prefix, "bin", name), args...)
	cmd.Env = w.cronEnv()
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), string(out)
	}
	if err != nil {
		w.t.Fatalf("%s %v: %v", name, args, err)
	}
	return 0, string(out)
}

func (w *walk) mustTool(name string, args ...string) string {
	w.t.Helper()
	code, out := w.tool(name, args...)
	if code != 0 {
		w.t.Fatalf("%s %v: exit %d\n%s", name, args, code, out)
	}
	return out
}

// serve starts an rsync daemon with the module `publish rsyncd-conf`
// generates for root and returns its address.
func (w *walk) serve(root, module string, extra ...string) string {
	w.t.Helper()
	args := append([]string{"rsyncd-conf", "--root", root, "--module", module,
		"--user", strconv.Itoa(os.Getuid()), "--group", strconv.Itoa(os.Getgid())}, extra...)
	if os.Getuid() != 0 {
		args = append(args, "--no-chroot") // chroot needs a daemon started as root
	}
	conf := w.mustTool("publish", args...)
	return testutil.StartRsyncdConfig(w.t, conf).URL(module)
}

// git runs git in dir with a fixed identity.
func git(tb testing.TB, dir string, args ...string) string {
	tb.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.org",
		"GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.org", "GIT_CONFIG_NOSYSTEM=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		tb.Fatalf("git %v in %s: %v\n%s", args, dir, err, out)
	}
	return string(out)
}

// repos makes bare repositories under dir and a work clone of each in
// work; push commits a change in each clone and pushes it.
type repos struct {
	bares, works []string
}

func newRepos(tb testing.TB, dir, work string, names ...string) *repos {
	tb.Helper()
	r := &repos{}
	for _, n := range names {
		bare, wt := filepath.Join(dir, n+".git"), filepath.Join(work, n)
		if err := os.MkdirAll(bare, 0o755); err != nil {
			tb.Fatal(err)
		}
		git(tb, bare, "init", "-q", "--bare", "-b", "main")
		testutil.GitRepo(tb, wt, 3)
		git(tb, wt, "remote", "add", "origin-bare", bare)
		git(tb, wt, "push", "-q", "origin-bare", "main")
		r.bares, r.works = append(r.bares, bare), append(r.works, wt)
	}
	return r
}

func (r *repos) push(tb testing.TB, round int) {
	tb.Helper()
	for _, wt := range r.works {
		if err := os.WriteFile(filepath.Join(wt, fmt.Sprintf("round%d.txt", round)), bytes.Repeat([]byte("x"), 1000+round), 0o644); err != nil {
			tb.Fatal(err)
		}
		git(tb, wt, "add", "-A")
		git(tb, wt, "commit", "-q", "-m", fmt.Sprintf("round %d", round))
		git(tb, wt, "push", "-q", "origin-bare", "main")
	}
}

// fsckServed runs git fsck --full on every repository of the snapshot a
// root serves, resolved first as docs/protocol.md tells local readers.
func fsckServed(tb testing.TB, root string, rels ...string) {
	tb.Helper()
	cur, err := filepath.EvalSymlinks(filepath.Join(root, "current"))
	if err != nil {
		tb.Fatal(err)
	}
	for _, rel := range rels {
		testutil.GitFsck(tb, filepath.Join(cur, rel))
	}
}
