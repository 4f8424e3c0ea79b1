package cliapp

import (
	"fmt"
	"runtime/debug"
	"time"

	"github.com/seqmirror/seqmirror/internal/export"
	"github.com/urfave/cli/v2"
)

// Version is the tools' version, set at build time
// (-ldflags "-X github.com/seqmirror/seqmirror/internal/cliapp.Version=...");
// without it, the module version or VCS revision Go recorded.
var Version = ""

func version() string {
	if Version != "" {
		return Version
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		if v := bi.Main.Version; v != "" && v != "(devel)" {
			return v
		}
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				return "devel-" + s.Value[:12]
			}
		}
	}
	return "devel"
}

func init() {
	// urfave/cli's default --version has the alias -v, which is --verbose here.
	cli.VersionFlag = &cli.BoolFlag{Name: "version", Usage: "print the version and exit"}
}

var (
	waitFlag = &cli.DurationFlag{Name: "wait", DefaultText: "none: exit 4 at once", Usage: "if another run holds ROOT's lock, wait up to `D` for it (a hook that must not fail because cron's run is in progress)"}

	reportAfterFlag = &cli.DurationFlag{Name: "report-after", Value: time.Hour, Usage: "with --quiet, keep a transient failure (exit 5: the upstream or source kept changing or did not answer) off stderr until failures have lasted `D` (tracked in status.json), then report it once"}
)

// lockWait reads --wait.
func lockWait(c *cli.Context) (time.Duration, error) {
	d := c.Duration("wait")
	if d < 0 {
		return 0, Usage("--wait must not be negative, got %s", d)
	}
	return d, nil
}

// quietOutcome applies the cron policy of --quiet to a run's error: cron
// mails every byte a job prints, so a quiet run prints nothing when the
// lock was held (another run is doing the work) or when a transient
// failure has not yet lasted --report-after; a transient failure that has
// is reported once per streak (status.json's failure_reported). The exit
// code is unchanged either way.
func quietOutcome(c *cli.Context, r *export.Root, err error) error {
	if err == nil || !c.Bool("quiet") {
		return err
	}
	switch ExitCode(err) {
	case ExitLocked:
		return silentError{err}
	case ExitBusy:
	default:
		return err
	}
	st, serr := r.Status()
	if serr != nil || st.FailingSince == nil {
		return err
	}
	now := optionsOf(c).now()
	lasted := now.Sub(*st.FailingSince)
	if lasted < c.Duration("report-after") || st.FailureReported != nil {
		return silentError{err}
	}
	if lock, lerr := r.Lock(); lerr == nil {
		_ = r.MarkFailureReported(now)
		lock.Unlock()
	}
	return fmt.Errorf("%w (failing for %s, since %s; reported once until a run succeeds)", err, lasted.Round(time.Second), st.FailingSince.Format(time.RFC3339))
}

// reportAfter validates --report-after.
func reportAfter(c *cli.Context) error {
	if d := c.Duration("report-after"); d < 0 {
		return Usage("--report-after must not be negative, got %s", d)
	}
	return nil
}

// printResult prints a run's result on stdout: the served snapshot number,
// or with --json the whole result. --quiet prints nothing (cron mails any
// output), unless --json asks for it explicitly. It keeps the result's
// counts for --metrics-file (withMetrics).
func printResult(e *env, snapshot uint64, res any) error {
	noteTransfer(e.c, res) // for --metrics-file
	switch {
	case e.c.Bool("json"):
		return e.printJSON(res)
	case e.c.Bool("quiet"):
		return nil
	}
	_, err := fmt.Fprintln(e.out, snapshot)
	return err
}
