package testutil

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// RepoFile returns the path of rel (slash-separated) in this repository,
// wherever the test runs from.
func RepoFile(rel string) string {
	_, here, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(here), "..", filepath.FromSlash(rel))
}

// DocBlock returns the sh code block that follows "`LABEL`:" in the
// document doc (a path relative to the repository, e.g. "docs/classic.md"),
// so that the documented scripts are the tested ones.
func DocBlock(tb testing.TB, doc, label string) string {
	tb.Helper()
	b, err := os.ReadFile(RepoFile(doc))
	if err != nil {
		tb.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(b), "`"+label+"`:")
	if !ok {
		tb.Fatalf("%s has no %s", doc, label)
	}
	_, rest, ok = strings.Cut(rest, "```sh\n")
	body, _, ok2 := strings.Cut(rest, "```")
	if !ok || !ok2 {
		tb.Fatalf("%s: no code block after %s", doc, label)
	}
	return body
}

// DocLines returns the indented lines of doc that contain substr, with
// the indentation removed: the commands a document shows (crontab lines,
// shell examples), so that tests run them as written.
func DocLines(tb testing.TB, doc, substr string) []string {
	tb.Helper()
	b, err := os.ReadFile(RepoFile(doc))
	if err != nil {
		tb.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "    ") && strings.Contains(l, substr) {
			out = append(out, strings.TrimSpace(l))
		}
	}
	return out
}
