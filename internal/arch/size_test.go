package arch

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"strings"
	"testing"
)

// Limits of a non-test function: more lines or parameters need a reason,
// a comment line starting with "size:" in its doc comment (e.g. "// size:
// one table of flags, read top to bottom").
const (
	maxLines  = 80
	maxParams = 6
)

// sizeFinding is a function over a limit without a reason.
type sizeFinding struct {
	where         string // file:line
	name          string
	lines, params int
}

func (s sizeFinding) String() string {
	return fmt.Sprintf("%s: %s has %d lines and %d parameters (limits %d and %d; shorten it or give a \"// size:\" reason in its doc comment)",
		s.where, s.name, s.lines, s.params, maxLines, maxParams)
}

// funcSizes returns the functions of the Go file src (named name) over the
// limits without a reason.
func funcSizes(fset *token.FileSet, name string, src any) ([]sizeFinding, error) {
	f, err := parser.ParseFile(fset, name, src, parser.ParseComments)
	if err != nil {
		return nil, err
	}
	var out []sizeFinding
	for _, d := range f.Decls {
		fd, ok := d.(*ast.FuncDecl)
		if !ok || fd.Body == nil {
			continue
		}
		lines := fset.Position(fd.End()).Line - fset.Position(fd.Pos()).Line + 1
		params := 0
		for _, p := range fd.Type.Params.List {
			params += max(1, len(p.Names))
		}
		if (lines <= maxLines && params <= maxParams) || hasReason(fd.Doc) {
			continue
		}
		out = append(out, sizeFinding{where: fmt.Sprintf("%s:%d", name, fset.Position(fd.Pos()).Line), name: funcName(fd), lines: lines, params: params})
	}
	return out, nil
}

func hasReason(doc *ast.CommentGroup) bool {
	if doc == nil {
		return false
	}
	for _, c := range doc.List {
		if strings.HasPrefix(strings.TrimSpace(strings.TrimPrefix(c.Text, "//")), "size:") {
			return true
		}
	}
	return false
}

func funcName(fd *ast.FuncDecl) string {
	if fd.Recv == nil || len(fd.Recv.List) == 0 {
		return fd.Name.Name
	}
	t := fd.Recv.List[0].Type
	if s, ok := t.(*ast.StarExpr); ok {
		t = s.X
	}
	if g, ok := t.(*ast.IndexExpr); ok {
		t = g.X
	}
	if id, ok := t.(*ast.Ident); ok {
		return id.Name + "." + fd.Name.Name
	}
	return fd.Name.Name
}

// TestFunctionSize: no non-test function of the module is over 80 lines
// or 6 parameters without a one-line reason beside it.
func TestFunctionSize(t *testing.T) {
	fset := token.NewFileSet()
	var found []sizeFinding
	eachSource(t, nil, func(rel string, src []byte) error {
		fs, err := funcSizes(fset, rel, src)
		found = append(found, fs...)
		return err
	})
	for _, f := range found {
		t.Error(f)
	}
}

// The rule catches a long function, a long parameter list, and lets a
// function with a reason through.
func TestFunctionSizeCatches(t *testing.T) {
	body := strings.Repeat("\t_ = 1\n", maxLines)
	tests := []struct {
		name string
		src  string
		want int
	}{
		{name: "short", src: "func f(a, b int) {}\n", want: 0},
		{name: "long", src: "func f() {\n" + body + "}\n", want: 1},
		{name: "many params", src: "func f(a, b, c, d int, e string, g, h bool) {}\n", want: 1},
		{name: "method", src: "type T struct{}\nfunc (t *T) f(a, b, c, d, e, g, h int) {}\n", want: 1},
		{name: "with reason", src: "// f does it.\n// size: one table, read top to bottom.\nfunc f() {\n" + body + "}\n", want: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := funcSizes(token.NewFileSet(), "x.go", "package x\n\n"+tt.src)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != tt.want {
				t.Errorf("findings = %v, want %d", got, tt.want)
			}
		})
	}
}
