package cliapp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"

	"github.com/seqmirror/seqmirror/internal/export"
	"github.com/seqmirror/seqmirror/internal/quorum"
	"github.com/seqmirror/seqmirror/internal/watcher"
	"github.com/seqmirror/seqmirror/snapshot"
	"github.com/urfave/cli/v2"
)

// The flags of publish --watch (docs/operating.md, "Publish on change").
var (
	watchFlag = &cli.BoolFlag{Name: "watch", Usage: "keep running: publish again after every change of the source, once it has been quiet for --watch-quiet " +
		"(or --watch-max-delay after a burst's first change), never while the source's own seq/begin is ahead of its seq/end; " +
		"a failed publish is logged and retried with backoff; SIGTERM or SIGINT stops it (exit 0), SIGHUP reads --config again before the next publish"}
	watchQuietFlag    = &cli.DurationFlag{Name: "watch-quiet", Value: watcher.DefaultOptions().Quiet, Usage: "with --watch, publish once the source has had no change for `D`"}
	watchMaxDelayFlag = &cli.DurationFlag{Name: "watch-max-delay", Value: watcher.DefaultOptions().MaxDelay, Usage: "with --watch, publish at the latest `D` after the first change of a burst that goes on (at least --watch-quiet)"}
	watchPollFlag     = &cli.DurationFlag{Name: "watch-poll-interval", Value: watcher.DefaultOptions().PollInterval, Usage: "with --watch, list the source every `D` where inotify cannot watch it (NFS, CIFS, FUSE..., the inotify watch limit reached, or --watch-poll)"}
	watchForcePoll    = &cli.BoolFlag{Name: "watch-poll", Usage: "with --watch, poll the source every --watch-poll-interval instead of watching it through inotify"}
)

// watchAction is publish --watch: the publish job (the same as a run's:
// publish, notify, quorum) after every change of the source, until a
// signal stops it. Each publish takes the root's lock as a run does.
func watchAction(c *cli.Context) error {
	opt, err := watchOptions(c)
	if err != nil {
		return err
	}
	j, err := newPublishJob(c)
	if err != nil {
		return err
	}
	log := j.opt.Log
	opt.Log = log
	if j.opt.Signer != nil {
		// An unchanged source publishes nothing, but its run refreshes the
		// timestamp past half its validity (refreshUnchanged): run one at
		// least every quarter of it, changes or not.
		opt.Every = j.opt.Validity / 4
	}
	opt.Busy = func() (bool, error) { return snapshot.SourceBusy(j.e.fs, j.src) }
	hup, stop := onHangupFlag()
	defer stop()
	job := func(context.Context) error {
		if hup.Swap(false) {
			j = reloadPublishJob(c, j, log)
		}
		return watchJob(c, j)
	}
	err = watcher.Run(c.Context, j.src, opt, job)
	if err != nil {
		return err
	}
	log.Info("stopped; the served snapshot is complete", "why", interruptedBy(c.Context))
	return nil
}

// watchOptions reads and checks the --watch-* flags.
func watchOptions(c *cli.Context) (watcher.Options, error) {
	opt := watcher.DefaultOptions()
	opt.Quiet, opt.MaxDelay = c.Duration("watch-quiet"), c.Duration("watch-max-delay")
	opt.PollInterval, opt.ForcePoll = c.Duration("watch-poll-interval"), c.Bool("watch-poll")
	opt.Backoff = max(opt.Backoff, opt.Quiet)
	opt.MaxBackoff = max(opt.MaxBackoff, opt.Backoff)
	switch {
	case opt.Quiet <= 0:
		return opt, Usage("--watch-quiet must be positive, got %s", opt.Quiet)
	case opt.MaxDelay < opt.Quiet:
		return opt, Usage("--watch-max-delay (%s) must be at least --watch-quiet (%s)", opt.MaxDelay, opt.Quiet)
	case opt.PollInterval <= 0:
		return opt, Usage("--watch-poll-interval must be positive, got %s", opt.PollInterval)
	case c.Bool("force"):
		return opt, Usage("--force republishes once: run it without --watch")
	}
	return opt, opt.Validate()
}

// watchJob is one publish of publish --watch, with --metrics-file written
// after it as after a run. A quorum not reached is logged (by the quorum
// wait, on stderr) and is no failure to retry: the snapshot is published.
// Any other failure carries its hint, for the log.
func watchJob(c *cli.Context, j *publishJob) error {
	delete(c.App.Metadata, runTransferKey) // this publish's counts only
	err := withMetrics(func(*cli.Context) error { return j.run(true) })(c)
	if errors.Is(err, quorum.ErrNotReached) {
		j.opt.Log.Error("published, but the quorum was not reached", "err", err)
		return nil
	}
	if h := hint(c.App.Name, err); err != nil && h != "" && !errors.Is(err, export.ErrLocked) { // its hint is cron's
		return fmt.Errorf("%w (hint: %s)", err, h)
	}
	return err
}

// reloadPublishJob reads the configuration file again (after a SIGHUP)
// and returns the job its flags now make; on an error, or if the source
// would change (a new source needs a restart), it logs why and returns j.
func reloadPublishJob(c *cli.Context, j *publishJob, log *slog.Logger) *publishJob {
	log.Info("SIGHUP: reading the configuration again")
	if configPath(c) == "" {
		return j
	}
	if err := reloadConfig(c); err != nil {
		log.Error("reload failed; the previous settings stay", "err", err)
		return j
	}
	nj, err := newPublishJob(c)
	switch {
	case err != nil:
		log.Error("reload failed; the previous settings stay", "err", err)
		return j
	case nj.src != j.src || nj.r.Dir != j.r.Dir:
		log.Error("reload: the source or root changed; restart to watch another tree; the previous settings stay", "source", nj.src, "root", nj.r.Dir)
		return j
	}
	return nj
}

// onHangupFlag sets the returned flag on every SIGHUP until stop is
// called.
func onHangupFlag() (*atomic.Bool, func()) {
	var hup atomic.Bool
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGHUP)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-ch:
				hup.Store(true)
			case <-done:
				return
			}
		}
	}()
	return &hup, func() { signal.Stop(ch); close(done) }
}
