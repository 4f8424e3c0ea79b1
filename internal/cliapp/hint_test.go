package cliapp

import (
	"fmt"
	"io/fs"
	"os/exec"
	"strings"
	"testing"

	"github.com/seqmirror/seqmirror/internal/config"
	"github.com/seqmirror/seqmirror/internal/daemon"
	"github.com/seqmirror/seqmirror/internal/export"
	"github.com/seqmirror/seqmirror/internal/transport"
	"github.com/seqmirror/seqmirror/internal/transport/rsync"
	"github.com/seqmirror/seqmirror/internal/transport/web"
	"github.com/seqmirror/seqmirror/internal/tree"
	"github.com/seqmirror/seqmirror/internal/trigger"
)

// The flags to use live in the CLI's hints, not in the libraries' errors.
func TestHintNamesTheFlag(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want string
	}{
		{name: "no rsync binary", err: fmt.Errorf("run rsync: %w", exec.ErrNotFound), want: "--rsync"},
		{name: "rsync usage error", err: fmt.Errorf("fetch: %w", &rsync.ExitError{Code: 1}), want: "--rsync-opt"},
		{name: "rsync transfer error is no configuration", err: &rsync.ExitError{Code: 23}, want: ""},
		{name: "empty address", err: fmt.Errorf("%w: empty", transport.ErrBadAddress), want: "give --upstream"},
		{name: "untrusted certificate", err: fmt.Errorf("GET x: %w: x509", web.ErrCertificate), want: "--ca-file"},
		{name: "redirect to another host", err: fmt.Errorf("fetch: %w", web.ErrRedirect), want: "give --upstream"},
		{name: "no pointer", err: fmt.Errorf("%w: old", web.ErrNoPointer), want: "publish"},
		{name: "no root at the URL", err: fmt.Errorf("%w: x", web.ErrNotRoot), want: "give --upstream the URL of the export root"},
		{name: "a second daemon, before the run lock's hint", err: fmt.Errorf("%w: %w", daemon.ErrRunning, export.ErrLocked), want: ".daemon.lock"},
		{name: "trigger secret", err: fmt.Errorf("%w: x holds 3 bytes", trigger.ErrSecret), want: "--secret-file"},
		{name: "trigger URL", err: fmt.Errorf("%w: x", trigger.ErrBadURL), want: "http(s)://host:port"},
		{name: "trigger rejected", err: fmt.Errorf("trigger: %w: 401", trigger.ErrRejected), want: "--secret-file"},
		{name: "trigger unreachable", err: fmt.Errorf("trigger: %w: refused", trigger.ErrUnreachable), want: "--listen"},
		{name: "config: unknown key, near a flag", err: usageError{&configFileError{path: "f", line: 2, err: &unknownKeyError{tool: "mirror-sync", key: "kep", suggest: "keep"}}}, want: "did you mean keep?"},
		{name: "config: unknown key, near nothing", err: &configFileError{path: "f", line: 2, err: &unknownKeyError{tool: "publish", key: "zzz"}}, want: "the keys are the long flag names of publish"},
		{name: "config: no such file", err: &configFileError{path: "f", err: fs.ErrNotExist}, want: "--config (or $SEQMIRROR_CONFIG)"},
		{name: "config: syntax", err: &configFileError{path: "f", err: config.ErrSyntax}, want: "`key = value`"},
		{name: "no such file outside a config is no config hint", err: fs.ErrNotExist, want: ""},
		{name: "gzip, before the content hint", err: fmt.Errorf("fetch: %w: %w", tree.ErrHashMismatch, web.ErrEncoding), want: "compression off"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := hint("mirror-sync", tt.err)
			if (tt.want == "") != (got == "") || !strings.Contains(got, tt.want) {
				t.Fatalf("hint(%v) = %q, want one naming %q", tt.err, got, tt.want)
			}
		})
	}
}
