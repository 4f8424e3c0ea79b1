package arch

import (
	"go/ast"
	"go/parser"
	"go/token"
	"strings"
	"testing"
)

// eagerCalls are calls that do real work (parsing, compiling) when a
// package-level variable is initialised: every start of both tools pays
// for them, the no-op poll included (docs/performance.md). Such values are
// made on first use instead (sync.OnceValue).
var eagerCalls = map[string]bool{"regexp.MustCompile": true, "regexp.Compile": true, "template.Must": true}

// eagerInits returns "file:line: call" for each package-level variable of
// the Go file src initialised with one of eagerCalls outside a function
// literal.
func eagerInits(fset *token.FileSet, name string, src any) ([]string, error) {
	f, err := parser.ParseFile(fset, name, src, 0)
	if err != nil {
		return nil, err
	}
	var found []string
	for _, d := range f.Decls {
		gd, ok := d.(*ast.GenDecl)
		if !ok || gd.Tok != token.VAR {
			continue
		}
		ast.Inspect(gd, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.FuncLit:
				return false // runs when called, not at init
			case *ast.SelectorExpr:
				if x, ok := n.X.(*ast.Ident); ok && eagerCalls[x.Name+"."+n.Sel.Name] {
					found = append(found, fset.Position(n.Pos()).String()+": "+x.Name+"."+n.Sel.Name)
				}
			}
			return true
		})
	}
	return found, nil
}

// TestNoEagerInit: no non-test package of the module that publish and
// mirror-sync may link (all but internal/tools, separate programs)
// compiles a regexp or parses a template at init (the tools' start-up is
// part of every poll).
func TestNoEagerInit(t *testing.T) {
	fset := token.NewFileSet()
	eachSource(t, map[string]bool{"internal/tools": true}, func(rel string, src []byte) error {
		found, err := eagerInits(fset, rel, src)
		for _, f := range found {
			t.Errorf("%s at package init: make it on first use (sync.OnceValue)", f)
		}
		return err
	})
}

// The rule catches a package-level regexp and lets one made in a function
// literal through.
func TestNoEagerInitCatches(t *testing.T) {
	src := `package p
var a = regexp.MustCompile("x")
var (
	b = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile("y") })
	c = template.Must(template.New("t").Parse("z"))
)
`
	found, err := eagerInits(token.NewFileSet(), "p.go", src)
	if err != nil {
		t.Fatal(err)
	}
	if len(found) != 2 || !strings.Contains(found[0], "p.go:2") || !strings.Contains(found[1], "p.go:5") {
		t.Fatalf("found %v, want the regexp of line 2 and the template of line 5", found)
	}
}
