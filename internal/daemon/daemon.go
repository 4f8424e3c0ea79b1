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
	"github.com/seqmirror/seqmirror/internal/statuspage"
	"github.com/seqmirror/seqmirror/internal/transport"
	"github.com/seqmirror/seqmirror/internal/trigger"
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
// whether it flipped to a new one. It stops when ctx is done. target is
// the pending trigger's snapshot (0: none): a sync that has made it served
// need not poll the upstream once more (mirror.Options.Target).
//
// A sync that installs a snapshot calls served(n) as soon as the update is
// over and before its prune (mirror.Options.Served), from the goroutine
// that called it; the daemon forwards the trigger for n from there, so the
// next tier does not wait for the removal of old snapshots.
type SyncFunc func(ctx context.Context, target uint64, served func(n uint64)) (snapshot uint64, changed bool, err error)

// ForwardFunc sends a trigger for snapshot n to the downstream url, signed
// with secret.
type ForwardFunc func(ctx context.Context, url string, secret []byte, n uint64) error

// Settings are what a reload replaces, all at once.
type Settings struct {
	// Secret is the shared secret of triggers, received and forwarded;
	// nil: no trigger endpoint (/trigger is 404) and no forwarding.
	Secret []byte
	// Downstream are the URLs a flip is forwarded to.
	Downstream []string
}

// Config is what a daemon is made of.
type Config struct {
	Root   string // the export root it syncs and serves
	Server server.ServerOptions
	Sync   SyncFunc
	// Load reads the settings: by New, and again by Reload (SIGHUP).
	Load func() (Settings, error)
	// Name is this daemon's name in the triggers it forwards (Origin).
	Name string
	// Forward sends one forwarded trigger; nil: trigger.Send with a
	// client of its own.
	Forward ForwardFunc
	// Open opens a downstream's root for the status page's probes; nil:
	// transport.Open.
	Open   OpenFunc
	Timing Timing
	Now    func() time.Time // nil: time.Now
	Log    *slog.Logger     // nil: discard
}

// settings are the Settings in force with the trigger endpoint (nil: no
// secret, no endpoint).
type settings struct {
	Settings
	endpoint http.Handler
}

// Daemon is one long-running mirror of one root. Make it with New, run it
// with Run, release it with Close.
type Daemon struct {
	cfg      Config
	root     *export.Root
	lock     *export.Lock
	handler  *server.Handler
	page     http.Handler     // the status page (StatusPath)
	self     transport.Prober // the root, read as a downstream's upstream (lags)
	watch    *watch           // the downstream mirrors as last probed
	settings atomic.Pointer[settings]

	reloading sync.Mutex        // serialises Reload
	verifier  *trigger.Verifier // the trigger endpoint's, made at the first secret
	endpoint  http.Handler      // its handler
	log       *slog.Logger
	client    *http.Client // forwards' (default Forward)

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
		return nil, runningError{root.Path(export.DaemonLockName), err}
	}
	if err != nil {
		return nil, err
	}
	d := &Daemon{cfg: cfg, root: root, lock: lock, log: cfg.Log, wake: make(chan struct{}, 1),
		client: &http.Client{Timeout: 10 * time.Second}, watch: newWatch()}
	d.page = statuspage.Handler(d.Page)
	if err := d.open(); err != nil {
		lock.Unlock()
		return nil, err
	}
	return d, nil
}

// runningError is New's error when another daemon holds the lock file:
// it wraps ErrRunning and the lock's error (export.ErrLocked).
type runningError struct {
	lockFile string
	err      error
}

func (r runningError) Error() string {
	return fmt.Sprintf("%s: %s is held by another process", ErrRunning, r.lockFile)
}

func (r runningError) Unwrap() []error { return []error{ErrRunning, r.err} }

// check fills in the defaults and refuses what makes no sense.
func (c *Config) check() error {
	switch {
	case c.Root == "" || c.Sync == nil || c.Load == nil:
		return fmt.Errorf("%w: Root, Sync and Load are required", ErrConfig)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	if c.Open == nil {
		c.Open = openDownstream
	}
	c.Timing.probeDefaults()
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
	if d.self, err = transport.NewLocal(fsys.OS(), d.root.Dir); err != nil {
		return err
	}
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
// error the previous settings stay. The daemon has one trigger.Verifier for
// its life, given the new secret (SetSecret), so its memory of the nonces
// seen survives a reload: no replay across one.
func (d *Daemon) Reload() error {
	d.reloading.Lock()
	defer d.reloading.Unlock()
	s, err := d.cfg.Load()
	if err != nil {
		return fmt.Errorf("load settings: %w", err)
	}
	next := &settings{Settings: s}
	if s.Secret != nil {
		if d.verifier == nil {
			d.verifier = trigger.NewVerifier(s.Secret, d.cfg.Now)
			d.endpoint = d.verifier.Handler(d.accept, d.log)
		}
		d.verifier.SetSecret(s.Secret)
		next.endpoint = d.endpoint
	}
	if s.Secret == nil && len(s.Downstream) > 0 {
		d.log.Warn("no trigger secret: the downstream mirrors are not told of flips", "downstream", s.Downstream)
	}
	d.settings.Store(next)
	d.log.Info("settings loaded", "downstream", len(s.Downstream), "trigger_endpoint", s.Secret != nil)
	return nil
}

// accept takes a verified trigger (the trigger endpoint's accept function).
func (d *Daemon) accept(_ context.Context, m trigger.Message) error {
	d.Trigger(m.Snapshot)
	return nil
}

// Settings returns the settings in force.
func (d *Daemon) Settings() Settings { return d.settings.Load().Settings }

// Run syncs, and serves on ln, until ctx is done or the server fails (it
// closes ln), then stops:
// the sync in progress is stopped through its context, the HTTP server is
// drained (server.Serve), the forwards in flight are waited for. It
// returns nil after a stop by ctx.
func (d *Daemon) Run(ctx context.Context, ln net.Listener) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	served := make(chan error, 1)
	so := d.cfg.Server
	so.Files = d.handler // ServeHTTP hands /snapshots/ to it
	go func() { served <- server.Serve(ctx, ln, d, so) }()
	looped, probed := make(chan struct{}), make(chan struct{})
	go func() { d.loop(ctx); close(looped) }()
	go func() { d.probeLoop(ctx); close(probed) }()
	d.log.Info("daemon started", "root", d.root.Dir, "listen", ln.Addr().String(),
		"interval", d.cfg.Timing.Interval, "serving", d.Status().Served)
	err := <-served
	if err != nil && ctx.Err() == nil {
		err = fmt.Errorf("serve %s: %w", ln.Addr(), err)
	}
	cancel(err)
	<-looped
	<-probed
	d.forwards.Wait()
	return err
}

// ServeHTTP serves the root (server.Handler), the status page (GET and
// HEAD of StatusPath) and, when the settings have a secret, the trigger
// endpoint (POST /trigger, 401 on a bad signature).
func (d *Daemon) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case StatusPath:
		d.page.ServeHTTP(w, r)
		return
	case TriggerPath:
	default:
		d.handler.ServeHTTP(w, r)
		return
	}
	if h := d.settings.Load().endpoint; h != nil {
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
	d.log.Debug("trigger: syncing now", "snapshot", n, "serving", served)
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
