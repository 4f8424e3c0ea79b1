package e2e

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/seqmirror/seqmirror/internal/export"
	"github.com/seqmirror/seqmirror/internal/fsys"
	"github.com/seqmirror/seqmirror/testutil"
)

// TestStatusPageThreeTiers runs the 3-tier set-up with real processes and
// triggers: a master (publish --notify), daemon A pulling from it (tier
// 1), daemons B and C pulling from A (tier 2, A's --downstream). After two
// publishes reach everyone, C is stopped and B is kept from syncing (a run
// holds its root's lock, as a long manual run would), and two more
// publishes reach A only. A's page at /status, opened in headless Chromium
// with JavaScript off, must show what a person would see: B stale, C
// unreachable, the lineage master -> A with the lag of the hop, the plot
// drawn. It saves a screenshot (SEQMIRROR_ARTIFACTS: where to keep it).
func TestStatusPageThreeTiers(t *testing.T) {
	began := time.Now()
	bin, tmp := testutil.BuildTools(t), t.TempDir()
	t.Logf("tools built in %v", time.Since(began).Round(time.Millisecond))
	began = time.Now()
	secret, src, master := filepath.Join(tmp, "secret"), filepath.Join(tmp, "src"), filepath.Join(tmp, "master")
	testutil.Must(t, os.WriteFile(secret, []byte("the status page test's trigger secret\n"), 0o600))
	testutil.GenTree(t, src, 40, 14)
	addrA, addrB, addrC := freeAddr(t), freeAddr(t), freeAddr(t)
	publish := func(n int) {
		t.Helper()
		testutil.WriteTree(t, src, map[string]string{"changing.txt": strings.Repeat("x", n) + "\n"})
		runOK(t, filepath.Join(bin, "publish"), "--root", master, "--source", src, "--name", "master",
			"--notify", "http://"+addrA, "--secret-file", secret, "--quiet")
	}
	publish(1)
	daemon := func(name, addr, upstream string, down ...string) *daemonProc {
		args := []string{"--upstream", upstream, "--root", filepath.Join(tmp, name), "--secret-file", secret,
			"--name", name, "--interval", "1h", "--give-up", "1m", "--verbose"}
		for _, d := range down {
			args = append(args, "--downstream", "http://"+d)
		}
		return startDaemon(t, filepath.Join(bin, "mirror-sync"), addr, args...)
	}
	b, c := daemon("B", addrB, "http://"+addrA+"/"), daemon("C", addrC, "http://"+addrA+"/")
	a := daemon("A", addrA, master, addrB, addrC) // its first sync's flip is forwarded to B and C
	for _, d := range []*daemonProc{a, b, c} {
		d.waitServes(t, 1)
	}
	publish(2)
	for _, d := range []*daemonProc{a, b, c} {
		d.waitServes(t, 2)
	}
	a.waitPage(t, `<span class="name">B</span>`, `<span class="name">C</span>`) // named by their lineages
	c.stop(t)
	held, err := export.New(fsys.OS(), filepath.Join(tmp, "B")).LockWait(context.Background(), 10*time.Second) // after B's run ends
	testutil.Must(t, err)
	defer held.Unlock()
	// One publish at a time: a sync of A that overlapped the next publish
	// could find the master flipped but its status.json not yet rewritten,
	// and A's lineage of that snapshot would start at A (lineage_note).
	for n := 3; n <= 4; n++ {
		publish(n)
		a.waitServes(t, n)
	}
	page := a.waitPage(t, "state-stale", "state-unreachable")
	t.Logf("3 tiers set up, B held back, C stopped: %v", time.Since(began).Round(time.Millisecond))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("A's page as the test saw it before the browser:\n%s", page)
		}
	})

	br := testutil.StartChromedriver(t, testutil.ChromeOptions{NoScript: true, Width: 1100, Height: 1400})
	br.Navigate(a.url + "/status")
	if got := br.Title(); !strings.Contains(got, "A") {
		t.Errorf("title %q, want the server's name", got)
	}
	seeDownstreams(t, br, map[string]downstreamRow{b.url + "/": {"B", export.StateStale}, c.url + "/": {"C", export.StateUnreachable}})
	seeLineage(t, br)
	seePlot(t, br)
	br.SaveScreenshot("status-page-three-tiers.png")
	t.Logf("status page checked in a browser; %v since the set-up began", time.Since(began).Round(time.Millisecond))
}

// downstreamRow is what a downstream's row must show.
type downstreamRow struct{ name, state string }

// seeDownstreams: one row per downstream (want: by its address), its name,
// its state written out as a word and its row of that state's class.
func seeDownstreams(t *testing.T, br *testutil.Browser, want map[string]downstreamRow) {
	t.Helper()
	rows := br.FindAll("#downstreams tbody tr")
	if len(rows) != len(want) {
		t.Fatalf("%d downstream rows, want %d", len(rows), len(want))
	}
	for _, r := range rows {
		w, ok := want[r.FindAll(".addr")[0].Text()]
		if !ok {
			t.Errorf("unexpected downstream row %q", r.Text())
			continue
		}
		name, state := r.FindAll(".name")[0].Text(), r.FindAll(".state")[0].Text()
		if name != w.name || state != w.state || !strings.Contains(r.Attribute("class"), "state-"+w.state) || !r.Displayed() {
			t.Errorf("row %q (class %q), want %s shown %s", r.Text(), r.Attribute("class"), w.name, w.state)
		}
	}
}

// hopLag is the lag cell of a lineage hop: +N ms, +N.N s ...
var hopLag = regexp.MustCompile(`\+[0-9.]+ (ms|s)$`)

// seeLineage: master first, then A with the lag of its hop.
func seeLineage(t *testing.T, br *testutil.Browser) {
	t.Helper()
	hops := br.FindAll("#lineage tbody tr")
	if len(hops) != 2 {
		t.Fatalf("%d lineage rows, want 2 (master, A)", len(hops))
	}
	first, second := hops[0].Text(), hops[1].Text()
	if !strings.HasPrefix(first, "master master") || !strings.HasPrefix(second, "1 A") {
		t.Errorf("lineage rows, want master then A:\n%s\n%s", first, second)
	}
	if !hopLag.MatchString(second) {
		t.Errorf("A's hop %q, want its lag", second)
	}
}

// seePlot: the SVG plot is laid out, with a mark per arrival seen: A's of
// snapshots 1 to 4 at least.
func seePlot(t *testing.T, br *testutil.Browser) {
	t.Helper()
	svg := br.Find("#propagation svg")
	if r := svg.Rect(); r.Width < 100 || r.Height < 50 || !svg.Displayed() {
		t.Errorf("plot laid out at %+v, want it visible", r)
	}
	if got := len(br.FindAll("#propagation svg g.mark")); got < 4 {
		t.Errorf("plot has %d marks, want at least 4 (A's arrivals)", got)
	}
}

// daemonProc is a mirror-sync daemon process.
type daemonProc struct {
	cmd  *exec.Cmd
	url  string
	log  *testutil.SyncBuffer
	done chan error
}

// freeAddr is a free 127.0.0.1 port.
func freeAddr(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	testutil.Must(tb, err)
	defer ln.Close()
	return ln.Addr().String()
}

// startDaemon starts `mirror-sync daemon --listen addr args...` and waits
// until it answers HTTP; it is killed when the test ends.
func startDaemon(tb testing.TB, bin, addr string, args ...string) *daemonProc {
	tb.Helper()
	d := &daemonProc{url: "http://" + addr, log: &testutil.SyncBuffer{}, done: make(chan error, 1)}
	d.cmd = exec.Command(bin, append([]string{"daemon", "--listen", addr}, args...)...)
	d.cmd.Stderr = d.log
	testutil.Must(tb, d.cmd.Start())
	go func() { d.done <- d.cmd.Wait() }()
	tb.Cleanup(func() {
		d.cmd.Process.Kill()
		<-d.done
		if tb.Failed() {
			tb.Logf("daemon %s log:\n%s", addr, d.log)
		}
	})
	d.wait(tb, "to answer", func() bool { _, ok := httpGet(d.url + "/metrics"); return ok })
	return d
}

// wait polls ok for up to 10 s.
func (d *daemonProc) wait(tb testing.TB, what string, ok func() bool) {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			tb.Fatalf("daemon %s: waited 10s for it %s; its log:\n%s", d.url, what, d.log)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitServes waits until the daemon serves snapshot n.
func (d *daemonProc) waitServes(tb testing.TB, n int) {
	tb.Helper()
	want := []byte{byte('0' + n), '\n'}
	d.wait(tb, "to serve "+string(want[:1]), func() bool {
		b, ok := httpGet(d.url + "/seq/current")
		return ok && bytes.Equal(b, want)
	})
}

// waitPage waits until the daemon's status page holds every one of words,
// and returns it.
func (d *daemonProc) waitPage(tb testing.TB, words ...string) string {
	tb.Helper()
	var page string
	d.wait(tb, "'s page to show "+strings.Join(words, ", "), func() bool {
		b, _ := httpGet(d.url + "/status")
		page = string(b)
		for _, w := range words {
			if !strings.Contains(page, w) {
				return false
			}
		}
		return true
	})
	return page
}

// stop sends SIGTERM and waits for a clean exit.
func (d *daemonProc) stop(tb testing.TB) {
	tb.Helper()
	testutil.Must(tb, d.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case err := <-d.done:
		d.done <- err // for the cleanup
		if err != nil {
			tb.Fatalf("daemon %s after SIGTERM: %v\n%s", d.url, err, d.log)
		}
	case <-time.After(10 * time.Second):
		tb.Fatalf("daemon %s still running 10s after SIGTERM", d.url)
	}
}

// httpGet is the body of a 200 answer to GET url.
func httpGet(url string) ([]byte, bool) {
	resp, err := http.Get(url)
	if err != nil {
		return nil, false
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return b, err == nil && resp.StatusCode == http.StatusOK
}

// runOK runs a program to a successful end.
func runOK(tb testing.TB, bin string, args ...string) {
	tb.Helper()
	if out, err := exec.Command(bin, args...).CombinedOutput(); err != nil {
		tb.Fatalf("%s %v: %v\n%s", filepath.Base(bin), args, err, out)
	}
}
