package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/seqmirror/seqmirror/internal/export"
	"github.com/seqmirror/seqmirror/internal/fsys"
	"github.com/seqmirror/seqmirror/internal/ha"
	"github.com/seqmirror/seqmirror/testutil"
)

// haTTL is the masters' lease in these tests: a dead or cut-off leader
// is replaced after about this long.
const haTTL = 2 * time.Second

// haGroup is a test's highly available group: masters running
// `publish --etcd ... --follow` as processes, a mirror that lists every
// master as an upstream, and the etcd they share.
type haGroup struct {
	t       *testing.T
	bin     string
	tmp     string
	masters map[string]*haMaster
	mirror  string
	etcd    string // all members' client URLs
	gen     int    // the sources' generation (writeAll)
	stop    chan struct{}
	wg      sync.WaitGroup
	t0      time.Time
}

// mark logs how far into the test a stage is.
func (g *haGroup) mark(stage string) { g.t.Logf("%6.2fs %s", time.Since(g.t0).Seconds(), stage) }

// haMaster is one master process.
type haMaster struct {
	name, root, src, log string
	endpoints            string // the etcd members this master talks to
	cmd                  *exec.Cmd
	done                 chan struct{}
}

func newHAGroup(t *testing.T, etcd string) *haGroup {
	t0 := time.Now()
	g := &haGroup{t: t, t0: t0, bin: testutil.BuildTools(t), tmp: t.TempDir(), masters: map[string]*haMaster{}, etcd: etcd, stop: make(chan struct{})}
	g.mirror = filepath.Join(g.tmp, "mirror")
	t.Cleanup(func() {
		close(g.stop)
		g.wg.Wait()
		for _, m := range g.masters {
			m.kill(syscall.SIGKILL)
		}
	})
	return g
}

// add makes master name with its own source talking to the etcd members
// endpoints: 1000 small files (a publish takes a while), the same files
// (content and times, so that a publish links what a sync brought) in
// every master's source.
func (g *haGroup) add(name, endpoints string) *haMaster {
	m := &haMaster{name: name, root: filepath.Join(g.tmp, name), src: filepath.Join(g.tmp, name+"-src"),
		log: filepath.Join(g.tmp, name+".log"), endpoints: endpoints}
	if len(g.masters) == 0 {
		testutil.GenTree(g.t, m.src, 1000, 7)
	} else if out, err := exec.Command("cp", "-a", g.masters["a"].src, m.src).CombinedOutput(); err != nil {
		g.t.Fatalf("cp -a: %v: %s", err, out)
	}
	g.masters[name] = m
	g.mark("made source " + name)
	return m
}

// writeAll makes the next generation of every master's source (the same
// content in all).
func (g *haGroup) writeAll() {
	g.gen++
	for _, m := range g.masters {
		testutil.Must(g.t, os.WriteFile(filepath.Join(m.src, "gen.txt"), []byte(strconv.Itoa(g.gen)+"\n"), 0o644))
	}
}

// start runs master m in follow mode.
func (g *haGroup) start(m *haMaster) {
	log, err := os.OpenFile(m.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	testutil.Must(g.t, err)
	defer log.Close()
	m.cmd = exec.Command(filepath.Join(g.bin, "publish"), "--root", m.root, "--source", m.src,
		"--etcd", m.endpoints, "--name", m.name, "--address", m.root, "--follow", "--follow-interval", "200ms",
		"--etcd-lease-ttl", haTTL.String(), "--keep", "1000", "--min-age", "0s", "--retries", "0")
	m.cmd.Stdout, m.cmd.Stderr = log, log
	testutil.Must(g.t, m.cmd.Start())
	m.done = make(chan struct{})
	go func() { _ = m.cmd.Wait(); close(m.done) }()
}

func (m *haMaster) kill(sig syscall.Signal) {
	if m.cmd == nil || m.cmd.Process == nil {
		return
	}
	_ = m.cmd.Process.Signal(sig)
	if sig == syscall.SIGKILL {
		<-m.done
	}
}

// mirrorLoop runs mirror-sync with every master as an upstream, every
// 300 ms until the test ends.
func (g *haGroup) mirrorLoop() {
	args := []string{"--root", g.mirror, "--quiet", "--keep", "1000", "--min-age", "0s", "--retries", "0"}
	for _, name := range []string{"a", "b"} {
		args = append(args, "--upstream", g.masters[name].root)
	}
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		for {
			_ = exec.Command(filepath.Join(g.bin, "mirror-sync"), args...).Run()
			select {
			case <-g.stop:
				return
			case <-time.After(300 * time.Millisecond):
			}
		}
	}()
}

func (g *haGroup) admin() *ha.Admin {
	adm, err := ha.Connect(context.Background(), ha.Config{Endpoints: strings.Split(g.etcd, ","), DialTimeout: 2 * time.Second})
	testutil.Must(g.t, err)
	g.t.Cleanup(func() { adm.Close() })
	return adm
}

// head is the group's newest record (0 if none or etcd did not answer).
func head(adm *ha.Admin) ha.Record {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	rs, err := adm.Records(ctx)
	if err != nil || len(rs) == 0 {
		return ha.Record{}
	}
	return rs[len(rs)-1]
}

// waitHead waits until the group records a snapshot above n claimed by
// master (any master if ""), and returns that record.
func (g *haGroup) waitHead(adm *ha.Admin, n uint64, master string, limit time.Duration) ha.Record {
	g.t.Helper()
	deadline := time.Now().Add(limit)
	for {
		if h := head(adm); h.Snapshot > n && (master == "" || h.Master == master) {
			return h
		}
		if time.Now().After(deadline) {
			g.t.Fatalf("no snapshot above %d recorded by %q within %s; head %+v\n%s", n, master, limit, head(adm), g.logs())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (g *haGroup) logs() string {
	var b strings.Builder
	for _, m := range g.masters {
		out, _ := os.ReadFile(m.log)
		fmt.Fprintf(&b, "--- %s:\n%s\n", m.name, out)
	}
	return b.String()
}

// leader waits until one of the masters leads (its snapshot is the head
// and it announced so) and returns it.
func (g *haGroup) leader(adm *ha.Admin) *haMaster {
	g.t.Helper()
	h := g.waitHead(adm, 0, "", 30*time.Second)
	return g.masters[h.Master]
}

// checkOneManifestPerNumber: across every master's root, the mirror's
// and the group's record, no snapshot number maps to two manifests, and
// every snapshot on disk is one the group recorded.
func (g *haGroup) checkOneManifestPerNumber(adm *ha.Admin) {
	g.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	recs, err := adm.Records(ctx)
	testutil.Must(g.t, err)
	seen := map[uint64]string{}
	for _, r := range recs {
		seen[r.Snapshot] = r.Manifest
	}
	roots := []string{g.mirror}
	for _, m := range g.masters {
		roots = append(roots, m.root)
	}
	count := 0
	for _, dir := range roots {
		root := export.New(fsys.OS(), dir)
		snaps, err := root.Snapshots()
		testutil.Must(g.t, err)
		for _, n := range snaps {
			d, err := ha.Digest(root.FS, root.ManifestPath(n))
			testutil.Must(g.t, err)
			if want, ok := seen[n]; !ok {
				g.t.Errorf("%s: snapshot %d is not recorded by the group", dir, n)
			} else if d != want {
				g.t.Errorf("%s: snapshot %d has manifest %s, the group recorded %s", dir, n, d, want)
			}
			count++
		}
	}
	g.t.Logf("%d records; %d snapshots on %d roots, each one the group recorded", len(recs), count, len(roots))
}

// publishTime measures how long the leader's publish of one new
// generation takes (write, then the record appears).
func (g *haGroup) publishTime(adm *ha.Admin) time.Duration {
	n := head(adm).Snapshot
	t0 := time.Now()
	g.writeAll()
	g.waitHead(adm, n, "", 20*time.Second)
	return time.Since(t0)
}

// TestHAKillLeaderMidPublish: two masters and a mirror; the leader is
// killed (SIGKILL) while it builds a snapshot; the other master takes over
// and publishes within the lease TTL plus one publish, and no number ever
// maps to two manifests anywhere.
func TestHAKillLeaderMidPublish(t *testing.T) {
	e := testutil.StartEtcd(t)
	g := newHAGroup(t, e.ClientURL)
	a, b := g.add("a", e.ClientURL), g.add("b", e.ClientURL)
	g.writeAll()
	g.start(a)
	adm := g.admin()
	if l := g.leader(adm); l != a {
		t.Fatalf("leader %s, want a (started first)", l.name)
	}
	g.mark("a leads")
	g.start(b)
	g.mirrorLoop()
	one := g.publishTime(adm)
	one = max(one, g.publishTime(adm))
	t.Logf("one publish (write to recorded, a leading): %s", one)
	waitServes(t, b.root, head(adm).Snapshot, 10*time.Second) // b follows a

	// Kill a while it builds the next snapshot (its .work holds it).
	before := head(adm).Snapshot
	g.writeAll()
	if !waitBuilding(a.root, 10*time.Second) {
		t.Fatalf("a did not start building\n%s", g.logs())
	}
	a.kill(syscall.SIGKILL)
	killed := time.Now()
	if h := head(adm); h.Snapshot != before {
		t.Fatalf("a claimed snapshot %d before it was killed (the kill missed the build)", h.Snapshot)
	}
	h := g.waitHead(adm, before, "b", haTTL+one+10*time.Second)
	took := time.Since(killed)
	t.Logf("b recorded snapshot %d %s after a was killed (lease TTL %s, one publish %s)", h.Snapshot, took, haTTL, one)
	if limit := haTTL + one + 2*time.Second; took > limit {
		t.Errorf("publishing resumed after %s, want within the lease TTL plus one publish (%s, with 2s slack)", took, limit)
	}
	waitServes(t, g.mirror, h.Snapshot, 10*time.Second)

	// a comes back: it follows b, and b keeps publishing.
	g.start(a)
	g.writeAll()
	h = g.waitHead(adm, h.Snapshot, "b", 10*time.Second)
	waitServes(t, a.root, h.Snapshot, 10*time.Second)
	g.mark("a follows b")
	g.stopAll()
	g.mark("stopped")
	g.checkOneManifestPerNumber(adm)
}

// TestHACutOffLeader: three etcd members; master a talks only to the
// first, b to the other two. SIGSTOP of a's member cuts a off: b takes
// over within the lease TTL plus one publish, and a, which keeps trying
// to publish while cut off, serves nothing new; resumed, it follows b.
func TestHACutOffLeader(t *testing.T) {
	ms := testutil.StartEtcdCluster(t, 3)
	g := newHAGroup(t, testutil.Endpoints(ms...))
	a, b := g.add("a", ms[0].ClientURL), g.add("b", testutil.Endpoints(ms[1], ms[2]))
	g.writeAll()
	g.start(a)
	adm, err := ha.Connect(context.Background(), ha.Config{Endpoints: []string{ms[1].ClientURL, ms[2].ClientURL}, DialTimeout: 2 * time.Second})
	testutil.Must(t, err)
	defer adm.Close()
	if l := g.leader(adm); l != a {
		t.Fatalf("leader %s, want a (started first)", l.name)
	}
	g.start(b)
	g.mirrorLoop()
	one := g.publishTime(adm)
	waitServes(t, b.root, head(adm).Snapshot, 10*time.Second)

	before := head(adm).Snapshot
	waitServes(t, a.root, before, 10*time.Second) // a flips after it records
	servedA := serves(a.root)
	ms[0].Pause()
	cut := time.Now()
	g.writeAll() // a sees it too, and tries to publish it
	h := g.waitHead(adm, before, "b", haTTL+one+10*time.Second)
	took := time.Since(cut)
	t.Logf("b recorded snapshot %d %s after a was cut off (lease TTL %s, one publish %s)", h.Snapshot, took, haTTL, one)
	if limit := haTTL + one + 3*time.Second; took > limit {
		t.Errorf("publishing resumed after %s, want within the lease TTL plus one publish (%s, with 3s slack: etcd elects a new raft leader too)", took, limit)
	}
	time.Sleep(haTTL) // a keeps trying while cut off
	if s := serves(a.root); s != servedA {
		t.Errorf("a, cut off from etcd, went from snapshot %d to %d", servedA, s)
	}
	ms[0].Resume()
	g.writeAll()
	// Publishing goes on under whichever master leads now: b, or a again
	// if b's lease lapsed meanwhile (a busy machine, etcd's raft leader
	// moving back to the resumed member).
	h = g.waitHead(adm, h.Snapshot, "", 15*time.Second)
	waitServes(t, a.root, h.Snapshot, 15*time.Second)
	waitServes(t, g.mirror, h.Snapshot, 10*time.Second)
	g.stopAll()
	g.checkOneManifestPerNumber(adm)
	if out, _ := os.ReadFile(a.log); !strings.Contains(string(out), "lost") && !strings.Contains(string(out), "leaving the group's election") {
		t.Errorf("a's log does not say it lost its lease:\n%s", out)
	}
}

// stopAll stops the masters (SIGTERM: they resign) and the mirror loop.
func (g *haGroup) stopAll() {
	for _, m := range g.masters {
		m.kill(syscall.SIGTERM)
	}
	for _, m := range g.masters {
		select {
		case <-m.done:
		case <-time.After(10 * time.Second):
			g.t.Errorf("%s did not stop on SIGTERM", m.name)
		}
	}
	select {
	case <-g.stop:
	default:
		close(g.stop)
	}
	g.wg.Wait()
	g.stop = make(chan struct{})
}

// serves is the snapshot root serves (0: none or unreadable).
func serves(dir string) uint64 {
	n, _ := export.New(fsys.OS(), dir).Current()
	return n
}

func waitServes(t *testing.T, dir string, n uint64, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for serves(dir) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%s serves %d, not %d, after %s", dir, serves(dir), n, limit)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitBuilding waits until root's .work holds a snapshot being built.
func waitBuilding(root string, limit time.Duration) bool {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		ents, _ := os.ReadDir(filepath.Join(root, export.WorkName))
		for _, e := range ents {
			if sub, _ := os.ReadDir(filepath.Join(root, export.WorkName, e.Name())); len(sub) > 0 {
				return true
			}
		}
		time.Sleep(2 * time.Millisecond)
	}
	return false
}
