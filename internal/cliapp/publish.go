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
			"   publish --watch --root ROOT --source DIR [--watch-quiet D] [--watch-max-delay D] [--watch-poll-interval D] [--watch-poll] [...]\n" +
			"   publish --root ROOT --source DIR --etcd URL... --name NAME --address URL [--follow] [--etcd-prefix P] [--etcd-lease-ttl D]\n" +
			"   publish status|verify|gc|rsyncd-conf --root ROOT ...\n" +
			"   publish clobber --etcd URL... --to-master NAME [--yes-discard]",
		Description: "Builds ROOT/snapshots/N from DIR (unchanged files hard-linked from the served\n" +
			"snapshot or an older retained one, the rest copied and hashed), writes its manifest, flips ROOT/current to\n" +
			"it and bumps ROOT/seq/begin before and ROOT/seq/end after. Prints N on stdout.\n" +
			"If DIR has not changed, publishes nothing and exits 0.\n" +
			"With --quorum K it then waits until K of the --mirror addresses serve the snapshot it serves (idle, current\n" +
			"at least N, the same manifest of N), prints a second line \"quorum K of M after Ss: ADDR...\", and exits 11 with\n" +
			"the mirrors that are behind on stderr if they do not within --quorum-timeout: the snapshot stays published.\n" +
			"With --watch it keeps running and does all this again after every change of DIR, printing N for each\n" +
			"new snapshot (docs/operating.md, \"Publish on change\").\n" +
			"With --etcd it is one master of a highly available group: it publishes only as the leader etcd elects, and records\n" +
			"N and its manifest's SHA-256 in etcd (a compare-and-swap) before current flips; otherwise it exits 13. With --follow\n" +
			"it runs until stopped: it mirrors the leader, and takes over (publishing every --follow-interval) when the leader's\n" +
			"lease expires (docs/operating.md section 19).\n\n" + ExitCodesHelp,
		Writer:          stdout,
		ErrWriter:       stderr,
		HideHelpCommand: true,
		Flags: []cli.Flag{rootFlag,
			&cli.StringFlag{Name: "source", Usage: "source tree `DIR` to publish"},
			&cli.BoolFlag{Name: "force", Usage: "publish a new snapshot even if nothing changed, re-hashing every source file and every file it would link, and copying from the source where either differs from its record (an admin's republish; the new snapshot verifies even if a served file was damaged)"},
			&cli.IntFlag{Name: "retries", Value: 3, Usage: "make up to `N` more attempts while the source keeps changing"},
			publishMaxDeleteFlag, excludeFlag, takeOverFlag, notifyFlag, secretFileFlag, nameFlag, addressFlag, notifyTimeout,
			keepFlag, minAgeFlag, workersFlag, waitFlag, reportAfterFlag, metricsFileFlag, jsonFlag, quietFlag, verboseFlag,
			quorumFlag, mirrorFlag, quorumTimeoutFlag, caFileFlag, watchFlag, watchQuietFlag, watchMaxDelayFlag, watchPollFlag, watchForcePoll,
			etcdFlag, etcdPrefixFlag, etcdLeaseTTLFlag, followFlag, followEveryFlag,
			signKeyFlag, passwordFileFlag, validityFlag},
		Action: publishAction,
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
			clobberCommand(),
		},
	})
}

// publishAction is publish: one run, or with --watch one after every
// change of the source (watchAction).
func publishAction(c *cli.Context) error {
	if c.Bool("watch") && len(c.StringSlice("etcd")) > 0 {
		return Usage("--watch and --etcd do not go together: run the masters of an etcd group with --follow")
	}
	if c.Bool("watch") {
		return watchAction(c)
	}
	return withMetrics(publishOnceAction)(c)
}

// publishOnceAction is one run; with --etcd, as a master of a highly
// available group (haStart): with --follow until stopped, else as the
// leader or not at all.
func publishOnceAction(c *cli.Context) error {
	j, err := newPublishJob(c)
	if err != nil {
		return err
	}
	hp, err := haFlags(j.e, j.r)
	if err != nil {
		return err
	}
	resign, followed, err := haStart(j.e, j.r, j.src, hp, &j.opt)
	if followed || err != nil {
		return err
	}
	defer resign()
	return j.run(false)
}

// publishJob is one publish of the source and what follows it as the
// flags ask (the triggers, the quorum wait): a run does it once, publish
// --watch after every change. Its flags are read and checked before
// anything is published.
type publishJob struct {
	e      *env
	r      *export.Root
	src    string
	opt    snapshot.PublishOptions
	notify *notifyPlan
	plan   quorumPlan
}

// newPublishJob reads and checks publish's flags.
func newPublishJob(c *cli.Context) (*publishJob, error) {
	e, err := newEnv(c)
	if err != nil {
		return nil, err
	}
	j := &publishJob{e: e, src: c.String("source")}
	if j.r, err = e.root(); err != nil {
		return nil, err
	}
	if j.src == "" {
		return nil, Usage("--source is required: the directory to publish")
	}
	if j.opt, err = publishOptions(e, j.r); err != nil {
		return nil, err
	}
	if err := reportAfter(c); err != nil {
		return nil, err
	}
	if j.plan, err = quorumFlags(e); err != nil {
		return nil, err
	}
	if j.notify, err = publishNotify(e); err != nil {
		return nil, err
	}
	return j, nil
}

// publishOptions reads the flags that tune snapshot.Publish.
func publishOptions(e *env, r *export.Root) (snapshot.PublishOptions, error) {
	c, opt := e.c, snapshot.DefaultOptions()
	keep, age, err := e.keep()
	if err != nil {
		return opt, err
	}
	workers, err := e.workers()
	if err != nil {
		return opt, err
	}
	nretries, err := retryCount(c)
	if err != nil {
		return opt, err
	}
	wait, err := lockWait(c)
	if err != nil {
		return opt, err
	}
	opt.Force, opt.Keep, opt.MinAge, opt.Retries, opt.LockWait = c.Bool("force"), keep, age, nretries, wait
	if workers != 0 { // --workers not given (or 0): the default
		opt.Workers = workers
	}
	if opt.Name, opt.Address, err = hopFlags(c, r); err != nil {
		return opt, err
	}
	opt.Log = newLogger(c)
	if err := publishSigning(c, &opt); err != nil {
		return opt, err
	}
	return opt, publishSafety(c, &opt)
}

// run publishes once, then notifies and waits for the quorum. watching
// (publish --watch): a source that has not changed prints nothing and
// waits for no quorum, and a failure is returned as it is (the cron
// policy of --quiet, quietOutcome, is a one-shot run's).
func (j *publishJob) run(watching bool) error {
	e, c := j.e, j.e.c
	notify, opt := j.notify.fresh(), j.opt
	opt.Served = func(n uint64) { notify.start(e, n) } // before the prune
	res, err := snapshot.Publish(c.Context, j.r, j.src, opt)
	if err == nil {
		err = refreshUnchanged(e, j.r, res, opt) // a signed timestamp past half its validity
	}
	switch {
	case err != nil && watching:
		return err
	case err != nil:
		return quietOutcome(c, j.r, err)
	case !res.Published && watching:
		return nil
	}
	out := publishOutput{PublishResult: res}
	if res.Published {
		out.Notified = notify.wait(e, res.Snapshot)
	} else if !c.Bool("quiet") {
		fmt.Fprintf(c.App.ErrWriter, "publish: %s unchanged since snapshot %d; nothing published (use --force to republish)\n", j.src, res.Snapshot)
	}
	// Order: flip (above), notify (above: the mirrors start syncing at
	// once), then the quorum wait. An unchanged source notifies nobody but
	// still waits: the served snapshot is the one to replicate.
	if j.plan.k == 0 {
		return printResult(e, res.Snapshot, out)
	}
	return publishQuorum(e, j.r, out, j.plan, opt.Log)
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
