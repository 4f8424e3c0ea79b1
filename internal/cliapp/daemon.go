package cliapp

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"slices"
	"syscall"

	"github.com/seqmirror/seqmirror/internal/daemon"
	"github.com/seqmirror/seqmirror/internal/export"
	"github.com/seqmirror/seqmirror/internal/mirror"
	"github.com/seqmirror/seqmirror/internal/transport"
	"github.com/seqmirror/seqmirror/internal/trigger"
	"github.com/urfave/cli/v2"
)

// daemonCommand is `mirror-sync daemon`.
func daemonCommand() *cli.Command {
	t := daemon.DefaultTiming()
	return &cli.Command{
		Name:      "daemon",
		Usage:     "keep ROOT level with its upstream for good: poll with jitter, sync at once on a trigger, serve ROOT over HTTP, forward triggers downstream",
		UsageText: "mirror-sync daemon --upstream UPSTREAM --root ROOT --listen ADDR [--secret-file FILE] [--downstream URL]... [--interval D] [--jitter D] [--give-up D] [--name NAME] [--address URL]",
		Description: "A long-running mirror-sync: the same sync as a run from cron (same flags), every\n" +
			"--interval plus up to --jitter, and at once when a signed trigger for snapshot N comes\n" +
			"to POST /trigger (only with --secret-file); it keeps syncing, with backoff, until ROOT\n" +
			"serves N or --give-up has passed. Triggers coalesce. It serves ROOT over HTTP on\n" +
			"--listen as `serve` does (/metrics included), so it is the next tier's upstream; after\n" +
			"each flip it sends a trigger to every --downstream. A status page for people is at\n" +
			"/status: this server, its lineage, the --downstream mirrors as last probed (after each\n" +
			"sync) and a plot of recent snapshots' propagation. One daemon per ROOT\n" +
			"(ROOT/.daemon.lock: a second one exits 4); cron runs on ROOT take the run lock as ever.\n" +
			"SIGTERM or SIGINT: the sync in progress is stopped, the HTTP server drained, exit 0.\n" +
			"SIGHUP: the secret file is read again, and with --config the file's secret-file and\n" +
			"downstream lines. See docs/operating.md (\"The mirror daemon\").",
		Flags: slices.Concat([]cli.Flag{upstreamFlag, rootFlag,
			&cli.StringFlag{Name: "listen", Usage: "serve ROOT over HTTP on `ADDR` (host:port; :8080 for every address)"},
			&cli.StringFlag{Name: "secret-file", Usage: "the shared trigger secret in `FILE` (mode 0600 or 0640): turns on POST /trigger and signs the triggers sent downstream; read again on SIGHUP"},
			&cli.StringSliceFlag{Name: "downstream", Usage: "after each flip, send a trigger to `URL` (repeatable): a downstream daemon, http(s)://host:port[/trigger]; the status page (/status) shows its root, read at that URL"},
			&cli.DurationFlag{Name: "interval", Value: t.Interval, Usage: "poll the upstream every `D` when no trigger comes"},
			&cli.DurationFlag{Name: "jitter", Value: t.Jitter, Usage: "add a random wait of up to `D` to each poll interval"},
			&cli.DurationFlag{Name: "give-up", Value: t.GiveUp, Usage: "keep syncing toward a triggered snapshot for up to `D`, then log why it is not served and poll again"},
			nameFlag, addressFlag,
		}, syncFlags, []cli.Flag{quietFlag, verboseFlag}, rsyncFlags),
		Action: daemonAction,
	}
}

func daemonAction(c *cli.Context) error {
	e, err := newEnv(c)
	if err != nil {
		return err
	}
	timing, err := daemonTiming(c)
	if err != nil {
		return err
	}
	r, err := e.root()
	if err != nil {
		return err
	}
	addrs, err := upstreamAddrs(c)
	if err != nil {
		return err
	}
	opt, err := mirrorOptions(e, r)
	if err != nil {
		return err
	}
	log := opt.Log
	ups, err := openUpstreams(e, addrs, r.WorkDir())
	if err != nil {
		return err
	}
	defer closeAll(ups)
	d, err := daemon.New(daemon.Config{Root: r.Dir, Sync: mirrorSync(c, r, ups, opt), Load: daemonSettings(e),
		Name: opt.Name, Timing: timing, Now: e.now, Log: log})
	if err != nil {
		return err
	}
	defer d.Close()
	ln, err := net.Listen("tcp", c.String("listen"))
	if err != nil {
		return fmt.Errorf("listen on %s: %w", c.String("listen"), err)
	}
	if d.Settings().Secret == nil {
		log.Warn("no --secret-file: no trigger endpoint (POST /trigger is 404); syncing every --interval only")
	}
	defer onHangup(d, log)()
	err = d.Run(c.Context, ln)
	if err == nil {
		log.Info("daemon stopped", "why", interruptedBy(c.Context))
	}
	return err
}

// daemonTiming reads the daemon's own flags, checking --listen is given.
func daemonTiming(c *cli.Context) (daemon.Timing, error) {
	t := daemon.DefaultTiming()
	switch {
	case c.String("listen") == "":
		return t, Usage("--listen is required: the host:port to serve ROOT on")
	case c.Duration("interval") <= 0:
		return t, Usage("--interval must be positive, got %s", c.Duration("interval"))
	case c.Duration("jitter") < 0 || c.Duration("give-up") < 0:
		return t, Usage("--jitter and --give-up must not be negative")
	}
	if err := checkDownstream(c.String("secret-file"), c.StringSlice("downstream")); err != nil {
		return t, err
	}
	t.Interval, t.Jitter, t.GiveUp = c.Duration("interval"), c.Duration("jitter"), c.Duration("give-up")
	t.MaxBackoff = min(t.MaxBackoff, max(t.Interval, t.Backoff))
	return t, nil
}

// daemonSettings is the daemon's Load. The first call takes --secret-file
// and --downstream as the command line and the configuration file set
// them; every later one (a reload, SIGHUP) reads the configuration file
// again first (reloadConfig: the command line's flags stay), then the
// secret file. Nothing changes on an error. Calls must not overlap (the
// daemon serialises them) and nothing else may read c's flags meanwhile.
func daemonSettings(e *env) func() (daemon.Settings, error) {
	c := e.c
	first := true
	return func() (daemon.Settings, error) {
		if !first && configPath(c) != "" {
			if err := reloadConfig(c); err != nil {
				return daemon.Settings{}, err
			}
		}
		first = false
		secretFile, down := c.String("secret-file"), slices.Clone(c.StringSlice("downstream"))
		if err := checkDownstream(secretFile, down); err != nil {
			return daemon.Settings{}, err
		}
		set := daemon.Settings{Downstream: down}
		if secretFile != "" {
			secret, err := trigger.ReadSecret(e.fs, secretFile)
			if err != nil {
				return daemon.Settings{}, err
			}
			set.Secret = secret
		}
		return set, nil
	}
}

// checkDownstream refuses downstream URLs that are not http(s), and
// downstream mirrors without a secret to sign their triggers.
func checkDownstream(secretFile string, down []string) error {
	if len(down) > 0 && secretFile == "" {
		return Usage("--downstream needs --secret-file: the triggers sent downstream are signed with it")
	}
	for _, u := range down {
		if _, err := trigger.URL(u); err != nil {
			return Usage("--downstream: %v", err)
		}
	}
	return nil
}

// mirrorSync is the daemon's sync: the run --classic picks, with the
// options of a run from cron.
func mirrorSync(c *cli.Context, r *export.Root, ups []transport.Upstream, opt mirror.Options) daemon.SyncFunc {
	sync := mirrorSyncFunc(c)
	return func(ctx context.Context, target uint64, served func(uint64)) (uint64, bool, error) {
		opt := opt
		opt.Served, opt.Target = served, target
		res, err := sync(ctx, r, ups, opt)
		return res.Snapshot, res.Changed, err
	}
}

// onHangup reloads d's settings on every SIGHUP until the returned stop is
// called; a failed reload keeps the previous settings.
func onHangup(d *daemon.Daemon, log *slog.Logger) (stop func()) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGHUP)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-ch:
				log.Info("SIGHUP: reloading the settings")
				if err := d.Reload(); err != nil {
					log.Error("reload failed; the previous settings stay", "err", err)
				}
			case <-done:
				return
			}
		}
	}()
	return func() { signal.Stop(ch); close(done) }
}
