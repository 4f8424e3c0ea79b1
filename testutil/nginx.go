package testutil

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Nginx is a running nginx (Debian's) started by StartNginx: a plain
// process on 127.0.0.1 with its config, logs and temp files in a temp dir.
type Nginx struct {
	Port int
	Dir  string // nginx.conf, error.log, access.log, temp dirs

	cmd      *exec.Cmd
	stopOnce sync.Once
	done     chan struct{}
}

// URL returns http://127.0.0.1:PORT followed by path.
func (n *Nginx) URL(path string) string { return fmt.Sprintf("http://127.0.0.1:%d%s", n.Port, path) }

// Log returns nginx's error log so far (for test failure messages).
func (n *Nginx) Log() string {
	b, _ := os.ReadFile(filepath.Join(n.Dir, "error.log"))
	return string(b)
}

// AccessLog returns nginx's access log so far.
func (n *Nginx) AccessLog() string {
	b, _ := os.ReadFile(filepath.Join(n.Dir, "access.log"))
	return string(b)
}

// Stop kills nginx (its process group, workers included) and waits for it.
// It is safe to call more than once.
func (n *Nginx) Stop() {
	n.stopOnce.Do(func() {
		if n.cmd.Process != nil {
			_ = syscall.Kill(-n.cmd.Process.Pid, syscall.SIGKILL)
		}
		<-n.done
	})
}

// StartNginx starts nginx on 127.0.0.1 with one server whose body is
// server (directives inside `server { ... }`, e.g. `root /x; location /
// {...}`; the listen directive is added). It is stopped when the test
// ends. nginx must be installed (apt-get install nginx); under
// SEQMIRROR_REQUIRE_PEERS its absence fails the test.
func StartNginx(tb testing.TB, server string) *Nginx {
	tb.Helper()
	bin := nginxBinary(tb)
	dir := tb.TempDir()
	var lastErr error
	for try := 0; try < 5; try++ {
		port, err := freePort()
		if err != nil {
			tb.Fatalf("start nginx: %v", err)
		}
		n, err := startNginx(bin, dir, port, server)
		if err == nil {
			tb.Cleanup(n.Stop)
			return n
		}
		lastErr = err // most likely someone else took the port meanwhile
	}
	tb.Fatalf("start nginx: %v", lastErr)
	return nil
}

// nginxBinary finds nginx, in PATH or in /usr/sbin (not in a normal
// user's PATH on Debian).
func nginxBinary(tb testing.TB) string {
	tb.Helper()
	if _, err := exec.LookPath("nginx"); err != nil {
		if _, err := os.Stat("/usr/sbin/nginx"); err == nil {
			return "/usr/sbin/nginx"
		}
	}
	return RequireBinary(tb, "nginx")
}

// nginxConf is a whole config for one server on port, everything it
// writes kept in dir.
func nginxConf(dir string, port int, server string) string {
	var b strings.Builder
	if os.Geteuid() == 0 {
		// As root, nginx's workers would switch to nobody and not read the
		// test's temp dirs (mode 0700).
		b.WriteString("user root root;\n")
	}
	fmt.Fprintf(&b, "daemon off;\nworker_processes 2;\npid %s;\nerror_log %s info;\n",
		filepath.Join(dir, "nginx.pid"), filepath.Join(dir, "error.log"))
	b.WriteString("events { worker_connections 512; }\n")
	b.WriteString("http {\n")
	fmt.Fprintf(&b, "  access_log %s;\n", filepath.Join(dir, "access.log"))
	for _, t := range []string{"client_body", "proxy", "fastcgi", "uwsgi", "scgi"} {
		fmt.Fprintf(&b, "  %s_temp_path %s;\n", t, filepath.Join(dir, t))
	}
	b.WriteString("  include /etc/nginx/mime.types;\n  default_type application/octet-stream;\n")
	b.WriteString("  sendfile on;\n  keepalive_requests 100000;\n")
	fmt.Fprintf(&b, "  server {\n    listen 127.0.0.1:%d;\n%s\n  }\n}\n", port, server)
	return b.String()
}

func startNginx(bin, dir string, port int, server string) (*Nginx, error) {
	conf := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(conf, []byte(nginxConf(dir, port, server)), 0o644); err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "-p", dir, "-c", conf, "-e", filepath.Join(dir, "error.log"))
	var stderr strings.Builder
	cmd.Stderr = &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s: %w", bin, err)
	}
	n := &Nginx{Port: port, Dir: dir, cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(n.done) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case <-n.done:
			return nil, fmt.Errorf("nginx exited: %s %s", stderr.String(), n.Log())
		default:
		}
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
		if err == nil {
			c.Close()
			return n, nil
		}
		if time.Now().After(deadline) {
			n.Stop()
			return nil, fmt.Errorf("nginx on port %d did not accept within 10s: %w", port, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
