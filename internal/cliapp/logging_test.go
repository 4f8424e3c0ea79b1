package cliapp

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/seqmirror/seqmirror/testutil"
)

// devIno is $JOURNAL_STREAM's form of f: "DEVICE:INODE".
func devIno(tb testing.TB, f *os.File) string {
	tb.Helper()
	fi, err := f.Stat()
	if err != nil {
		tb.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	return fmt.Sprintf("%d:%d", st.Dev, st.Ino)
}

// publishLog runs publish --verbose with stderr a real file and returns
// the log lines it wrote there.
func publishLog(t *testing.T, journal func(stderr *os.File) string, args ...string) []string {
	t.Helper()
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	testutil.GenTree(t, src, 5, 1)
	stderr, err := os.Create(filepath.Join(dir, "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	defer stderr.Close()
	t.Setenv(JournalEnv, journal(stderr))
	var stdout bytes.Buffer
	args = append([]string{"publish", "--root", filepath.Join(dir, "root"), "--source", src, "--verbose"}, args...)
	if code := Run(context.Background(), PublishApp(&stdout, stderr), args); code != ExitOK {
		t.Fatalf("publish: exit %d", code)
	}
	b, err := os.ReadFile(stderr.Name())
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) < 2 {
		t.Fatalf("log: %q, want several lines", b)
	}
	return lines
}

// Under systemd, stderr is the journal, which stamps every line: the log
// lines have no time of their own. Anywhere else they do: the variable
// alone (inherited by a child whose stderr is a file) is not enough.
func TestLogTimeOnlyOffTheJournal(t *testing.T) {
	tests := []struct {
		name     string
		journal  func(stderr *os.File) string
		format   string
		wantTime bool
	}{
		{name: "no journal, text", journal: func(*os.File) string { return "" }, format: "text", wantTime: true},
		{name: "stderr is the journal, text", journal: func(f *os.File) string { return devIno(t, f) }, format: "text"},
		{name: "stderr is the journal, json", journal: func(f *os.File) string { return devIno(t, f) }, format: "json"},
		{name: "variable names another stream", journal: func(f *os.File) string { return devIno(t, os.Stdin) }, format: "text", wantTime: true},
		{name: "variable garbage", journal: func(*os.File) string { return "x:y" }, format: "json", wantTime: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, line := range publishLog(t, tt.journal, "--log-format", tt.format) {
				var hasTime bool
				if tt.format == "json" {
					var m map[string]any
					if err := json.Unmarshal([]byte(line), &m); err != nil {
						t.Fatalf("not JSON: %q: %v", line, err)
					}
					_, hasTime = m["time"]
					if m["level"] == nil || m["msg"] == nil {
						t.Fatalf("no level or msg: %q", line)
					}
				} else {
					hasTime = strings.HasPrefix(line, "time=")
					if !strings.Contains(line, "level=") {
						t.Fatalf("not a text log line: %q", line)
					}
				}
				if hasTime != tt.wantTime {
					t.Fatalf("line %q: time %v, want %v", line, hasTime, tt.wantTime)
				}
			}
		})
	}
}
