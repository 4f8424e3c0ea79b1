package cliapp_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/seqmirror/seqmirror/internal/cliapp"
	"github.com/seqmirror/seqmirror/internal/trigger"
	"github.com/seqmirror/seqmirror/testutil"
)

// lockedBuffer is a bytes.Buffer the daemon's log goroutines and the test
// may use at once.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// daemonProc is `mirror-sync daemon` running in-process on a real
// listener, stopped as Main stops it on SIGTERM.
type daemonProc struct {
	root, url string
	stderr    *lockedBuffer
	cancel    context.CancelCauseFunc
	code      chan int
}

// startDaemon runs mirror-sync daemon --root root --listen (a free port)
// with args, and waits until it serves HTTP.
func startDaemon(t *testing.T, root string, args ...string) *daemonProc {
	t.Helper()
	return startDaemonAt(t, freeAddr(t), root, args...)
}

// startDaemonAt is startDaemon listening on addr.
func startDaemonAt(t *testing.T, addr, root string, args ...string) *daemonProc {
	t.Helper()
	d := &daemonProc{root: root, url: "http://" + addr, stderr: &lockedBuffer{}, code: make(chan int, 1)}
	ctx, cancel := context.WithCancelCause(context.Background())
	d.cancel = cancel
	all := append([]string{"mirror-sync", "daemon", "--root", root, "--listen", addr}, args...)
	go func() { d.code <- cliapp.Run(ctx, cliapp.MirrorApp(&bytes.Buffer{}, d.stderr), all) }()
	t.Cleanup(func() { d.stop(t) })
	waitHTTP(t, d.url+"/metrics")
	return d
}

// stop sends the daemon "SIGTERM" and returns its exit code.
func (d *daemonProc) stop(t *testing.T) int {
	t.Helper()
	d.cancel(cliapp.Interrupted{Signal: syscall.SIGTERM})
	select {
	case c := <-d.code:
		d.code <- c // stop is idempotent
		return c
	case <-time.After(10 * time.Second):
		t.Fatalf("daemon did not stop within 10s of SIGTERM\n%s", d.stderr)
	}
	return -1
}

// waitServes waits until url's seq/current says n, and returns how long
// that took.
func waitServes(t *testing.T, url string, n string, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		if got := get(t, url+"/seq/current"); got == n+"\n" {
			return time.Since(start)
		}
		if time.Since(start) > within {
			t.Fatalf("%s does not serve %s within %s", url, n, within)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// get GETs url: its body, "" for any failure.
func get(t *testing.T, url string) string {
	t.Helper()
	var b bytes.Buffer
	resp, err := http.Get(url)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return ""
	}
	b.ReadFrom(resp.Body)
	return b.String()
}

// writeSecret writes a secret file (mode 0600) and returns its path and
// bytes.
func writeSecret(t *testing.T, dir, name, secret string) (string, []byte) {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p, []byte(secret)
}

// master is a source tree published with the real publish code.
type master struct{ src, root string }

func newMaster(t *testing.T, dir string, files int) *master {
	t.Helper()
	m := &master{src: filepath.Join(dir, "src"), root: filepath.Join(dir, "master")}
	testutil.GenTree(t, m.src, files, 7)
	m.publish(t)
	return m
}

func (m *master) publish(t *testing.T) {
	t.Helper()
	if code, _, stderr := run(t, "publish", "--root", m.root, "--source", m.src, "--quiet"); code != 0 {
		t.Fatalf("publish: %d %s", code, stderr)
	}
}

// Master -> daemon A (local path upstream) -> daemon B (A's HTTP): a
// trigger sent to A by hand reaches B through A's forward, long before any
// poll (--interval 1h); a trigger with a bad signature is refused with 401
// and syncs nothing.
func TestDaemonChainByTrigger(t *testing.T) {
	dir := t.TempDir()
	m := newMaster(t, dir, 50)
	secretFile, secret := writeSecret(t, dir, "secret", "a shared secret of the chain")
	// A forwards to B, which is not up yet when A flips to 1 (a warning,
	// nothing more); B's first sync, at its start, copies 1 from A.
	addrB := freeAddr(t)
	a := startDaemon(t, filepath.Join(dir, "a"), "--upstream", m.root, "--secret-file", secretFile,
		"--interval", "1h", "--name", "a", "--downstream", "http://"+addrB)
	waitServes(t, a.url, "1", 5*time.Second)
	b := startDaemonAt(t, addrB, filepath.Join(dir, "b"), "--upstream", a.url+"/", "--secret-file", secretFile,
		"--interval", "1h", "--name", "b")
	waitServes(t, a.url, "1", 5*time.Second)
	waitServes(t, b.url, "1", 5*time.Second) // B's first sync, at its start

	testutil.WriteTree(t, m.src, map[string]string{"new.txt": "new\n"})
	m.publish(t)
	err := trigger.Send(context.Background(), nil, a.url, []byte("not the secret of the chain"), trigger.Message{Snapshot: 2})
	if !errors.Is(err, trigger.ErrRejected) || !strings.Contains(err.Error(), "401") {
		t.Fatalf("trigger with a bad signature: %v, want 401", err)
	}
	time.Sleep(200 * time.Millisecond)
	if got := get(t, a.url+"/seq/current"); got != "1\n" {
		t.Fatalf("after a bad trigger A serves %q, want 1: it synced", got)
	}
	if n := strings.Count(a.stderr.String(), "trigger refused"); n != 1 {
		t.Fatalf("%d log lines for the bad trigger, want 1:\n%s", n, a.stderr)
	}

	if err := trigger.Send(context.Background(), nil, a.url, secret, trigger.Message{Snapshot: 2, Origin: "test"}); err != nil {
		t.Fatal(err)
	}
	took := waitServes(t, b.url, "2", 3*time.Second)
	t.Logf("snapshot 2 reached tier 2 %s after the trigger", took)
	if got := get(t, b.url+"/current/new.txt"); got != "new\n" {
		t.Fatalf("B's /current/new.txt = %q", got)
	}
	for _, d := range []*daemonProc{a, b} {
		if code := d.stop(t); code != 0 {
			t.Fatalf("exit %d after SIGTERM:\n%s", code, d.stderr)
		}
		if code, out, stderr := run(t, "mirror-sync", "verify", "--root", d.root); code != 0 {
			t.Fatalf("verify %s: %d %s %s", d.root, code, out, stderr)
		}
	}
	if !strings.Contains(b.stderr.String(), `origin=a`) {
		t.Errorf("B did not log A's forwarded trigger:\n%s", b.stderr)
	}
}

// One daemon per root: a second one exits 4 at once with a clear message,
// while a run from cron on the same root still runs: it takes only the run
// lock, waiting (--wait) while the daemon's own sync holds it.
func TestDaemonSecondRefused(t *testing.T) {
	dir := t.TempDir()
	m := newMaster(t, dir, 5)
	root := filepath.Join(dir, "mirror")
	first := startDaemon(t, root, "--upstream", m.root, "--interval", "1h")
	waitServes(t, first.url, "1", 5*time.Second)
	code, _, stderr := run(t, "mirror-sync", "daemon", "--upstream", m.root, "--root", root, "--listen", freeAddr(t))
	if code != cliapp.ExitLocked || !strings.Contains(stderr, "a daemon already serves this root") || !strings.Contains(stderr, "hint: one daemon per root") {
		t.Fatalf("second daemon: exit %d, stderr %s", code, stderr)
	}
	if code, _, stderr := run(t, "mirror-sync", "--upstream", m.root, "--root", root, "--quiet", "--wait", "5s"); code != 0 {
		t.Fatalf("a cron run beside the daemon: exit %d %s", code, stderr)
	}
	if c := first.stop(t); c != 0 {
		t.Fatalf("first daemon exit %d", c)
	}
}

// SIGTERM while the first sync copies: exit 0, and the root is whole
// (serving nothing or the whole snapshot); the next run completes it.
func TestDaemonSIGTERMMidSync(t *testing.T) {
	dir := t.TempDir()
	m := newMaster(t, dir, 500)
	root := filepath.Join(dir, "mirror")
	d := startDaemon(t, root, "--upstream", m.root, "--interval", "1h")
	if code := d.stop(t); code != 0 {
		t.Fatalf("exit %d after SIGTERM:\n%s", code, d.stderr)
	}
	if !strings.Contains(d.stderr.String(), "daemon stopped") {
		t.Fatalf("stderr:\n%s", d.stderr)
	}
	if target, err := os.Readlink(filepath.Join(root, "current")); err == nil {
		if code, out, stderr := run(t, "mirror-sync", "verify", "--root", root); code != 0 {
			t.Fatalf("current -> %s torn: %s %s", target, out, stderr)
		}
	}
	if code, out, stderr := run(t, "mirror-sync", "--upstream", m.root, "--root", root); code != 0 || out != "1\n" {
		t.Fatalf("the run after the stopped daemon: %d %q %s", code, out, stderr)
	}
	t.Logf("stopped mid-sync: %v", strings.Contains(d.stderr.String(), "sync stopped"))
}

// SIGHUP reads the secret file again, and the configuration file's
// secret-file and downstream lines: the old secret is refused after it,
// the new one taken.
func TestDaemonSIGHUPReloads(t *testing.T) {
	tests := []struct {
		name       string
		config     bool // the secret file and the downstream list come from --config
		downstream string
	}{
		{name: "secret file rewritten"},
		{name: "configuration file names another secret file and a downstream", config: true, downstream: "downstream=1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			m := newMaster(t, dir, 5)
			secretFile, old := writeSecret(t, dir, "secret", "the first secret, 32 bytes long")
			args := []string{"--upstream", m.root, "--interval", "1h", "--secret-file", secretFile}
			conf := filepath.Join(dir, "mirror.conf")
			if tc.config {
				testutil.WriteTree(t, dir, map[string]string{"mirror.conf": "secret-file = secret\nlisten = ignored:1 # the command line wins\n"})
				args = []string{"--upstream", m.root, "--interval", "1h", "--config", conf}
			}
			d := startDaemon(t, filepath.Join(dir, "mirror"), args...)
			waitServes(t, d.url, "1", 5*time.Second)
			var fresh []byte
			if tc.config {
				_, fresh = writeSecret(t, dir, "secret2", "the second secret, also 32 bytes")
				testutil.WriteTree(t, dir, map[string]string{"mirror.conf": "secret-file = secret2\ndownstream = http://127.0.0.1:9/\n"})
			} else {
				_, fresh = writeSecret(t, dir, "secret", "the second secret, also 32 bytes")
			}
			if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(5 * time.Second)
			for strings.Count(d.stderr.String(), "settings loaded") < 2 {
				if time.Now().After(deadline) {
					t.Fatalf("no reload within 5s:\n%s", d.stderr)
				}
				time.Sleep(5 * time.Millisecond)
			}
			if err := trigger.Send(context.Background(), nil, d.url, old, trigger.Message{Snapshot: 2}); !errors.Is(err, trigger.ErrRejected) {
				t.Fatalf("old secret after SIGHUP: %v, want rejected", err)
			}
			if err := trigger.Send(context.Background(), nil, d.url, fresh, trigger.Message{Snapshot: 2}); err != nil {
				t.Fatalf("new secret after SIGHUP: %v", err)
			}
			if !strings.Contains(d.stderr.String(), "SIGHUP: reloading") || !strings.Contains(d.stderr.String(), tc.downstream) {
				t.Fatalf("stderr:\n%s", d.stderr)
			}
		})
	}
}

// Without --secret-file there is no trigger endpoint: 404.
func TestDaemonNoSecretNoTrigger(t *testing.T) {
	dir := t.TempDir()
	m := newMaster(t, dir, 5)
	d := startDaemon(t, filepath.Join(dir, "mirror"), "--upstream", m.root, "--interval", "1h")
	err := trigger.Send(context.Background(), nil, d.url, []byte("any secret at all, 16+"), trigger.Message{Snapshot: 2})
	if !errors.Is(err, trigger.ErrRejected) || !strings.Contains(err.Error(), "404") {
		t.Fatalf("trigger without a secret: %v, want 404", err)
	}
	if !strings.Contains(d.stderr.String(), "no trigger endpoint") {
		t.Fatalf("no warning at start:\n%s", d.stderr)
	}
}
