package testutil

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Rsyncd is a running rsync daemon started by StartRsyncdServer.
type Rsyncd struct {
	Port int
	Dir  string // holds rsyncd.conf, the pid, lock and log files

	cmd      *exec.Cmd
	stopOnce sync.Once
	done     chan struct{}
}

// URL returns rsync://127.0.0.1:PORT/module.
func (d *Rsyncd) URL(module string) string {
	return fmt.Sprintf("rsync://127.0.0.1:%d/%s", d.Port, module)
}

// Stop kills the daemon and the children serving connections (SIGKILL to
// its process group, so a transfer in progress breaks off) and waits for
// it. It is safe to call more than once.
func (d *Rsyncd) Stop() {
	d.stopOnce.Do(func() {
		if d.cmd.Process != nil {
			_ = syscall.Kill(-d.cmd.Process.Pid, syscall.SIGKILL)
		}
		<-d.done
	})
}

// Log returns the daemon's log so far (for test failure messages).
func (d *Rsyncd) Log() string {
	b, _ := os.ReadFile(filepath.Join(d.Dir, "rsyncd.log"))
	return string(b)
}

// StartRsyncd starts a read-only rsync daemon on 127.0.0.1 serving modules
// (name -> directory) and returns its port. It is stopped when the test ends.
func StartRsyncd(tb testing.TB, modules map[string]string) (port int) {
	tb.Helper()
	return StartRsyncdServer(tb, modules).Port
}

// StartRsyncdServer is StartRsyncd returning the daemon, so that a test can
// stop it early (Rsyncd.Stop) to simulate a server that goes away. args are
// extra daemon options, e.g. --bwlimit=1000 to slow transfers down.
func StartRsyncdServer(tb testing.TB, modules map[string]string, args ...string) *Rsyncd {
	tb.Helper()
	return startServer(tb, rsyncdModules(modules), args)
}

func startServer(tb testing.TB, modules string, args []string) *Rsyncd {
	tb.Helper()
	rsync := RequireBinary(tb, "rsync")
	dir := tb.TempDir()
	var lastErr error
	for try := 0; try < 5; try++ {
		port, err := freePort()
		if err != nil {
			tb.Fatalf("start rsyncd: %v", err)
		}
		d, err := startRsyncd(rsync, dir, port, modules, args)
		if err == nil {
			tb.Cleanup(d.Stop)
			return d
		}
		lastErr = err // most likely someone else took the port meanwhile
	}
	tb.Fatalf("start rsyncd: %v", lastErr)
	return nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// rsyncdGlobals is the global part of a test daemon's config.
func rsyncdGlobals(dir string) string {
	var b strings.Builder
	// The daemon runs as the current user; as root it would otherwise
	// switch to nobody and not read the test's temp dirs.
	fmt.Fprintf(&b, "uid = %d\ngid = %d\n", os.Getuid(), os.Getgid())
	fmt.Fprintf(&b, "use chroot = no\nmunge symlinks = no\nread only = yes\nlist = yes\n")
	fmt.Fprintf(&b, "pid file = %s\n", filepath.Join(dir, "rsyncd.pid"))
	fmt.Fprintf(&b, "lock file = %s\n", filepath.Join(dir, "rsyncd.lock"))
	fmt.Fprintf(&b, "log file = %s\n", filepath.Join(dir, "rsyncd.log"))
	return b.String()
}

func rsyncdModules(modules map[string]string) string {
	var b strings.Builder
	names := make([]string, 0, len(modules))
	for name := range modules {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		fmt.Fprintf(&b, "\n[%s]\n  path = %s\n  exclude = /.work/ /.lock\n", name, modules[name])
	}
	return b.String()
}

// StartRsyncdConfig starts a test daemon (as StartRsyncdServer) whose config
// is the test globals followed by modules, verbatim rsyncd.conf text: to
// test a generated module section. Module settings override the globals.
func StartRsyncdConfig(tb testing.TB, modules string, args ...string) *Rsyncd {
	tb.Helper()
	return startServer(tb, modules, args)
}

func startRsyncd(rsync, dir string, port int, modules string, args []string) (*Rsyncd, error) {
	conf := filepath.Join(dir, "rsyncd.conf")
	_ = os.Remove(filepath.Join(dir, "rsyncd.pid"))
	if err := os.WriteFile(conf, []byte(rsyncdGlobals(dir)+modules), 0o644); err != nil {
		return nil, err
	}
	cmd := exec.Command(rsync, append([]string{"--daemon", "--no-detach", fmt.Sprintf("--port=%d", port),
		"--address=127.0.0.1", "--config=" + conf}, args...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // Stop kills its connection children too
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s --daemon: %w", rsync, err)
	}
	d := &Rsyncd{Port: port, Dir: dir, cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(d.done) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case <-d.done:
			b, _ := os.ReadFile(filepath.Join(dir, "rsyncd.log"))
			return nil, fmt.Errorf("rsync daemon exited: %s %s", stderr.String(), b)
		default:
		}
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
		if err == nil {
			c.Close()
			return d, nil
		}
		if time.Now().After(deadline) {
			d.Stop()
			return nil, fmt.Errorf("rsync daemon on port %d did not accept within 10s: %w", port, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
