package testutil

import (
	"bytes"
	"os"
	"sort"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Metrics is a Prometheus text exposition, parsed: each series' value by
// its key, the metric name followed by its labels in name order, e.g.
// `seqmirror_files{how="linked",tool="publish"}`.
type Metrics map[string]float64

// ParseMetrics parses b with the Prometheus text parser (expfmt), failing
// tb if it is not valid exposition text.
func ParseMetrics(tb testing.TB, b []byte) Metrics {
	tb.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(bytes.NewReader(b))
	if err != nil {
		tb.Fatalf("parse metrics: %v\n%s", err, b)
	}
	out := Metrics{}
	for name, mf := range mfs {
		for _, m := range mf.GetMetric() {
			out[seriesKey(name, m)] = metricValue(mf.GetType(), m)
		}
	}
	return out
}

// ReadMetrics is ParseMetrics of the file at path.
func ReadMetrics(tb testing.TB, path string) Metrics {
	tb.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	return ParseMetrics(tb, b)
}

// Get returns the value of the series of name with labels (name=value
// pairs: "tool", "publish", ...) and whether there is one.
func (m Metrics) Get(name string, labels ...string) (float64, bool) {
	ls := make([]string, 0, len(labels)/2)
	for i := 0; i+1 < len(labels); i += 2 {
		ls = append(ls, labels[i]+`="`+labels[i+1]+`"`)
	}
	sort.Strings(ls)
	key := name
	if len(ls) > 0 {
		key += "{" + strings.Join(ls, ",") + "}"
	}
	v, ok := m[key]
	return v, ok
}

func seriesKey(name string, m *dto.Metric) string {
	ls := make([]string, 0, len(m.GetLabel()))
	for _, lp := range m.GetLabel() {
		ls = append(ls, lp.GetName()+`="`+lp.GetValue()+`"`)
	}
	sort.Strings(ls)
	if len(ls) == 0 {
		return name
	}
	return name + "{" + strings.Join(ls, ",") + "}"
}

func metricValue(t dto.MetricType, m *dto.Metric) float64 {
	switch t {
	case dto.MetricType_COUNTER:
		return m.GetCounter().GetValue()
	case dto.MetricType_GAUGE:
		return m.GetGauge().GetValue()
	case dto.MetricType_UNTYPED:
		return m.GetUntyped().GetValue()
	}
	return 0
}
