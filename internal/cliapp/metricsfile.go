package cliapp

import (
	"context"
	"fmt"
	"strings"
	"unicode"

	"github.com/seqmirror/seqmirror/internal/fsys"
	"github.com/seqmirror/seqmirror/internal/metrics"
	"github.com/seqmirror/seqmirror/internal/mirror"
	"github.com/seqmirror/seqmirror/snapshot"
	"github.com/urfave/cli/v2"
)

// metricsFileFlag is --metrics-file of publish and mirror-sync (withMetrics).
var metricsFileFlag = &cli.StringFlag{Name: "metrics-file", Usage: "after every run (a no-op and a failure included), atomically write Prometheus metrics to `PATH` for node_exporter's textfile collector (a *.prom file in its --collector.textfile.directory; docs/operating.md, Metrics)"}

// runTransferKey is where printResult leaves the counts of a run's result
// for withMetrics (cli.App.Metadata, per app: an app runs once).
const runTransferKey = "seqmirror/cliapp.runTransfer"

// runTransfer is what a run fetched, linked and copied.
type runTransfer struct {
	files metrics.Files
	bytes int64
}

// withMetrics wraps the action of a run (publish, mirror-sync). With
// --metrics-file it writes the run's metrics once action has returned,
// whatever the outcome: a new snapshot, a no-op, a failure, bad flags, an
// interruption — every return of the action passes here, and the exit code
// recorded is the one Run returns for it (outcomeCode). If the file cannot
// be written, a run that succeeded fails (exit 1) and says so; a failed run
// keeps its own error and exit code, and the write's error is printed.
func withMetrics(action cli.ActionFunc) cli.ActionFunc {
	return func(c *cli.Context) error {
		path := c.String("metrics-file")
		if path == "" {
			return action(c)
		}
		now := optionsOf(c).now
		start := now()
		err := action(c)
		run := metrics.Run{Tool: c.App.Name, Start: start, End: now(), ExitCode: outcomeCode(c.Context, err), Kinds: failureKinds()}
		run.Kind = exitKind(run.ExitCode)
		if t, ok := c.App.Metadata[runTransferKey].(runTransfer); ok {
			run.Files, run.Bytes = t.files, t.bytes
		}
		if r, rerr := envFor(c).root(); rerr == nil {
			run.Root = r
		}
		werr := metrics.WriteFile(fsys.OS(), path, run)
		switch {
		case werr == nil:
			return err
		case err == nil:
			return fmt.Errorf("the run succeeded, but --metrics-file %s was not written: %w", path, werr)
		}
		fmt.Fprintf(c.App.ErrWriter, "%s: --metrics-file %s was not written: %v\n", c.App.Name, path, werr)
		return err
	}
}

// noteTransfer keeps the counts of a run's result (snapshot.PublishResult,
// publishOutput, mirror.Result) for withMetrics.
func noteTransfer(c *cli.Context, res any) {
	var t runTransfer
	switch r := res.(type) {
	case snapshot.PublishResult:
		t = runTransfer{metrics.Files{Linked: r.Linked, Copied: r.Copied}, r.Bytes}
	case publishOutput:
		t = runTransfer{metrics.Files{Linked: r.Linked, Copied: r.Copied}, r.Bytes}
	case mirror.Result:
		t = runTransfer{metrics.Files{Fetched: r.Fetched, Linked: r.Linked}, r.Bytes}
	default:
		return
	}
	if c.App.Metadata == nil {
		c.App.Metadata = map[string]any{}
	}
	c.App.Metadata[runTransferKey] = t
}

// outcomeCode is the exit code Run returns for an action that returned
// err under ctx: 130 for any failure once ctx is cancelled (a signal), else
// ExitCode.
func outcomeCode(ctx context.Context, err error) int {
	if err != nil && ctx.Err() != nil {
		return ExitInterrupted
	}
	return ExitCode(err)
}

// exitKind names a failure by its exit code's name in ExitCodes, in snake
// case ("busy", "refused_up"); "" for success.
func exitKind(code int) string {
	for _, e := range ExitCodes() {
		if e.Code == code {
			if code == ExitOK {
				return ""
			}
			return snakeCase(e.Name)
		}
	}
	return fmt.Sprintf("exit_%d", code)
}

// failureKinds are the kinds of every failing exit code.
func failureKinds() []string {
	var out []string
	for _, e := range ExitCodes() {
		if e.Code != ExitOK {
			out = append(out, snakeCase(e.Name))
		}
	}
	return out
}

// snakeCase is "RefusedUp" as "refused_up".
func snakeCase(s string) string {
	var b strings.Builder
	for i, r := range s {
		if unicode.IsUpper(r) && i > 0 {
			b.WriteByte('_')
		}
		b.WriteRune(unicode.ToLower(r))
	}
	return b.String()
}
