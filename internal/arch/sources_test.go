package arch

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// eachSource calls fn with the path (relative to the module root, slash
// separated) and the text of every non-test .go file of the module, hidden
// and testdata directories aside, and those skip names (relative paths).
func eachSource(tb testing.TB, skip map[string]bool, fn func(rel string, src []byte) error) {
	tb.Helper()
	root := filepath.Join("..", "..")
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		rel = filepath.ToSlash(rel)
		if d.IsDir() && p != root && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata" || skip[rel]) {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return fn(rel, b)
	})
	if err != nil {
		tb.Fatal(err)
	}
}
