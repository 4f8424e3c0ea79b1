package cliapp_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/seqmirror/seqmirror/internal/cliapp"
	"github.com/seqmirror/seqmirror/testutil"
)

func runApp(tb testing.TB, app func(stdout, stderr *bytes.Buffer) int) (int, string, string) {
	tb.Helper()
	var out, errb bytes.Buffer
	code := app(&out, &errb)
	return code, out.String(), errb.String()
}

func publishCmd(tb testing.TB, args ...string) (int, string, string) {
	return runApp(tb, func(o, e *bytes.Buffer) int {
		return cliapp.Run(context.Background(), cliapp.PublishApp(o, e), append([]string{"publish"}, args...))
	})
}

func TestRsyncdConfUsage(t *testing.T) {
	root := filepath.Join(t.TempDir(), "root")
	src := t.TempDir()
	testutil.WriteTree(t, src, map[string]string{"a": "x"})
	if code, out, errs := publishCmd(t, "--root", root, "--source", src, "-q"); code != 0 {
		t.Fatalf("publish: %d %s %s", code, out, errs)
	}
	tests := []struct {
		name string
		args []string
		code int
	}{
		{name: "no module", args: []string{"--root", root}, code: cliapp.ExitUsage},
		{name: "bad module", args: []string{"--root", root, "--module", "a]b"}, code: cliapp.ExitUsage},
		{name: "multi-line comment", args: []string{"--root", root, "--module", "m", "--comment", "a\nb"}, code: cliapp.ExitUsage},
		{name: "not a root", args: []string{"--root", t.TempDir(), "--module", "m"}, code: cliapp.ExitFailure},
		{name: "ok", args: []string{"--root", root, "--module", "m"}, code: cliapp.ExitOK},
		{name: "classic on an export root", args: []string{"--root", root, "--module", "m", "--classic"}, code: cliapp.ExitFailure},
		{name: "classic without seq files", args: []string{"--root", t.TempDir(), "--module", "m", "--classic"}, code: cliapp.ExitFailure},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errs := publishCmd(t, append([]string{"rsyncd-conf"}, tc.args...)...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d\n%s%s", code, tc.code, out, errs)
			}
			if code != 0 {
				return
			}
			for _, want := range []string{"[m]\n", "read only = yes", "use chroot = yes", "munge symlinks = no",
				"refuse options = checksum", "timeout = 600", "exclude = /.work/ /.lock", "dont compress = ", "max connections = 50", "list = yes"} {
				if !strings.Contains(out, want) {
					t.Errorf("output lacks %q:\n%s", want, out)
				}
			}
		})
	}
}

// TestRsyncdConfServes runs a real daemon on the generated module.
func TestRsyncdConfServes(t *testing.T) {
	rsync := testutil.RequireBinary(t, "rsync")
	tmp := t.TempDir()
	root, src := filepath.Join(tmp, "root"), filepath.Join(tmp, "src")
	testutil.WriteTree(t, src, map[string]string{"a/b.txt": "hello", "l": "->a/b.txt"})
	if code, out, errs := publishCmd(t, "--root", root, "--source", src, "-q"); code != 0 {
		t.Fatalf("publish: %d %s %s", code, out, errs)
	}
	testutil.WriteTree(t, root, map[string]string{".work/junk": "in progress"})
	args := []string{"rsyncd-conf", "--root", root, "--module", "pub", "--comment", "test",
		"--user", strconv.Itoa(os.Getuid()), "--group", strconv.Itoa(os.Getgid())}
	if os.Getuid() != 0 {
		args = append(args, "--no-chroot") // chroot needs a daemon started as root
	}
	code, conf, errs := publishCmd(t, args...)
	if code != 0 {
		t.Fatalf("rsyncd-conf: %d %s", code, errs)
	}
	d := testutil.StartRsyncdConfig(t, conf)
	checkHeaderRecipe(t, conf, d.URL("pub"), filepath.Join(tmp, "by-hand"))

	dst := filepath.Join(tmp, "dst")
	if out, err := exec.Command(rsync, "-a", d.URL("pub")+"/", dst+"/").CombinedOutput(); err != nil {
		t.Fatalf("pull whole module: %v\n%s\n%s", err, out, d.Log())
	}
	if target, err := os.Readlink(filepath.Join(dst, "current")); err != nil || target != "snapshots/1" {
		t.Fatalf("current arrived as %q, %v; want the symlink snapshots/1 unmunged", target, err)
	}
	for _, hidden := range []string{".work", ".lock"} {
		if _, err := os.Lstat(filepath.Join(dst, hidden)); err == nil {
			t.Errorf("%s was served", hidden)
		}
	}
	dst2 := filepath.Join(tmp, "dst2")
	if out, err := exec.Command(rsync, "-a", d.URL("pub")+"/current/", dst2+"/").CombinedOutput(); err != nil {
		t.Fatalf("pull current/: %v\n%s", err, out)
	}
	if b, err := os.ReadFile(filepath.Join(dst2, "a", "b.txt")); err != nil || string(b) != "hello" {
		t.Fatalf("current/a/b.txt: %q %v", b, err)
	}
	if out, err := exec.Command(rsync, "-ac", d.URL("pub")+"/current/", filepath.Join(tmp, "dst3")+"/").CombinedOutput(); err == nil {
		t.Fatalf("--checksum was not refused:\n%s", out)
	}
	var out, errb bytes.Buffer
	mcode := cliapp.Run(context.Background(), cliapp.MirrorApp(&out, &errb),
		[]string{"mirror-sync", "--upstream", d.URL("pub"), "--root", filepath.Join(tmp, "mirror")})
	if mcode != 0 || strings.TrimSpace(out.String()) != "1" {
		t.Fatalf("mirror-sync through the generated module: %d %s %s", mcode, out.String(), errb.String())
	}
}

// checkHeaderRecipe runs the by-hand client recipe the config's header
// gives (its "#     " lines) with sh against the module at url, and checks
// it is the coherent one: resolve current, then pull snapshots/N/.
func checkHeaderRecipe(tb testing.TB, conf, url, dir string) {
	tb.Helper()
	header, _, _ := strings.Cut(conf, "\n[")
	if strings.Contains(header, "/current/ ") || !strings.Contains(header, "never") {
		tb.Errorf("the header tells clients to pull current/ (docs/protocol.md section 6 forbids it):\n%s", header)
	}
	var cmds []string
	for _, line := range strings.Split(header, "\n") {
		if cmd, ok := strings.CutPrefix(line, "#     "); ok {
			cmds = append(cmds, cmd)
		}
	}
	if len(cmds) != 2 || !strings.Contains(cmds[1], "/snapshots/$N/") {
		tb.Fatalf("header recipe %q: want two commands, the second pulling snapshots/$N/", cmds)
	}
	script := strings.ReplaceAll(strings.Join(cmds, "\n"), "rsync://HOST/pub", url)
	script = strings.ReplaceAll(script, "DIR/", dir+"/")
	if out, err := exec.Command(testutil.RequireBinary(tb, "sh"), "-ec", script).CombinedOutput(); err != nil {
		tb.Fatalf("header recipe:\n%s\n%v\n%s", script, err, out)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "a", "b.txt")); err != nil || string(b) != "hello" {
		tb.Fatalf("header recipe pulled a/b.txt = %q, %v", b, err)
	}
}

// TestRsyncdConfClassic serves a classic master with the --classic module
// through a real daemon: mirror-sync --classic follows it, --checksum
// included, and the writers' files in seq/ are not served.
func TestRsyncdConfClassic(t *testing.T) {
	rsync := testutil.RequireBinary(t, "rsync")
	tmp := t.TempDir()
	master := filepath.Join(tmp, "master")
	testutil.WriteTree(t, master, map[string]string{"proj.git/HEAD": "ref: refs/heads/main\n", "l": "->proj.git/HEAD",
		"seq/begin": "1\n", "seq/end": "1\n", "seq/.lock": "", "seq/.inflight": "0\n", "seq/.begin.tmp.12": "2\n"})
	args := []string{"rsyncd-conf", "--classic", "--root", master, "--module", "pub",
		"--user", strconv.Itoa(os.Getuid()), "--group", strconv.Itoa(os.Getgid())}
	if os.Getuid() != 0 {
		args = append(args, "--no-chroot")
	}
	code, conf, errs := publishCmd(t, args...)
	if code != 0 {
		t.Fatalf("rsyncd-conf --classic: %d %s", code, errs)
	}
	if strings.Contains(conf, "refuse options = checksum") || !strings.Contains(conf, "mirror-sync --classic --upstream rsync://HOST/pub") {
		t.Fatalf("classic module:\n%s", conf)
	}
	d := testutil.StartRsyncdConfig(t, conf)
	dst := filepath.Join(tmp, "dst")
	if out, err := exec.Command(rsync, "-a", d.URL("pub")+"/", dst+"/").CombinedOutput(); err != nil {
		t.Fatalf("pull whole module: %v\n%s\n%s", err, out, d.Log())
	}
	if target, err := os.Readlink(filepath.Join(dst, "l")); err != nil || target != "proj.git/HEAD" {
		t.Errorf("symlink arrived as %q, %v", target, err)
	}
	if _, err := os.Stat(filepath.Join(dst, "seq", "end")); err != nil {
		t.Errorf("seq/end not served: %v", err)
	}
	for _, hidden := range []string{".lock", ".inflight", ".begin.tmp.12"} {
		if _, err := os.Lstat(filepath.Join(dst, "seq", hidden)); err == nil {
			t.Errorf("seq/%s was served", hidden)
		}
	}
	var out, errb bytes.Buffer
	mcode := cliapp.Run(context.Background(), cliapp.MirrorApp(&out, &errb), []string{"mirror-sync", "--classic",
		"--upstream", d.URL("pub"), "--root", filepath.Join(tmp, "mirror"), "--rsync-opt=--checksum"})
	if mcode != 0 || strings.TrimSpace(out.String()) != "1" {
		t.Fatalf("mirror-sync --classic --checksum through the generated module: %d %s %s\n%s", mcode, out.String(), errb.String(), d.Log())
	}
}
