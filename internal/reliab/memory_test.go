package reliab

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/seqmirror/seqmirror/testutil"
)

// maxRSS is the peak resident set the memory tests allow a run.
const maxRSS = 100 << 20

// runRSS runs binary path to completion (it must succeed) and returns its
// own peak resident set (VmHWM, read while it runs), the peak of it and its
// children (rsync; getrusage's ru_maxrss, the largest of them), and how
// long it took.
func runRSS(tb testing.TB, path string, args ...string) (own, all int64, took time.Duration) {
	tb.Helper()
	var errb bytes.Buffer
	cmd := exec.Command(path, args...)
	cmd.Stderr = &errb
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	status := fmt.Sprintf("/proc/%d/status", cmd.Process.Pid)
	for {
		if b, err := os.ReadFile(status); err == nil {
			own = max(own, vmHWM(b))
		}
		select {
		case err := <-done:
			if err != nil {
				tb.Fatalf("%s %v: %v\n%s", path, args, err, errb.String())
			}
			all = cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss << 10
			return own, all, time.Since(t0)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// vmHWM is the VmHWM line of a /proc/PID/status, in bytes (0 if absent).
func vmHWM(status []byte) int64 {
	for _, l := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// TestMemoryManyDirs runs mirror-sync over a manifest of many directory
// records (testutil.ManyDirsUpstream: 20k, or 2M with SEQMIRROR_LONG) on
// every path: a first copy and an incremental sync, over the local and the
// rsync transport, then `mirror-sync verify` and `publish verify` of the
// local mirror. Each run's peak RSS, its own and its rsync children's,
// must stay under maxRSS. SEQMIRROR_MEM_MIRROR_SYNC and
// SEQMIRROR_MEM_PUBLISH name other binaries to measure (e.g. an older
// build, for docs/performance.md); SEQMIRROR_MEM_DIRS another number of
// records; SEQMIRROR_MEM_DIR a directory to work in (the long run makes up
// to 4M directories, more inodes than a tmpfs of a few GB has, so by
// default it works on the disk below $TMPDIR).
func TestMemoryManyDirs(t *testing.T) {
	dirs := pick(20_000, 2_000_000)
	if d := os.Getenv("SEQMIRROR_MEM_DIRS"); d != "" {
		var err error
		if dirs, err = strconv.Atoi(d); err != nil {
			t.Fatalf("SEQMIRROR_MEM_DIRS: %v", err)
		}
	}
	base := memDir(t)
	up := filepath.Join(base, "up")
	n := uint64(1)
	testutil.ManyDirsUpstream(t, up, n, dirs, "snapshot 1")
	url := serveRoot(t, up)
	mirrorSync := bin("mirror-sync")
	if b := os.Getenv("SEQMIRROR_MEM_MIRROR_SYNC"); b != "" {
		mirrorSync = b
	}
	var over []string
	for _, tr := range []struct{ name, addr string }{{"local", up}, {"rsync", url}} {
		mir := filepath.Join(base, "mirror-"+tr.name)
		for _, step := range []string{"first copy", "incremental"} {
			if step == "incremental" {
				n++
				testutil.ManyDirsUpstream(t, up, n, dirs, fmt.Sprint("snapshot ", n))
			}
			own, all, took := runRSS(t, mirrorSync, "--upstream", tr.addr, "--root", mir, "--keep", "1", "--min-age", "0")
			t.Logf("%s, %s, %d directory records: peak RSS %.0f MiB (with rsync: %.0f MiB), %.1f s",
				tr.name, step, dirs, float64(own)/(1<<20), float64(all)/(1<<20), took.Seconds())
			if all > maxRSS {
				over = append(over, fmt.Sprintf("%s %s: %d MiB", tr.name, step, all>>20))
			}
		}
		if tr.name == "local" {
			over = append(over, verifyRSS(t, mir, dirs)...)
		}
		testutil.MakeWritable(mir)
		os.RemoveAll(mir)
	}
	if len(over) > 0 {
		t.Fatalf("peak RSS over %d MiB: %v", maxRSS>>20, over)
	}
}

// verifyRSS runs `mirror-sync verify` and `publish verify` of the mirror
// root mir (its served snapshot of dirs directory records) and returns
// those whose peak RSS is over maxRSS.
func verifyRSS(tb testing.TB, mir string, dirs int) (over []string) {
	tb.Helper()
	for _, v := range []struct{ name, env string }{{"mirror-sync", "SEQMIRROR_MEM_MIRROR_SYNC"}, {"publish", "SEQMIRROR_MEM_PUBLISH"}} {
		path := bin(v.name)
		if b := os.Getenv(v.env); b != "" {
			path = b
		}
		own, _, took := runRSS(tb, path, "verify", "--root", mir)
		tb.Logf("%s verify, %d directory records: peak RSS %.0f MiB, %.1f s", v.name, dirs, float64(own)/(1<<20), took.Seconds())
		if own > maxRSS {
			over = append(over, fmt.Sprintf("%s verify: %d MiB", v.name, own>>20))
		}
	}
	return over
}

// perEntryRSS is what TestMemoryPublish's short run lets publish's peak
// RSS grow by for each entry of its tree beyond those of a tree a fifth
// its size: holding the listing costs ~300 bytes an entry, streaming it
// nothing (measured: 1-6 MiB more for 50k files than for 10k, at any
// size what the runtime's heap goal and the binary's pages vary by).
const perEntryRSS = 200

// publishSteps are the publishes TestMemoryPublish measures, in order.
var publishSteps = []struct {
	name string
	pct  float64 // of the files changed before
	args []string
}{
	{name: "initial"},
	{name: "1% changed", pct: 1},
	{name: "forced", args: []string{"--force"}},
}

// TestMemoryPublish runs publish on a tree of many small files
// (testutil.ManyFilesTree: 50k files, or 1M with SEQMIRROR_LONG): the
// first publish, a publish after 1% of the files changed, and a forced
// republish (publishSteps). Publish streams its listing, so its peak RSS
// does not grow with the tree: the short run allows each step perEntryRSS
// bytes for each entry beyond those of a tree a fifth the size (the same
// step's peak there is its floor), the long run maxRSS.
// SEQMIRROR_MEM_PUBLISH names another binary to measure,
// SEQMIRROR_MEM_FILES another number of files and SEQMIRROR_MEM_DIR a
// directory to work in.
func TestMemoryPublish(t *testing.T) {
	files := pick(50_000, 1_000_000)
	if d := os.Getenv("SEQMIRROR_MEM_FILES"); d != "" {
		var err error
		if files, err = strconv.Atoi(d); err != nil {
			t.Fatalf("SEQMIRROR_MEM_FILES: %v", err)
		}
	}
	base := memDir(t)
	limits := make([]int64, len(publishSteps))
	for i := range limits {
		limits[i] = maxRSS
	}
	if !long() {
		floors := publishPeaks(t, filepath.Join(base, "small"), files/5)
		entries := (files - files/5) * 11 / 10 // the files and their directories
		for i, f := range floors {
			limits[i] = f + int64(entries)*perEntryRSS
		}
	}
	var over []string
	for i, peak := range publishPeaks(t, filepath.Join(base, "big"), files) {
		if peak > limits[i] {
			over = append(over, fmt.Sprintf("%s: %.1f MiB (limit %.1f)", publishSteps[i].name, float64(peak)/(1<<20), float64(limits[i])/(1<<20)))
		}
	}
	if len(over) > 0 {
		t.Fatalf("publish's peak RSS for %d files: %v", files, over)
	}
}

// publishPeaks makes a tree of files files below dir, runs publishSteps
// on it and returns the peak RSS of each; it removes the tree after.
func publishPeaks(tb testing.TB, dir string, files int) []int64 {
	tb.Helper()
	publish := bin("publish")
	if b := os.Getenv("SEQMIRROR_MEM_PUBLISH"); b != "" {
		publish = b
	}
	src, root := filepath.Join(dir, "src"), filepath.Join(dir, "root")
	testutil.ManyFilesTree(tb, src, files, 0)
	var peaks []int64
	for _, step := range publishSteps {
		if step.pct > 0 {
			testutil.ManyFilesTree(tb, src, files, step.pct)
		}
		args := append([]string{"--root", root, "--source", src, "--keep", "2", "--min-age", "0", "--quiet"}, step.args...)
		_, peak, took := runRSS(tb, publish, args...)
		tb.Logf("publish %s, %d files: peak RSS %.1f MiB, %.1f s", step.name, files, float64(peak)/(1<<20), took.Seconds())
		peaks = append(peaks, peak)
	}
	testutil.MakeWritable(dir)
	if err := os.RemoveAll(dir); err != nil {
		tb.Fatal(err)
	}
	return peaks
}

// memDir is where a memory test makes its trees: a fast directory, on
// disk below $TMPDIR for the long runs (more inodes than a small tmpfs
// has), or below SEQMIRROR_MEM_DIR.
func memDir(tb testing.TB) string {
	tb.Helper()
	base := testutil.FastDir(tb)
	if long() {
		base = tb.TempDir()
	}
	if d := os.Getenv("SEQMIRROR_MEM_DIR"); d != "" {
		var err error
		if base, err = os.MkdirTemp(d, "seqmirror-mem-"); err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { testutil.MakeWritable(base); os.RemoveAll(base) })
	}
	return base
}
