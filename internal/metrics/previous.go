package metrics

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/seqmirror/seqmirror/internal/fsys"
	"golang.org/x/sys/unix"
)

// maxPrevious bounds the previous file a run reads back: a metrics file of
// one run is a few kilobytes.
const maxPrevious = 1 << 20

// previous is what a metrics file carries from one run to the next.
type previous struct {
	lastSuccess float64            // Unix time; 0: none
	failures    map[string]float64 // by kind
}

// readPrevious reads the values that the metrics file at path carries over
// to a run with labels. A missing, oversized or unparsable file, or one of
// another tool or root, carries nothing.
func readPrevious(fs fsys.FS, path string, labels prometheus.Labels) previous {
	prev := previous{failures: map[string]float64{}}
	fi, err := fsys.Lstat(fs, path)
	if err != nil || !fi.Mode().IsRegular() || fi.Size() > maxPrevious {
		return prev
	}
	f, err := fs.Open(path)
	if err != nil {
		return prev
	}
	defer f.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := parser.TextToMetricFamilies(f)
	if err != nil {
		return prev
	}
	if mf := mfs[LastSuccess]; mf != nil && mf.GetType() == dto.MetricType_GAUGE {
		for _, m := range mf.GetMetric() {
			if v := m.GetGauge().GetValue(); ours(m, labels) && valid(v) {
				prev.lastSuccess = v
			}
		}
	}
	if mf := mfs[Failures]; mf != nil && mf.GetType() == dto.MetricType_COUNTER {
		for _, m := range mf.GetMetric() {
			kind := labelOf(m, "kind")
			if v := m.GetCounter().GetValue(); ours(m, labels) && kind != "" && valid(v) {
				prev.failures[kind] = v
			}
		}
	}
	return prev
}

// valid reports whether v can be carried over: a finite value, not
// negative.
func valid(v float64) bool { return v >= 0 && !math.IsInf(v, 0) && !math.IsNaN(v) }

// ours reports whether m has labels' values.
func ours(m *dto.Metric, labels prometheus.Labels) bool {
	for name, v := range labels {
		if labelOf(m, name) != v {
			return false
		}
	}
	return true
}

// labelOf is the value of m's label name ("" if it has none).
func labelOf(m *dto.Metric, name string) string {
	for _, lp := range m.GetLabel() {
		if lp.GetName() == name {
			return lp.GetValue()
		}
	}
	return ""
}

// lockWait bounds how long lockDir waits for another writer: a write
// holds the lock for milliseconds, so one held longer is not a writer of
// this package and is not waited for.
const lockWait = 10 * time.Second

// lockDir takes an exclusive flock(2) on the directory of path, where the
// temp file is made, and returns its release: the read of the previous file
// and the rename of the new one are then one step for every writer of that
// directory (a run that found its root locked and the run holding the lock
// finish together under cron). Best effort: without the real filesystem,
// if the directory cannot be opened (the write then fails and says why) or
// after lockWait, it goes on without the lock.
func lockDir(fs fsys.FS, path string) func() {
	if !fsys.IsOS(fs) {
		return func() {}
	}
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return func() {}
	}
	for deadline := time.Now().Add(lockWait); ; time.Sleep(10 * time.Millisecond) {
		err = unix.Flock(int(d.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil || (err != unix.EWOULDBLOCK && err != unix.EINTR) || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		d.Close()
		return func() {}
	}
	return func() { d.Close() } // closing the only descriptor releases the lock
}

// removeStaleTemps removes the temp files of path that writers killed
// mid-write left (fsys.WriteStream names them after their pid, so a later
// run does not reuse the name). The caller holds lockDir: no live writer
// of path is between its create and its rename.
func removeStaleTemps(fs fsys.FS, path string) {
	dir, prefix := filepath.Dir(path), "."+filepath.Base(path)+fsys.TempMarker
	d, err := fs.Open(dir)
	if err != nil {
		return
	}
	names, _ := d.Readdirnames(-1)
	d.Close()
	for _, n := range names {
		if strings.HasPrefix(n, prefix) {
			_ = fs.Remove(filepath.Join(dir, n))
		}
	}
}
