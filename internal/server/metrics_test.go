package server_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/seqmirror/seqmirror/internal/server"
)

// scrape GETs /metrics and parses it with the Prometheus text parser.
func (fx *fixture) scrape(tb testing.TB) map[string]*dto.MetricFamily {
	tb.Helper()
	resp := fx.get(tb, "GET", "/metrics", nil)
	if resp.StatusCode != 200 {
		tb.Fatalf("/metrics: %d", resp.StatusCode)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		tb.Fatalf("parse /metrics: %v", err)
	}
	return mfs
}

// value is the value of the metric of family name with labels (name=value
// pairs), -1 if there is none.
func value(mfs map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	mf := mfs[name]
	if mf == nil {
		return -1
	}
next:
	for _, m := range mf.GetMetric() {
		for i := 0; i+1 < len(labels); i += 2 {
			found := false
			for _, lp := range m.GetLabel() {
				if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		}
	}
	return -1
}

func TestMetrics(t *testing.T) {
	fx := newFixture(t)
	before := fx.scrape(t)
	for name, want := range map[string]float64{"seqmirror_snapshot_served": 1, "seqmirror_seq_begin": 1, "seqmirror_seq_end": 1} {
		if got := value(before, name); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	fx.get(t, "GET", "/snapshots/1/a.txt", nil)
	fx.get(t, "GET", "/snapshots/1/a.txt", nil)
	fx.get(t, "GET", "/snapshots/1/nope", nil)
	fx.get(t, "GET", "/seq/end", nil)
	fx.get(t, "GET", "/current/a.txt", nil)
	fx.get(t, "GET", "/snapshots/1/", nil)
	after := fx.scrape(t)
	checks := []struct {
		name   string
		family string
		labels []string
		delta  float64
	}{
		{"files served", "seqmirror_http_requests_total", []string{"class", "file", "code", "200"}, 2},
		{"a 404", "seqmirror_http_requests_total", []string{"class", "other", "code", "404"}, 1},
		{"a seq file", "seqmirror_http_requests_total", []string{"class", "seq", "code", "200"}, 1},
		{"a redirect", "seqmirror_http_requests_total", []string{"class", "redirect", "code", "302"}, 1},
		{"a listing", "seqmirror_http_requests_total", []string{"class", "listing", "code", "200"}, 1},
		{"the first scrape", "seqmirror_http_requests_total", []string{"class", "metrics", "code", "200"}, 1},
		{"file bytes", "seqmirror_http_response_bytes_total", []string{"class", "file"}, float64(2 * len(fixtureFiles["a.txt"]))},
		{"seq bytes", "seqmirror_http_response_bytes_total", []string{"class", "seq"}, 2},
	}
	for _, c := range checks {
		b := max(0, value(before, c.family, c.labels...))
		if got := value(after, c.family, c.labels...) - b; got != c.delta {
			t.Errorf("%s: %s%v moved by %v, want %v", c.name, c.family, c.labels, got, c.delta)
		}
	}
	if value(after, "seqmirror_lag_snapshots") != 0 || value(after, "seqmirror_lag_seconds") != 0 {
		t.Errorf("a level mirror: lag %v snapshots, %v s", value(after, "seqmirror_lag_snapshots"), value(after, "seqmirror_lag_seconds"))
	}
}

// The lag comes from the last poll (seq/checked) when the upstream served
// a newer snapshot; a master (no poll record) has no lag metrics.
func TestMetricsLag(t *testing.T) {
	fx := newFixture(t)
	since := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	b, _ := json.Marshal(map[string]any{"upstream": "rsync://up/m", "upstream_snapshot": 4, "snapshot": 1, "behind_since": since})
	if err := os.WriteFile(filepath.Join(fx.root, "seq", "checked"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	h, err := server.NewHandler(server.Options{Root: fx.root, Now: func() time.Time { return since.Add(90 * time.Second) }})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	fx.h = h
	mfs := fx.scrape(t)
	if got := value(mfs, "seqmirror_lag_snapshots"); got != 3 {
		t.Errorf("lag_snapshots = %v, want 3", got)
	}
	if got := value(mfs, "seqmirror_lag_seconds"); got != 90 {
		t.Errorf("lag_seconds = %v, want 90", got)
	}
	if err := os.Remove(filepath.Join(fx.root, "seq", "checked")); err != nil {
		t.Fatal(err)
	}
	mfs = fx.scrape(t)
	if _, ok := mfs["seqmirror_lag_snapshots"]; ok {
		t.Errorf("a master has lag metrics")
	}
	if got := value(mfs, "seqmirror_snapshot_served"); got != 1 {
		t.Errorf("snapshot_served = %v", got)
	}
}
