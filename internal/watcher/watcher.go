package watcher

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/fsnotify/fsnotify"
)

// ErrBadOptions means Options holds a value that means nothing (a
// duration that is not positive, a maximum delay shorter than the quiet
// window).
var ErrBadOptions = errors.New("bad watch options")

// ErrNoTree means the tree to watch is missing or is not a directory.
var ErrNoTree = errors.New("no tree to watch")

// Options tunes Run, which takes every value as given: start from
// DefaultOptions.
type Options struct {
	Quiet        time.Duration // a burst ends after this long without a change
	MaxDelay     time.Duration // ... or this long after its first change (at least Quiet)
	PollInterval time.Duration // how often to list the tree when polling
	ForcePoll    bool          // poll even where inotify would do
	Backoff      time.Duration // wait before retrying a failed job, doubled each time
	MaxBackoff   time.Duration // the backoff's cap (at least Backoff)
	// Every, if positive, runs a job also when this long has passed
	// since the last one ended, changes or not (publish --watch of a
	// signing master: its timestamp must be refreshed while the tree
	// stays unchanged).
	Every time.Duration
	// Busy, if set, reports whether the tree's writer is mid-update: no
	// job starts while it is. An error counts as not busy (the job sees
	// and reports it).
	Busy func() (bool, error)
	Log  *slog.Logger // nil: log nothing

	// Test hooks (nil: the real thing): addWatch adds an inotify watch,
	// fsType is a path's statfs f_type.
	addWatch func(w *fsnotify.Watcher, dir string) error
	fsType   func(path string) (int64, error)
}

// DefaultOptions returns Run's defaults: a 1s quiet window, a 30s maximum
// delay, polling every 10s where it must, a backoff from 1s to 5m.
func DefaultOptions() Options {
	return Options{Quiet: time.Second, MaxDelay: 30 * time.Second, PollInterval: 10 * time.Second,
		Backoff: time.Second, MaxBackoff: 5 * time.Minute}
}

// validate refuses values that mean nothing (ErrBadOptions).
func (o *Options) validate() error {
	var why string
	switch {
	case o.Quiet <= 0 || o.MaxDelay <= 0 || o.PollInterval <= 0 || o.Backoff <= 0:
		why = fmt.Sprintf("a duration that is not positive (Quiet %s, MaxDelay %s, PollInterval %s, Backoff %s)", o.Quiet, o.MaxDelay, o.PollInterval, o.Backoff)
	case o.MaxDelay < o.Quiet:
		why = fmt.Sprintf("MaxDelay %s is shorter than Quiet %s", o.MaxDelay, o.Quiet)
	case o.Every < 0:
		why = fmt.Sprintf("a negative Every %s", o.Every)
	case o.MaxBackoff < o.Backoff:
		why = fmt.Sprintf("MaxBackoff %s is shorter than Backoff %s", o.MaxBackoff, o.Backoff)
	default:
		return nil
	}
	return fmt.Errorf("%w: %s", ErrBadOptions, why)
}

// Validate checks o as Run does, so that a caller can refuse bad values
// before it starts anything.
func (o Options) Validate() error { return o.validate() }

// Run calls job at once, then after every burst of changes to the tree at
// root, until ctx is done (package doc). It returns nil when ctx is done,
// ErrBadOptions or ErrNoTree before it starts.
func Run(ctx context.Context, root string, opt Options, job func(context.Context) error) error {
	if err := opt.validate(); err != nil {
		return err
	}
	if opt.Log == nil {
		opt.Log = slog.New(slog.DiscardHandler)
	}
	if opt.fsType == nil {
		opt.fsType = statfsType
	}
	if opt.addWatch == nil {
		opt.addWatch = func(w *fsnotify.Watcher, dir string) error { return w.Add(dir) }
	}
	if fi, err := os.Stat(root); err != nil || !fi.IsDir() {
		return fmt.Errorf("%w: %s: %v", ErrNoTree, root, errors.Join(err, notDir(fi)))
	}
	l := &loop{opt: opt, log: opt.Log, pending: true, backoff: opt.Backoff}
	src := watchTree(root, &opt)
	defer func() { src.close() }()
	for {
		timer, stop := l.timer(time.Now())
		select {
		case <-ctx.Done():
			stop()
			return nil
		case <-src.changed():
			l.change(time.Now())
		case why := <-src.fallback():
			src.close()
			src = startPoll(root, &opt, why)
			l.change(time.Now())
		case <-timer:
			l.fire(ctx, job)
		}
		stop()
	}
}

func notDir(fi os.FileInfo) error {
	if fi != nil && !fi.IsDir() {
		return errors.New("not a directory")
	}
	return nil
}

// loop is Run's state between changes and jobs.
type loop struct {
	opt         Options
	log         *slog.Logger
	pending     bool      // a change (or the start, or a failure) calls for a job
	first, last time.Time // the current burst's first and last change (zero: none)
	notBefore   time.Time // no job before this (backoff after a failure; a busy writer)
	lastEnd     time.Time // when the last job ended (Options.Every counts from it)
	backoff     time.Duration
	busyLogged  bool
}

// change notes a change at now.
func (l *loop) change(now time.Time) {
	l.pending = true
	if l.first.IsZero() {
		l.first = now
	}
	l.last = now
}

// due is when the next job is to start (zero: none is pending, and
// Options.Every asks for none).
func (l *loop) due(now time.Time) time.Time {
	var t time.Time
	switch {
	case l.pending && !l.first.IsZero():
		t = l.last.Add(l.opt.Quiet)
		if limit := l.first.Add(l.opt.MaxDelay); limit.Before(t) {
			t = limit
		}
	case l.pending:
		t = now
	case l.opt.Every > 0 && !l.lastEnd.IsZero():
		t = l.lastEnd.Add(l.opt.Every)
	default:
		return time.Time{}
	}
	if l.notBefore.After(t) {
		t = l.notBefore
	}
	return t
}

// timer fires when the next job is due (a nil channel if none is).
func (l *loop) timer(now time.Time) (<-chan time.Time, func()) {
	due := l.due(now)
	if due.IsZero() {
		return nil, func() {}
	}
	t := time.NewTimer(due.Sub(now))
	return t.C, func() { t.Stop() }
}

// fire runs the job unless the tree's writer is mid-update.
func (l *loop) fire(ctx context.Context, job func(context.Context) error) {
	if l.opt.Busy != nil {
		if busy, err := l.opt.Busy(); err == nil && busy {
			if !l.busyLogged {
				l.log.Info("the tree's writer is mid-update; waiting for it to finish")
				l.busyLogged = true
			}
			l.notBefore = time.Now().Add(l.opt.Quiet)
			return
		}
	}
	l.pending, l.first, l.last, l.busyLogged = false, time.Time{}, time.Time{}, false
	err := job(ctx)
	l.lastEnd = time.Now()
	switch {
	case ctx.Err() != nil:
	case err != nil:
		l.pending = true
		l.notBefore = time.Now().Add(l.backoff)
		l.log.Error("failed; trying again after the backoff", "err", err, "backoff", l.backoff)
		l.backoff = min(2*l.backoff, l.opt.MaxBackoff)
	default:
		l.backoff, l.notBefore = l.opt.Backoff, time.Time{}
	}
}
