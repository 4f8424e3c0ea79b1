package cliapp

import (
	"fmt"
	"io"

	"github.com/seqmirror/seqmirror/internal/export"
	"github.com/seqmirror/seqmirror/snapshot"
	"github.com/urfave/cli/v2"
)

// PublishApp builds the publish command.
func PublishApp(stdout, stderr io.Writer) *cli.App {
	return withCommonFlags(&cli.App{
		Name:    "publish",
		Version: version(),
		Usage:   "publish a source tree as an immutable, numbered snapshot and serve it atomically",
		UsageText: "publish --root ROOT --source DIR [--force] [--keep K] [--min-age D] [--notify URL... --secret-file F]\n" +
			"   publish --root ROOT --source DIR [--notify URL... --secret-file F] --quorum K --mirror ADDR... [--quorum-timeout D]\n" +
			"   publish status|verify|gc|rsyncd-conf --root ROOT ...",
		Description: "Builds ROOT/snapshots/N from DIR (unchanged files hard-linked from the served\n" +
			"snapshot or an older retained one, the rest copied and hashed), writes its manifest, flips ROOT/current to\n" +
			"it and bumps ROOT/seq/begin before and ROOT/seq/end after. Prints N on stdout.\n" +
			"If DIR has not changed, publishes nothing and exits 0.\n" +
			"With --quorum K it then waits until K of the --mirror addresses serve the snapshot it serves (idle, current\n" +
			"at least N, the same manifest of N), prints a second line \"quorum K of M after Ss: ADDR...\", and exits 11 with\n" +
			"the mirrors that are behind on stderr if they do not within --quorum-timeout: the snapshot stays published.\n\n" + ExitCodesHelp,
		Writer:          stdout,
		ErrWriter:       stderr,
		HideHelpCommand: true,
		Flags: []cli.Flag{rootFlag,
			&cli.StringFlag{Name: "source", Usage: "source tree `DIR` to publish"},
			&cli.BoolFlag{Name: "force", Usage: "publish a new snapshot even if nothing changed, re-hashing every source file and every file it would link, and copying from the source where either differs from its record (an admin's republish; the new snapshot verifies even if a served file was damaged)"},
			&cli.IntFlag{Name: "retries", Value: 3, Usage: "make up to `N` more attempts while the source keeps changing"},
			publishMaxDeleteFlag, excludeFlag, takeOverFlag, notifyFlag, secretFileFlag, nameFlag, addressFlag, notifyTimeout,
			keepFlag, minAgeFlag, workersFlag, waitFlag, reportAfterFlag, metricsFileFlag, jsonFlag, quietFlag, verboseFlag,
			quorumFlag, mirrorFlag, quorumTimeoutFlag, caFileFlag, signKeyFlag, passwordFileFlag, validityFlag},
		Action: withMetrics(publishAction),
		Commands: []*cli.Command{
			{
				Name:   "status",
				Usage:  "show what ROOT serves, its counters and state",
				Flags:  []cli.Flag{rootFlag, jsonFlag},
				Action: statusAction,
			},
			{
				Name:  "verify",
				Usage: "re-hash a snapshot against its manifest; list differing paths; exit 3 on any difference",
				Flags: verifyFlags("replace damaged files by fresh copies from --source where it still has the recorded content (atomically, file by file, in every retained snapshot that shares the damaged file)",
					&cli.StringFlag{Name: "source", Usage: "source tree `DIR` that --repair copies from"}),
				Action: publishVerifyAction,
			},
			gcCommand(),
			rsyncdConfCommand,
			serveCommand(),
			keygenCommand(),
			resignCommand(),
		},
	})
}

func publishAction(c *cli.Context) error {
	e, err := newEnv(c)
	if err != nil {
		return err
	}
	r, err := e.root()
	if err != nil {
		return err
	}
	src := c.String("source")
	if src == "" {
		return Usage("--source is required: the directory to publish")
	}
	keep, age, err := e.keep()
	if err != nil {
		return err
	}
	workers, err := e.workers()
	if err != nil {
		return err
	}
	nretries, err := retryCount(c)
	if err != nil {
		return err
	}
	wait, err := lockWait(c)
	if err != nil {
		return err
	}
	if err := reportAfter(c); err != nil {
		return err
	}
	plan, err := quorumFlags(e)
	if err != nil {
		return err
	}
	opt := snapshot.DefaultOptions()
	opt.Force, opt.Keep, opt.MinAge, opt.Retries, opt.LockWait = c.Bool("force"), keep, age, nretries, wait
	if workers != 0 { // --workers not given (or 0): the default
		opt.Workers = workers
	}
	if opt.Name, opt.Address, err = hopFlags(c, r); err != nil {
		return err
	}
	opt.Log = newLogger(c)
	if err := publishSigning(c, &opt); err != nil {
		return err
	}
	if err := publishSafety(c, &opt); err != nil {
		return err
	}
	notify, err := publishNotify(e)
	if err != nil {
		return err
	}
	opt.Served = func(n uint64) { notify.start(e, n) } // before the prune
	res, err := snapshot.Publish(c.Context, r, src, opt)
	if err != nil {
		return quietOutcome(c, r, err)
	}
	out := publishOutput{PublishResult: res}
	if err := refreshUnchanged(e, r, res, opt); err != nil {
		return quietOutcome(c, r, err)
	}
	if res.Published {
		out.Notified = notify.wait(e, res.Snapshot)
	} else if !c.Bool("quiet") {
		fmt.Fprintf(c.App.ErrWriter, "publish: %s unchanged since snapshot %d; nothing published (use --force to republish)\n", src, res.Snapshot)
	}
	// Order: flip (above), notify (above: the mirrors start syncing at
	// once), then the quorum wait. An unchanged source notifies nobody but
	// still waits: the served snapshot is the one to replicate.
	if plan.k == 0 {
		return printResult(e, res.Snapshot, out)
	}
	return publishQuorum(e, r, out, plan, opt.Log)
}

func statusAction(c *cli.Context) error {
	e, r, err := openRoot(c)
	if err != nil {
		return err
	}
	s, err := r.Status()
	if err != nil {
		return err
	}
	if c.Bool("json") {
		return e.printJSON(s)
	}
	printStatus(e.out, s)
	return nil
}

func publishVerifyAction(c *cli.Context) error {
	need := ""
	if c.String("source") == "" {
		need = "--repair needs --source: the source tree to copy good files from"
	}
	return verifyAction(c, need, func(e *env, _ *export.Root) (export.RepairSource, func(), error) {
		return export.FromSource(e.fs, c.String("source")), func() {}, nil
	})
}

// gcAction prunes ROOT (publish gc and mirror-sync gc): it prints the
// number of snapshots it deleted (--json: their numbers), nothing with
// --quiet.
func gcAction(c *cli.Context) error {
	e, err := newEnv(c)
	if err != nil {
		return err
	}
	keep, age, err := e.keep()
	if err != nil {
		return err
	}
	r, err := e.existingRoot()
	if err != nil {
		return err
	}
	wait, err := lockWait(c)
	if err != nil {
		return err
	}
	lock, err := r.LockWait(c.Context, wait)
	if err != nil {
		return quietOutcome(c, r, err)
	}
	defer lock.Unlock()
	if err := r.Cleanup(); err != nil {
		return err
	}
	deleted, err := r.PruneIdle("", keep, age, e.now())
	if err != nil {
		return err
	}
	if c.Bool("json") {
		if deleted == nil {
			deleted = []uint64{}
		}
		return e.printJSON(map[string]any{"pruned": deleted, "count": len(deleted)})
	}
	if !c.Bool("quiet") {
		fmt.Fprintln(e.out, len(deleted))
	}
	return nil
}

// gcCommand is the gc subcommand of both tools.
func gcCommand() *cli.Command {
	return &cli.Command{
		Name:   "gc",
		Usage:  "prune old snapshots only (keeps --keep newest and any younger than --min-age); prints how many it deleted",
		Flags:  []cli.Flag{rootFlag, keepFlag, minAgeFlag, waitFlag, jsonFlag, quietFlag, verboseFlag},
		Action: gcAction,
	}
}
