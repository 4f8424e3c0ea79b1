package cliapp

import (
	"bytes"
	"context"
	"errors"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/seqmirror/seqmirror/internal/fsys"
	"github.com/seqmirror/seqmirror/internal/trigger"
	"github.com/seqmirror/seqmirror/testutil"
)

// Forced-command mode runs only the documented commands; everything
// else is refused whole, never split into something that would run.
func TestParseSSHCommand(t *testing.T) {
	tests := []struct {
		name, cmd string
		want      uint64
		ok        bool
	}{
		{name: "sync", cmd: "sync", ok: true},
		{name: "Debian's runmirrors", cmd: "sync:all", ok: true},
		{name: "sync N", cmd: "sync 1234", want: 1234, ok: true},
		{name: "spaces around", cmd: "  sync   1234 ", want: 1234, ok: true},
		{name: "largest number", cmd: "sync 18446744073709551615", want: 1<<64 - 1, ok: true},
		{name: "too large", cmd: "sync 18446744073709551616"},
		{name: "zero", cmd: "sync 0"},
		{name: "leading zero", cmd: "sync 01"},
		{name: "sign", cmd: "sync +1"},
		{name: "empty", cmd: ""},
		{name: "extra word", cmd: "sync 1 2"},
		{name: "shell", cmd: "sync 1; rm -rf /"},
		{name: "substitution", cmd: "sync $(id)"},
		{name: "another stage", cmd: "sync:stage1"},
		{name: "upper case", cmd: "SYNC"},
		{name: "a URL", cmd: "mirror-sync trigger http://evil.example/"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := parseSSHCommand(tt.cmd)
			if tt.ok != (err == nil) || n != tt.want {
				t.Fatalf("parseSSHCommand(%q) = %d, %v", tt.cmd, n, err)
			}
			if err != nil && (!errors.Is(err, errSSHCommand) || ExitCode(err) != ExitUsage) {
				t.Fatalf("error %v: exit %d", err, ExitCode(err))
			}
		})
	}
}

// The documented set-up works as written: the secret made by the two
// documented commands, the authorized_keys command run as sshd runs it
// (SSH_ORIGINAL_COMMAND the documented "sync 1234"), against a real
// receiver on 127.0.0.1 that verifies the trigger with the same file.
func TestDocumentedForcedCommand(t *testing.T) {
	const doc = "docs/operating.md"
	dir := t.TempDir()
	secretPath := filepath.Join(dir, "trigger.secret")
	for _, substr := range []string{"head -c 32 /dev/urandom", "chmod 600 /etc/seqmirror"} {
		lines := testutil.DocLines(t, doc, substr)
		if len(lines) != 1 {
			t.Fatalf("%s: want one line with %q, got %q", doc, substr, lines)
		}
		line := strings.ReplaceAll(lines[0], "/etc/seqmirror/trigger.secret", secretPath)
		if out, err := exec.Command("/bin/sh", "-c", line).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v: %s", line, err, out)
		}
	}
	secret, err := trigger.ReadSecret(fsys.OS(), secretPath)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var got []trigger.Message
	srv := httptest.NewServer(trigger.NewVerifier(secret, nil).Handler(func(_ context.Context, m trigger.Message) error {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, m)
		return nil
	}, nil))
	defer srv.Close()

	args := documentedForcedCommand(t, doc)
	for i, a := range args {
		a = strings.ReplaceAll(a, "/etc/seqmirror/trigger.secret", secretPath)
		a = strings.ReplaceAll(a, "/srv/mirror", filepath.Join(dir, "mirror"))
		args[i] = strings.ReplaceAll(a, "127.0.0.1:8873", strings.TrimPrefix(srv.URL, "http://"))
	}
	pushed := testutil.DocLines(t, doc, "ssh -i ")
	if len(pushed) != 1 || !strings.HasSuffix(pushed[0], " sync 1234") {
		t.Fatalf("%s: the master's ssh line: %q", doc, pushed)
	}
	env := map[string]string{"SSH_ORIGINAL_COMMAND": "sync 1234", "SSH_CONNECTION": "192.0.2.7 52144 198.51.100.1 22"}
	o := appOptions{lookupEnv: func(k string) (string, bool) { v, ok := env[k]; return v, ok }}
	var stdout, stderr bytes.Buffer
	if code := Run(context.Background(), newApp(MirrorApp, &stdout, &stderr, o), args); code != ExitOK {
		t.Fatalf("%q: exit %d: %s", args, code, stderr.String())
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 1 || got[0].Snapshot != 1234 || got[0].Origin != "ssh 192.0.2.7" {
		t.Fatalf("received %+v; stdout %q", got, stdout.String())
	}
}

// documentedForcedCommand is the command of the authorized_keys line in
// doc, as arguments (without the binary's directory).
func documentedForcedCommand(t *testing.T, doc string) []string {
	t.Helper()
	lines := testutil.DocLines(t, doc, `command="`)
	if len(lines) != 1 {
		t.Fatalf("%s: want one authorized_keys line, got %q", doc, lines)
	}
	_, rest, _ := strings.Cut(lines[0], `command="`)
	cmd, _, ok := strings.Cut(rest, `"`)
	if !ok {
		t.Fatalf("%s: unterminated command= in %q", doc, lines[0])
	}
	args := strings.Fields(cmd)
	args[0] = filepath.Base(args[0])
	if args[0] != "mirror-sync" || args[1] != "trigger" {
		t.Fatalf("%s: the forced command is %q", doc, cmd)
	}
	return args
}
