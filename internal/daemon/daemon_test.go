package daemon_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/seqmirror/seqmirror/internal/daemon"
	"github.com/seqmirror/seqmirror/internal/export"
	"github.com/seqmirror/seqmirror/internal/fsys"
	"github.com/seqmirror/seqmirror/internal/trigger"
	"github.com/seqmirror/seqmirror/testutil"
)

var secret = []byte("0123456789abcdef-shared")

// fakeUpstream is the injected sync: it "serves" whatever the test says,
// records each sync, and can hold a sync until released.
type fakeUpstream struct {
	mu      sync.Mutex
	serves  uint64
	served  uint64
	syncs   int
	targets []uint64      // the target each sync was given
	hold    chan struct{} // non-nil: each sync waits for a receive from it (or ctx)
	started chan int      // each sync sends its number here
}

func newFake(serves uint64) *fakeUpstream {
	return &fakeUpstream{serves: serves, served: serves, started: make(chan int, 100)}
}

func (f *fakeUpstream) sync(ctx context.Context, target uint64, served func(uint64)) (uint64, bool, error) {
	f.mu.Lock()
	f.syncs++
	f.targets = append(f.targets, target)
	n, hold := f.syncs, f.hold
	f.mu.Unlock()
	f.started <- n
	if hold != nil {
		select {
		case <-hold:
		case <-ctx.Done():
			return f.get(), false, context.Cause(ctx)
		}
	}
	f.mu.Lock()
	changed := f.serves != f.served
	f.served = f.serves
	now := f.served
	f.mu.Unlock()
	if changed {
		served(now) // as mirror.Sync does, before its prune
	}
	return now, changed, nil
}

func (f *fakeUpstream) get() uint64 { f.mu.Lock(); defer f.mu.Unlock(); return f.served }

func (f *fakeUpstream) set(n uint64) { f.mu.Lock(); f.serves = n; f.mu.Unlock() }

func (f *fakeUpstream) count() int { f.mu.Lock(); defer f.mu.Unlock(); return f.syncs }

// waitSync waits for sync number n to start.
func (f *fakeUpstream) waitSync(tb testing.TB, n int) {
	tb.Helper()
	for {
		select {
		case got := <-f.started:
			if got >= n {
				return
			}
		case <-time.After(5 * time.Second):
			tb.Fatalf("sync %d did not start within 5s (%d so far)", n, f.count())
		}
	}
}

// running is a daemon running on a root with snapshot 1, polling hourly.
type running struct {
	d    *daemon.Daemon
	url  string
	stop func() error // cancels Run and returns its error
	root string
}

func start(tb testing.TB, cfg daemon.Config) *running {
	tb.Helper()
	if cfg.Root == "" {
		cfg.Root = filepath.Join(tb.TempDir(), "root")
		testutil.SnapshotRoot(tb, cfg.Root, 1, map[string]string{"a.txt": "a\n"})
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	if cfg.Load == nil {
		cfg.Load = func() (daemon.Settings, error) { return daemon.Settings{}, nil }
	}
	if cfg.Timing.Interval == 0 {
		cfg.Timing = daemon.DefaultTiming()
		cfg.Timing.Interval, cfg.Timing.Backoff = time.Hour, 20*time.Millisecond
	}
	d, err := daemon.New(cfg)
	if err != nil {
		ln.Close()
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx, ln) }()
	var once sync.Once
	var runErr error
	stop := func() error {
		once.Do(func() {
			cancel()
			select {
			case runErr = <-done:
			case <-time.After(10 * time.Second):
				runErr = errors.New("Run did not return within 10s of its context's end")
			}
			d.Close()
		})
		return runErr
	}
	tb.Cleanup(func() { stop() })
	return &running{d: d, url: "http://" + ln.Addr().String(), stop: stop, root: cfg.Root}
}

// Triggers arriving during a sync coalesce into one sync right after it,
// which reaches the highest; triggers at or below what is served are no-ops.
func TestTriggersCoalesce(t *testing.T) {
	f := newFake(1)
	f.hold = make(chan struct{})
	r := start(t, daemon.Config{Sync: f.sync})
	f.waitSync(t, 1) // the first sync, at start
	for _, n := range []uint64{3, 2, 4, 4, 1} {
		r.d.Trigger(n)
	}
	f.hold <- struct{}{} // the first sync ends still serving 1
	f.waitSync(t, 2)     // the one follow-up, at once (no backoff)
	f.set(4)
	f.hold <- struct{}{} // it reaches 4
	time.Sleep(100 * time.Millisecond)
	st := r.d.Status()
	if st.Served != 4 || st.Target != 0 || f.count() != 2 {
		t.Fatalf("served %d, target %d after %d syncs; want 4, 0, 2", st.Served, st.Target, f.count())
	}
	if st.Triggers != 5 || st.Coalesced != 3 {
		t.Fatalf("triggers %d, coalesced %d; want 5, 3", st.Triggers, st.Coalesced)
	}
	if r.d.Trigger(4) || r.d.Trigger(3) {
		t.Fatal("a trigger at or below the served snapshot raised the target")
	}
	time.Sleep(50 * time.Millisecond)
	if f.count() != 2 {
		t.Fatalf("%d syncs after no-op triggers, want 2", f.count())
	}
}

// A trigger for a snapshot the upstream does not serve yet is chased with
// backoff until it appears; a flip is forwarded to every downstream.
func TestTriggerChasedThenForwarded(t *testing.T) {
	f := newFake(1)
	var mu sync.Mutex
	var sent []string
	forward := func(_ context.Context, url string, _ []byte, n uint64) error {
		mu.Lock()
		defer mu.Unlock()
		sent = append(sent, url+"@"+string(rune('0'+n)))
		if url == "http://down-b" {
			return errors.New("connection refused") // logged, not fatal
		}
		return nil
	}
	load := func() (daemon.Settings, error) {
		return daemon.Settings{Secret: secret, Downstream: []string{"http://down-a", "http://down-b"}}, nil
	}
	r := start(t, daemon.Config{Sync: f.sync, Forward: forward, Load: load})
	f.waitSync(t, 1)
	r.d.Trigger(2)
	f.waitSync(t, 3) // two syncs at least that did not reach 2
	f.set(2)
	deadline := time.Now().Add(5 * time.Second)
	for r.d.Status().Served != 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if st := r.d.Status(); st.Served != 2 || st.Target != 0 {
		t.Fatalf("status %+v, want serving 2 and no target", st)
	}
	if err := r.stop(); err != nil { // waits for the forwards
		t.Fatal(err)
	}
	f.mu.Lock()
	targets := slices.Clone(f.targets)
	f.mu.Unlock()
	if len(targets) < 3 || targets[0] != 0 || slices.Index(targets, 2) != 1 || targets[len(targets)-1] != 2 {
		t.Errorf("the syncs were given targets %v, want 0 first and then 2 (the trigger's) until it is served", targets)
	}
	slices.Sort(sent)
	if !slices.Equal(sent, []string{"http://down-a@2", "http://down-b@2"}) {
		t.Fatalf("forwarded %v", sent)
	}
}

// The daemon serves its root with the server's handler; without a secret
// /trigger is 404; a reload with a secret opens it: a signed trigger is
// taken (202) and syncs at once, a bad signature is 401 and syncs nothing.
func TestServesRootAndTriggerRoute(t *testing.T) {
	f := newFake(1)
	var mu sync.Mutex
	var s daemon.Settings
	load := func() (daemon.Settings, error) {
		mu.Lock()
		defer mu.Unlock()
		return s, nil
	}
	r := start(t, daemon.Config{Sync: f.sync, Load: load})
	f.waitSync(t, 1)
	for path, want := range map[string]string{"/seq/current": "1\n", "/current/a.txt": "a\n"} {
		if got := get(t, r.url+path); got != want {
			t.Fatalf("GET %s = %q, want %q", path, got, want)
		}
	}
	if code := post(t, r.url+daemon.TriggerPath); code != http.StatusNotFound {
		t.Fatalf("POST /trigger without a secret: %d, want 404", code)
	}
	mu.Lock()
	s.Secret = secret
	mu.Unlock()
	if err := r.d.Reload(); err != nil {
		t.Fatal(err)
	}
	err := trigger.Send(context.Background(), nil, r.url, []byte("not the secret at all"), trigger.Message{Snapshot: 2})
	if !errors.Is(err, trigger.ErrRejected) || !strings.Contains(err.Error(), "401") {
		t.Fatalf("trigger with a bad signature: %v, want rejected with 401", err)
	}
	time.Sleep(50 * time.Millisecond)
	if st := r.d.Status(); f.count() != 1 || st.Target != 0 || st.Triggers != 0 {
		t.Fatalf("after a bad signature: %d syncs, status %+v; want nothing done", f.count(), st)
	}
	f.set(2)
	if err := trigger.Send(context.Background(), nil, r.url, secret, trigger.Message{Snapshot: 2}); err != nil {
		t.Fatal(err)
	}
	f.waitSync(t, 2)
}

// Stopping Run stops the sync in progress through its context and
// returns nil; the lock is free after Close.
func TestStopDuringSync(t *testing.T) {
	f := newFake(1)
	f.hold = make(chan struct{}) // never released
	r := start(t, daemon.Config{Sync: f.sync})
	f.waitSync(t, 1)
	if err := r.stop(); err != nil {
		t.Fatalf("Run after its context ended: %v", err)
	}
	l, err := export.New(fsys.OS(), r.root).DaemonLock()
	if err != nil {
		t.Fatalf("daemon lock after Close: %v", err)
	}
	l.Unlock()
}

// One daemon per root: a second New on the same root fails at once.
func TestSecondDaemonRefused(t *testing.T) {
	f := newFake(1)
	r := start(t, daemon.Config{Sync: f.sync})
	_, err := daemon.New(daemon.Config{Root: r.root, Sync: f.sync, Timing: daemon.DefaultTiming(),
		Load: func() (daemon.Settings, error) { return daemon.Settings{}, nil }})
	if !errors.Is(err, daemon.ErrRunning) || !errors.Is(err, export.ErrLocked) {
		t.Fatalf("second New = %v, want ErrRunning and export.ErrLocked", err)
	}
}

func get(tb testing.TB, url string) string {
	tb.Helper()
	resp, err := http.Get(url)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func post(tb testing.TB, url string) int {
	tb.Helper()
	resp, err := http.Post(url, "application/json", nil)
	if err != nil {
		tb.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// A triggered snapshot that does not come within Timing.GiveUp is given
// up, and why is recorded in status.json (last_error), not only logged.
func TestGiveUpRecordedInStatus(t *testing.T) {
	f := newFake(1)
	timing := daemon.DefaultTiming()
	timing.Interval, timing.Backoff, timing.GiveUp = time.Hour, 10*time.Millisecond, 100*time.Millisecond
	r := start(t, daemon.Config{Sync: f.sync, Timing: timing})
	f.waitSync(t, 1)
	r.d.Trigger(5)
	deadline := time.Now().Add(5 * time.Second)
	for r.d.Status().GaveUp == "" && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if r.d.Status().GaveUp == "" {
		t.Fatalf("status %+v: the target was not given up", r.d.Status())
	}
	var st export.Status
	for time.Now().Before(deadline) {
		var err error
		if st, err = export.New(fsys.OS(), r.root).Status(); err == nil && st.LastError != "" {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !strings.Contains(st.LastError, "gave up on snapshot 5") || st.Snapshot != 1 {
		t.Fatalf("status.json: snapshot %d, last_error %q; want 1 and the give-up", st.Snapshot, st.LastError)
	}
}
