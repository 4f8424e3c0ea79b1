package rsync

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/seqmirror/seqmirror/internal/transport/upstream"
)

func TestExitErrorMapping(t *testing.T) {
	tests := []struct {
		name     string
		code     int
		stderr   string
		want     error // nil: neither sentinel
		vanished bool  // after vanished()
		config   bool
	}{
		{name: "usage", code: 1, stderr: "rsync: --frob: unknown option", config: true},
		{name: "protocol", code: 2, config: true},
		{name: "select files", code: 3, stderr: "change_dir failed: Permission denied (13)", config: true, want: upstream.ErrRefused},
		{name: "pruned dir", code: 3, stderr: `change_dir "snapshots/4/" (in m) failed: No such file or directory (2)`, config: true, vanished: true},
		{name: "unsupported", code: 4, config: true},
		{name: "daemon refused", code: 5, stderr: "@ERROR: max connections (50) reached -- try again later", want: upstream.ErrUnavailable},
		{name: "socket", code: 10, want: upstream.ErrUnavailable},
		{name: "stream", code: 12, want: upstream.ErrUnavailable},
		{name: "io timeout", code: 30, want: upstream.ErrUnavailable},
		{name: "connect timeout", code: 35, want: upstream.ErrUnavailable},
		{name: "ssh failed", code: 255, want: upstream.ErrUnavailable},
		{name: "vanished", code: 24, want: upstream.ErrVanished, vanished: true},
		{name: "partial", code: 23, stderr: "some files/attrs were not transferred"},
		{name: "partial missing", code: 23, stderr: `link_stat "snapshots/3/a" failed: No such file or directory (2)`, vanished: true},
		{name: "file io", code: 11},
		{name: "unknown module", code: 5, stderr: "@ERROR: Unknown module 'nope'", want: upstream.ErrRefused},
		{name: "auth failed", code: 5, stderr: "@ERROR: auth failed on module m", want: upstream.ErrRefused},
		{name: "refused option", code: 1, stderr: "rsync: The server is configured to refuse --checksum", config: true, want: upstream.ErrRefused},
		{name: "unreadable file", code: 23, stderr: `send_files failed to open "/pub/snapshots/2/secret": Permission denied (13)`, want: upstream.ErrRefused},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := error(&ExitError{Code: tc.code, Stderr: tc.stderr})
			for _, s := range []error{upstream.ErrUnavailable, upstream.ErrVanished, upstream.ErrRefused} {
				if errors.Is(err, s) != (s == tc.want) {
					t.Errorf("code %d: errors.Is(%v) = %v", tc.code, s, errors.Is(err, s))
				}
			}
			if got := errors.Is(vanished(fmt.Errorf("ctx: %w", err)), upstream.ErrVanished); got != tc.vanished {
				t.Errorf("vanished() = %v, want %v", got, tc.vanished)
			}
			msg := err.Error()
			if !strings.Contains(msg, fmt.Sprintf("code %d", tc.code)) || !strings.Contains(msg, tc.stderr) {
				t.Errorf("message %q lacks the code or rsync's stderr", msg)
			}
			if strings.Contains(msg, "configuration problem") != tc.config {
				t.Errorf("message %q: configuration hint wrong", msg)
			}
		})
	}
}
