package cliapp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"syscall"

	"github.com/seqmirror/seqmirror/internal/daemon"
	"github.com/seqmirror/seqmirror/internal/export"
	"github.com/seqmirror/seqmirror/internal/ha/haerr"
	"github.com/seqmirror/seqmirror/internal/mirror"
	"github.com/seqmirror/seqmirror/internal/quorum"
	"github.com/seqmirror/seqmirror/internal/sign"
	"github.com/seqmirror/seqmirror/internal/transport"
	"github.com/seqmirror/seqmirror/internal/transport/rsync"
	"github.com/seqmirror/seqmirror/internal/tree"
	"github.com/seqmirror/seqmirror/internal/trigger"
	"github.com/seqmirror/seqmirror/manifest"
	"github.com/seqmirror/seqmirror/seqfile"
	"github.com/seqmirror/seqmirror/snapshot"
	"github.com/urfave/cli/v2"
)

// ExitCodeInfo is one exit code of publish and mirror-sync: a row of
// ExitCodes.
type ExitCodeInfo struct {
	Code    int
	Name    string // the constant is "Exit" + Name
	Meaning string // when a run exits with it (markdown: `code` spans)
	Cron    string // what to do about it under cron ("": nothing)
}

// ExitCodes is the one table of the exit codes of publish and mirror-sync
// (mirror-sync check has its own, the monitoring plugins'). Everything else
// is made from it or tested against it: exitcodes_gen.go (the Exit* constants
// and ExitCodesHelp, which --help and the man pages show) is generated from
// it by TestExitCodesGenerated, and TestExitCodesDoc checks that
// docs/operating.md's table ("Exit codes") is this one, cell for cell. To
// change a code: edit it here, run
//
//	go test ./internal/cliapp -run TestExitCodesGenerated -update-exit-codes
//
// and copy the row into docs/operating.md.
func ExitCodes() []ExitCodeInfo {
	return []ExitCodeInfo{
		{0, "OK", `success, including "nothing to do"`, ""},
		{1, "Failure", "failure", "look at the message"},
		{2, "Usage", "bad flags or arguments", "fix the crontab"},
		{3, "Verify", "verify found differences",
			"`mirror-sync verify --repair --upstream ...`; on the master `publish verify --repair --source ...`, else `publish --force`"},
		{4, "Locked", "another run holds the root's lock", "harmless: try later"},
		{5, "Busy", "the source or upstream kept changing or did not answer", "harmless if rare: try later"},
		{6, "Refused", "refused: a rollback, a mass delete (mirror-sync or publish), or publish into a mirror's root",
			"an admin decides: `--allow-rollback` / `--force` / `--take-over`"},
		{7, "Corrupt", "corrupt or hostile data (manifest, seq file, content hash, current symlink), " +
			"a broken upstream (its `current` names a snapshot it does not have while it is idle), " +
			"or a served snapshot that differs from the upstream's snapshot of the same number",
			"investigate the upstream, or who published into the mirror's root"},
		{8, "RefusedUp", "the upstream refused the request: unknown module, refused option, permission denied",
			"fix the configuration; not retried"},
		{9, "Rejected", "`mirror-sync trigger`: the receiver refused the trigger: 401 for another secret, clocks more than 5 minutes apart or a replay, " +
			"another 4xx for no trigger endpoint at that URL",
			"check both sides' secret files, their clocks (NTP) and the URL; not retried"},
		{10, "Unreachable", "`mirror-sync trigger`: no receiver took the trigger after a few quick retries (no answer, a 5xx); " +
			"as an ssh forced command: no daemon answers for the root",
			"harmless if rare: the mirror's next poll syncs; start its daemon"},
		{11, "NoQuorum", "`publish --quorum K`: fewer than K of the `--mirror` addresses served the new snapshot within `--quorum-timeout` " +
			"(or the wait was interrupted); the snapshot stays published, the mirrors that are behind are listed on stderr and in status.json",
			"the late mirrors catch up on their next poll or trigger; look at the ones listed"},
		{12, "Untrusted", "a signature refused (`--trust-key`): by no trusted key, missing, truncated or garbled, for another snapshot or manifest " +
			"(a tier above rewrote the snapshot), or a signed snapshot older than one already seen (a replay); nothing was changed",
			"investigate the upstream (the hint says what was refused); after a key rotation, add the new key with another `--trust-key`"},
		{13, "NotLeader", "`publish --etcd`: this master may not publish: another master leads the group, it lost its lease " +
			"(or etcd did not answer in time), the group recorded the snapshot number meanwhile, or it does not hold the group's newest snapshot " +
			"and no live master serves it; nothing was flipped",
			"harmless on a follower; if no master publishes, read the message (docs/operating.md section 19)"},
		{130, "Interrupted", "interrupted by SIGTERM or SIGINT before it served anything new: " +
			"one line on stderr, even with `--quiet`; a run that had already flipped `current` completes and exits with its real outcome",
			"harmless: the served snapshot is unchanged and the next run cleans up"},
	}
}

// usageError marks bad flags or arguments.
type usageError struct{ err error }

func (u usageError) Error() string { return u.err.Error() }
func (u usageError) Unwrap() error { return u.err }

// Usage returns a usage error (exit code 2).
func Usage(format string, a ...any) error { return usageError{fmt.Errorf(format, a...)} }

// silentError carries a failure whose exit code counts but whose message
// --quiet keeps off stderr (a held lock; a short transient outage).
type silentError struct{ err error }

func (s silentError) Error() string { return s.err.Error() }
func (s silentError) Unwrap() error { return s.err }

// errVerify is returned when verify found differences (already printed).
var errVerify = errors.New("verify found differences")

// ExitCode maps an error to the documented exit code.
func ExitCode(err error) int {
	var u usageError
	switch {
	case err == nil:
		return ExitOK
	case errors.As(err, &u), errors.Is(err, snapshot.ErrSourceOverlap), errors.Is(err, mirror.ErrUpstreamOverlap),
		errors.Is(err, errSSHCommand), errors.Is(err, sign.ErrBadKey):
		return ExitUsage
	case errors.Is(err, quorum.ErrNotReached): // before Canceled: an interrupted wait published all the same
		return ExitNoQuorum
	case errors.Is(err, haerr.ErrNotLeader), errors.Is(err, haerr.ErrNumberTaken), errors.Is(err, haerr.ErrBehind):
		return ExitNotLeader
	case errors.Is(err, haerr.ErrConfig):
		return ExitUsage
	case errors.Is(err, context.Canceled):
		return ExitInterrupted
	case errors.Is(err, errVerify):
		return ExitVerify
	case errors.Is(err, export.ErrLocked):
		return ExitLocked
	case errors.Is(err, transport.ErrRefused):
		return ExitRefusedUp
	case errors.Is(err, trigger.ErrRejected):
		return ExitRejected
	case errors.Is(err, trigger.ErrUnreachable):
		return ExitUnreachable
	case errors.Is(err, sign.ErrUntrusted), errors.Is(err, sign.ErrMalformed), errors.Is(err, sign.ErrMismatch),
		errors.Is(err, mirror.ErrSignedRollback):
		return ExitUntrusted
	case errors.Is(err, snapshot.ErrSourceChanging), errors.Is(err, mirror.ErrUpstreamBusy),
		errors.Is(err, transport.ErrUnavailable), errors.Is(err, transport.ErrVanished):
		return ExitBusy
	case errors.Is(err, mirror.ErrRollback), errors.Is(err, mirror.ErrTooManyDeletes),
		errors.Is(err, snapshot.ErrTooManyDeletes), errors.Is(err, snapshot.ErrMirrorRoot):
		return ExitRefused
	case errors.Is(err, manifest.ErrCorrupt), errors.Is(err, manifest.ErrUnsafePath),
		errors.Is(err, seqfile.ErrCorrupt), errors.Is(err, tree.ErrHashMismatch),
		errors.Is(err, export.ErrBadCurrent), errors.Is(err, mirror.ErrUpstreamBroken),
		errors.Is(err, mirror.ErrDiverged):
		return ExitCorrupt
	}
	return ExitFailure
}

// Run runs app with args, printing any error as "NAME: error" on stderr, and
// returns the exit code. ctx is cancelled by SIGINT/SIGTERM in Main.
func Run(ctx context.Context, app *cli.App, args []string) int {
	app.ExitErrHandler = func(*cli.Context, error) {}
	onUsage := func(_ *cli.Context, err error, _ bool) error { return usageError{err} }
	app.OnUsageError = onUsage
	for _, c := range app.Commands { // urfave/cli does not inherit it
		if c.OnUsageError == nil { // check has its own (plugin exit codes)
			c.OnUsageError = onUsage
		}
	}
	err := app.RunContext(ctx, checkArgs(args))
	var plugin pluginResult
	if errors.As(err, &plugin) { // check printed its one line
		return plugin.code
	}
	if stoppedBySignal(ctx, err) {
		// Stopped (a signal): whatever the run failed with, it installed
		// nothing (writers re-check their context before each commit step).
		// One line, even under --quiet: the run did not do its job.
		fmt.Fprintf(app.ErrWriter, "%s: %s; the served snapshot is unchanged\n", app.Name, interruptedBy(ctx))
		return ExitInterrupted
	}
	var quiet silentError
	if err != nil && !errors.Is(err, errVerify) && !errors.As(err, &quiet) {
		msg := err.Error()
		fmt.Fprintf(app.ErrWriter, "%s: %s\n", app.Name, msg)
		if h := hint(app.Name, err); h != "" {
			fmt.Fprintf(app.ErrWriter, "%s: hint: %s\n", app.Name, h)
		}
		var u usageError
		if errors.As(err, &u) {
			fmt.Fprintf(app.ErrWriter, "Run '%s --help' for usage.\n", app.Name)
		}
	}
	return ExitCode(err)
}

// stoppedBySignal reports whether the run that ended with err was stopped
// by ctx (a signal) before it served anything new: exit 130. A quorum wait
// stopped so is not: its snapshot was published, and its outcome is the
// quorum's (ExitNoQuorum).
func stoppedBySignal(ctx context.Context, err error) bool {
	return err != nil && ctx.Err() != nil && !errors.Is(err, quorum.ErrNotReached)
}

// hint says what to do about an error of command app (publish,
// mirror-sync), where there is something to say. Library errors name no
// flags or commands: what to run is said here.
func hint(app string, err error) string {
	if h := configHint(err); h != "" {
		return h
	}
	if h := webHint(err); h != "" {
		return h
	}
	if h := quorumHint(err); h != "" {
		return h
	}
	if h := triggerHint(err); h != "" {
		return h
	}
	if h := signHint(err); h != "" {
		return h
	}
	if h := haHint(err); h != "" {
		return h
	}
	switch {
	case errors.Is(err, mirror.ErrServedDamaged): // before the manifest errors it may wrap
		return "nothing was changed; run `mirror-sync verify` to see what is damaged, then `mirror-sync verify --repair --upstream ...` to fetch good copies (snapshot mode)"
	case errors.Is(err, mirror.ErrNoSnapshot):
		return "publish there first; if the upstream is a plain tree with only seq/begin and seq/end, pass --classic"
	case errors.Is(err, mirror.ErrRollback):
		return "nothing was changed; if the upstream went back on purpose, pass --allow-rollback to follow it"
	case errors.Is(err, mirror.ErrTooManyDeletes):
		return "nothing was changed; check the upstream, then pass --force to accept (or a higher --max-delete)"
	case errors.Is(err, snapshot.ErrServedManifest):
		return "nothing was published; run `publish verify` to check the served snapshot against its manifest"
	case app == "publish" && errors.Is(err, export.ErrBadCurrent):
		return "nothing was published; repair with `publish --force` after checking the root's current symlink (it must point to snapshots/N; remove it if it does not)"
	case errors.Is(err, seqfile.ErrCorrupt):
		return "a seq file must hold one decimal number and a newline; if it is this root's, check the disk, then write the higher of begin/end into both (echo N > seq/end) and run again"
	case errors.Is(err, manifest.ErrCorrupt), errors.Is(err, manifest.ErrUnsafePath), errors.Is(err, tree.ErrHashMismatch):
		return "nothing was changed and the served snapshot is intact; if the upstream is at fault, tell its admin (or pick another upstream)"
	case errors.Is(err, daemon.ErrRunning): // before ErrLocked, which it wraps
		return "one daemon per root: stop the other one first (`fuser ROOT/.daemon.lock` names it); runs from cron need no daemon lock"
	case errors.Is(err, export.ErrLocked):
		return "another publish or mirror-sync holds the lock; under cron, exit code 4 can be ignored"
	case errors.Is(err, transport.ErrRefused):
		return "the upstream refused the request (rsync's words are above): check the module name, --rsync-opt, and the daemon's config and file permissions; the served snapshot is unchanged"
	case errors.Is(err, exec.ErrNotFound):
		return "install rsync (apt-get install rsync), or give the path of its binary with --rsync"
	case rsyncConfigError(err):
		return "check --upstream, --rsync and --rsync-opt, and the daemon's config"
	case errors.Is(err, transport.ErrBadAddress):
		return "give --upstream a local path, rsync://host[:port]/module[/path], host::module[/path], host:path, or http(s)://host[:port]/path"
	case errors.Is(err, transport.ErrUnavailable):
		return "the upstream did not answer; the served snapshot is unchanged; the next run retries"
	case errors.Is(err, mirror.ErrUpstreamBroken):
		return "nothing was changed and the served snapshot is intact; tell the upstream's admin (publish --force there repairs it), or pick another upstream"
	case errors.Is(err, seqfile.ErrExhausted), errors.Is(err, export.ErrNumbersExhausted):
		return "nothing was changed; the counters or snapshot numbers cannot go higher: make a new root and have its mirrors follow it with --allow-rollback"
	case errors.Is(err, snapshot.ErrTooManyDeletes):
		return "nothing was published; check the source (a missing mount, a half-finished move), then, if the deletions are meant, run again with --force or a higher --max-delete"
	case errors.Is(err, snapshot.ErrMirrorRoot):
		return "publish into the master's root, not a mirror's; to make this root a master's (it stops being a mirror), run again with --take-over"
	case errors.Is(err, mirror.ErrDiverged):
		return "nothing was changed; this root's snapshot is not the upstream's (publish wrote into it, or the upstream is another master): sync into a fresh root (mirror-sync --root NEW ...) and serve that one; this root follows the upstream again from its next snapshot"
	case errors.Is(err, mirror.ErrUpstreamHasSnapshots):
		return "the upstream is a seqmirror export root: mirror it without --classic (snapshot mode copies only the served snapshot, links unchanged files and verifies them)"
	}
	return ""
}

// rsyncConfigError reports whether err is rsync's own exit code 1 to 4
// (usage, protocol, file selection, unsupported action): a configuration
// problem rather than a failure of the upstream.
func rsyncConfigError(err error) bool {
	var xe *rsync.ExitError
	return errors.As(err, &xe) && xe.Code >= 1 && xe.Code <= 4
}

// Interrupted is the cause of the context Main cancels on a signal.
type Interrupted struct{ Signal os.Signal }

func (i Interrupted) Error() string {
	name := "SIGINT"
	if i.Signal == syscall.SIGTERM {
		name = "SIGTERM"
	}
	return "interrupted by " + name
}

// Unwrap makes an interruption a context.Canceled.
func (i Interrupted) Unwrap() error { return context.Canceled }

// interruptedBy says what stopped ctx: "interrupted by SIGTERM", or
// "interrupted" for a context cancelled otherwise.
func interruptedBy(ctx context.Context) string {
	var i Interrupted
	if errors.As(context.Cause(ctx), &i) {
		return i.Error()
	}
	return "interrupted"
}

// notifyContext is signal.NotifyContext with the signal as the cause. After
// the first signal the default action is restored: a second SIGINT or
// SIGTERM kills the process at once (as safe as any crash).
func notifyContext(parent context.Context) (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(parent)
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	go func() {
		select {
		case sig := <-ch:
			signal.Stop(ch)
			cancel(Interrupted{Signal: sig})
		case <-ctx.Done():
		}
	}()
	return ctx, func() { signal.Stop(ch); cancel(context.Canceled) }
}

// Main is the whole of a command's main function: SIGINT and SIGTERM
// cancel the run's context, and a run they stop exits 130 (Run).
func Main(build func(stdout, stderr io.Writer) *cli.App) {
	ctx, stop := notifyContext(context.Background())
	code := Run(ctx, build(os.Stdout, os.Stderr), os.Args)
	stop()
	os.Exit(code)
}
