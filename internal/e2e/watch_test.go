package e2e

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/seqmirror/seqmirror/testutil"
)

// watchProc is a `publish --watch` process of a test.
type watchProc struct {
	cmd            *exec.Cmd
	root           string
	stdout, stderr *testutil.SyncBuffer
	exited         chan error
}

// startWatch runs bin/publish --watch on root and src with the extra
// flags, and waits until it serves its first snapshot.
func startWatch(tb testing.TB, bin, root, src string, flags ...string) *watchProc {
	tb.Helper()
	args := append([]string{"--watch", "--root", root, "--source", src, "--keep", "1000"}, flags...)
	p := &watchProc{cmd: exec.Command(filepath.Join(bin, "publish"), args...), root: root,
		stdout: &testutil.SyncBuffer{}, stderr: &testutil.SyncBuffer{}, exited: make(chan error, 1)}
	p.cmd.Stdout, p.cmd.Stderr = p.stdout, p.stderr
	testutil.Must(tb, p.cmd.Start())
	go func() { p.exited <- p.cmd.Wait() }()
	tb.Cleanup(func() { p.cmd.Process.Kill() })
	p.waitServed(tb, func(n uint64) bool { return n >= 1 }, 30*time.Second)
	return p
}

// served is the snapshot root serves (0: none yet).
func (p *watchProc) served() uint64 {
	target, err := os.Readlink(filepath.Join(p.root, "current"))
	if err != nil {
		return 0
	}
	n, _ := strconv.ParseUint(filepath.Base(target), 10, 64)
	return n
}

// waitServed waits until the served snapshot satisfies ok, and returns it.
func (p *watchProc) waitServed(tb testing.TB, ok func(uint64) bool, limit time.Duration) uint64 {
	tb.Helper()
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		if n := p.served(); ok(n) {
			return n
		}
		time.Sleep(5 * time.Millisecond)
	}
	tb.Fatalf("publish --watch served %d after %s; stderr:\n%s", p.served(), limit, p.stderr)
	return 0
}

// settle waits until no new snapshot has been served for quiet.
func (p *watchProc) settle(tb testing.TB, quiet time.Duration) uint64 {
	tb.Helper()
	n, since := p.served(), time.Now()
	for time.Since(since) < quiet {
		time.Sleep(50 * time.Millisecond)
		if m := p.served(); m != n {
			n, since = m, time.Now()
		}
	}
	return n
}

// stop sends SIGTERM and requires a clean exit (0) within limit.
func (p *watchProc) stop(tb testing.TB) {
	tb.Helper()
	testutil.Must(tb, p.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case err := <-p.exited:
		if err != nil {
			tb.Fatalf("publish --watch after SIGTERM: %v; stderr:\n%s", err, p.stderr)
		}
	case <-time.After(30 * time.Second):
		tb.Fatalf("publish --watch did not stop on SIGTERM; stderr:\n%s", p.stderr)
	}
}

// pushRepo is a bare repository in a source tree and a work clone that
// pushes to it.
type pushRepo struct {
	bare, work string
	commits    int
}

func newPushRepo(tb testing.TB, src, tmp string) *pushRepo {
	tb.Helper()
	r := &pushRepo{bare: filepath.Join(src, "repo.git"), work: filepath.Join(tmp, "work")}
	testutil.Must(tb, os.MkdirAll(r.bare, 0o755))
	testutil.Must(tb, os.MkdirAll(r.work, 0o755))
	git(tb, r.bare, "init", "-q", "--bare", "-b", "main")
	git(tb, r.work, "init", "-q", "-b", "main")
	git(tb, r.work, "remote", "add", "origin", r.bare)
	testutil.Must(tb, os.WriteFile(filepath.Join(r.work, "log.txt"), nil, 0o644))
	git(tb, r.work, "add", "log.txt")
	return r
}

// commit makes n commits in the work clone, each changing two files and
// adding 64 KiB of random data (so that a push takes a while).
func (r *pushRepo) commit(tb testing.TB, n int) {
	tb.Helper()
	for range n {
		blob := make([]byte, 64<<10)
		rand.Read(blob)
		testutil.Must(tb, os.WriteFile(filepath.Join(r.work, fmt.Sprintf("blob%03d", r.commits)), blob, 0o644))
		r.commits++
		f, err := os.OpenFile(filepath.Join(r.work, "log.txt"), os.O_APPEND|os.O_WRONLY, 0)
		testutil.Must(tb, err)
		fmt.Fprintf(f, "commit %d\n", r.commits)
		testutil.Must(tb, f.Close())
		testutil.Must(tb, os.WriteFile(filepath.Join(r.work, fmt.Sprintf("f%d.txt", r.commits%10)), bytes.Repeat([]byte{byte(r.commits)}, 1000+r.commits), 0o644))
		git(tb, r.work, "add", "-A")
		git(tb, r.work, "commit", "-q", "-m", fmt.Sprintf("commit %d", r.commits))
	}
}

// push pushes main and returns when git push has returned.
func (r *pushRepo) push(tb testing.TB) { r.pushAt(tb, 0) }

// pushAt pushes the commit back commits before the work clone's head
// as main.
func (r *pushRepo) pushAt(tb testing.TB, back int) {
	tb.Helper()
	git(tb, r.work, "push", "-q", "origin", fmt.Sprintf("HEAD~%d:refs/heads/main", back))
}

func (r *pushRepo) head(tb testing.TB) string {
	return strings.TrimSpace(git(tb, r.work, "rev-parse", "HEAD"))
}

// checkSnapshots runs git fsck --full and a clone (through git's pack
// protocol, not a local copy) on the repository in every snapshot of root
// from first on, and requires the last to hold head.
func checkSnapshots(t *testing.T, root string, first uint64, head string) []uint64 {
	t.Helper()
	nums := snapshotNumbers(t, root)
	var checked []uint64
	for _, n := range nums {
		if n < first {
			continue
		}
		repo := filepath.Join(root, "snapshots", strconv.FormatUint(n, 10), "repo.git")
		testutil.GitFsck(t, repo)
		clone := filepath.Join(t.TempDir(), "clone")
		git(t, filepath.Dir(clone), "-c", "safe.directory=*", "clone", "-q", "--no-local", repo, clone)
		git(t, clone, "fsck", "--full", "--strict")
		checked = append(checked, n)
	}
	if len(checked) == 0 {
		t.Fatalf("no snapshot from %d on in %s: %v", first, root, nums)
	}
	last := filepath.Join(root, "snapshots", strconv.FormatUint(checked[len(checked)-1], 10), "repo.git")
	if got := strings.TrimSpace(git(t, last, "-c", "safe.directory=*", "rev-parse", "main")); got != head {
		t.Errorf("the last snapshot's main is %s, want the pushed %s", got, head)
	}
	return checked
}

// servedHead is main of the repository root serves ("" if none).
func servedHead(root string) string {
	cmd := exec.Command("git", "-c", "safe.directory=*", "rev-parse", "-q", "--verify", "main")
	cmd.Dir = filepath.Join(root, "current", "repo.git")
	out, err := cmd.Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

// snapshotNumbers lists the complete snapshots of root, in order.
func snapshotNumbers(tb testing.TB, root string) []uint64 {
	tb.Helper()
	ents, err := os.ReadDir(filepath.Join(root, "snapshots"))
	testutil.Must(tb, err)
	var nums []uint64
	for _, e := range ents {
		if n, err := strconv.ParseUint(e.Name(), 10, 64); err == nil && e.IsDir() {
			nums = append(nums, n)
		}
	}
	slices.Sort(nums)
	return nums
}

// TestWatchGitPush: publish --watch on a source holding a bare repository.
// One git push of 100 commits yields one or a few snapshots; 25 pushes
// one right after another (4 commits each, no pause between them) while
// publish keeps publishing (a quiet window and a maximum delay shorter
// than a push, so that publishes start mid-push) yield several. Every snapshot is a whole repository:
// git fsck --full, and a clone through the pack protocol, pass on each;
// none carries git's transient files (quarantine, locks). SIGTERM stops
// publish --watch with exit 0.
func TestWatchGitPush(t *testing.T) {
	testutil.RequireBinary(t, "git")
	bin := testutil.BuildTools(t)
	tests := []struct {
		name    string
		flags   []string
		pushes  int // of 100/pushes commits each
		maxSnap int // snapshots the pushes may make (0: any)
	}{
		{name: "one push of 100 commits", pushes: 1, maxSnap: 3},
		{name: "25 pushes while publishing", flags: []string{"--watch-quiet", "10ms", "--watch-max-delay", "100ms"}, pushes: 25},
		{name: "25 pushes polled", flags: []string{"--watch-poll", "--watch-poll-interval", "20ms", "--watch-quiet", "10ms", "--watch-max-delay", "100ms"}, pushes: 25},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tmp := t.TempDir()
			root, src := filepath.Join(tmp, "export"), filepath.Join(tmp, "src")
			repo := newPushRepo(t, src, tmp)
			p := startWatch(t, bin, root, src, tt.flags...)
			before := p.served()
			repo.commit(t, 100)
			step := 100 / tt.pushes
			for i := tt.pushes - 1; i >= 0; i-- { // one push after another, nothing between
				repo.pushAt(t, i*step)
			}
			pushed, head := time.Now(), repo.head(t)
			n := p.waitServed(t, func(n uint64) bool { return n > before }, 60*time.Second)
			t.Logf("git push returned -> snapshot %d served: %s", n, time.Since(pushed).Round(time.Millisecond))
			// A publish that failed while the pushes went on is retried
			// after a backoff: wait for the last push to be served.
			p.waitServed(t, func(uint64) bool { return servedHead(p.root) == head }, 60*time.Second)
			p.settle(t, time.Second)
			p.stop(t)
			checked := checkSnapshots(t, root, before+1, head)
			t.Logf("%d snapshots made by the pushes, each checked: %v; %d attempts retried as the source moved", len(checked), checked,
				strings.Count(p.stderr.String(), "source is changing"))
			if tt.maxSnap > 0 && len(checked) > tt.maxSnap {
				t.Errorf("%d snapshots for one push, want at most %d", len(checked), tt.maxSnap)
			}
			noGitTransients(t, root)
			if !strings.Contains(p.stderr.String(), "stopped; the served snapshot is complete") {
				t.Errorf("no clean stop logged:\n%s", p.stderr)
			}
		})
	}
}

// noGitTransients fails if a snapshot of root holds a push's quarantine,
// a lock file or a temporary pack.
func noGitTransients(t *testing.T, root string) {
	t.Helper()
	filepath.WalkDir(filepath.Join(root, "snapshots"), func(p string, d os.DirEntry, err error) error {
		name := filepath.Base(p)
		if err == nil && (strings.HasPrefix(name, "tmp_objdir-") || strings.HasSuffix(name, ".lock") || strings.HasPrefix(name, "tmp_pack_")) {
			t.Errorf("a snapshot holds git's transient %s", p)
		}
		return nil
	})
}

// TestWatchSeqBracket: a source with its own seq/begin and seq/end is not
// published while begin is ahead of end (its writer is mid-update),
// however long the changes go on; it is once the writer closes the
// bracket.
func TestWatchSeqBracket(t *testing.T) {
	bin, tmp := testutil.BuildTools(t), t.TempDir()
	root, src := filepath.Join(tmp, "export"), filepath.Join(tmp, "src")
	testutil.WriteTree(t, src, map[string]string{"a.txt": "a", "seq/begin": "1\n", "seq/end": "1\n"})
	p := startWatch(t, bin, root, src, "--watch-quiet", "50ms", "--watch-max-delay", "200ms")
	testutil.Must(t, os.WriteFile(filepath.Join(src, "seq/begin"), []byte("2\n"), 0o644))
	testutil.Touch(t, src, "a.txt", "half written")
	testutil.Touch(t, src, "b.txt", "new")
	time.Sleep(1500 * time.Millisecond) // well past the maximum delay
	if n := p.served(); n != 1 {
		t.Fatalf("snapshot %d served while the source's writer was mid-update", n)
	}
	testutil.Touch(t, src, "a.txt", "done")
	testutil.Must(t, os.WriteFile(filepath.Join(src, "seq/end"), []byte("2\n"), 0o644))
	n := p.waitServed(t, func(n uint64) bool { return n > 1 }, 30*time.Second)
	b, err := os.ReadFile(filepath.Join(root, "snapshots", strconv.FormatUint(n, 10), "a.txt"))
	testutil.Must(t, err)
	if string(b) != "done" {
		t.Errorf("snapshot %d holds a.txt %q, want the finished \"done\"", n, b)
	}
	p.stop(t)
	if !strings.Contains(p.stderr.String(), "mid-update") {
		t.Errorf("no log line says it waited for the writer:\n%s", p.stderr)
	}
}

// BenchmarkWatchPushLatency measures the time from `git push` returning
// to the new snapshot being served by publish --watch (make bench-watch):
// one commit a push into a bare repository of 100 commits, for the default
// quiet window and a short one, with the repository alone in the source
// and beside 10,000 other files (which every publish walks). ms/push is
// the mean; p50-ms and max-ms are reported too.
func BenchmarkWatchPushLatency(b *testing.B) {
	testutil.RequireBinary(b, "git")
	bin := testutil.BuildTools(b)
	for _, files := range []int{0, 10000} {
		for _, quiet := range []string{"1s", "100ms"} {
			b.Run(fmt.Sprintf("files=%d/quiet=%s", files, quiet), func(b *testing.B) {
				benchPushLatency(b, bin, files, quiet)
			})
		}
	}
}

func benchPushLatency(b *testing.B, bin string, files int, quiet string) {
	tmp := b.TempDir()
	root, src := filepath.Join(tmp, "export"), filepath.Join(tmp, "src")
	testutil.GenTree(b, filepath.Join(src, "data"), files, 1)
	repo := newPushRepo(b, src, tmp)
	repo.commit(b, 100)
	repo.push(b)
	p := startWatch(b, bin, root, src, "--watch-quiet", quiet)
	var lat []time.Duration
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		before := p.settle(b, 300*time.Millisecond)
		repo.commit(b, 1)
		b.StartTimer()
		repo.push(b)
		t0 := time.Now()
		p.waitServed(b, func(n uint64) bool { return n > before }, 60*time.Second)
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	p.stop(b)
	reportLatency(b, lat)
}

func reportLatency(b *testing.B, lat []time.Duration) {
	slices.Sort(lat)
	var sum time.Duration
	for _, d := range lat {
		sum += d
	}
	b.ReportMetric(float64(sum.Milliseconds())/float64(len(lat)), "ms/push")
	b.ReportMetric(float64(lat[len(lat)/2].Milliseconds()), "p50-ms")
	b.ReportMetric(float64(lat[len(lat)-1].Milliseconds()), "max-ms")
	b.ReportMetric(0, "ns/op")
}

// TestWatchReload: SIGHUP makes publish --watch read its configuration
// file again before the next publish; a file that does not read keeps the
// previous settings, and it goes on.
func TestWatchReload(t *testing.T) {
	bin, tmp := testutil.BuildTools(t), t.TempDir()
	root, src, conf := filepath.Join(tmp, "export"), filepath.Join(tmp, "src"), filepath.Join(tmp, "watch.conf")
	testutil.WriteTree(t, src, map[string]string{"a.txt": "a", "skip/x": "x"})
	base := "root = export\nsource = src\nwatch-quiet = 50ms\n"
	testutil.Must(t, os.WriteFile(conf, []byte(base), 0o644))
	p := startWatch(t, bin, root, src, "--config", conf)
	if _, err := os.Stat(filepath.Join(root, "snapshots/1/skip/x")); err != nil {
		t.Fatalf("snapshot 1 lacks skip/x: %v", err)
	}
	testutil.Must(t, os.WriteFile(conf, []byte(base+"exclude = /skip/\n"), 0o644))
	testutil.Must(t, p.cmd.Process.Signal(syscall.SIGHUP))
	time.Sleep(200 * time.Millisecond) // the signal is noted before the change starts a publish
	testutil.Touch(t, src, "a.txt", "b")
	n := p.waitServed(t, func(n uint64) bool { return n > 1 }, 30*time.Second)
	if _, err := os.Stat(filepath.Join(root, "snapshots", strconv.FormatUint(n, 10), "skip")); err == nil {
		t.Errorf("snapshot %d holds skip/ after the reload excluded it", n)
	}
	testutil.Must(t, os.WriteFile(conf, []byte(base+"keep = lots\n"), 0o644))
	testutil.Must(t, p.cmd.Process.Signal(syscall.SIGHUP))
	time.Sleep(200 * time.Millisecond)
	testutil.Touch(t, src, "a.txt", "c")
	m := p.waitServed(t, func(m uint64) bool { return m > n }, 30*time.Second)
	if _, err := os.Stat(filepath.Join(root, "snapshots", strconv.FormatUint(m, 10), "skip")); err == nil {
		t.Errorf("snapshot %d holds skip/: a failed reload dropped the settings it had", m)
	}
	p.stop(t)
	for _, want := range []string{"SIGHUP: reading the configuration again", "reload failed; the previous settings stay"} {
		if !strings.Contains(p.stderr.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, p.stderr)
		}
	}
}

// TestWatchQuorum: each publish of publish --watch waits for its quorum as
// a run does (the same code): reached when the mirror syncs, printed after
// the snapshot's number; not reached within --quorum-timeout, it is logged
// and the watch goes on to the next change.
func TestWatchQuorum(t *testing.T) {
	bin, tmp := testutil.BuildTools(t), t.TempDir()
	root, src, mir := filepath.Join(tmp, "export"), filepath.Join(tmp, "src"), filepath.Join(tmp, "mirror")
	testutil.WriteTree(t, src, map[string]string{"a.txt": "a"})
	sync := func() {
		t.Helper()
		out, err := exec.Command(filepath.Join(bin, "mirror-sync"), "--upstream", root, "--root", mir, "--quiet").CombinedOutput()
		if err != nil {
			t.Fatalf("mirror-sync: %v\n%s", err, out)
		}
	}
	p := startWatch(t, bin, root, src, "--watch-quiet", "50ms", "--quorum", "1", "--mirror", mir, "--quorum-timeout", "5s")
	// A sync right after the flip may find the master mid-update (seq/end
	// not bumped yet) and take nothing: sync until the quorum is printed.
	synced := func(count int) func() bool {
		return func() bool {
			sync()
			return strings.Count(p.stdout.String(), "quorum 1 of 1") == count
		}
	}
	waitFor(t, synced(1), p)
	testutil.Touch(t, src, "a.txt", "b")
	p.waitServed(t, func(n uint64) bool { return n == 2 }, 30*time.Second)
	waitFor(t, synced(2), p)
	// Nobody syncs snapshot 3: logged after 5s, and snapshot 4 follows.
	testutil.Touch(t, src, "a.txt", "c")
	p.waitServed(t, func(n uint64) bool { return n == 3 }, 30*time.Second)
	waitFor(t, func() bool { return strings.Contains(p.stderr.String(), "published, but the quorum was not reached") }, p)
	testutil.Touch(t, src, "a.txt", "d")
	p.waitServed(t, func(n uint64) bool { return n == 4 }, 30*time.Second)
	p.stop(t)
	if got := p.stdout.String(); !strings.HasPrefix(got, "1\nquorum 1 of 1") || !strings.Contains(got, "\n2\nquorum 1 of 1") {
		t.Errorf("stdout:\n%s", got)
	}
	if !strings.Contains(p.stderr.String(), "is behind") {
		t.Errorf("the mirror behind is not named:\n%s", p.stderr)
	}
}

// waitFor waits up to 30s for ok.
func waitFor(t *testing.T, ok func() bool, p *watchProc) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if ok() {
			return
		}
	}
	t.Fatalf("timed out; stdout:\n%s\nstderr:\n%s", p.stdout, p.stderr)
}

// TestWatchSignedRefresh: publish --watch of a signing master refreshes
// its timestamp while the source stays unchanged (a run at least every
// quarter of the validity, which re-signs past half of it), publishing
// nothing new; the timestamp it holds never expires.
func TestWatchSignedRefresh(t *testing.T) {
	bin, tmp := testutil.BuildTools(t), t.TempDir()
	root, src, key := filepath.Join(tmp, "export"), filepath.Join(tmp, "src"), filepath.Join(tmp, "key")
	testutil.WriteTree(t, src, map[string]string{"a.txt": "a"})
	if out, err := exec.Command(filepath.Join(bin, "publish"), "keygen", "--quiet", key).CombinedOutput(); err != nil {
		t.Fatalf("publish keygen: %v\n%s", err, out)
	}
	p := startWatch(t, bin, root, src, "--sign-key", key+".key", "--timestamp-validity", "2s", "--watch-quiet", "50ms")
	ts := filepath.Join(root, "seq", "timestamp.minisig")
	var first []byte
	for i := 0; first == nil && i < 500; i++ { // written right after the flip
		first, _ = os.ReadFile(ts)
		time.Sleep(10 * time.Millisecond)
	}
	deadline := time.Now().Add(6 * time.Second)
	changes := 0
	for prev := first; time.Now().Before(deadline) && changes < 2; time.Sleep(20 * time.Millisecond) {
		b, err := os.ReadFile(ts)
		testutil.Must(t, err)
		if !bytes.Equal(b, prev) {
			changes, prev = changes+1, b
		}
	}
	if changes < 2 {
		t.Fatalf("the timestamp was refreshed %d times in 6s of an unchanged source, want 2 (validity 2s); stderr:\n%s", changes, p.stderr)
	}
	if n := p.served(); n != 1 {
		t.Fatalf("serves snapshot %d, want 1: nothing changed", n)
	}
	if out, err := exec.Command(filepath.Join(bin, "publish"), "status", "--root", root, "--json").Output(); err != nil || !strings.Contains(string(out), `"state": "fresh"`) {
		t.Fatalf("status: %v\n%s", err, out)
	}
	p.stop(t)
}
