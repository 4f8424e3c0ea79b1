package testutil

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Etcd is one running etcd member (Debian's etcd-server) started by
// StartEtcd or StartEtcdCluster: a plain process on 127.0.0.1 with its
// data dir and log in a temp dir of the test.
type Etcd struct {
	Name      string
	ClientURL string // http://127.0.0.1:PORT
	Dir       string // data dir and etcd.log

	peerURL  string
	cmd      *exec.Cmd
	stopOnce sync.Once
	done     chan struct{}
}

// Log returns the member's log so far (for test failure messages).
func (e *Etcd) Log() string {
	b, _ := os.ReadFile(filepath.Join(e.Dir, "etcd.log"))
	return string(b)
}

// Stop kills the member (SIGKILL) and waits for it. It is safe to call
// more than once.
func (e *Etcd) Stop() {
	e.stopOnce.Do(func() {
		if e.cmd.Process != nil {
			_ = e.cmd.Process.Signal(syscall.SIGCONT) // a paused member dies too
			_ = e.cmd.Process.Kill()
		}
		<-e.done
	})
}

// Pause stops the member with SIGSTOP: it neither answers its clients nor
// its peers until Resume (a host cut off the network, as its clients see it).
func (e *Etcd) Pause() { _ = e.cmd.Process.Signal(syscall.SIGSTOP) }

// Resume continues a paused member (SIGCONT).
func (e *Etcd) Resume() { _ = e.cmd.Process.Signal(syscall.SIGCONT) }

// Endpoints joins the client URLs of members with commas.
func Endpoints(members ...*Etcd) string {
	urls := make([]string, len(members))
	for i, m := range members {
		urls[i] = m.ClientURL
	}
	return strings.Join(urls, ",")
}

// etcdTiming makes elections fast (a member cut off is replaced in about
// half a second): heartbeat 50 ms, election timeout 500 ms.
var etcdTiming = []string{"--heartbeat-interval=50", "--election-timeout=500"}

// StartEtcd starts a one-member etcd on free ports of 127.0.0.1 and waits
// until it answers /health; args are extra etcd flags. It is stopped when
// the test ends. etcd must be installed (apt-get install etcd-server);
// under SEQMIRROR_REQUIRE_PEERS its absence fails the test.
func StartEtcd(tb testing.TB, args ...string) *Etcd {
	tb.Helper()
	return StartEtcdCluster(tb, 1, args...)[0]
}

// StartEtcdCluster starts an n-member etcd cluster (as StartEtcd) and
// waits until every member answers /health (the cluster has a leader).
func StartEtcdCluster(tb testing.TB, n int, args ...string) []*Etcd {
	tb.Helper()
	bin := RequireBinaryOf(tb, "etcd", "etcd-server")
	ms, err := LaunchEtcd(bin, tb.TempDir(), n, args...)
	if err != nil {
		tb.Fatalf("start etcd: %v", err)
	}
	for _, m := range ms {
		tb.Cleanup(m.Stop)
	}
	return ms
}

// LaunchEtcd is StartEtcdCluster for a caller without a testing.TB (a
// testscript command): the members' dirs are below dir, and the caller
// stops them.
func LaunchEtcd(bin, dir string, n int, args ...string) ([]*Etcd, error) {
	var lastErr error
	for try := 0; try < 5; try++ {
		ms, err := startEtcds(bin, filepath.Join(dir, fmt.Sprint(try)), n, args)
		if err == nil {
			return ms, nil
		}
		lastErr = err // most likely someone else took a port meanwhile
	}
	return nil, lastErr
}

func startEtcds(bin, dir string, n int, args []string) ([]*Etcd, error) {
	ms := make([]*Etcd, n)
	var cluster []string
	for i := range ms {
		cp, err1 := freePort()
		pp, err2 := freePort()
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("free port: %v %v", err1, err2)
		}
		ms[i] = &Etcd{Name: fmt.Sprintf("m%d", i+1), ClientURL: fmt.Sprintf("http://127.0.0.1:%d", cp),
			peerURL: fmt.Sprintf("http://127.0.0.1:%d", pp), Dir: filepath.Join(dir, fmt.Sprintf("m%d", i+1)), done: make(chan struct{})}
		if err := os.MkdirAll(ms[i].Dir, 0o700); err != nil {
			return nil, err
		}
		cluster = append(cluster, ms[i].Name+"="+ms[i].peerURL)
	}
	for _, m := range ms {
		if err := m.start(bin, strings.Join(cluster, ","), args); err != nil {
			stopAll(ms)
			return nil, err
		}
	}
	for _, m := range ms {
		if err := m.waitHealthy(15 * time.Second); err != nil {
			stopAll(ms)
			return nil, err
		}
	}
	return ms, nil
}

func stopAll(ms []*Etcd) {
	for _, m := range ms {
		if m.cmd != nil {
			m.Stop()
		}
	}
}

func (e *Etcd) start(bin, cluster string, args []string) error {
	log, err := os.Create(filepath.Join(e.Dir, "etcd.log"))
	if err != nil {
		return err
	}
	defer log.Close()
	e.cmd = exec.Command(bin, append(append([]string{
		"--name=" + e.Name, "--data-dir=" + filepath.Join(e.Dir, "data"),
		"--listen-client-urls=" + e.ClientURL, "--advertise-client-urls=" + e.ClientURL,
		"--listen-peer-urls=" + e.peerURL, "--initial-advertise-peer-urls=" + e.peerURL,
		"--initial-cluster=" + cluster, "--initial-cluster-state=new", "--initial-cluster-token=seqmirror-test",
		"--logger=zap", "--log-outputs=stderr"}, etcdTiming...), args...)...)
	e.cmd.Stdout, e.cmd.Stderr = log, log
	if err := e.cmd.Start(); err != nil {
		return fmt.Errorf("%s: %w", bin, err)
	}
	go func() { _ = e.cmd.Wait(); close(e.done) }()
	return nil
}

// waitHealthy waits until the member answers /health with true.
func (e *Etcd) waitHealthy(limit time.Duration) error {
	deadline := time.Now().Add(limit)
	c := &http.Client{Timeout: time.Second}
	for {
		select {
		case <-e.done:
			return fmt.Errorf("etcd %s exited: %s", e.Name, e.Log())
		default:
		}
		resp, err := c.Get(e.ClientURL + "/health")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if strings.Contains(string(b), `"health":"true"`) {
				return nil
			}
			err = fmt.Errorf("/health: %s", b)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("etcd %s on %s not healthy within %s: %v\n%s", e.Name, e.ClientURL, limit, err, e.Log())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// EtcdLeases lists the IDs of the leases of the etcd at url (through its
// v3 JSON gateway: etcdctl is not in Debian's etcd-server).
func EtcdLeases(tb testing.TB, url string) []string {
	tb.Helper()
	var out struct {
		Leases []struct {
			ID string `json:"ID"`
		} `json:"leases"`
	}
	etcdJSON(tb, url+"/v3/lease/leases", "{}", &out)
	ids := make([]string, len(out.Leases))
	for i, l := range out.Leases {
		ids[i] = l.ID
	}
	return ids
}

// EtcdRevoke revokes lease id of the etcd at url: its keys go at once,
// as if its holder had stopped keeping it alive for its TTL.
func EtcdRevoke(tb testing.TB, url, id string) {
	tb.Helper()
	etcdJSON(tb, url+"/v3/lease/revoke", `{"ID":"`+id+`"}`, nil)
}

func etcdJSON(tb testing.TB, url, body string, out any) {
	tb.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		tb.Fatalf("etcd %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		tb.Fatalf("etcd %s: %s: %s", url, resp.Status, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			tb.Fatalf("etcd %s: %v: %s", url, err, b)
		}
	}
}
