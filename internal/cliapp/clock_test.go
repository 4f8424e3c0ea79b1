package cliapp

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The app's clock is its own (appOptions.now), not the package's: gc of
// the same root, --min-age 1h, prunes the snapshot superseded a moment ago
// only by an app whose clock is two hours on.
func TestAppClock(t *testing.T) {
	tests := []struct {
		name   string
		now    func() time.Time // nil: the default
		pruned string
	}{
		{name: "default clock", now: nil, pruned: "0"},
		{name: "two hours on", now: func() time.Time { return time.Now().Add(2 * time.Hour) }, pruned: "1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src, root := t.TempDir(), filepath.Join(t.TempDir(), "root")
			for _, content := range []string{"one", "two"} {
				if err := os.WriteFile(filepath.Join(src, "f"), []byte(content), 0o644); err != nil {
					t.Fatal(err)
				}
				runApp(t, appOptions{}, "publish", "--root", root, "--source", src, "--keep", "5", "--quiet")
			}
			out := runApp(t, appOptions{now: tt.now}, "publish", "gc", "--root", root, "--keep", "1", "--min-age", "1h")
			if strings.TrimSpace(out) != tt.pruned {
				t.Fatalf("gc pruned %q snapshots, want %s", out, tt.pruned)
			}
		})
	}
}

// runApp runs publish, built with o, with args and returns its stdout.
func runApp(tb testing.TB, o appOptions, args ...string) string {
	tb.Helper()
	var stdout, stderr bytes.Buffer
	if code := Run(context.Background(), newApp(PublishApp, &stdout, &stderr, o), args); code != ExitOK {
		tb.Fatalf("%v: exit %d, stderr %q", args, code, stderr.String())
	}
	return stdout.String()
}
