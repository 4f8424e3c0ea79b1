package client_test

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cespare/xxhash/v2"
	"github.com/seqmirror/seqmirror/testutil"
)

// TestMain lets the test binary stand in for xxhsum (xxhsumShim) where
// Debian's xxhash is not installed, so that the recipes' content check
// runs everywhere.
func TestMain(m *testing.M) {
	if filepath.Base(os.Args[0]) == "xxhsum" {
		os.Exit(xxhsumShim(os.Args[1:]))
	}
	os.Exit(m.Run())
}

// xxhsumShim does what `xxhsum -H64 [FILE]` does: print the XXH64 of FILE
// (or stdin) as 16 hex digits, two spaces and the name.
func xxhsumShim(args []string) int {
	if len(args) == 0 || args[0] != "-H64" || len(args) > 2 {
		fmt.Fprintln(os.Stderr, "xxhsum shim: usage: xxhsum -H64 [FILE]")
		return 2
	}
	in, name := io.Reader(os.Stdin), "stdin"
	if len(args) == 2 && args[1] != "-" {
		f, err := os.Open(args[1])
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer f.Close()
		in, name = f, args[1]
	}
	h := xxhash.New()
	if _, err := io.Copy(h, in); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Printf("%016x  %s\n", h.Sum64(), name)
	return 0
}

// recipeEnv is the environment the recipes run in: TMPDIR in the test,
// and xxhsum on the PATH (the shim if xxhash is not installed).
func recipeEnv(tb testing.TB) []string {
	tb.Helper()
	env := append(os.Environ(), "TMPDIR="+tb.TempDir())
	if _, err := exec.LookPath("xxhsum"); err == nil {
		return env
	}
	self, err := os.Executable()
	if err != nil {
		tb.Fatal(err)
	}
	bin := tb.TempDir()
	if err := os.Symlink(self, filepath.Join(bin, "xxhsum")); err != nil {
		tb.Fatal(err)
	}
	return append(env, "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"))
}

// recipe is one transport's shell recipe of docs/clients.md.
type recipe struct {
	name  string
	label string // its block in docs/clients.md
	addr  string // the address it shows, replaced by the test's
}

var recipes = []recipe{
	{name: "local", label: "read local", addr: "/srv/pub"},
	{name: "rsync", label: "read rsync", addr: "rsync://mirror.example.org/pub"},
	{name: "http", label: "read http", addr: "https://mirror.example.org/pub"},
}

// script is the recipe as documented, after the check function, reading
// from addr, with the line that stands for more reads replaced by more
// (if not ""), and printing what it read.
func (r recipe) script(tb testing.TB, addr, more string) string {
	tb.Helper()
	body := testutil.DocBlock(tb, "docs/clients.md", r.label)
	if !strings.Contains(body, r.addr) {
		tb.Fatalf("docs/clients.md %s no longer shows %s", r.label, r.addr)
	}
	body = strings.Replace(body, r.addr, addr, 1)
	if more != "" {
		var lines []string
		for _, l := range strings.Split(body, "\n") {
			if strings.HasPrefix(l, "# ...") {
				l = more
			}
			lines = append(lines, l)
		}
		body = strings.Join(lines, "\n")
	}
	return testutil.DocBlock(tb, "docs/clients.md", "check") + body + `cat "$tmp/out"` + "\n"
}

// TestShellRecipesLint checks docs/clients.md's shell recipes with sh -n
// and shellcheck.
func TestShellRecipesLint(t *testing.T) {
	sh := testutil.RequireBinary(t, "sh")
	sc := testutil.RequireBinary(t, "shellcheck") // make test installs it
	for _, r := range recipes {
		p := filepath.Join(t.TempDir(), "script")
		if err := os.WriteFile(p, []byte(r.script(t, r.addr, "")), 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command(sh, "-n", p).CombinedOutput(); err != nil {
			t.Errorf("%s: sh -n: %v\n%s", r.label, err, out)
		}
		if out, err := exec.Command(sc, "-s", "sh", p).CombinedOutput(); err != nil {
			t.Errorf("%s: shellcheck: %v\n%s", r.label, err, out)
		}
	}
}

// TestShellRecipes runs each recipe of docs/clients.md as written against
// a published root served as a path, by an rsync daemon and by nginx: it
// prints the file of a whole root, and refuses a damaged file, a corrupt
// manifest, a snapshot pruned while it reads, and a root serving nothing.
func TestShellRecipes(t *testing.T) {
	sh := testutil.RequireBinary(t, "sh")
	testutil.RequireBinary(t, "curl")
	srvs, ngx := servers(t)
	local := srvs[0]
	addrs := map[string]func(rel string) string{
		"local": local.addr, "rsync": srvs[1].addr,
		"http": func(rel string) string { return ngx.URL("/" + rel) },
	}
	cases := []struct {
		name   string
		empty  bool
		damage func(t *testing.T, e *env)
		more   string // replaces the recipe's "# ..." line; ROOT is the root's path
		stderr string // "": success, printing docs/README
	}{
		{name: "whole"},
		{name: "damaged file", damage: func(t *testing.T, e *env) {
			testutil.CorruptInPlace(t, e.snapFile(1, "docs/README"))
		}, stderr: "content differs from the manifest"},
		{name: "corrupt manifest", damage: func(t *testing.T, e *env) {
			testutil.CorruptInPlace(t, e.root.ManifestPath(1))
		}, stderr: "corrupt or truncated"},
		{name: "pruned while reading", more: `rm -f "ROOT/snapshots/1.manifest"`, stderr: "was pruned while we read"},
		{name: "nothing served", empty: true, stderr: "no"},
	}
	env := recipeEnv(t)
	for _, r := range recipes {
		for _, tc := range cases {
			t.Run(r.name+"/"+tc.name, func(t *testing.T) {
				t.Parallel() // own roots; the servers are shared
				e := local.newEnv(t, tc.empty)
				if tc.damage != nil {
					tc.damage(t, e)
				}
				addr := addrs[r.name](filepath.Base(e.root.Dir))
				cmd := exec.Command(sh, "-c", r.script(t, addr, strings.ReplaceAll(tc.more, "ROOT", e.root.Dir)))
				var stdout, stderr bytes.Buffer
				cmd.Stdout, cmd.Stderr, cmd.Env = &stdout, &stderr, env
				err := cmd.Run()
				if tc.stderr == "" {
					if err != nil || stdout.String() != fixture["docs/README"] {
						t.Fatalf("%s: %v, printed %q\n%s", r.label, err, stdout.String(), stderr.String())
					}
					return
				}
				if err == nil || !strings.Contains(stderr.String(), tc.stderr) {
					t.Fatalf("%s: %v, want a failure saying %q; stderr:\n%s", r.label, err, tc.stderr, stderr.String())
				}
			})
		}
	}
}
