package server

import (
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/seqmirror/seqmirror/internal/export"
)

// metrics are the handler's Prometheus metrics, in a registry of its own.
type metrics struct {
	requests *prometheus.CounterVec // class, code
	bytes    *prometheus.CounterVec // class
	series   sync.Map               // seriesKey -> series
	handler  http.Handler
}

func newMetrics(root *export.Root, now func() time.Time) *metrics {
	reg := prometheus.NewRegistry()
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "seqmirror_http_requests_total",
			Help: "HTTP requests answered, by class of path and status code.",
		}, []string{"class", "code"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "seqmirror_http_response_bytes_total",
			Help: "Bytes of response bodies sent, by class of path.",
		}, []string{"class"}),
	}
	reg.MustRegister(m.requests, m.bytes, newRootCollector(root, now))
	m.handler = promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	return m
}

// series are the counters of one class and code, looked up once.
type series struct{ requests, bytes prometheus.Counter }

type seriesKey struct {
	class string
	code  int
}

// observe counts one answered request.
func (m *metrics) observe(class string, code int, n int64) {
	k := seriesKey{class, code}
	v, ok := m.series.Load(k)
	if !ok {
		v, _ = m.series.LoadOrStore(k, series{m.requests.WithLabelValues(class, strconv.Itoa(code)), m.bytes.WithLabelValues(class)})
	}
	s := v.(series)
	s.requests.Inc()
	if n > 0 {
		s.bytes.Add(float64(n))
	}
}

// rootCollector reads the root's state at each scrape: the served
// snapshot, the counters, and the lag behind the upstream its last poll
// (seq/checked) saw.
type rootCollector struct {
	root                     *export.Root
	now                      func() time.Time
	served, begin, end       *prometheus.Desc
	lagSnapshots, lagSeconds *prometheus.Desc
}

func newRootCollector(root *export.Root, now func() time.Time) *rootCollector {
	d := func(name, help string) *prometheus.Desc { return prometheus.NewDesc(name, help, nil, nil) }
	return &rootCollector{root: root, now: now,
		served:       d("seqmirror_snapshot_served", "The snapshot the root serves (0: none)."),
		begin:        d("seqmirror_seq_begin", "The root's seq/begin."),
		end:          d("seqmirror_seq_end", "The root's seq/end."),
		lagSnapshots: d("seqmirror_lag_snapshots", "How many snapshots the root is behind its upstream at the last poll."),
		lagSeconds:   d("seqmirror_lag_seconds", "How long the root has been behind its upstream (0: level)."),
	}
}

// Describe implements prometheus.Collector.
func (c *rootCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.served, c.begin, c.end, c.lagSnapshots, c.lagSeconds} {
		ch <- d
	}
}

// Collect implements prometheus.Collector. A root it cannot read yields
// no root metrics (the request counters still come).
func (c *rootCollector) Collect(ch chan<- prometheus.Metric) {
	s, err := c.root.Status()
	if err != nil {
		return
	}
	g := func(d *prometheus.Desc, v float64) { ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v) }
	g(c.served, float64(s.Snapshot))
	g(c.begin, float64(s.Begin))
	g(c.end, float64(s.End))
	if s.CheckedUpstream == nil {
		return // a master, or a mirror that never reached its upstream
	}
	var since time.Time
	if s.BehindSince != nil {
		since = *s.BehindSince
	}
	s.CompareUpstream(s.Upstream, *s.CheckedUpstream, since, c.now())
	g(c.lagSnapshots, float64(*s.LagSnapshots))
	g(c.lagSeconds, *s.LagSeconds)
}
