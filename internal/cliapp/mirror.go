package cliapp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/seqmirror/seqmirror/internal/export"
	"github.com/seqmirror/seqmirror/internal/mirror"
	"github.com/seqmirror/seqmirror/internal/transport"
	"github.com/urfave/cli/v2"
)

var upstreamFlag = &cli.StringSliceFlag{Name: "upstream", Usage: "upstream export root `ADDR`: a path (local or NFS), rsync://host[:port]/module[/path], host::module[/path], host:path (over ssh), or http(s)://host[:port]/path (snapshot mode only); repeat it to give fallbacks in priority order (snapshot mode: the run follows the one serving the newest snapshot, the first among equals)"}

// syncFlags are the flags of a sync (mirrorOptions), the same for a run
// and for the daemon.
var syncFlags = []cli.Flag{
	&cli.BoolFlag{Name: "allow-rollback", Usage: "follow an upstream that serves an older snapshot than ROOT"},
	&cli.Float64Flag{Name: "max-delete", Value: 50, Usage: "refuse a snapshot that deletes more than `PCT` percent of the served files (100: no limit)"},
	&cli.BoolFlag{Name: "force", Usage: "accept a snapshot even if it deletes more than --max-delete"},
	&cli.IntFlag{Name: "retries", Value: 4, Usage: "make up to `N` more attempts while the upstream keeps changing or does not answer"},
	&cli.DurationFlag{Name: "backoff", Value: 2 * time.Second, Usage: "wait `D` before the first retry, doubled each time"},
	mirrorIncludeFlag, mirrorExcludeFlag,
	&cli.BoolFlag{Name: "classic", Usage: "the upstream is a plain tree with only seq/begin and seq/end, no snapshots (docs/classic.md)"},
	keepFlag, minAgeFlag, workersFlag, waitFlag, trustKeyFlag,
}

// MirrorApp builds the mirror-sync command.
func MirrorApp(stdout, stderr io.Writer) *cli.App {
	return withCommonFlags(&cli.App{
		Name:      "mirror-sync",
		Version:   version(),
		Usage:     "bring a mirror's export root level with its upstream, never serving a torn tree",
		UsageText: "mirror-sync --upstream UPSTREAM [--upstream FALLBACK...] --root ROOT [--classic] [--allow-rollback] [--max-delete PCT] [--keep K] [--min-age D]\n   mirror-sync status|verify|gc --root ROOT ...\n   mirror-sync check ADDR [--against UPSTREAM] [--warn-lag N|D] [--crit-lag N|D] [--json]\n   mirror-sync daemon --upstream UPSTREAM [--upstream FALLBACK...] --root ROOT --listen ADDR [--secret-file F] [--downstream URL...]\n   mirror-sync trigger URL (--snapshot N | --root ROOT) --secret-file F",
		Description: "One sync, from cron or by hand: bumps ROOT/seq/begin, copies the snapshot the\n" +
			"upstream serves (unchanged files hard-linked, the rest fetched and verified against\n" +
			"the manifest), retries if the upstream moved mid-copy, then flips ROOT/current and\n" +
			"bumps ROOT/seq/end. If ROOT already serves the upstream's snapshot it exits at once.\n" +
			"With --classic the upstream is a plain tree updated in place with only seq/begin and\n" +
			"seq/end (docs/classic.md): mirror-sync copies it whole (rsync --link-dest), checks that\n" +
			"seq/begin did not move, and makes the copy a new local snapshot.\n" +
			"With --upstream given several times (snapshot mode), the run polls them all and follows\n" +
			"the one serving the newest snapshot, the first given among equals; one that is down or\n" +
			"behind is passed over, one whose snapshot has another manifest than this root's (another\n" +
			"master) is left out, and it never rolls back (docs/protocol.md section 4).\n" +
			"Prints the served snapshot number on stdout.\n\n" + ExitCodesHelp,
		Writer:          stdout,
		ErrWriter:       stderr,
		HideHelpCommand: true,
		// A value of a repeatable flag is taken whole: an address or an
		// rsync option may hold a comma.
		DisableSliceFlagSeparator: true,
		Flags: slices.Concat([]cli.Flag{upstreamFlag, rootFlag, nameFlag, addressFlag}, syncFlags,
			[]cli.Flag{reportAfterFlag, metricsFileFlag, jsonFlag, quietFlag, verboseFlag}, rsyncFlags),
		Action: withMetrics(mirrorAction),
		Commands: []*cli.Command{
			{
				Name:   "status",
				Usage:  "show what ROOT serves and its state; with --upstream, how far behind it is",
				Flags:  append([]cli.Flag{rootFlag, upstreamFlag, jsonFlag}, rsyncFlags...),
				Action: mirrorStatusAction,
			},
			{
				Name:  "verify",
				Usage: "re-hash a snapshot against its manifest; list differing paths; exit 3 on any difference",
				Flags: append(verifyFlags("re-fetch damaged files from --upstream (atomically, file by file, in every retained snapshot that shares the damaged file)", upstreamFlag),
					rsyncFlags...),
				Action: mirrorVerifyAction,
			},
			gcCommand(),
			checkCommand(),
			serveCommand(),
			daemonCommand(),
			triggerCommand(),
		},
	})
}

func mirrorAction(c *cli.Context) error {
	e, err := newEnv(c)
	if err != nil {
		return err
	}
	addrs, err := upstreamAddrs(c)
	if err != nil {
		return err
	}
	r, err := e.root()
	if err != nil {
		return err
	}
	opt, err := mirrorOptions(e, r)
	if err != nil {
		return err
	}
	if err := reportAfter(c); err != nil {
		return err
	}
	ups, err := openUpstreams(e, addrs, r.WorkDir())
	if err != nil {
		return err
	}
	defer closeAll(ups)
	res, err := mirrorSyncFunc(c)(c.Context, r, ups, opt)
	if err != nil {
		return quietOutcome(c, r, err)
	}
	return printResult(e, res.Snapshot, res)
}

// upstreamAddrs reads --upstream, repeatable in priority order (one only
// with --classic), the same for a run from cron and for the daemon.
func upstreamAddrs(c *cli.Context) ([]string, error) {
	addrs := c.StringSlice("upstream")
	if len(addrs) == 0 || slices.Contains(addrs, "") {
		return nil, Usage("--upstream is required: the upstream export root (a path, rsync://host/module or http(s)://host/path)")
	}
	if len(addrs) > 1 && c.Bool("classic") {
		return nil, Usage("--classic follows one upstream: give --upstream once (failover needs snapshots, whose numbers and manifests tell the upstreams apart)")
	}
	return addrs, nil
}

// mirrorOptions reads the flags of a sync of r, the same for a run from
// cron and for the daemon's syncs.
func mirrorOptions(e *env, r *export.Root) (mirror.Options, error) {
	c := e.c
	opt := mirror.DefaultOptions()
	var err error
	if opt.Name, opt.Address, err = hopFlags(c, r); err != nil {
		return opt, err
	}
	keep, age, err := e.keep()
	if err != nil {
		return opt, err
	}
	workers, err := e.workers()
	if err != nil {
		return opt, err
	}
	md := c.Float64("max-delete")
	if !(md >= 0 && md <= 100) { // also refuses NaN, which compares false to everything
		return opt, Usage("--max-delete is a percentage from 0 to 100, got %g", md)
	}
	nretries, err := retryCount(c)
	if err != nil {
		return opt, err
	}
	if c.Duration("backoff") < 0 {
		return opt, Usage("--backoff must not be negative, got %s", c.Duration("backoff"))
	}
	wait, err := lockWait(c)
	if err != nil {
		return opt, err
	}
	opt.AllowRollback, opt.Force, opt.MaxDelete = c.Bool("allow-rollback"), c.Bool("force"), md/100
	opt.Keep, opt.MinAge, opt.Retries, opt.Backoff, opt.LockWait = keep, age, nretries, c.Duration("backoff"), wait
	if workers > 0 {
		opt.Workers = workers
	}
	if opt.Filter, err = ownFilter(c); err != nil {
		return opt, err
	}
	if opt.Filter != nil && c.Bool("classic") {
		return opt, Usage("--include and --exclude make a partial mirror of snapshots: not with --classic")
	}
	opt.Log = newLogger(c)
	if opt.Trust, err = trust(c); err != nil {
		return opt, err
	}
	if opt.Trust != nil && c.Bool("classic") {
		return opt, Usage("--trust-key verifies a master's signed snapshots; a --classic upstream has none")
	}
	return opt, nil
}

// mirrorSyncFunc is the sync --classic picks: a classic sync follows the
// one upstream, a snapshot sync the first of ups that serves the newest
// snapshot (mirror.SyncFrom).
func mirrorSyncFunc(c *cli.Context) func(context.Context, *export.Root, []transport.Upstream, mirror.Options) (mirror.Result, error) {
	if c.Bool("classic") {
		return func(ctx context.Context, r *export.Root, ups []transport.Upstream, opt mirror.Options) (mirror.Result, error) {
			return mirror.SyncClassic(ctx, r, ups[0], opt)
		}
	}
	return mirror.SyncFrom
}

func mirrorStatusAction(c *cli.Context) error {
	e, r, err := openRoot(c)
	if err != nil {
		return err
	}
	s, err := r.Status()
	if err != nil {
		return err
	}
	if addrs := c.StringSlice("upstream"); len(addrs) > 0 {
		ups, err := openUpstreams(e, addrs, "")
		if err != nil {
			return err
		}
		defer closeAll(ups)
		up, err := newestUpstream(c.Context, ups)
		if err != nil {
			return err
		}
		if err := compareUpstream(c.Context, r, up, &s, e.now()); err != nil {
			return err
		}
	}
	if c.Bool("json") {
		return e.printJSON(s)
	}
	printStatus(e.out, s)
	return nil
}

func mirrorVerifyAction(c *cli.Context) error {
	need := ""
	switch n := len(c.StringSlice("upstream")); {
	case n == 0:
		need = "--repair needs --upstream: the place to fetch good copies from"
	case n > 1:
		return Usage("verify fetches good copies from one --upstream; give it once")
	}
	return verifyAction(c, need, func(e *env, r *export.Root) (export.RepairSource, func(), error) {
		up, err := openUpstream(e, r.WorkDir())
		if err != nil {
			return nil, nil, err
		}
		return up.Fetch, func() { up.Close() }, nil
	})
}

// openUpstreams opens each of addrs (openAddr); on failure it closes
// those it opened.
func openUpstreams(e *env, addrs []string, scratch string) ([]transport.Upstream, error) {
	ups := make([]transport.Upstream, 0, len(addrs))
	for _, a := range addrs {
		up, err := openAddr(e, a, scratch)
		if err != nil {
			closeAll(ups)
			return nil, err
		}
		ups = append(ups, up)
	}
	return ups, nil
}

func closeAll(ups []transport.Upstream) {
	for _, up := range ups {
		up.Close()
	}
}

// newestUpstream is the upstream `status` compares with: of those that
// answer, the one serving the newest snapshot (the first among equals);
// if none answers, the first one's error. It compares no manifests: the
// lag is against the newest snapshot any of them serves.
func newestUpstream(ctx context.Context, ups []transport.Upstream) (transport.Upstream, error) {
	if len(ups) == 1 {
		return ups[0], nil
	}
	var best transport.Upstream
	var bestN uint64
	var errs []error
	for _, up := range ups {
		n, _, err := up.Current(ctx)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", up, err))
			continue
		}
		if best == nil || n > bestN {
			best, bestN = up, n
		}
	}
	if best == nil {
		return nil, errors.Join(errs...)
	}
	return best, nil
}
