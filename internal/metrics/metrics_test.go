package metrics_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/seqmirror/seqmirror/internal/export"
	"github.com/seqmirror/seqmirror/internal/fsys"
	"github.com/seqmirror/seqmirror/internal/metrics"
	"github.com/seqmirror/seqmirror/testutil"
	"github.com/seqmirror/seqmirror/testutil/faultfs"
)

var kinds = []string{"failure", "usage", "locked", "busy", "refused", "corrupt", "interrupted"}

// run is a run of publish that ended at t with code (kind its name).
func run(t time.Time, code int, kind string) metrics.Run {
	return metrics.Run{Tool: "publish", Start: t.Add(-1500 * time.Millisecond), End: t, ExitCode: code, Kind: kind, Kinds: kinds}
}

func write(tb testing.TB, path string, r metrics.Run) testutil.Metrics {
	tb.Helper()
	if err := metrics.WriteFile(fsys.OS(), path, r); err != nil {
		tb.Fatal(err)
	}
	return testutil.ReadMetrics(tb, path)
}

func want(tb testing.TB, m testutil.Metrics, v float64, name string, labels ...string) {
	tb.Helper()
	got, ok := m.Get(name, append([]string{"tool", "publish", "root", ""}, labels...)...)
	if !ok || got != v {
		tb.Errorf("%s%v = %v (present %v), want %v", name, labels, got, ok, v)
	}
}

// The last success time and the failure counters carry over from the file
// a run replaces; the rest is the last run's.
func TestWriteFileCarriesOver(t *testing.T) {
	path := filepath.Join(t.TempDir(), "seqmirror.prom")
	t0 := time.Unix(1_800_000_000, 0)
	steps := []struct {
		name        string
		run         metrics.Run
		lastSuccess time.Time
		failures    map[string]float64 // the counters not 0
	}{
		{name: "first run succeeds", run: run(t0, 0, ""), lastSuccess: t0},
		{name: "busy", run: run(t0.Add(time.Minute), 5, "busy"), lastSuccess: t0, failures: map[string]float64{"busy": 1}},
		{name: "busy again", run: run(t0.Add(2*time.Minute), 5, "busy"), lastSuccess: t0, failures: map[string]float64{"busy": 2}},
		{name: "locked", run: run(t0.Add(3*time.Minute), 4, "locked"), lastSuccess: t0, failures: map[string]float64{"busy": 2, "locked": 1}},
		{name: "success keeps the counters", run: run(t0.Add(4*time.Minute), 0, ""), lastSuccess: t0.Add(4 * time.Minute), failures: map[string]float64{"busy": 2, "locked": 1}},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			st.run.Files, st.run.Bytes = metrics.Files{Linked: 3, Copied: 2}, 1234
			m := write(t, path, st.run)
			want(t, m, float64(st.run.End.Unix()), metrics.LastRun)
			want(t, m, float64(st.lastSuccess.Unix()), metrics.LastSuccess)
			want(t, m, 1.5, metrics.Duration)
			want(t, m, float64(st.run.ExitCode), metrics.ExitCode)
			want(t, m, map[bool]float64{true: 1}[st.run.ExitCode == 0], metrics.Success)
			want(t, m, 3, metrics.FilesName, "how", "linked")
			want(t, m, 2, metrics.FilesName, "how", "copied")
			want(t, m, 0, metrics.FilesName, "how", "fetched")
			want(t, m, 1234, metrics.BytesTransferred)
			for _, k := range kinds {
				want(t, m, st.failures[k], metrics.Failures, "kind", k)
			}
			if _, ok := m.Get(metrics.Served, "tool", "publish", "root", ""); ok {
				t.Errorf("a run without a root reports a served snapshot")
			}
		})
	}
	assertTypes(t, path, map[string]dto.MetricType{metrics.Failures: dto.MetricType_COUNTER, metrics.LastSuccess: dto.MetricType_GAUGE, metrics.FilesName: dto.MetricType_GAUGE})
}

// A previous file that is missing, not a metrics file, another tool's or
// nonsense carries nothing over: the counters restart (Prometheus sees a
// counter reset), the last success is unknown (0).
func TestWriteFileBadPrevious(t *testing.T) {
	tests := []struct {
		name string
		prev string // "": no file
	}{
		{name: "missing"},
		{name: "garbage", prev: "this is { not metrics\n"},
		{name: "half a file", prev: "# TYPE seqmirror_failures_total counter\nseqmirror_failures_total{kind=\"busy\",tool=\"publish\"} 4\nseqmirror_last_success_timestamp_seco"},
		{name: "another tool's", prev: "seqmirror_failures_total{kind=\"busy\",tool=\"mirror-sync\"} 4\nseqmirror_last_success_timestamp_seconds{tool=\"mirror-sync\"} 1.7e9\n"},
		{name: "another root's", prev: "seqmirror_failures_total{kind=\"busy\",root=\"/srv/other\",tool=\"publish\"} 4\nseqmirror_last_success_timestamp_seconds{root=\"/srv/other\",tool=\"publish\"} 1.7e9\n"},
		{name: "negative and NaN", prev: "# TYPE seqmirror_failures_total counter\nseqmirror_failures_total{kind=\"busy\",tool=\"publish\"} -4\nseqmirror_last_success_timestamp_seconds{tool=\"publish\"} NaN\n"},
		{name: "too large", prev: "seqmirror_failures_total{kind=\"busy\",tool=\"publish\"} 4\n" + strings.Repeat("# padding\n", 200_000)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "m.prom")
			if tt.prev != "" {
				if err := os.WriteFile(path, []byte(tt.prev), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			m := write(t, path, run(time.Unix(1_800_000_000, 0), 5, "busy"))
			want(t, m, 0, metrics.LastSuccess)
			want(t, m, 1, metrics.Failures, "kind", "busy")
			want(t, m, 0, metrics.Failures, "kind", "corrupt")
		})
	}
}

// The root's state after the run: what it serves, its counters, torn, and
// the lag from a mirror's poll record.
func TestWriteFileRoot(t *testing.T) {
	now := time.Now().Truncate(time.Second)
	tests := []struct {
		name    string
		prepare func(tb testing.TB, r *export.Root)
		want    map[string]float64 // absent: -1
	}{
		{name: "a master", prepare: func(testing.TB, *export.Root) {},
			want: map[string]float64{metrics.Served: 2, metrics.SeqBegin: 2, metrics.SeqEnd: 2, metrics.Torn: 0, metrics.LagSnapshots: -1, metrics.LagSeconds: -1}},
		{name: "a level mirror", prepare: func(tb testing.TB, r *export.Root) { poll(tb, r, 2, now.Add(-time.Minute), 2) },
			want: map[string]float64{metrics.Served: 2, metrics.LagSnapshots: 0, metrics.LagSeconds: 0, metrics.UpstreamChecked: float64(now.Add(-time.Minute).Unix())}},
		{name: "a mirror behind", prepare: func(tb testing.TB, r *export.Root) {
			poll(tb, r, 5, now.Add(-time.Hour), 2) // first found behind an hour ago
			poll(tb, r, 5, now.Add(-time.Minute), 2)
		}, want: map[string]float64{metrics.Served: 2, metrics.LagSnapshots: 3, metrics.LagSeconds: 3600, metrics.UpstreamChecked: float64(now.Add(-time.Minute).Unix())}},
		{name: "a poll from before the root changed", prepare: func(tb testing.TB, r *export.Root) { poll(tb, r, 5, now, 1) },
			want: map[string]float64{metrics.Served: 2, metrics.LagSnapshots: -1, metrics.LagSeconds: -1}},
		{name: "torn", prepare: func(tb testing.TB, r *export.Root) {
			if err := r.FS.Remove(r.ManifestPath(2)); err != nil {
				tb.Fatal(err)
			}
		}, want: map[string]float64{metrics.Torn: 1, metrics.Served: 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			root := filepath.Join(dir, "root")
			testutil.SnapshotRoot(t, root, 2, map[string]string{"a": "x"})
			r := export.New(fsys.OS(), root)
			tt.prepare(t, r)
			rn := run(now, 0, "")
			rn.Root = r
			m := write(t, filepath.Join(dir, "m.prom"), rn)
			for name, v := range tt.want {
				got, ok := m.Get(name, "tool", "publish", "root", root)
				if v == -1 && ok || v != -1 && (!ok || got != v) {
					t.Errorf("%s = %v (present %v), want %v (-1: absent)", name, got, ok, v)
				}
			}
		})
	}
}

func poll(tb testing.TB, r *export.Root, up uint64, at time.Time, served uint64) {
	tb.Helper()
	if err := r.RecordPoll("rsync://up/pub", up, at, served); err != nil {
		tb.Fatal(err)
	}
}

// A write that fails at any step leaves the previous file whole and no
// temp file; a temp file left by a writer killed mid-write is ignored by
// readers (it is not *.prom) and removed by the next write.
func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "m.prom")
	t0 := time.Unix(1_800_000_000, 0)
	write(t, path, run(t0, 0, ""))
	count := faultfs.New(fsys.OS())
	if err := metrics.WriteFile(count, path, run(t0, 0, "")); err != nil {
		t.Fatal(err)
	}
	n := count.Count()
	write(t, path, run(t0, 0, ""))
	for k := 1; k <= n; k++ {
		ffs := faultfs.New(fsys.OS())
		ffs.FailAt(k, faultfs.Mutating, errors.New("injected"))
		err := metrics.WriteFile(ffs, path, run(t0.Add(time.Hour), 7, "corrupt"))
		// Whole, old or new: ReadMetrics fails the test on a partial file.
		got, _ := testutil.ReadMetrics(t, path).Get(metrics.LastRun, "tool", "publish", "root", "")
		switch {
		case got != float64(t0.Unix()) && got != float64(t0.Add(time.Hour).Unix()):
			t.Errorf("op %d (%v): last run %v, neither the old file's nor the new one's", k, ffs.Injected(), got)
		case err == nil && got != float64(t0.Add(time.Hour).Unix()):
			t.Errorf("op %d (%v): no error, yet the old file", k, ffs.Injected())
		}
		write(t, path, run(t0, 0, ""))
		assertOnlyFile(t, dir, "m.prom")
	}

	// What a writer killed between its create and its rename leaves.
	stale := filepath.Join(dir, ".m.prom"+fsys.TempMarker+"999999")
	if err := os.WriteFile(stale, []byte("seqmirror_last_run_timestamp_se"), 0o644); err != nil {
		t.Fatal(err)
	}
	testutil.ReadMetrics(t, path) // the file itself is whole
	write(t, path, run(t0, 0, ""))
	assertOnlyFile(t, dir, "m.prom")
}

// A reader polling the file while runs rewrite it always reads a whole
// file: every metric there, parsable.
func TestWriteFileReaderNeverSeesPart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.prom")
	write(t, path, run(time.Unix(1_800_000_000, 0), 0, ""))
	var stop atomic.Bool
	var reads atomic.Int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for !stop.Load() {
			b, err := os.ReadFile(path)
			if err != nil {
				t.Errorf("read: %v", err)
				return
			}
			m := testutil.ParseMetrics(t, b)
			if _, ok := m.Get(metrics.Success, "tool", "publish", "root", ""); !ok || !bytes.HasSuffix(b, []byte("\n")) {
				t.Errorf("a partial file:\n%s", b)
				return
			}
			reads.Add(1)
		}
	}()
	for i := range 100 {
		write(t, path, run(time.Unix(1_800_000_000+int64(i), 0), i%2*5, map[int]string{0: "", 1: "busy"}[i%2]))
	}
	stop.Store(true)
	wg.Wait()
	t.Logf("%d reads", reads.Load())
}

func assertOnlyFile(tb testing.TB, dir, name string) {
	tb.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		tb.Fatal(err)
	}
	if len(ents) != 1 || ents[0].Name() != name {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		tb.Errorf("%s holds %v, want only %s", dir, names, name)
	}
}

func assertTypes(tb testing.TB, path string, types map[string]dto.MetricType) {
	tb.Helper()
	f, err := os.Open(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(f)
	if err != nil {
		tb.Fatal(err)
	}
	for name, typ := range types {
		if mf := mfs[name]; mf == nil || mf.GetType() != typ {
			tb.Errorf("%s: type %v, want %v", name, mf.GetType(), typ)
		}
	}
}

// Runs that end together (under cron: one that found the root locked and
// the one holding the lock) lose no failure: writers of one directory take
// turns.
func TestWriteFileConcurrentWriters(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.prom")
	const n = 20
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := metrics.WriteFile(fsys.OS(), path, run(time.Unix(1_800_000_000+int64(i), 0), 4, "locked")); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	want(t, testutil.ReadMetrics(t, path), n, metrics.Failures, "kind", "locked")
}

// docs/operating.md's section 10 lists every metric a mirror's file holds,
// with its type, and its alert rules use no other name.
func TestMetricsDoc(t *testing.T) {
	b, err := os.ReadFile(testutil.RepoFile("docs/operating.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, sec, ok := strings.Cut(string(b), "## 10. Metrics")
	sec, _, ok2 := strings.Cut(sec, "\n## ")
	if !ok || !ok2 {
		t.Fatal("docs/operating.md has no section 10. Metrics")
	}
	name := regexp.MustCompile(`seqmirror_[a-z_]+`)
	documented := map[string]string{} // name -> type
	for _, l := range strings.Split(sec, "\n") {
		cells := strings.Split(l, "|")
		if len(cells) > 3 && strings.HasPrefix(strings.TrimSpace(cells[1]), "`seqmirror_") {
			for _, n := range name.FindAllString(cells[1], -1) {
				documented[n] = strings.TrimSpace(cells[2])
			}
		}
	}

	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	testutil.SnapshotRoot(t, root, 2, map[string]string{"a": "x"})
	r := export.New(fsys.OS(), root)
	poll(t, r, 3, time.Now(), 2)
	rn := run(time.Now(), 0, "")
	rn.Root = r
	path := filepath.Join(dir, "m.prom")
	write(t, path, rn)
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(f)
	if err != nil {
		t.Fatal(err)
	}
	for n, mf := range mfs {
		if typ := strings.ToLower(mf.GetType().String()); documented[n] != typ {
			t.Errorf("%s (%s) is documented as %q", n, typ, documented[n])
		}
	}
	for _, n := range name.FindAllString(sec, -1) {
		if mfs[n] == nil {
			t.Errorf("the section names %s, which no file holds", n)
		}
	}
}
