package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/seqmirror/seqmirror/internal/export"
	"github.com/seqmirror/seqmirror/internal/fsys"
	"github.com/seqmirror/seqmirror/internal/server"
)

var (
	// ErrConfig means a Config holds a value that makes no sense.
	ErrConfig = errors.New("invalid daemon configuration")
	// ErrRunning means another daemon holds the root's daemon lock; the
	// error also wraps export.ErrLocked.
	ErrRunning = errors.New("a daemon already serves this root")
)

// TriggerPath is the URL path of the trigger endpoint.
const TriggerPath = "/trigger"

// forwardTimeout bounds one forward of a trigger to a downstream.
const forwardTimeout = 30 * time.Second

// SyncFunc runs one sync of the root (the same run a cron job makes) and
// reports the snapshot the root serves after it (0 if it cannot tell) and
// whether it flipped to a new one. It stops when ctx is done.
type SyncFunc func(ctx context.Context) (served uint64, changed bool, err error)

// ForwardFunc sends a trigger for snapshot n to the downstream url.
type ForwardFunc func(ctx context.Context, url string, n uint64) error

// Settings are what a reload replaces, all at once.
type Settings struct {
	// Downstream are the URLs a flip is forwarded to.
	Downstream []string
	// Trigger answers POST /trigger (it checks the signature and calls
	// Daemon.Trigger); nil: no trigger endpoint, /trigger is 404.
	Trigger http.Handler
}

// Config is what a daemon is made of.
type Config struct {
	Root     string       // the export root it syncs and serves
	Listener net.Listener // where it serves the root (Run closes it)
	Server   server.ServerOptions
	Sync     SyncFunc
	// Load reads the settings: by New, and again by Reload (SIGHUP).
	Load    func() (Settings, error)
	Forward ForwardFunc // nil: flips are not forwarded
	Timing  Timing
	Now     func() time.Time // nil: time.Now
	Log     *slog.Logger     // nil: discard
}

// Daemon is one long-running mirror of one root. Make it with New, run it
// with Run, release it with Close.
type Daemon struct {
	cfg      Config
	root     *export.Root
	lock     *export.Lock
	handler  *server.Handler
	settings atomic.Pointer[Settings]
	log      *slog.Logger

	mu    sync.Mutex // guards sched
	sched *schedule
	wake  chan struct{} // a trigger raised the target

	forwards sync.WaitGroup
}

// New takes the root's daemon lock (an error wrapping ErrRunning if
// another daemon holds it), makes the root if it does not exist yet, opens
// it for serving and loads the settings.
func New(cfg Config) (*Daemon, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	root := export.New(fsys.OS(), cfg.Root)
	lock, err := root.DaemonLock()
	if errors.Is(err, export.ErrLocked) {
		return nil, fmt.Errorf("%w: %w", ErrRunning, err)
	}
	if err != nil {
		return nil, err
	}
	d := &Daemon{cfg: cfg, root: root, lock: lock, log: cfg.Log, wake: make(chan struct{}, 1)}
	if err := d.open(); err != nil {
		lock.Unlock()
		return nil, err
	}
	return d, nil
}

// check fills in the defaults and refuses what makes no sense.
func (c *Config) check() error {
	switch {
	case c.Root == "" || c.Listener == nil || c.Sync == nil || c.Load == nil:
		return fmt.Errorf("%w: Root, Listener, Sync and Load are required", ErrConfig)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	return c.Timing.check()
}

// open is New's work under the daemon lock.
func (d *Daemon) open() error {
	if err := d.root.Init(); err != nil {
		return err
	}
	served, err := d.root.Current()
	if err != nil {
		d.log.Warn("cannot read the served snapshot; the first sync repairs it", "err", err)
		served = 0
	}
	d.sched = newSchedule(d.cfg.Timing, served, d.cfg.Now())
	if err := d.Reload(); err != nil {
		return err
	}
	d.handler, err = server.NewHandler(server.Options{Root: d.root.Dir, Log: d.log, Now: d.cfg.Now})
	return err
}

// Close releases the root and the daemon lock. Call it after Run returned.
func (d *Daemon) Close() error {
	err := d.handler.Close()
	if uerr := d.lock.Unlock(); err == nil {
		err = uerr
	}
	return err
}

// Reload loads the settings again and replaces them all at once; on an
// error the previous settings stay.
func (d *Daemon) Reload() error {
	s, err := d.cfg.Load()
	if err != nil {
		return fmt.Errorf("load settings: %w", err)
	}
	if d.cfg.Forward == nil && len(s.Downstream) > 0 {
		d.log.Warn("downstream mirrors given but forwarding is off; ignored", "downstream", s.Downstream)
	}
	d.settings.Store(&s)
	d.log.Info("settings loaded", "downstream", len(s.Downstream), "trigger_endpoint", s.Trigger != nil)
	return nil
}

// Settings returns the settings in force.
func (d *Daemon) Settings() Settings { return *d.settings.Load() }

// Run syncs and serves until ctx is done or the server fails, then stops:
// the sync in progress is stopped through its context, the HTTP server is
// drained (server.Serve), the forwards in flight are waited for. It
// returns nil after a stop by ctx.
func (d *Daemon) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	served := make(chan error, 1)
	go func() { served <- server.Serve(ctx, d.cfg.Listener, d, d.cfg.Server) }()
	looped := make(chan struct{})
	go func() { d.loop(ctx); close(looped) }()
	d.log.Info("daemon started", "root", d.root.Dir, "listen", d.cfg.Listener.Addr().String(),
		"interval", d.cfg.Timing.Interval, "serving", d.Status().Served)
	err := <-served
	if err != nil && ctx.Err() == nil {
		err = fmt.Errorf("serve %s: %w", d.cfg.Listener.Addr(), err)
	}
	cancel(err)
	<-looped
	d.forwards.Wait()
	return err
}

// ServeHTTP serves the root (server.Handler) and, when the settings have
// one, the trigger endpoint.
func (d *Daemon) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != TriggerPath {
		d.handler.ServeHTTP(w, r)
		return
	}
	if h := d.settings.Load().Trigger; h != nil {
		h.ServeHTTP(w, r)
		return
	}
	http.NotFound(w, r)
}

// Trigger asks for snapshot n: if n is above both what the root serves and
// the pending target, it becomes the target and a sync starts at once (or
// right after the running one); else it is coalesced, a no-op. It reports
// whether the target rose. Safe for concurrent use.
func (d *Daemon) Trigger(n uint64) bool {
	d.mu.Lock()
	raised := d.sched.trigger(n, d.cfg.Now())
	served, target := d.sched.served, d.sched.target
	d.mu.Unlock()
	if !raised {
		d.log.Debug("trigger coalesced", "snapshot", n, "serving", served, "target", target)
		return false
	}
	d.log.Info("trigger", "snapshot", n, "serving", served)
	select {
	case d.wake <- struct{}{}:
	default:
	}
	return true
}

// Status returns what the daemon serves and pursues. Safe for concurrent
// use.
func (d *Daemon) Status() Status {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.sched.stat
}
