package reliab

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/seqmirror/seqmirror/testutil"
)

// daemonBin is a mirror-sync daemon process.
type daemonBin struct {
	cmd    *exec.Cmd
	url    string
	stderr *bytes.Buffer // read only after it exited
	done   chan int
}

// startDaemonBin starts the built mirror-sync daemon with args on a free
// port and waits until it serves HTTP.
func startDaemonBin(tb testing.TB, args ...string) *daemonBin {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	d := &daemonBin{url: "http://" + addr, stderr: &bytes.Buffer{}, done: make(chan int, 1)}
	d.cmd = exec.Command(bin("mirror-sync"), append([]string{"daemon", "--listen", addr}, args...)...)
	d.cmd.Stderr = d.stderr
	if err := d.cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	go func() { d.done <- exitCode(tb, d.cmd.Wait()) }()
	tb.Cleanup(func() { d.cmd.Process.Kill() })
	deadline := time.Now().Add(10 * time.Second)
	for httpGet(d.url+"/metrics") == "" {
		if time.Now().After(deadline) {
			tb.Fatalf("daemon does not answer on %s within 10s", addr)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return d
}

// signal sends sig and waits for the exit code.
func (d *daemonBin) signal(tb testing.TB, sig syscall.Signal) int {
	tb.Helper()
	if err := d.cmd.Process.Signal(sig); err != nil {
		tb.Fatal(err)
	}
	select {
	case code := <-d.done:
		return code
	case <-time.After(15 * time.Second):
		tb.Fatalf("daemon still running 15s after %v", sig)
	}
	return -1
}

// waitServes waits until the daemon's seq/current is n.
func (d *daemonBin) waitServes(tb testing.TB, n string, within time.Duration) {
	tb.Helper()
	deadline := time.Now().Add(within)
	for httpGet(d.url+"/seq/current") != n+"\n" {
		if time.Now().After(deadline) {
			tb.Fatalf("%s does not serve %s within %s", d.url, n, within)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func httpGet(url string) string {
	resp, err := http.Get(url)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return ""
	}
	return string(b)
}

// The daemon as operators run it: a real process. A second daemon on its
// root exits 4; `mirror-sync trigger` makes it sync at once (the poll is an
// hour away); a real SIGTERM in the middle of a large sync stops it with
// exit 0 and a whole root, which the next run completes.
func TestDaemonProcess(t *testing.T) {
	dir := t.TempDir()
	src, master, root := filepath.Join(dir, "src"), filepath.Join(dir, "master"), filepath.Join(dir, "mirror")
	m := newMutator(t, src, 300, 5)
	mustRun(t, "publish", "--root", master, "--source", src, "--quiet")
	secret := filepath.Join(dir, "secret")
	if err := os.WriteFile(secret, []byte("a secret for the daemon test\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	d := startDaemonBin(t, "--upstream", master, "--root", root, "--secret-file", secret, "--interval", "1h")
	d.waitServes(t, "1", 10*time.Second)

	_, stderr, code := run(t, "mirror-sync", "daemon", "--upstream", master, "--root", root, "--listen", "127.0.0.1:0")
	if code != 4 || !strings.Contains(stderr, "a daemon already serves this root") {
		t.Fatalf("second daemon: exit %d %s", code, stderr)
	}

	m.mutate(t, 5)
	mustRun(t, "publish", "--root", master, "--source", src, "--quiet")
	start := time.Now()
	mustRun(t, "mirror-sync", "trigger", d.url, "--snapshot", "2", "--secret-file", secret, "--quiet")
	d.waitServes(t, "2", 5*time.Second)
	t.Logf("served 2 %s after the trigger was sent", time.Since(start))

	testutil.GenTree(t, filepath.Join(src, "big"), 1000, 6) // a snapshot big enough to stop mid-copy
	mustRun(t, "publish", "--root", master, "--source", src, "--quiet")
	mustRun(t, "mirror-sync", "trigger", d.url, "--snapshot", "3", "--secret-file", secret, "--quiet")
	time.Sleep(20 * time.Millisecond)
	if code := d.signal(t, syscall.SIGTERM); code != 0 {
		t.Fatalf("exit %d after SIGTERM:\n%s", code, d.stderr)
	}
	if !strings.Contains(d.stderr.String(), `msg="daemon stopped" why="interrupted by SIGTERM"`) {
		t.Fatalf("stderr:\n%s", d.stderr)
	}
	st := readState(t, root)
	verifyCurrent(t, root)
	t.Logf("after SIGTERM: serving %d, seq %+v", st.Cur, st.Seq)
	mustRun(t, "mirror-sync", "--upstream", master, "--root", root, "--quiet")
	checkClean(t, root)
	if st := readState(t, root); st.Cur != 3 {
		t.Fatalf("the run after the daemon serves %d, want 3", st.Cur)
	}
}
