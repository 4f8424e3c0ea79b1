package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/seqmirror/seqmirror/testutil"
)

// The units of docs/systemd, checked as systemd would load them: an
// instance of each, its ExecStart pointing at freshly built tools,
// verified by systemd-analyze, which must exit 0 and say nothing (it
// reports an unknown key or a bad value with exit 0 and a warning).
// Then the check is shown to fail: a bad value, an unknown key and a
// missing binary in a unit are each caught.
func TestSystemdUnits(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Fatalf("%v: install it (apt-get install systemd; make deps)", err)
	}
	bin := testutil.BuildTools(t)
	t.Run("verify", func(t *testing.T) { verifyUnits(t, analyze, bin) })
	t.Run("broken", func(t *testing.T) { verifyCatchesBrokenUnits(t, analyze, bin) })
}

func verifyUnits(t *testing.T, analyze, bin string) {
	units, err := filepath.Glob(testutil.RepoFile("docs/systemd/*@.*"))
	if err != nil || len(units) < 5 || !slices.Contains(units, testutil.RepoFile("docs/systemd/seqmirror-watch@.service")) {
		t.Fatalf("docs/systemd: %v %v", units, err)
	}
	dir := t.TempDir()
	for _, u := range units {
		copyUnit(t, u, dir, bin, nil)
	}
	for _, u := range units {
		name := filepath.Base(u)
		t.Run(name, func(t *testing.T) {
			if msg, ok := verifyUnit(analyze, dir, name); !ok {
				t.Fatalf("systemd-analyze verify %s:\n%s", name, msg)
			}
		})
	}
}

func verifyCatchesBrokenUnits(t *testing.T, analyze, bin string) {
	src := testutil.RepoFile("docs/systemd/seqmirror-sync@.service")
	tests := []struct {
		name  string
		edit  func(string) string
		wants string
	}{
		{name: "bad value", edit: func(s string) string { return strings.Replace(s, "ProtectSystem=strict", "ProtectSystem=strictly", 1) }, wants: "strictly"},
		{name: "unknown key", edit: func(s string) string { return strings.Replace(s, "[Service]", "[Service]\nProtectSystm=strict", 1) }, wants: "ProtectSystm"},
		{name: "missing binary", edit: func(s string) string { return strings.ReplaceAll(s, bin+"/mirror-sync", bin+"/nowhere") }, wants: "nowhere"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			copyUnit(t, src, dir, bin, tt.edit)
			msg, ok := verifyUnit(analyze, dir, filepath.Base(src))
			if ok || !strings.Contains(msg, tt.wants) {
				t.Fatalf("systemd-analyze verify passed a unit with a %s, or did not name %q:\n%s", tt.name, tt.wants, msg)
			}
		})
	}
}

// copyUnit copies the unit file src into dir with /usr/local/bin replaced
// by bin, then edited by edit (if not nil).
func copyUnit(tb testing.TB, src, dir, bin string, edit func(string) string) {
	tb.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		tb.Fatal(err)
	}
	s := strings.ReplaceAll(string(b), "/usr/local/bin", bin)
	if edit != nil {
		s = edit(s)
	}
	testutil.Must(tb, os.WriteFile(filepath.Join(dir, filepath.Base(src)), []byte(s), 0o644))
}

// verifyUnit runs systemd-analyze verify on instance "test" of the
// template name in dir: ok when it exits 0 and prints nothing.
func verifyUnit(analyze, dir, name string) (string, bool) {
	instance := strings.Replace(name, "@.", "@test.", 1)
	cmd := exec.Command(analyze, "verify", "--man=no", "./"+instance)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	return string(out), err == nil && len(strings.TrimSpace(string(out))) == 0
}
