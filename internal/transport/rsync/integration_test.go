package rsync_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/seqmirror/seqmirror/internal/cliapp"
	"github.com/seqmirror/seqmirror/internal/export"
	"github.com/seqmirror/seqmirror/internal/fsys"
	"github.com/seqmirror/seqmirror/internal/mirror"
	"github.com/seqmirror/seqmirror/internal/transport"
	"github.com/seqmirror/seqmirror/internal/transport/rsync"
	"github.com/seqmirror/seqmirror/internal/tree"
	"github.com/seqmirror/seqmirror/manifest"
	"github.com/seqmirror/seqmirror/seqfile"
	"github.com/seqmirror/seqmirror/snapshot"
	"github.com/seqmirror/seqmirror/testutil"
)

// publish publishes src into the export root at dir and returns the snapshot.
func publish(tb testing.TB, dir, src string, keep int) uint64 {
	tb.Helper()
	opt := snapshot.DefaultOptions()
	opt.Keep = keep
	res, err := snapshot.Publish(context.Background(), export.New(fsys.OS(), dir), src, opt)
	if err != nil {
		tb.Fatalf("publish %s: %v", src, err)
	}
	return res.Snapshot
}

// runMirror runs mirror-sync in-process and returns its exit code and output.
func runMirror(tb testing.TB, args ...string) (int, string, string) {
	tb.Helper()
	var out, errb bytes.Buffer
	code := cliapp.Run(context.Background(), cliapp.MirrorApp(&out, &errb), append([]string{"mirror-sync"}, args...))
	return code, out.String(), errb.String()
}

// countingRsync returns an rsync wrapper that logs each run to a file, and
// a function counting the runs so far.
func countingRsync(tb testing.TB) (string, func() int) {
	tb.Helper()
	real := testutil.RequireBinary(tb, "rsync")
	dir := tb.TempDir()
	log := filepath.Join(dir, "runs")
	script := filepath.Join(dir, "rsync")
	body := fmt.Sprintf("#!/bin/sh\necho \"$*\" >> '%s'\nexec '%s' \"$@\"\n", log, real)
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		tb.Fatal(err)
	}
	return script, func() int {
		b, _ := os.ReadFile(log)
		return bytes.Count(b, []byte("\n"))
	}
}

func verifyServed(tb testing.TB, dir string) uint64 {
	tb.Helper()
	r := export.New(fsys.OS(), dir)
	n, err := r.Current()
	if err != nil || n == 0 {
		tb.Fatalf("%s serves %d: %v", dir, n, err)
	}
	m, err := r.ReadManifest(n)
	if err != nil {
		tb.Fatal(err)
	}
	probs, err := tree.Verify(context.Background(), fsys.OS(), r.SnapshotDir(n), m, 2)
	if err != nil || len(probs) > 0 {
		tb.Fatalf("verify %s snapshot %d: %v %v", dir, n, err, probs)
	}
	return n
}

func inode(tb testing.TB, p string) uint64 {
	tb.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		tb.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Ino
}

func TestMirrorThroughDaemon(t *testing.T) {
	rsyncBin, runs := countingRsync(t)
	tmp := t.TempDir()
	src, master, mir := filepath.Join(tmp, "src"), filepath.Join(tmp, "master"), filepath.Join(tmp, "mirror")
	paths := testutil.GenTree(t, src, 60, 1)
	testutil.WriteTree(t, src, map[string]string{"link": "->d00/s00/f00000.dat", "odd name %1\t.txt": "x"})
	testutil.GitRepo(t, filepath.Join(src, "repo"), 4)
	if n := publish(t, master, src, 3); n != 1 {
		t.Fatalf("published %d", n)
	}
	testutil.GitFsck(t, filepath.Join(master, "current", "repo"))
	port := testutil.StartRsyncd(t, map[string]string{"master": master})
	up := fmt.Sprintf("rsync://127.0.0.1:%d/master", port)
	args := []string{"--upstream", up, "--root", mir, "--rsync", rsyncBin, "--json", "--min-age", "0"}

	code, out, errs := runMirror(t, args...)
	if code != 0 {
		t.Fatalf("first sync: exit %d\n%s%s", code, out, errs)
	}
	if n := verifyServed(t, mir); n != 1 {
		t.Fatalf("mirror serves %d, want 1", n)
	}
	testutil.GitFsck(t, filepath.Join(mir, "current", "repo"))

	t.Run("no-op poll is one rsync run", func(t *testing.T) {
		before := runs()
		code, out, errs := runMirror(t, args...)
		if code != 0 {
			t.Fatalf("exit %d\n%s%s", code, out, errs)
		}
		var res mirror.Result
		if err := json.Unmarshal([]byte(out), &res); err != nil || res.Changed {
			t.Fatalf("no-op run: %v %s", err, out)
		}
		if got := runs() - before; got != 1 {
			t.Fatalf("no-op poll ran rsync %d times, want 1", got)
		}
	})

	t.Run("incremental", func(t *testing.T) {
		testutil.Touch(t, src, paths[3], "changed three")
		testutil.Touch(t, src, paths[40], "changed forty")
		testutil.Touch(t, src, "new/file.txt", "brand new")
		// Same base name in one batch: one comes flat, the other through
		// the staging tree (Fetch); both must land in their own places.
		testutil.Touch(t, src, "dupe/one/same.txt", "first of two")
		testutil.Touch(t, src, "dupe/two/same.txt", "second of two")
		if err := os.Remove(filepath.Join(src, paths[7])); err != nil {
			t.Fatal(err)
		}
		gitCommit(t, filepath.Join(src, "repo"), "second round")
		if n := publish(t, master, src, 3); n != 2 {
			t.Fatalf("published %d", n)
		}
		code, out, errs := runMirror(t, args...)
		if code != 0 {
			t.Fatalf("exit %d\n%s%s", code, out, errs)
		}
		var res mirror.Result
		if err := json.Unmarshal([]byte(out), &res); err != nil {
			t.Fatal(err, out)
		}
		m, err := export.New(fsys.OS(), master).ReadManifest(2)
		if err != nil {
			t.Fatal(err)
		}
		if res.Snapshot != 2 || res.Deleted != 1 || res.Fetched >= 20 || res.Linked < 50 {
			t.Fatalf("incremental sync: %+v (manifest has %d records)", res, len(m.Entries))
		}
		if verifyServed(t, mir) != 2 {
			t.Fatal("not serving 2")
		}
		same := filepath.Join("d00", "s00", "f00000.dat")
		if inode(t, filepath.Join(mir, "snapshots/1", same)) != inode(t, filepath.Join(mir, "snapshots/2", same)) {
			t.Error("unchanged file was not hard-linked from the previous snapshot")
		}
		if inode(t, filepath.Join(mir, "snapshots/1", paths[3])) == inode(t, filepath.Join(mir, "snapshots/2", paths[3])) {
			t.Error("changed file shares its inode with the old snapshot")
		}
		for p, want := range map[string]string{"dupe/one/same.txt": "first of two", "dupe/two/same.txt": "second of two"} {
			if b, err := os.ReadFile(filepath.Join(mir, "current", p)); err != nil || string(b) != want {
				t.Errorf("%s = %q, %v; want %q", p, b, err, want)
			}
		}
		testutil.GitFsck(t, filepath.Join(mir, "current", "repo"))
	})

	t.Run("verify --repair over rsync", func(t *testing.T) {
		p := filepath.Join(mir, "snapshots", "2", filepath.FromSlash(paths[3]))
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		os.Chmod(filepath.Dir(p), 0o755)
		os.Chmod(p, 0o644)
		if err := os.WriteFile(p, []byte("CHANGED THREE"), 0o644); err != nil { // same size, bit rot
			t.Fatal(err)
		}
		os.Chtimes(p, fi.ModTime(), fi.ModTime())
		if code, out, errs := runMirror(t, "verify", "--root", mir); code != cliapp.ExitVerify {
			t.Fatalf("verify of a damaged snapshot: exit %d %s %s", code, out, errs)
		}
		code, out, errs := runMirror(t, "verify", "--root", mir, "--repair", "--upstream", up)
		if code != 0 || !strings.Contains(errs, "repaired 1") {
			t.Fatalf("verify --repair: exit %d %s %s", code, out, errs)
		}
		verifyServed(t, mir)
	})

	t.Run("tier-2 daemon and stock rsync client", func(t *testing.T) {
		port2 := testutil.StartRsyncd(t, map[string]string{"mirror": mir})
		dst := filepath.Join(t.TempDir(), "dst")
		rs := testutil.RequireBinary(t, "rsync")
		cmd := exec.Command(rs, "-a", fmt.Sprintf("rsync://127.0.0.1:%d/mirror/snapshots/2/", port2), dst+"/")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("stock rsync client: %v\n%s", err, out)
		}
		m, err := export.New(fsys.OS(), master).ReadManifest(2)
		if err != nil {
			t.Fatal(err)
		}
		probs, err := tree.Verify(context.Background(), fsys.OS(), dst, m, 2)
		if err != nil || len(probs) > 0 {
			t.Fatalf("stock client copy differs from the master's snapshot: %v %v", err, probs)
		}
		testutil.GitFsck(t, filepath.Join(dst, "repo"))
		// And a tier-2 mirror-sync from the tier-1 mirror's daemon.
		tier2 := filepath.Join(t.TempDir(), "tier2")
		code, out, errs := runMirror(t, "--upstream", "127.0.0.1::mirror", "--rsync-opt", fmt.Sprintf("--port=%d", port2), "--root", tier2)
		if code != 0 || strings.TrimSpace(out) != "2" {
			t.Fatalf("tier-2 sync: exit %d\n%s%s", code, out, errs)
		}
		verifyServed(t, tier2)
	})
}

// hookUpstream wraps an rsync upstream to act at chosen moments.
type hookUpstream struct {
	*rsync.Upstream
	beforeFetch func(call int)
	calls       int
}

func (h *hookUpstream) Fetch(ctx context.Context, n uint64, files []manifest.Entry, dir string) error {
	h.calls++
	if h.beforeFetch != nil {
		h.beforeFetch(h.calls)
	}
	return h.Upstream.Fetch(ctx, n, files, dir)
}

// FetchSnapshot (a first copy) counts as a Fetch call too.
func (h *hookUpstream) FetchSnapshot(ctx context.Context, n uint64, m transport.Records, dir string) error {
	h.calls++
	if h.beforeFetch != nil {
		h.beforeFetch(h.calls)
	}
	return h.Upstream.FetchSnapshot(ctx, n, m, dir)
}

func openRsync(tb testing.TB, addr string) *rsync.Upstream {
	tb.Helper()
	return openRsyncWith(tb, addr, transport.Options{})
}

// openRsyncWith is openRsync with options.
func openRsyncWith(tb testing.TB, addr string, opt transport.Options) *rsync.Upstream {
	tb.Helper()
	up, err := transport.Open(addr, fsys.OS(), opt)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { up.Close() })
	return up.(*rsync.Upstream)
}

func TestDaemonStoppedMidTransfer(t *testing.T) {
	tmp := t.TempDir()
	src, master, mir := filepath.Join(tmp, "src"), filepath.Join(tmp, "master"), filepath.Join(tmp, "mirror")
	testutil.GenTree(t, src, 10, 2)
	publish(t, master, src, 3)
	d := testutil.StartRsyncdServer(t, map[string]string{"master": master}, "--bwlimit=2000")
	root := export.New(fsys.OS(), mir)
	up := openRsync(t, d.URL("master"))
	if _, err := mirror.Sync(context.Background(), root, up, mirror.DefaultOptions()); err != nil {
		t.Fatal(err)
	}
	// Snapshot 2 has a big file; the fetch is slowed down and the daemon
	// killed while it runs.
	big := make([]byte, 8<<20)
	for i := range big {
		big[i] = byte(i * 7)
	}
	if err := os.WriteFile(filepath.Join(src, "big.bin"), big, 0o644); err != nil {
		t.Fatal(err)
	}
	publish(t, master, src, 3)
	var killed bool
	h := &hookUpstream{Upstream: up, beforeFetch: func(call int) {
		if call == 1 {
			killed = true
			time.AfterFunc(500*time.Millisecond, d.Stop) // the 8 MiB take 4s at 2000 KiB/s
		}
	}}
	var log testutil.SyncBuffer
	start := time.Now()
	_, err := mirror.Sync(context.Background(), root, h, mirrorOpts(func(o *mirror.Options) {
		o.Retries, o.Backoff, o.Log = 2, 50*time.Millisecond, slog.New(slog.NewTextHandler(&log, nil))
	}))
	if !killed || err == nil {
		t.Fatalf("sync with a dying daemon: killed=%v err=%v", killed, err)
	}
	if code := cliapp.ExitCode(err); code != cliapp.ExitBusy {
		t.Fatalf("exit code %d for %v, want %d (ExitBusy)", code, err, cliapp.ExitBusy)
	}
	if !strings.Contains(log.String(), "retrying") {
		t.Errorf("no retry logged:\n%s", log.String())
	}
	if time.Since(start) > 20*time.Second {
		t.Errorf("took %s to give up", time.Since(start))
	}
	if n := verifyServed(t, mir); n != 1 {
		t.Fatalf("mirror serves %d after the failure, want the old 1", n)
	}
	st, err := root.Status()
	if err != nil || st.State != export.StateUpdating {
		t.Fatalf("status after a failed run: %+v %v (want updating: begin > end)", st, err)
	}
}

func TestDeadPortExitsBusy(t *testing.T) {
	testutil.RequireBinary(t, "rsync")
	d := testutil.StartRsyncdServer(t, map[string]string{"m": t.TempDir()})
	d.Stop()
	code, out, errs := runMirror(t, "--upstream", d.URL("m"), "--root", filepath.Join(t.TempDir(), "mirror"), "--contimeout", "2s", "--retries", "2", "--backoff", "10ms")
	if code != cliapp.ExitBusy {
		t.Fatalf("exit %d, want %d\n%s%s", code, cliapp.ExitBusy, out, errs)
	}
	if !strings.Contains(errs, "rsync exited with code") {
		t.Errorf("error does not quote rsync: %s", errs)
	}
	if n := strings.Count(errs, "upstream did not answer; retrying"); n != 2 {
		t.Errorf("the first poll was retried %d times, want 2 (--retries 2):\n%s", n, errs)
	}
}

// A daemon that answers and refuses (an unknown module, an option it
// refuses) needs a human: exit 8 at once, rsync quoted, no retries.
func TestRefusalsAreNotRetried(t *testing.T) {
	up := t.TempDir()
	d := testutil.StartRsyncdConfig(t, fmt.Sprintf("\n[m]\n  path = %s\n  refuse options = checksum\n", up))
	for _, tc := range []struct {
		name  string
		args  []string
		quote string
	}{
		{name: "unknown module", args: []string{"--upstream", d.URL("nope")}, quote: "@ERROR: Unknown module"},
		{name: "refused option", args: []string{"--upstream", d.URL("m"), "--rsync-opt=--checksum"}, quote: "configured to refuse"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append(tc.args, "--root", filepath.Join(t.TempDir(), "mirror"), "--backoff", "10ms")
			code, _, errs := runMirror(t, args...)
			if code != cliapp.ExitRefusedUp || !strings.Contains(errs, tc.quote) {
				t.Fatalf("exit %d, want %d quoting %q:\n%s", code, cliapp.ExitRefusedUp, tc.quote, errs)
			}
			if strings.Contains(errs, "retrying") {
				t.Errorf("a refusal was retried:\n%s", errs)
			}
			if !strings.Contains(errs, "hint: the upstream refused the request") {
				t.Errorf("no hint:\n%s", errs)
			}
		})
	}
}

func TestSnapshotPrunedMidTransfer(t *testing.T) {
	tmp := t.TempDir()
	src, master, mir := filepath.Join(tmp, "src"), filepath.Join(tmp, "master"), filepath.Join(tmp, "mirror")
	paths := testutil.GenTree(t, src, 20, 3)
	publish(t, master, src, 1)
	port := testutil.StartRsyncd(t, map[string]string{"master": master})
	up := openRsync(t, fmt.Sprintf("rsync://127.0.0.1:%d/master", port))
	h := &hookUpstream{Upstream: up, beforeFetch: func(call int) {
		if call == 1 { // the master publishes 2 and prunes 1 under us
			testutil.Touch(t, src, paths[0], "newer")
			if n := publish(t, master, src, 1); n != 2 {
				t.Errorf("published %d", n)
			}
			if _, err := os.Stat(filepath.Join(master, "snapshots", "1")); err == nil {
				t.Errorf("snapshot 1 not pruned")
			}
		}
	}}
	res, err := mirror.Sync(context.Background(), export.New(fsys.OS(), mir), h, mirrorOpts(func(o *mirror.Options) { o.Backoff = 10 * time.Millisecond }))
	if err != nil {
		t.Fatal(err)
	}
	if res.Snapshot != 2 || res.Attempts < 2 {
		t.Fatalf("result %+v, want snapshot 2 after a retry", res)
	}
	if verifyServed(t, mir) != 2 {
		t.Fatal("not serving 2")
	}
}

func TestHashMismatch(t *testing.T) {
	tmp := t.TempDir()
	src, master, mir := filepath.Join(tmp, "src"), filepath.Join(tmp, "master"), filepath.Join(tmp, "mirror")
	paths := testutil.GenTree(t, src, 5, 4)
	publish(t, master, src, 3)
	// Corrupt the master's snapshot behind its manifest's back (same size and mtime).
	p := filepath.Join(master, "snapshots", "1", filepath.FromSlash(paths[2]))
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(p)
	b[0] ^= 0xff
	os.Chmod(p, 0o644)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	os.Chtimes(p, fi.ModTime(), fi.ModTime())
	port := testutil.StartRsyncd(t, map[string]string{"master": master})
	code, _, errs := runMirror(t, "--upstream", fmt.Sprintf("rsync://127.0.0.1:%d/master", port), "--root", mir)
	if code != cliapp.ExitCorrupt || !strings.Contains(errs, "does not match manifest") {
		t.Fatalf("exit %d, want %d: %s", code, cliapp.ExitCorrupt, errs)
	}
	if n, _ := export.New(fsys.OS(), mir).Current(); n != 0 {
		t.Fatalf("mirror serves %d after a hash mismatch", n)
	}
}

// A first copy pulls the whole snapshot directory: anything there that its
// manifest does not list (or lists as another type) is refused.
func TestFirstCopyRefusesUnlisted(t *testing.T) {
	for _, tc := range []struct {
		name   string
		tamper func(t *testing.T, snap string)
	}{
		{"extra file", func(t *testing.T, snap string) {
			testutil.WriteTree(t, snap, map[string]string{"d00/extra.txt": "not in the manifest"})
		}},
		{"file became symlink", func(t *testing.T, snap string) {
			p := filepath.Join(snap, "odd")
			os.Remove(p)
			if err := os.Symlink("/etc/passwd", p); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tmp := t.TempDir()
			src, master, mir := filepath.Join(tmp, "src"), filepath.Join(tmp, "master"), filepath.Join(tmp, "mirror")
			testutil.GenTree(t, src, 5, 4)
			testutil.WriteTree(t, src, map[string]string{"odd": "a file"})
			publish(t, master, src, 3)
			snap := filepath.Join(master, "snapshots", "1")
			os.Chmod(snap, 0o755)
			os.Chmod(filepath.Join(snap, "d00"), 0o755)
			tc.tamper(t, snap)
			port := testutil.StartRsyncd(t, map[string]string{"master": master})
			code, _, errs := runMirror(t, "--upstream", fmt.Sprintf("rsync://127.0.0.1:%d/master", port), "--root", mir)
			if code != cliapp.ExitCorrupt || !strings.Contains(errs, "does not match manifest") {
				t.Fatalf("exit %d, want %d: %s", code, cliapp.ExitCorrupt, errs)
			}
			if n, _ := export.New(fsys.OS(), mir).Current(); n != 0 {
				t.Fatalf("mirror serves %d after an unlisted entry", n)
			}
		})
	}
}

// writeSeq sets a classic master's counter.
func writeSeq(tb testing.TB, dir, name string, n uint64) {
	tb.Helper()
	if err := os.MkdirAll(filepath.Join(dir, "seq"), 0o755); err != nil {
		tb.Fatal(err)
	}
	if err := seqfile.Write(fsys.OS(), filepath.Join(dir, "seq", name), n); err != nil {
		tb.Fatal(err)
	}
}

// treeHook wraps an upstream's FetchTree.
type treeHook struct {
	*rsync.Upstream
	around func(call int, fetch func() error) error
	calls  int
}

func (h *treeHook) FetchTree(ctx context.Context, dir, linkDest string) error {
	h.calls++
	return h.around(h.calls, func() error { return h.Upstream.FetchTree(ctx, dir, linkDest) })
}

func TestClassicThroughDaemon(t *testing.T) {
	rsyncBin, runs := countingRsync(t)
	tmp := t.TempDir()
	master, mir := filepath.Join(tmp, "master"), filepath.Join(tmp, "mirror")
	paths := testutil.GenTree(t, master, 40, 5)
	testutil.WriteTree(t, master, map[string]string{"link": "->d00"})
	testutil.GitRepo(t, filepath.Join(master, "repo.git"), 3)
	writeSeq(t, master, "begin", 1)
	writeSeq(t, master, "end", 1)
	port := testutil.StartRsyncd(t, map[string]string{"master": master})
	up := fmt.Sprintf("rsync://127.0.0.1:%d/master", port)
	args := []string{"--classic", "--upstream", up, "--root", mir, "--rsync", rsyncBin, "--json", "--backoff", "10ms"}

	code, out, errs := runMirror(t, args...)
	if code != 0 {
		t.Fatalf("first classic sync: exit %d\n%s%s", code, out, errs)
	}
	if n := verifyServed(t, mir); n != 1 {
		t.Fatalf("serves %d", n)
	}
	if _, err := os.Stat(filepath.Join(mir, "current", "seq")); err == nil {
		t.Fatal("the upstream's seq/ was copied into the snapshot")
	}
	testutil.GitFsck(t, filepath.Join(mir, "current", "repo.git"))
	sameTree(t, master, filepath.Join(mir, "current"))

	before := runs()
	if code, out, errs := runMirror(t, args...); code != 0 || strings.Contains(out, `"changed": true`) {
		t.Fatalf("no-op classic poll: exit %d\n%s%s", code, out, errs)
	}
	if got := runs() - before; got != 1 {
		t.Fatalf("no-op classic poll ran rsync %d times, want 1", got)
	}

	// An update in place, bracketed by the counters.
	writeSeq(t, master, "begin", 2)
	testutil.Touch(t, master, paths[5], "five, updated in place")
	gitCommit(t, filepath.Join(master, "repo.git"), "in place")
	writeSeq(t, master, "end", 2)
	code, out, errs = runMirror(t, args...)
	if code != 0 {
		t.Fatalf("classic sync after update: exit %d\n%s%s", code, out, errs)
	}
	if n := verifyServed(t, mir); n != 2 {
		t.Fatalf("serves %d, want 2", n)
	}
	sameTree(t, master, filepath.Join(mir, "current"))
	same := filepath.Join("d01", "s00", "f00001.dat")
	if inode(t, filepath.Join(mir, "snapshots/1", same)) != inode(t, filepath.Join(mir, "snapshots/2", same)) {
		t.Error("unchanged file not hard-linked (--link-dest)")
	}
	testutil.GitFsck(t, filepath.Join(mir, "current", "repo.git"))

	t.Run("begin moves mid-copy", func(t *testing.T) {
		writeSeq(t, master, "begin", 3)
		testutil.Touch(t, master, paths[8], "eight")
		writeSeq(t, master, "end", 3)
		u := openRsync(t, up)
		h := &treeHook{Upstream: u, around: func(call int, fetch func() error) error {
			if call == 1 { // the master's writer starts an update during our copy
				writeSeq(t, master, "begin", 4)
				testutil.Touch(t, master, paths[9], "nine, mid-copy")
				err := fetch()
				writeSeq(t, master, "end", 4)
				return err
			}
			return fetch()
		}}
		res, err := mirror.SyncClassic(context.Background(), export.New(fsys.OS(), mir), h, mirrorOpts(func(o *mirror.Options) { o.Backoff = 10 * time.Millisecond }))
		if err != nil {
			t.Fatal(err)
		}
		if res.Snapshot != 3 || res.Attempts != 2 || h.calls != 2 {
			t.Fatalf("result %+v after %d copies; want snapshot 3 after one retry", res, h.calls)
		}
		sameTree(t, master, filepath.Join(mir, "current"))
	})

	t.Run("busy master gives up with exit 5", func(t *testing.T) {
		writeSeq(t, master, "begin", 5) // a writer that never finishes
		code, out, errs := runMirror(t, "--classic", "--upstream", up, "--root", mir, "--retries", "1", "--backoff", "10ms")
		if code != cliapp.ExitBusy {
			t.Fatalf("exit %d, want %d\n%s%s", code, cliapp.ExitBusy, out, errs)
		}
		if n := verifyServed(t, mir); n != 3 {
			t.Fatalf("serves %d", n)
		}
	})
}

// sameTree checks that the snapshot dir holds what the master tree holds
// (but its seq/).
func sameTree(tb testing.TB, master, snap string) {
	tb.Helper()
	ctx := context.Background()
	a, err := tree.Walk(ctx, fsys.OS(), master, func(rel string) bool { return rel == "seq" })
	if err != nil {
		tb.Fatal(err)
	}
	m := &manifest.Manifest{Snapshot: 1, Entries: a}
	for i := range m.Entries {
		if m.Entries[i].Type == manifest.File {
			h, _, err := tree.HashFile(fsys.OS(), filepath.Join(master, m.Entries[i].Path), manifest.Current)
			if err != nil {
				tb.Fatal(err)
			}
			m.Entries[i].SetSum(h)
		}
	}
	probs, err := tree.Verify(ctx, fsys.OS(), snap, m, 2)
	if err != nil || len(probs) > 0 {
		tb.Fatalf("%s differs from %s: %v %v", snap, master, err, probs)
	}
}

// gitCommit adds a commit to the repository at dir.
func gitCommit(tb testing.TB, dir, msg string) {
	tb.Helper()
	git := testutil.RequireBinary(tb, "git")
	if err := os.WriteFile(filepath.Join(dir, "more.txt"), []byte(msg+"\n"), 0o644); err != nil {
		tb.Fatal(err)
	}
	for _, args := range [][]string{{"add", "-A"}, {"commit", "-q", "-m", msg}} {
		cmd := exec.Command(git, args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.org",
			"GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.org", "GIT_CONFIG_NOSYSTEM=1", "HOME="+dir)
		if out, err := cmd.CombinedOutput(); err != nil {
			tb.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
}

// TestShellTransport drives the host:path form through rsync's -e with a
// stand-in for ssh that runs the remote command locally.
func TestShellTransport(t *testing.T) {
	testutil.RequireBinary(t, "rsync")
	tmp := t.TempDir()
	src, master, mir := filepath.Join(tmp, "src"), filepath.Join(tmp, "master"), filepath.Join(tmp, "mirror")
	testutil.GenTree(t, src, 12, 7)
	publish(t, master, src, 3)
	fakeSSH := testutil.FakeSSH(t)
	code, out, errs := runMirror(t, "--upstream", "mirror@localhost:"+master, "--rsh", fakeSSH, "--root", mir)
	if code != 0 || strings.TrimSpace(out) != "1" {
		t.Fatalf("host:path sync: exit %d %s %s", code, out, errs)
	}
	verifyServed(t, mir)
	code, out, errs = runMirror(t, "--upstream", "localhost:"+master, "--rsh", fakeSSH, "--root", mir, "--json")
	if code != 0 || !strings.Contains(out, `"changed": false`) {
		t.Fatalf("host:path no-op: exit %d %s %s", code, out, errs)
	}
}

func TestRsyncUsageErrorQuoted(t *testing.T) {
	port := testutil.StartRsyncd(t, map[string]string{"m": t.TempDir()})
	code, _, errs := runMirror(t, "--upstream", fmt.Sprintf("rsync://127.0.0.1:%d/m", port), "--root", filepath.Join(t.TempDir(), "mirror"),
		"--rsync-opt=--no-such-option")
	if code != cliapp.ExitFailure || !strings.Contains(errs, "configuration problem") || !strings.Contains(errs, "no-such-option") {
		t.Fatalf("exit %d: %s", code, errs)
	}
}

func TestPollCaching(t *testing.T) {
	rsyncBin, runs := countingRsync(t)
	tmp := t.TempDir()
	src, master := filepath.Join(tmp, "src"), filepath.Join(tmp, "master")
	testutil.GenTree(t, src, 3, 8)
	publish(t, master, src, 3)
	port := testutil.StartRsyncd(t, map[string]string{"master": master})
	ctx := context.Background()
	tests := []struct {
		name  string
		calls []string
		runs  int
	}{
		{name: "end then current", calls: []string{"end", "current"}, runs: 1},
		{name: "end then begin", calls: []string{"end", "begin", "current"}, runs: 1},
		{name: "end always fresh", calls: []string{"end", "end"}, runs: 2},
		{name: "current twice", calls: []string{"end", "current", "current"}, runs: 2},
		{name: "copy in between", calls: []string{"end", "manifest", "begin", "current"}, runs: 3},
		{name: "check after a copy, then the next poll", calls: []string{"manifest", "begin", "end", "current"}, runs: 2},
		{name: "end after a remembered begin", calls: []string{"end", "begin", "end"}, runs: 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			u := openRsyncWith(t, fmt.Sprintf("rsync://127.0.0.1:%d/master", port), transport.Options{Rsync: transport.RsyncOptions{Binary: rsyncBin}})
			before := runs()
			for _, c := range tc.calls {
				var err error
				switch c {
				case "end", "begin":
					var n uint64
					if n, err = u.Seq(ctx, c); err == nil && n != 1 {
						err = fmt.Errorf("seq/%s = %d", c, n)
					}
				case "current":
					var n uint64
					if n, _, err = u.Current(ctx); err == nil && n != 1 {
						err = fmt.Errorf("current = %d", n)
					}
				case "manifest":
					err = u.FetchManifest(ctx, 1, filepath.Join(t.TempDir(), "m"))
				}
				if err != nil {
					t.Fatalf("%s: %v", c, err)
				}
			}
			if got := runs() - before; got != tc.runs {
				t.Fatalf("%v ran rsync %d times, want %d", tc.calls, got, tc.runs)
			}
		})
	}
}
