package reliab

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/seqmirror/seqmirror/testutil"
)

// maxRSS is the peak resident set the memory tests allow a run.
const maxRSS = 100 << 20

// runRSS runs binary path to completion (it must succeed) and returns its
// peak resident set: its own or any of its children's (rsync), whichever
// is largest (getrusage's ru_maxrss), and how long it took.
func runRSS(tb testing.TB, path string, args ...string) (int64, time.Duration) {
	tb.Helper()
	var errb bytes.Buffer
	cmd := exec.Command(path, args...)
	cmd.Stderr = &errb
	t0 := time.Now()
	if err := cmd.Run(); err != nil {
		tb.Fatalf("%s %v: %v\n%s", path, args, err, errb.String())
	}
	return cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss << 10, time.Since(t0)
}

// TestMemoryManyDirs runs mirror-sync over a manifest of many directory
// records (testutil.ManyDirsUpstream: 20k, or 2M with SEQMIRROR_LONG) on
// every path: a first copy and an incremental sync, over the local and the
// rsync transport. Each run's peak RSS must stay under maxRSS.
// SEQMIRROR_MEM_MIRROR_SYNC names another mirror-sync binary to measure
// (e.g. an older build, for docs/performance.md).
func TestMemoryManyDirs(t *testing.T) {
	dirs := pick(20_000, 2_000_000)
	base := fastDir(t)
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
			rss, took := runRSS(t, mirrorSync, "--upstream", tr.addr, "--root", mir, "--keep", "1", "--min-age", "0")
			t.Logf("%s, %s, %d directory records: peak RSS %.0f MiB, %.1f s", tr.name, step, dirs, float64(rss)/(1<<20), took.Seconds())
			if rss > maxRSS {
				over = append(over, fmt.Sprintf("%s %s: %d MiB", tr.name, step, rss>>20))
			}
		}
		chmodAll(mir)
		os.RemoveAll(mir)
	}
	if len(over) > 0 {
		t.Fatalf("peak RSS over %d MiB: %v", maxRSS>>20, over)
	}
}
