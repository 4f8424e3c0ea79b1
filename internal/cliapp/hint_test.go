package cliapp

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"

	"github.com/seqmirror/seqmirror/internal/transport"
	"github.com/seqmirror/seqmirror/internal/transport/rsync"
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
