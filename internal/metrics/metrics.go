package metrics

import (
	"fmt"
	"io"
	"math"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
	"github.com/seqmirror/seqmirror/internal/export"
	"github.com/seqmirror/seqmirror/internal/fsys"
)

// The metric names. Every series carries the labels tool and root (labelsOf):
// node_exporter merges the files of its directory, so two roots' files on
// one host must differ by a label, not only by file name.
const (
	LastRun          = "seqmirror_last_run_timestamp_seconds"
	LastSuccess      = "seqmirror_last_success_timestamp_seconds"
	Duration         = "seqmirror_run_duration_seconds"
	Success          = "seqmirror_run_success"
	ExitCode         = "seqmirror_run_exit_code"
	FilesName        = "seqmirror_files"
	BytesTransferred = "seqmirror_bytes_transferred"
	Failures         = "seqmirror_failures_total"
	Served           = "seqmirror_snapshot_served"
	SeqBegin         = "seqmirror_seq_begin"
	SeqEnd           = "seqmirror_seq_end"
	Torn             = "seqmirror_torn"
	LagSnapshots     = "seqmirror_lag_snapshots"
	LagSeconds       = "seqmirror_lag_seconds"
	UpstreamChecked  = "seqmirror_upstream_checked_timestamp_seconds"
)

// Files counts the files a run fetched from its upstream, hard-linked
// from a retained snapshot, and copied from its source.
type Files struct{ Fetched, Linked, Copied int }

// Run is one run of a tool, as its metrics file reports it.
type Run struct {
	Tool       string // the label tool: "publish" or "mirror-sync"
	Start, End time.Time
	ExitCode   int
	// Kind names the failure (the exit code's name, e.g. "busy"); "" when
	// the run succeeded.
	Kind string
	// Kinds are all the kinds a failure of Tool can have: each counter is
	// written from the first run on, at 0 until it happens, so that
	// increase() sees the first failure of a kind.
	Kinds []string
	Files Files
	Bytes int64        // fetched or copied
	Root  *export.Root // nil: the run had none (bad arguments)
}

// WriteFile writes run's metrics to path, atomically and durably (see the
// package contract), carrying over the last success time and the failure
// counters of the file it replaces.
func WriteFile(fs fsys.FS, path string, run Run) error {
	unlock := lockDir(fs, path)
	defer unlock()
	removeStaleTemps(fs, path)
	labels := labelsOf(run)
	reg, err := newRegistry(run, labels, readPrevious(fs, path, labels))
	if err != nil {
		return err
	}
	mfs, err := reg.Gather()
	if err != nil {
		return fmt.Errorf("gather metrics: %w", err)
	}
	return fsys.WriteStream(fs, path, 0o644, func(w io.Writer) error {
		for _, mf := range mfs {
			if _, err := expfmt.MetricFamilyToText(w, mf); err != nil {
				return err
			}
		}
		return nil
	})
}

// labelsOf are the labels of every series of run: tool, and root, the
// absolute path of its root ("" if it had none). One series per root and
// tool, whatever the number of runs: the cardinality is that of the roots.
func labelsOf(run Run) prometheus.Labels {
	root := ""
	if run.Root != nil {
		root = run.Root.Dir
		if abs, err := filepath.Abs(root); err == nil {
			root = abs
		}
	}
	return prometheus.Labels{"tool": run.Tool, "root": root}
}

// newRegistry is a fresh registry holding run's metrics, prev's values
// carried over.
func newRegistry(run Run, labels prometheus.Labels, prev previous) (*prometheus.Registry, error) {
	b := &builder{reg: prometheus.NewRegistry(), labels: labels}
	ok := run.ExitCode == 0
	end := unixSeconds(run.End)
	lastSuccess := prev.lastSuccess
	if ok {
		lastSuccess = end
	}
	b.gauge(LastRun, "When the last run ended (Unix time).", end)
	b.gauge(LastSuccess, "When the last successful run (a no-op included) ended (Unix time); 0: none recorded.", lastSuccess)
	b.gauge(Duration, "How long the last run took.", max(0, run.End.Sub(run.Start).Seconds()))
	b.gauge(Success, "1 if the last run succeeded (exit code 0, a no-op included), else 0.", boolValue(ok))
	b.gauge(ExitCode, "The exit code of the last run.", float64(run.ExitCode))
	b.gaugeVec(FilesName, "Files the last run fetched from its upstream, hard-linked from a retained snapshot or copied from its source.", "how",
		map[string]float64{"fetched": float64(run.Files.Fetched), "linked": float64(run.Files.Linked), "copied": float64(run.Files.Copied)})
	b.gauge(BytesTransferred, "Bytes the last run fetched or copied.", float64(run.Bytes))
	b.counterVec(Failures, "Failed runs, by kind (the exit code's name), over the life of this file.", "kind", failures(run, prev))
	b.root(run.Root, run.End)
	return b.reg, b.err
}

// failures is the failure counters after run: prev's, every kind of
// run.Kinds present, run's own kind one higher.
func failures(run Run, prev previous) map[string]float64 {
	out := make(map[string]float64, len(run.Kinds)+1)
	for _, k := range run.Kinds {
		out[k] = 0
	}
	for k, v := range prev.failures {
		out[k] = v
	}
	if run.Kind != "" {
		out[run.Kind]++
	}
	return out
}

// builder registers const metrics, keeping the first error.
type builder struct {
	reg    *prometheus.Registry
	labels prometheus.Labels
	err    error
}

func (b *builder) gauge(name, help string, v float64) {
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: help, ConstLabels: b.labels})
	g.Set(v)
	b.register(name, g)
}

// gaugeVec registers the gauge name with one series per value of label.
func (b *builder) gaugeVec(name, help, label string, values map[string]float64) {
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help, ConstLabels: b.labels}, []string{label})
	for lv, v := range values {
		g.WithLabelValues(lv).Set(v)
	}
	b.register(name, g)
}

// counterVec registers the counter name with one series per value of
// label (a negative or NaN value, which a counter cannot hold, as 0).
func (b *builder) counterVec(name, help, label string, values map[string]float64) {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help, ConstLabels: b.labels}, []string{label})
	for lv, v := range values {
		s := c.WithLabelValues(lv)
		if v > 0 {
			s.Add(v)
		}
	}
	b.register(name, c)
}

func (b *builder) register(name string, c prometheus.Collector) {
	if b.err != nil {
		return
	}
	if err := b.reg.Register(c); err != nil {
		b.err = fmt.Errorf("metric %s: %w", name, err)
	}
}

// root adds the state r is in after the run, at now: what it serves, its
// counters, whether it is torn and, for a mirror that polled its upstream,
// the lag. Nothing if r cannot be read.
func (b *builder) root(r *export.Root, now time.Time) {
	if r == nil {
		return
	}
	st, err := r.Status()
	if err != nil {
		return
	}
	b.gauge(Served, "The snapshot the root serves (0: none).", float64(st.Snapshot))
	b.gauge(SeqBegin, "The root's seq/begin.", float64(st.Begin))
	b.gauge(SeqEnd, "The root's seq/end.", float64(st.End))
	b.gauge(Torn, "1 if the root's current does not resolve to a complete snapshot, else 0.", boolValue(st.State == export.StateTorn))
	p, ok := r.LastPoll()
	if !ok {
		return
	}
	b.gauge(UpstreamChecked, "When a run last read the upstream (Unix time): the lag is as of then.", unixSeconds(p.Checked))
	if p.Snapshot != st.Snapshot { // the root changed since: no lag known
		return
	}
	var snaps uint64
	secs := 0.0
	if p.UpstreamSnapshot > st.Snapshot {
		snaps = p.UpstreamSnapshot - st.Snapshot
		since := p.Checked
		if p.BehindSince != nil {
			since = *p.BehindSince
		}
		secs = max(0, now.Sub(since).Seconds())
	}
	b.gauge(LagSnapshots, "Snapshots the upstream served beyond the root's when last read.", float64(snaps))
	b.gauge(LagSeconds, "How long the root has been behind its upstream (0: level).", secs)
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// unixSeconds is t as Unix time with its fraction (0 for the zero time).
func unixSeconds(t time.Time) float64 {
	if t.IsZero() {
		return 0
	}
	return math.Round(float64(t.UnixNano())/1e6) / 1e3
}
