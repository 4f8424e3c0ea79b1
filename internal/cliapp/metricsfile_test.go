package cliapp_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/seqmirror/seqmirror/internal/cliapp"
	"github.com/seqmirror/seqmirror/internal/export"
	"github.com/seqmirror/seqmirror/internal/fsys"
	"github.com/seqmirror/seqmirror/testutil"
)

// metricsStep is one run of a tool with --metrics-file and what its file
// must say after it.
type metricsStep struct {
	name    string
	before  func(tb testing.TB) func() // returns what undoes it (nil: nothing)
	args    []string
	ctx     context.Context // nil: not cancelled
	code    int
	success bool // the run counts as a success: last success moves
	want    map[string]float64
	// failures are the counters, by kind, that are not 0 after the run.
	failures map[string]float64
}

// runMetricsSteps runs steps of app in order, parsing the metrics file at
// path after each with the Prometheus text parser.
func runMetricsSteps(t *testing.T, app, root, path string, steps []metricsStep) {
	lastSuccess := 0.0
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			undo := func() {}
			if st.before != nil {
				if u := st.before(t); u != nil {
					undo = u
				}
			}
			code, stdout, stderr := runCtx(t, st.ctx, app, append(st.args, "--metrics-file", path, "--quiet")...)
			undo()
			if code != st.code {
				t.Fatalf("exit %d, want %d; stderr %q", code, st.code, stderr)
			}
			quiet := code == 0 || code == cliapp.ExitLocked || code == cliapp.ExitBusy // docs/operating.md, Cron and --quiet
			if quiet && stdout+stderr != "" {
				t.Errorf("--quiet with --metrics-file printed %q %q", stdout, stderr)
			}
			m := testutil.ReadMetrics(t, path)
			get := func(name string, labels ...string) float64 {
				t.Helper()
				v, ok := m.Get(name, append([]string{"tool", app, "root", root}, labels...)...)
				if !ok {
					t.Errorf("no %s%v in the file", name, labels)
				}
				return v
			}
			last := get("seqmirror_last_run_timestamp_seconds")
			if st.success {
				lastSuccess = last
			}
			if got := get("seqmirror_last_success_timestamp_seconds"); got != lastSuccess {
				t.Errorf("last success %v, want %v (last run %v)", got, lastSuccess, last)
			}
			want := map[string]float64{"seqmirror_run_exit_code": float64(st.code), "seqmirror_run_success": map[bool]float64{true: 1}[st.code == 0]}
			for k, v := range st.want {
				want[k] = v
			}
			for k, v := range want {
				name, label, _ := strings.Cut(k, ":") // "seqmirror_files:linked"
				labels := []string{}
				if label != "" {
					labels = []string{"how", label}
				}
				switch got := get(name, labels...); {
				case v < 0 && got < 0, v >= 0 && got != v: // v < 0: any value >= 0
					t.Errorf("%s = %v, want %v", k, got, v)
				}
			}
			for _, kind := range []string{"failure", "usage", "locked", "busy", "refused", "corrupt", "refused_up", "interrupted", "verify"} {
				if got := get("seqmirror_failures_total", "kind", kind); got != st.failures[kind] {
					t.Errorf("failures_total{kind=%q} = %v, want %v", kind, got, st.failures[kind])
				}
			}
		})
	}
}

// runCtx is run with a context (nil: background).
func runCtx(tb testing.TB, ctx context.Context, app string, args ...string) (int, string, string) {
	tb.Helper()
	if ctx == nil {
		return run(tb, app, args...)
	}
	var out, errb bytes.Buffer
	build := cliapp.PublishApp
	if app == "mirror-sync" {
		build = cliapp.MirrorApp
	}
	code := cliapp.Run(ctx, build(&out, &errb), append([]string{app}, args...))
	return code, out.String(), errb.String()
}

// metricsTree writes n files of 100 bytes into dir.
func metricsTree(tb testing.TB, dir string, n int) {
	files := map[string]string{}
	for i := range n {
		files[fmt.Sprintf("d/f%02d", i)] = strings.Repeat(fmt.Sprint(i%10), 100)
	}
	testutil.WriteTree(tb, dir, files)
}

// removeFiles removes all but the first keep files of metricsTree.
func removeFiles(tb testing.TB, dir string, n, keep int) {
	for i := keep; i < n; i++ {
		if err := os.Remove(filepath.Join(dir, fmt.Sprintf("d/f%02d", i))); err != nil {
			tb.Fatal(err)
		}
	}
}

// holdLock takes root's lock until the returned func is called.
func holdLock(tb testing.TB, root string) func() {
	lock, err := export.New(fsys.OS(), root).Lock()
	if err != nil {
		tb.Fatal(err)
	}
	return func() {
		if err := lock.Unlock(); err != nil {
			tb.Error(err)
		}
	}
}

func cancelled() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}

// publish --metrics-file writes the file after every run: the first, a
// no-op, a refused mass delete, a held lock, bad flags, an interrupted run
// and the next success; the last success time survives the failures and
// each failure counts under its exit code's name.
func TestMetricsFilePublish(t *testing.T) {
	dir := t.TempDir()
	src, root, path := filepath.Join(dir, "src"), filepath.Join(dir, "root"), filepath.Join(dir, "publish.prom")
	metricsTree(t, src, 10)
	args := []string{"--root", root, "--source", src}
	refusedEtc := map[string]float64{"refused": 1, "locked": 1, "usage": 1, "interrupted": 1}
	runMetricsSteps(t, "publish", root, path, []metricsStep{
		{name: "first", args: args, success: true, want: map[string]float64{
			"seqmirror_files:copied": 10, "seqmirror_files:linked": 0, "seqmirror_files:fetched": 0, "seqmirror_bytes_transferred": 1000,
			"seqmirror_snapshot_served": 1, "seqmirror_seq_begin": 1, "seqmirror_seq_end": 1, "seqmirror_torn": 0, "seqmirror_run_duration_seconds": -1}},
		{name: "no-op", args: args, success: true, want: map[string]float64{
			"seqmirror_files:copied": 0, "seqmirror_files:linked": 0, "seqmirror_bytes_transferred": 0, "seqmirror_snapshot_served": 1}},
		{name: "refused mass delete", before: func(tb testing.TB) func() { removeFiles(tb, src, 10, 2); return nil },
			args: args, code: cliapp.ExitRefused, want: map[string]float64{"seqmirror_snapshot_served": 1, "seqmirror_files:copied": 0},
			failures: map[string]float64{"refused": 1}},
		{name: "locked", before: func(tb testing.TB) func() { return holdLock(tb, root) },
			args: args, code: cliapp.ExitLocked, want: map[string]float64{"seqmirror_snapshot_served": 1},
			failures: map[string]float64{"refused": 1, "locked": 1}},
		{name: "bad flags", args: append([]string{"--keep", "0"}, args...), code: cliapp.ExitUsage,
			want: map[string]float64{"seqmirror_snapshot_served": 1}, failures: map[string]float64{"refused": 1, "locked": 1, "usage": 1}},
		{name: "interrupted", ctx: cancelled(), args: append([]string{"--force"}, args...), code: cliapp.ExitInterrupted,
			want: map[string]float64{"seqmirror_snapshot_served": 1}, failures: refusedEtc},
		{name: "forced", args: append([]string{"--force"}, args...), success: true, want: map[string]float64{
			"seqmirror_files:linked": 2, "seqmirror_files:copied": 0, "seqmirror_snapshot_served": 2, "seqmirror_seq_end": 2, "seqmirror_torn": 0},
			failures: refusedEtc},
	})
	if _, ok := testutil.ReadMetrics(t, path).Get("seqmirror_lag_snapshots", "tool", "publish", "root", root); ok {
		t.Errorf("a master's file has a lag")
	}
	assertOnly(t, dir, "publish.prom", "root", "src")
}

// mirror-sync --metrics-file: what it fetched and linked, the served
// snapshot and the lag behind its upstream, which a refused snapshot
// leaves at one snapshot until the mirror follows.
func TestMetricsFileMirror(t *testing.T) {
	dir := t.TempDir()
	src, up, root, path := filepath.Join(dir, "src"), filepath.Join(dir, "up"), filepath.Join(dir, "mirror"), filepath.Join(dir, "mirror.prom")
	metricsTree(t, src, 10)
	publish := func(tb testing.TB) {
		if code, _, stderr := run(tb, "publish", "--root", up, "--source", src, "--max-delete", "100"); code != 0 {
			tb.Fatalf("publish: %d %s", code, stderr)
		}
	}
	publish(t)
	args := []string{"--upstream", up, "--root", root}
	runMetricsSteps(t, "mirror-sync", root, path, []metricsStep{
		{name: "first", args: args, success: true, want: map[string]float64{
			"seqmirror_files:fetched": 10, "seqmirror_files:linked": 0, "seqmirror_files:copied": 0, "seqmirror_bytes_transferred": 1000,
			"seqmirror_snapshot_served": 1, "seqmirror_torn": 0, "seqmirror_lag_snapshots": 0, "seqmirror_lag_seconds": 0,
			"seqmirror_upstream_checked_timestamp_seconds": -1}},
		{name: "no-op", args: args, success: true, want: map[string]float64{
			"seqmirror_files:fetched": 0, "seqmirror_bytes_transferred": 0, "seqmirror_snapshot_served": 1, "seqmirror_lag_snapshots": 0}},
		{name: "refused mass delete", before: func(tb testing.TB) func() { removeFiles(tb, src, 10, 2); publish(tb); return nil },
			args: args, code: cliapp.ExitRefused, want: map[string]float64{
				"seqmirror_snapshot_served": 1, "seqmirror_lag_snapshots": 1, "seqmirror_lag_seconds": -1},
			failures: map[string]float64{"refused": 1}},
		{name: "upstream gone", args: []string{"--upstream", filepath.Join(dir, "gone"), "--root", root, "--retries", "0"},
			code: cliapp.ExitBusy, want: map[string]float64{"seqmirror_snapshot_served": 1},
			failures: map[string]float64{"refused": 1, "busy": 1}},
		{name: "locked", before: func(tb testing.TB) func() { return holdLock(tb, root) },
			args: args, code: cliapp.ExitLocked, failures: map[string]float64{"refused": 1, "busy": 1, "locked": 1}},
		{name: "forced", args: append([]string{"--force"}, args...), success: true, want: map[string]float64{
			"seqmirror_files:fetched": 0, "seqmirror_files:linked": 2, "seqmirror_snapshot_served": 2, "seqmirror_lag_snapshots": 0, "seqmirror_lag_seconds": 0},
			failures: map[string]float64{"refused": 1, "busy": 1, "locked": 1}},
	})
}

// A metrics file that cannot be written fails a run that succeeded
// (exit 1, said even under --quiet); a failed run keeps its exit code and
// says it too.
func TestMetricsFileUnwritable(t *testing.T) {
	dir := t.TempDir()
	src, root := filepath.Join(dir, "src"), filepath.Join(dir, "root")
	metricsTree(t, src, 2)
	path := filepath.Join(dir, "missing", "publish.prom")
	args := []string{"--root", root, "--source", src, "--metrics-file", path, "--quiet"}
	code, _, stderr := run(t, "publish", args...)
	if code != cliapp.ExitFailure || !strings.Contains(stderr, "the run succeeded, but --metrics-file "+path+" was not written") {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
	defer holdLock(t, root)()
	code, _, stderr = run(t, "publish", args...)
	if code != cliapp.ExitLocked || !strings.Contains(stderr, "--metrics-file "+path+" was not written") {
		t.Errorf("locked: exit %d, stderr %q", code, stderr)
	}
}

// assertOnly checks that dir holds exactly names: no temp file left.
func assertOnly(tb testing.TB, dir string, names ...string) {
	tb.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		tb.Fatal(err)
	}
	var got []string
	for _, e := range ents {
		got = append(got, e.Name())
	}
	if strings.Join(got, " ") != strings.Join(names, " ") {
		tb.Errorf("%s holds %v, want %v", dir, got, names)
	}
}
