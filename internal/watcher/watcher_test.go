package watcher

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/seqmirror/seqmirror/testutil"
	"golang.org/x/sys/unix"
)

// runner runs Run on a tree in the background and records its jobs.
type runner struct {
	dir    string
	cancel context.CancelFunc
	done   chan error
	jobs   chan time.Time // one per job, when it started
	fail   atomic.Int32   // fail this many jobs
	logs   *syncBuffer
	count  atomic.Int32
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startRun starts Run on a new tree with opt (its Log set here) and waits
// for the first job, which Run makes at the start.
func startRun(tb testing.TB, opt Options) *runner {
	tb.Helper()
	r := &runner{dir: tb.TempDir(), done: make(chan error, 1), jobs: make(chan time.Time, 100), logs: &syncBuffer{}}
	opt.Log = slog.New(slog.NewTextHandler(r.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() {
		r.done <- Run(ctx, r.dir, opt, func(context.Context) error {
			r.count.Add(1)
			r.jobs <- time.Now()
			if r.fail.Load() > 0 {
				r.fail.Add(-1)
				return errors.New("injected failure")
			}
			return nil
		})
	}()
	tb.Cleanup(func() { r.stop(tb) })
	r.next(tb, 5*time.Second) // the start's job
	return r
}

// next waits up to d for a job and returns when it started.
func (r *runner) next(tb testing.TB, d time.Duration) time.Time {
	tb.Helper()
	select {
	case t := <-r.jobs:
		return t
	case <-time.After(d):
		tb.Fatalf("no job within %s; log:\n%s", d, r.logs)
	}
	return time.Time{}
}

// none checks that no job starts within d.
func (r *runner) none(tb testing.TB, d time.Duration) {
	tb.Helper()
	select {
	case <-r.jobs:
		tb.Fatalf("a job started, none expected; log:\n%s", r.logs)
	case <-time.After(d):
	}
}

func (r *runner) stop(tb testing.TB) {
	if r.cancel == nil {
		return
	}
	r.cancel()
	r.cancel = nil
	select {
	case err := <-r.done:
		if err != nil {
			tb.Errorf("Run: %v", err)
		}
	case <-time.After(5 * time.Second):
		tb.Errorf("Run did not return after its context was cancelled")
	}
}

func (r *runner) write(tb testing.TB, rel, data string) {
	tb.Helper()
	p := filepath.Join(r.dir, rel)
	testutil.Must(tb, os.MkdirAll(filepath.Dir(p), 0o755))
	testutil.Must(tb, os.WriteFile(p, []byte(data), 0o644))
}

func fastOptions() Options {
	opt := DefaultOptions()
	opt.Quiet, opt.MaxDelay, opt.PollInterval, opt.Backoff = 150*time.Millisecond, 2*time.Second, 100*time.Millisecond, 200*time.Millisecond
	return opt
}

// A burst of changes closer together than the quiet window makes one job,
// which starts once the burst has been quiet for the window.
func TestBurstMakesOneJob(t *testing.T) {
	for _, poll := range []bool{false, true} {
		t.Run(fmt.Sprintf("poll=%v", poll), func(t *testing.T) {
			opt := fastOptions()
			opt.Quiet, opt.ForcePoll = 400*time.Millisecond, poll
			r := startRun(t, opt)
			var last time.Time
			for i := range 10 {
				r.write(t, fmt.Sprintf("f%d", i), "x")
				last = time.Now()
				time.Sleep(50 * time.Millisecond)
			}
			at := r.next(t, 5*time.Second)
			if gap := at.Sub(last); gap < opt.Quiet-50*time.Millisecond {
				t.Errorf("the job started %s after the last change, before the %s quiet window", gap, opt.Quiet)
			}
			r.none(t, time.Second)
		})
	}
}

// Changes that never stop are still published: a job at the latest
// MaxDelay after the burst's first change.
func TestMaxDelayBoundsABurst(t *testing.T) {
	opt := fastOptions()
	opt.Quiet, opt.MaxDelay = 300*time.Millisecond, time.Second
	r := startRun(t, opt)
	stop := make(chan struct{})
	go func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			_ = os.WriteFile(filepath.Join(r.dir, "busy"), fmt.Appendf(nil, "%d", i), 0o644)
		}
	}()
	defer close(stop)
	start := time.Now()
	at := r.next(t, 5*time.Second)
	if d := at.Sub(start); d > opt.MaxDelay+1500*time.Millisecond { // slack for a loaded machine
		t.Errorf("first job %s after the burst started, want about %s", d, opt.MaxDelay)
	}
}

// Directories made after the start, at any depth, are watched: a change
// deep inside one is seen.
func TestNewDirectoriesAreWatched(t *testing.T) {
	r := startRun(t, fastOptions())
	testutil.Must(t, os.MkdirAll(filepath.Join(r.dir, "a/b/c"), 0o755))
	r.next(t, 5*time.Second)
	r.write(t, "a/b/c/deep", "x")
	r.next(t, 5*time.Second)
	// A tree moved in whole.
	outside := t.TempDir()
	testutil.Must(t, os.MkdirAll(filepath.Join(outside, "m/n"), 0o755))
	testutil.Must(t, os.Rename(filepath.Join(outside, "m"), filepath.Join(r.dir, "m")))
	r.next(t, 5*time.Second)
	r.write(t, "m/n/file", "x")
	r.next(t, 5*time.Second)
}

// While Busy says the writer is mid-update, no job starts, however long
// past MaxDelay; one starts once it is idle again.
func TestBusyWriterHoldsJobs(t *testing.T) {
	var busy atomic.Bool
	opt := fastOptions()
	opt.MaxDelay = 300 * time.Millisecond
	opt.Busy = func() (bool, error) { return busy.Load(), nil }
	r := startRun(t, opt)
	busy.Store(true)
	r.write(t, "f", "1")
	r.none(t, 1500*time.Millisecond)
	busy.Store(false)
	r.write(t, "f", "2") // the writer's own seq/end bump, in life
	r.next(t, 5*time.Second)
	if !strings.Contains(r.logs.String(), "mid-update") {
		t.Errorf("no log line says the writer is mid-update:\n%s", r.logs)
	}
}

// A failed job is retried after the backoff, without another change; a
// failure does not end Run.
func TestFailedJobIsRetried(t *testing.T) {
	opt := fastOptions()
	opt.Backoff = 300 * time.Millisecond
	r := startRun(t, opt)
	r.fail.Store(2)
	r.write(t, "f", "1")
	first := r.next(t, 5*time.Second)
	second := r.next(t, 5*time.Second)
	third := r.next(t, 5*time.Second)
	if d := second.Sub(first); d < opt.Backoff-50*time.Millisecond {
		t.Errorf("retried %s after the failure, before the %s backoff", d, opt.Backoff)
	}
	if d := third.Sub(second); d < 2*opt.Backoff-50*time.Millisecond {
		t.Errorf("second retry %s after the first, want the doubled backoff %s", d, 2*opt.Backoff)
	}
	r.none(t, time.Second) // the third succeeded
	if !strings.Contains(r.logs.String(), "injected failure") {
		t.Errorf("the failure is not logged:\n%s", r.logs)
	}
}

// Run returns nil when its context is done, with the job's context done
// too; it refuses bad options and a missing tree before it starts.
func TestRunStopsAndRefuses(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	dir := t.TempDir()
	done := make(chan error, 1)
	started := make(chan struct{})
	go func() {
		done <- Run(ctx, dir, fastOptions(), func(ctx context.Context) error {
			close(started)
			<-ctx.Done() // a job that abandons its work when stopped
			return ctx.Err()
		})
	}()
	<-started
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run after cancel: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return")
	}
	tests := []struct {
		name string
		dir  string
		edit func(*Options)
		want error
	}{
		{name: "zero quiet", dir: dir, edit: func(o *Options) { o.Quiet = 0 }, want: ErrBadOptions},
		{name: "max delay below quiet", dir: dir, edit: func(o *Options) { o.MaxDelay = o.Quiet / 2 }, want: ErrBadOptions},
		{name: "negative poll", dir: dir, edit: func(o *Options) { o.PollInterval = -1 }, want: ErrBadOptions},
		{name: "max backoff below backoff", dir: dir, edit: func(o *Options) { o.MaxBackoff = o.Backoff / 2 }, want: ErrBadOptions},
		{name: "missing tree", dir: filepath.Join(dir, "nope"), edit: func(*Options) {}, want: ErrNoTree},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opt := fastOptions()
			tt.edit(&opt)
			err := Run(context.Background(), tt.dir, opt, func(context.Context) error { t.Error("job ran"); return nil })
			if !errors.Is(err, tt.want) {
				t.Fatalf("Run: %v, want %v", err, tt.want)
			}
		})
	}
}

// Where inotify cannot see every change, Run polls, says so and why, and
// still sees changes: a remote filesystem (statfs type), the watch limit
// at the start or on a new directory later, or polling asked for.
func TestPollFallback(t *testing.T) {
	nfs := func(string) (int64, error) { return 0x6969, nil }
	full := func(*fsnotify.Watcher, string) error { return fmt.Errorf("add: %w", unix.ENOSPC) }
	tests := []struct {
		name string
		edit func(*Options)
		want string
	}{
		{name: "forced", edit: func(o *Options) { o.ForcePoll = true }, want: "polling was asked for"},
		{name: "nfs", edit: func(o *Options) { o.fsType = nfs }, want: "is on NFS (statfs type 0x6969)"},
		{name: "watch limit", edit: func(o *Options) { o.addWatch = full }, want: "the inotify watch limit is reached"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opt := fastOptions()
			tt.edit(&opt)
			r := startRun(t, opt)
			logs := r.logs.String()
			if !strings.Contains(logs, "level=WARN msg=\"polling the tree for changes instead of watching it\"") || !strings.Contains(logs, tt.want) {
				t.Fatalf("the start's log does not say it polls and why (%q):\n%s", tt.want, logs)
			}
			r.write(t, "d/f", "x")
			r.next(t, 5*time.Second)
			r.write(t, "d/f", "y") // same size: the mtime and ctime tell
			r.next(t, 5*time.Second)
		})
	}
	t.Run("limit reached later", func(t *testing.T) {
		var n atomic.Int32
		opt := fastOptions()
		opt.addWatch = func(w *fsnotify.Watcher, dir string) error {
			if n.Add(1) > 1 { // the root only
				return fmt.Errorf("add: %w", unix.ENOSPC)
			}
			return w.Add(dir)
		}
		r := startRun(t, opt)
		testutil.Must(t, os.Mkdir(filepath.Join(r.dir, "new"), 0o755))
		r.next(t, 5*time.Second)
		if !strings.Contains(r.logs.String(), "polling the tree") {
			t.Fatalf("no switch to polling logged:\n%s", r.logs)
		}
		r.write(t, "new/f", "x") // seen by the poll, not by a watch
		r.next(t, 5*time.Second)
	})
}

// A source directory removed and made again at the same path is still
// seen: the watch went with the old directory, so Run polls the path.
func TestRootReplaced(t *testing.T) {
	r := startRun(t, fastOptions())
	testutil.Must(t, os.RemoveAll(r.dir))
	r.next(t, 5*time.Second)
	testutil.Must(t, os.Mkdir(r.dir, 0o755))
	r.write(t, "f", "x")
	r.next(t, 5*time.Second)
	if !strings.Contains(r.logs.String(), "itself was removed or renamed") {
		t.Errorf("no switch to polling logged:\n%s", r.logs)
	}
}

func TestRemoteFS(t *testing.T) {
	tests := []struct {
		name   string
		magic  int64
		remote bool
	}{
		{name: "nfs", magic: 0x6969, remote: true},
		{name: "cifs", magic: 0xFF534D42, remote: true},
		{name: "smb2", magic: 0xFE534D42, remote: true},
		{name: "fuse", magic: 0x65735546, remote: true},
		{name: "ext4", magic: 0xEF53},
		{name: "xfs", magic: 0x58465342},
		{name: "tmpfs", magic: 0x01021994},
		{name: "overlayfs", magic: 0x794C7630},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, got := RemoteFS(tt.magic); got != tt.remote {
				t.Errorf("RemoteFS(%#x) = %v, want %v", tt.magic, got, tt.remote)
			}
		})
	}
	// The real call, on a local test directory: no reason to poll.
	if why := pollReason(statfsType, t.TempDir()); why != "" {
		t.Errorf("a local temporary directory would be polled: %s", why)
	}
}

// With Every, jobs also run on time while nothing changes: each one Every
// after the last ended; without it, none does.
func TestEveryRunsWithoutChanges(t *testing.T) {
	opt := fastOptions()
	opt.Every = 300 * time.Millisecond
	r := startRun(t, opt)
	prev := time.Now()
	for range 2 {
		at := r.next(t, 5*time.Second)
		if d := at.Sub(prev); d < opt.Every-50*time.Millisecond {
			t.Fatalf("a job %s after the last, want about Every (%s)", d, opt.Every)
		}
		prev = at
	}
	opt.Every = 0
	r = startRun(t, opt)
	r.none(t, time.Second)

	opt.Every = -time.Second
	if err := Run(context.Background(), t.TempDir(), opt, func(context.Context) error { return nil }); !errors.Is(err, ErrBadOptions) {
		t.Fatalf("Run with a negative Every = %v, want ErrBadOptions", err)
	}
}
