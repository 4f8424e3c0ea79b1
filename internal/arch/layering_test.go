package arch

import (
	"bufio"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/seqmirror/seqmirror/internal/cliapp"
	"github.com/urfave/cli/v2"
)

// file is what the rules need of one .go file.
type file struct {
	name    string // slash path from the module root
	test    bool   // a _test.go file
	imports []string
	errText []lit // string literals in the arguments of fmt.Errorf and errors.New
}

// lit is a string literal at a line of its file.
type lit struct {
	line int
	text string
}

// module is a Go module's packages (import path -> files) as parsed from
// its tree: external test packages count with the package they test.
type module struct {
	path string
	pkgs map[string][]file
}

// finding is one breach of a rule, in a file.
type finding struct {
	file string
	msg  string
}

func (f finding) String() string { return f.file + ": " + f.msg }

// rule is one layering rule: check lists its breaches in m.
type rule struct {
	name  string
	check func(m *module) []finding
}

// flagRule is the name of the one rule with a transition allowlist.
const flagRule = "library errors name no CLI flag"

// rules are the layering rules; flags are the long flag names of the CLI
// (without "--"), which no library error may name.
func rules(flags []string) []rule {
	words := cliWords(flags)
	return []rule{
		{name: "only the CLI imports urfave/cli", check: cliImports},
		{name: "test helpers only from tests", check: testHelperImports},
		{name: "public packages depend on no test helper and no CLI", check: publicDeps},
		{name: "tree and transport stay below the publisher and the mirror", check: lowerLayers},
		{name: flagRule, check: func(m *module) []finding { return flagErrors(m, words) }},
	}
}

// under reports whether the import path pkg is dir or below it.
func under(pkg, dir string) bool { return pkg == dir || strings.HasPrefix(pkg, dir+"/") }

// underAny reports whether pkg is under one of dirs (relative to m).
func (m *module) underAny(pkg string, dirs ...string) bool {
	for _, d := range dirs {
		if under(pkg, m.path+"/"+d) {
			return true
		}
	}
	return false
}

// sortedPkgs returns m's import paths in order.
func (m *module) sortedPkgs() []string {
	var ps []string
	for p := range m.pkgs {
		ps = append(ps, p)
	}
	sort.Strings(ps)
	return ps
}

// isCLI reports whether pkg is part of the command-line tools.
func (m *module) isCLI(pkg string) bool {
	return m.underAny(pkg, "internal/cliapp", "cmd", "internal/tools", "internal/e2e")
}

const urfaveCLI = "github.com/urfave/cli"

// cliImports: no package outside the CLI imports urfave/cli, not even in
// its tests; internal/arch's test does, to read the CLI's flags.
func cliImports(m *module) []finding {
	var out []finding
	for _, p := range m.sortedPkgs() {
		if m.isCLI(p) || m.underAny(p, "internal/arch") {
			continue
		}
		for _, f := range m.pkgs[p] {
			for _, imp := range f.imports {
				if under(imp, urfaveCLI) || under(imp, urfaveCLI+"/v2") {
					out = append(out, finding{f.name, "imports " + imp + " outside the CLI"})
				}
			}
		}
	}
	return out
}

// testHelperImports: testutil and its packages are imported from _test.go
// files only, and from testutil itself.
func testHelperImports(m *module) []finding {
	var out []finding
	for _, p := range m.sortedPkgs() {
		if m.underAny(p, "testutil") {
			continue
		}
		for _, f := range m.pkgs[p] {
			for _, imp := range f.imports {
				if !f.test && m.underAny(imp, "testutil") {
					out = append(out, finding{f.name, "imports the test helper " + imp + " in a non-test file"})
				}
			}
		}
	}
	return out
}

// public lists the packages an outside program may import: those outside
// internal/ and cmd/ with non-test code, testutil aside (it is for tests).
func (m *module) public() []string {
	var out []string
	for _, p := range m.sortedPkgs() {
		if m.underAny(p, "internal", "cmd", "testutil") {
			continue
		}
		if slices.ContainsFunc(m.pkgs[p], func(f file) bool { return !f.test }) {
			out = append(out, p)
		}
	}
	return out
}

// publicDeps: a public package depends, through its non-test imports, on
// no test helper, no CLI package and not on urfave/cli.
func publicDeps(m *module) []finding {
	var out []finding
	for _, p := range m.public() {
		out = append(out, m.reaches(p, func(dep string) bool {
			return m.underAny(dep, "testutil") || m.isCLI(dep) || under(dep, urfaveCLI) || strings.HasPrefix(dep, urfaveCLI+"/")
		})...)
	}
	return out
}

// lowerLayers: internal/tree depends on nothing of export, snapshot,
// mirror or transport; internal/transport on neither snapshot nor mirror.
func lowerLayers(m *module) []finding {
	limits := []struct {
		pkg       string
		forbidden []string
	}{
		{"internal/tree", []string{"internal/export", "snapshot", "internal/mirror", "internal/transport"}},
		{"internal/transport", []string{"snapshot", "internal/mirror"}},
	}
	var out []finding
	for _, l := range limits {
		for _, p := range m.sortedPkgs() {
			if m.underAny(p, l.pkg) {
				out = append(out, m.reaches(p, func(dep string) bool { return m.underAny(dep, l.forbidden...) })...)
			}
		}
	}
	return out
}

// reaches lists the packages bad matches that from depends on through
// non-test imports, each with the chain of imports that leads there.
func (m *module) reaches(from string, bad func(string) bool) []finding {
	via := map[string]string{from: ""}
	queue := []string{from}
	var out []finding
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, f := range m.pkgs[p] {
			if f.test {
				continue
			}
			for _, imp := range f.imports {
				if _, seen := via[imp]; seen {
					continue
				}
				via[imp] = p
				if bad(imp) {
					out = append(out, finding{f.name, from + " depends on " + imp + " (" + chain(via, imp) + ")"})
					continue
				}
				if _, ok := m.pkgs[imp]; ok {
					queue = append(queue, imp)
				}
			}
		}
	}
	return out
}

// chain is the import chain via recorded down to p: "a -> b -> p".
func chain(via map[string]string, p string) string {
	var c []string
	for ; p != ""; p = via[p] {
		c = append(c, p)
	}
	slices.Reverse(c)
	return strings.Join(c, " -> ")
}

// cliWords matches what a library error must not say: one of the flags
// (--force) or a command line (`publish ...`, `mirror-sync ...`). Only
// the CLI's own flags: an error may name another program's (rsync
// --daemon in testutil).
func cliWords(flags []string) *regexp.Regexp {
	alts := make([]string, len(flags))
	for i, f := range flags {
		alts[i] = regexp.QuoteMeta(f)
	}
	return regexp.MustCompile(`--(?:` + strings.Join(alts, "|") + `)\b|` + "`publish |`mirror-sync ")
}

// flagErrors: the non-test code of the libraries (all but the CLI) puts
// no CLI flag or command line (words) in an error's text.
func flagErrors(m *module, words *regexp.Regexp) []finding {
	var out []finding
	for _, p := range m.sortedPkgs() {
		if m.underAny(p, "cmd", "internal/cliapp", "internal/tools") {
			continue
		}
		for _, f := range m.pkgs[p] {
			if f.test {
				continue
			}
			for _, l := range f.errText {
				if words.MatchString(l.text) {
					out = append(out, finding{f.name, fmt.Sprintf("line %d: an error names a CLI flag or command (move it to internal/cliapp's hint table): %q", l.line, l.text)})
				}
			}
		}
	}
	return out
}

// appFlags returns the long flag names (and aliases) of both apps and
// all their commands.
func appFlags() []string {
	seen := map[string]bool{}
	var add func(flags []cli.Flag, cmds []*cli.Command)
	add = func(flags []cli.Flag, cmds []*cli.Command) {
		for _, f := range flags {
			for _, n := range f.Names() {
				if len(n) > 1 {
					seen[n] = true
				}
			}
		}
		for _, c := range cmds {
			add(c.Flags, c.Subcommands)
		}
	}
	for _, app := range []*cli.App{cliapp.PublishApp(io.Discard, io.Discard), cliapp.MirrorApp(io.Discard, io.Discard)} {
		add(app.Flags, app.Commands)
	}
	var names []string
	for n := range seen {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// loadModule parses every .go file below root, the directory of a go.mod
// (testdata, vendor and hidden directories aside).
func loadModule(tb testing.TB, root string) *module {
	tb.Helper()
	m := &module{path: modulePath(tb, root), pkgs: map[string][]file{}}
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if n := d.Name(); p != root && (n == "testdata" || n == "vendor" || strings.HasPrefix(n, ".") || strings.HasPrefix(n, "_")) {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(p, ".go") {
			return nil
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		f, err := parseFile(fset, p, filepath.ToSlash(rel))
		if err != nil {
			return err
		}
		pkg := m.path
		if dir := filepath.ToSlash(filepath.Dir(rel)); dir != "." {
			pkg += "/" + dir
		}
		m.pkgs[pkg] = append(m.pkgs[pkg], f)
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	return m
}

// modulePath reads the module path from root/go.mod.
func modulePath(tb testing.TB, root string) string {
	tb.Helper()
	fh, err := os.Open(filepath.Join(root, "go.mod"))
	if err != nil {
		tb.Fatal(err)
	}
	defer fh.Close()
	sc := bufio.NewScanner(fh)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "module "); ok {
			return strings.Trim(strings.TrimSpace(rest), `"`)
		}
	}
	tb.Fatalf("%s/go.mod names no module", root)
	return ""
}

// parseFile reads the imports of the file at p and the string literals
// in the arguments of its fmt.Errorf and errors.New calls.
func parseFile(fset *token.FileSet, p, name string) (file, error) {
	af, err := parser.ParseFile(fset, p, nil, parser.SkipObjectResolution)
	if err != nil {
		return file{}, err
	}
	f := file{name: name, test: strings.HasSuffix(name, "_test.go")}
	for _, is := range af.Imports {
		path, err := strconv.Unquote(is.Path.Value)
		if err != nil {
			return file{}, fmt.Errorf("%s: import %s: %w", name, is.Path.Value, err)
		}
		f.imports = append(f.imports, path)
	}
	ast.Inspect(af, func(n ast.Node) bool {
		call, ok := n.(*ast.CallExpr)
		if !ok || !isErrorCall(call) {
			return true
		}
		for _, arg := range call.Args {
			ast.Inspect(arg, func(n ast.Node) bool {
				if bl, ok := n.(*ast.BasicLit); ok && bl.Kind == token.STRING {
					if s, err := strconv.Unquote(bl.Value); err == nil {
						f.errText = append(f.errText, lit{fset.Position(bl.Pos()).Line, s})
					}
				}
				return true
			})
		}
		return true
	})
	return f, nil
}

// isErrorCall reports whether call is fmt.Errorf(...) or errors.New(...).
func isErrorCall(call *ast.CallExpr) bool {
	sel, ok := call.Fun.(*ast.SelectorExpr)
	if !ok {
		return false
	}
	x, ok := sel.X.(*ast.Ident)
	return ok && (x.Name == "fmt" && sel.Sel.Name == "Errorf" || x.Name == "errors" && sel.Sel.Name == "New")
}

// TestLayering checks the rules (doc.go) on this repository.
func TestLayering(t *testing.T) {
	m := loadModule(t, "../..")
	// A loader that found nothing would pass every rule.
	for _, p := range []string{"internal/cliapp", "internal/tree", "internal/transport", "snapshot", "testutil", "cmd/publish"} {
		if _, ok := m.pkgs[m.path+"/"+p]; !ok {
			t.Fatalf("package %s not found: the loader is broken", p)
		}
	}
	t.Logf("public packages: %s", strings.Join(m.public(), ", "))
	flags := appFlags()
	if !slices.Contains(flags, "root") || !slices.Contains(flags, "upstream") {
		t.Fatalf("the CLI's flags %v lack --root or --upstream", flags)
	}
	for _, r := range rules(flags) {
		t.Run(r.name, func(t *testing.T) {
			for _, f := range r.check(m) {
				t.Error(f)
			}
		})
	}
}
