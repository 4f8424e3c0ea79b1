package cliapp_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/seqmirror/seqmirror/internal/cliapp"
	"github.com/seqmirror/seqmirror/internal/export"
	"github.com/seqmirror/seqmirror/internal/mirror"
	"github.com/seqmirror/seqmirror/internal/quorum"
	"github.com/seqmirror/seqmirror/internal/transport"
	"github.com/seqmirror/seqmirror/internal/tree"
	"github.com/seqmirror/seqmirror/manifest"
	"github.com/seqmirror/seqmirror/seqfile"
	"github.com/seqmirror/seqmirror/snapshot"
	"github.com/urfave/cli/v2"
)

func TestExitCode(t *testing.T) {
	wrap := func(err error) error { return fmt.Errorf("publish: step: %w", fmt.Errorf("inner: %w", err)) }
	tests := []struct {
		name string
		err  error
		want int
	}{
		{name: "nil", err: nil, want: cliapp.ExitOK},
		{name: "plain", err: errors.New("boom"), want: cliapp.ExitFailure},
		{name: "usage", err: cliapp.Usage("bad %s", "flag"), want: cliapp.ExitUsage},
		{name: "wrapped usage", err: wrap(cliapp.Usage("bad")), want: cliapp.ExitUsage},
		{name: "canceled", err: wrap(context.Canceled), want: cliapp.ExitInterrupted},
		{name: "locked", err: wrap(export.ErrLocked), want: cliapp.ExitLocked},
		{name: "source changing", err: wrap(snapshot.ErrSourceChanging), want: cliapp.ExitBusy},
		{name: "upstream busy", err: wrap(mirror.ErrUpstreamBusy), want: cliapp.ExitBusy},
		{name: "unavailable", err: wrap(transport.ErrUnavailable), want: cliapp.ExitBusy},
		{name: "vanished", err: wrap(transport.ErrVanished), want: cliapp.ExitBusy},
		{name: "rollback", err: wrap(mirror.ErrRollback), want: cliapp.ExitRefused},
		{name: "too many deletes", err: wrap(mirror.ErrTooManyDeletes), want: cliapp.ExitRefused},
		{name: "publish: too many deletes", err: wrap(snapshot.ErrTooManyDeletes), want: cliapp.ExitRefused},
		{name: "publish: a mirror's root", err: wrap(snapshot.ErrMirrorRoot), want: cliapp.ExitRefused},
		{name: "diverged", err: wrap(mirror.ErrDiverged), want: cliapp.ExitCorrupt},
		{name: "corrupt manifest", err: wrap(manifest.ErrCorrupt), want: cliapp.ExitCorrupt},
		{name: "unsafe path", err: wrap(manifest.ErrUnsafePath), want: cliapp.ExitCorrupt},
		{name: "corrupt seq", err: wrap(seqfile.ErrCorrupt), want: cliapp.ExitCorrupt},
		{name: "hash mismatch", err: wrap(tree.ErrHashMismatch), want: cliapp.ExitCorrupt},
		{name: "bad current", err: wrap(export.ErrBadCurrent), want: cliapp.ExitCorrupt},
		{name: "no snapshot", err: wrap(mirror.ErrNoSnapshot), want: cliapp.ExitFailure},
		{name: "served snapshot damaged", err: wrap(mirror.ErrServedDamaged), want: cliapp.ExitFailure},
		{name: "served manifest corrupt", err: errors.Join(mirror.ErrServedDamaged, manifest.ErrCorrupt), want: cliapp.ExitCorrupt},
		{name: "not root", err: wrap(export.ErrNotRoot), want: cliapp.ExitFailure},
		{name: "quorum not reached", err: wrap(quorum.ErrNotReached), want: cliapp.ExitNoQuorum},
		// The flip was done: an interrupted quorum wait is its real outcome.
		{name: "quorum wait interrupted", err: wrap(fmt.Errorf("%w: %w", quorum.ErrNotReached, context.Canceled)), want: cliapp.ExitNoQuorum},
		{name: "unsupported type", err: wrap(tree.ErrUnsupportedType), want: cliapp.ExitFailure},
		// A lock conflict during a corrupt-data run is still "try later".
		{name: "joined", err: errors.Join(export.ErrLocked, manifest.ErrCorrupt), want: cliapp.ExitLocked},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := cliapp.ExitCode(tt.err); got != tt.want {
				t.Fatalf("ExitCode(%v) = %d, want %d", tt.err, got, tt.want)
			}
		})
	}
}

// The mirror's library errors name no flags; the hint line says what to do.
func TestMirrorHints(t *testing.T) {
	wrap := func(err error) error { return fmt.Errorf("sync: %w", err) }
	tests := []struct {
		name string
		err  error
		want string // the hint line
	}{
		{name: "no snapshot", err: wrap(mirror.ErrNoSnapshot), want: "publish there first; if the upstream is a plain tree with only seq/begin and seq/end, pass --classic"},
		{name: "rollback", err: wrap(mirror.ErrRollback), want: "pass --allow-rollback to follow it"},
		{name: "too many deletes", err: wrap(mirror.ErrTooManyDeletes), want: "pass --force to accept (or a higher --max-delete)"},
		{name: "served snapshot damaged", err: wrap(mirror.ErrServedDamaged), want: "`mirror-sync verify --repair"},
		{name: "served manifest corrupt", err: errors.Join(mirror.ErrServedDamaged, manifest.ErrCorrupt), want: "`mirror-sync verify --repair"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var o, e bytes.Buffer
			app := &cli.App{Name: "mirror-sync", Writer: &o, ErrWriter: &e, Action: func(*cli.Context) error { return tt.err }}
			cliapp.Run(context.Background(), app, []string{"mirror-sync"})
			want := "mirror-sync: " + tt.err.Error()
			if !strings.HasPrefix(e.String(), want) || !strings.Contains(e.String(), "\nmirror-sync: hint: ") || !strings.Contains(e.String(), tt.want) {
				t.Fatalf("stderr %q, want %q and a hint with %q", e.String(), want, tt.want)
			}
		})
	}
}

// TestRunInProcess drives the apps in-process, as the mains do.
func TestRunInProcess(t *testing.T) {
	tests := []struct {
		name    string
		app     func(o, e *bytes.Buffer) int
		code    int
		stderr  string
		stdoutP bool // expect something on stdout
	}{
		{name: "publish help", app: func(o, e *bytes.Buffer) int {
			return cliapp.Run(context.Background(), cliapp.PublishApp(o, e), []string{"publish", "--help"})
		}, code: 0, stdoutP: true},
		{name: "mirror no root", app: func(o, e *bytes.Buffer) int {
			return cliapp.Run(context.Background(), cliapp.MirrorApp(o, e), []string{"mirror-sync", "--upstream", "x"})
		}, code: cliapp.ExitUsage, stderr: "mirror-sync: --root is required: the export root directory\nRun 'mirror-sync --help' for usage.\n"},
		{name: "cancelled", app: func(o, e *bytes.Buffer) int {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			src, root := t.TempDir(), t.TempDir()
			return cliapp.Run(ctx, cliapp.PublishApp(o, e), []string{"publish", "--root", root, "--source", src, "--quiet"})
		}, code: cliapp.ExitInterrupted, stderr: "publish: interrupted; the served snapshot is unchanged\n"},
		// One line naming the signal, even under --quiet.
		{name: "SIGTERM", app: func(o, e *bytes.Buffer) int {
			ctx, cancel := context.WithCancelCause(context.Background())
			cancel(cliapp.Interrupted{Signal: syscall.SIGTERM})
			src, root := t.TempDir(), t.TempDir()
			return cliapp.Run(ctx, cliapp.PublishApp(o, e), []string{"publish", "--root", root, "--source", src, "--quiet"})
		}, code: cliapp.ExitInterrupted, stderr: "publish: interrupted by SIGTERM; the served snapshot is unchanged\n"},
		{name: "SIGINT", app: func(o, e *bytes.Buffer) int {
			ctx, cancel := context.WithCancelCause(context.Background())
			cancel(cliapp.Interrupted{Signal: os.Interrupt})
			return cliapp.Run(ctx, cliapp.MirrorApp(o, e), []string{"mirror-sync", "--upstream", t.TempDir(), "--root", t.TempDir(), "--quiet"})
		}, code: cliapp.ExitInterrupted, stderr: "mirror-sync: interrupted by SIGINT; the served snapshot is unchanged\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var o, e bytes.Buffer
			if code := tt.app(&o, &e); code != tt.code {
				t.Fatalf("exit %d, want %d; stderr %q", code, tt.code, e.String())
			}
			if tt.stderr != "" && e.String() != tt.stderr {
				t.Fatalf("stderr %q, want %q", e.String(), tt.stderr)
			}
			if tt.stdoutP != (o.Len() > 0) {
				t.Fatalf("stdout %q", o.String())
			}
		})
	}
}
