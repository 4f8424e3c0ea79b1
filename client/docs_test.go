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
	"github.com/seqmirror/seqmirror/internal/export"
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
	scripts := map[string]string{"state http": testutil.DocBlock(t, "docs/clients.md", "state http")}
	for _, r := range recipes {
		scripts[r.label] = r.script(t, r.addr, "")
	}
	for label, script := range scripts {
		p := filepath.Join(t.TempDir(), "script")
		if err := os.WriteFile(p, []byte(script), 0o644); err != nil {
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

// TestStateRecipe runs docs/clients.md's `state http` as written against
// roots served by nginx: each state prints its name first.
func TestStateRecipe(t *testing.T) {
	sh := testutil.RequireBinary(t, "sh")
	testutil.RequireBinary(t, "curl")
	srvs, ngx := servers(t)
	local := srvs[0]
	published := func(t *testing.T, n int) string { // a root serving snapshot n, as an upstream
		e := local.newEnv(t, false)
		for i := 2; i <= n; i++ {
			testutil.Touch(t, e.src, "hello.txt", fmt.Sprintf("hello %d\n", i))
			e.publish(t, 3)
		}
		return ngx.URL("/" + filepath.Base(e.root.Dir))
	}
	cases := []struct {
		name     string
		empty    bool
		damage   func(t *testing.T, e *env)
		upstream func(t *testing.T) string
		unreach  bool
		want     string // the start of the line printed
	}{
		{name: "fresh", want: "fresh, serving snapshot 1"},
		{name: "empty", empty: true, want: "empty"},
		{name: "torn", damage: func(t *testing.T, e *env) { testutil.Must(t, e.root.WritePointer(9)) }, want: "torn (snapshot 9"},
		{name: "pointer corrupt", damage: func(t *testing.T, e *env) {
			testutil.Must(t, os.WriteFile(e.root.PointerPath(), []byte("snapshots/1\n"), 0o644))
		}, want: "torn (seq/current"},
		{name: "updating", damage: func(t *testing.T, e *env) {
			testutil.Must(t, os.WriteFile(e.root.Path(export.SeqName, "begin"), []byte("2\n"), 0o644))
		}, want: "updating (begin 2, end 1)"},
		{name: "stale", upstream: func(t *testing.T) string { return published(t, 2) }, want: "stale: serving snapshot 1, the upstream serves 2"},
		{name: "level with its upstream", upstream: func(t *testing.T) string { return published(t, 1) }, want: "fresh"},
		{name: "unreachable", unreach: true, want: "unreachable"},
	}
	body := testutil.DocBlock(t, "docs/clients.md", "state http")
	env := recipeEnv(t)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := local.newEnv(t, tc.empty)
			if tc.damage != nil {
				tc.damage(t, e)
			}
			url, upstream := ngx.URL("/"+filepath.Base(e.root.Dir)), ""
			if tc.unreach {
				url = "http://127.0.0.1:1/pub"
			}
			if tc.upstream != nil {
				upstream = tc.upstream(t)
			}
			script := strings.Replace(strings.Replace(body, "https://mirror.example.org/pub", url, 1), "https://master.example.org/pub", upstream, 1)
			cmd := exec.Command(sh, "-c", script)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr, cmd.Env = &stdout, &stderr, env
			err := cmd.Run()
			if !strings.HasPrefix(stdout.String(), tc.want) || (err != nil) != tc.unreach {
				t.Fatalf("state http: %v, printed %q, want %q\n%s", err, stdout.String(), tc.want, stderr.String())
			}
		})
	}
}
