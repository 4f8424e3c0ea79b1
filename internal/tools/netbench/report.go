package main

import (
	"fmt"
	"html"
	"io"
	"math"
	"os"
	"slices"
	"strings"
	"time"
)

// stats are the order statistics of some arrivals.
type stats struct {
	n             int
	p50, p99, max time.Duration
}

func statsOf(ds []time.Duration) stats {
	if len(ds) == 0 {
		return stats{}
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return stats{n: len(s), p50: rank(s, 0.50), p99: rank(s, 0.99), max: s[len(s)-1]}
}

// rank is the nearest-rank percentile q of sorted s.
func rank(s []time.Duration, q float64) time.Duration {
	i := int(math.Ceil(q*float64(len(s)))) - 1
	return s[max(i, 0)]
}

// byTier is ph's arrivals of tier t (0: all).
func (ph *phase) byTier(t int) []time.Duration {
	var out []time.Duration
	for _, s := range ph.samples {
		if t == 0 || s.tier == t {
			out = append(out, s.d)
		}
	}
	return out
}

func secs(d time.Duration) string { return fmt.Sprintf("%.2f s", d.Seconds()) }

// report prints the Markdown table and the findings.
func (b *bench) report(w io.Writer) {
	r := &b.res
	fmt.Fprintf(w, "\n%d mirrors (tiers: %s) of a %d-file tree; links: toxiproxy, %s-%s one-way latency ±%s, %d KB/s; first full copy to all: %s\n\n",
		len(b.mirrors), tierSizes(b.tiers), b.cfg.files, b.cfg.latency[0], b.cfg.latency[1], b.cfg.jitter, b.cfg.rateKBs, r.initial.Round(time.Second))
	fmt.Fprintln(w, "| phase | tier | mirrors | arrivals | p50 | p99 | max | not arrived | load (1/5/15 min) |")
	fmt.Fprintln(w, "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
	for _, ph := range r.phases {
		for t := 1; t <= len(b.tiers)+1; t++ {
			tier, label, count := t, fmt.Sprint(t), 0
			if t > len(b.tiers) {
				tier, label, count = 0, "all", len(b.mirrors)
			} else {
				count = len(b.tiers[t-1])
			}
			s := statsOf(ph.byTier(tier))
			miss, load := "", ""
			if tier == 0 {
				miss, load = fmt.Sprint(ph.missing), ph.load
			}
			fmt.Fprintf(w, "| %s | %s | %d | %d | %s | %s | %s | %s | %s |\n", ph.name, label, count, s.n, secs(s.p50), secs(s.p99), secs(s.max), miss, load)
		}
	}
	fmt.Fprintln(w)
	for _, l := range r.failover {
		fmt.Fprintf(w, "- %s\n", l)
	}
	fmt.Fprintf(w, "- torn: %d (readers: %d snapshots opened by the client and sampled after flips, %d pruned before the read ended); mirror-sync verify at the end: %d of %d roots whole\n",
		r.torn, r.checks, r.gone, r.verified, len(b.mirrors))
	for _, l := range r.verifyKO {
		fmt.Fprintf(w, "  - verify failed: %s\n", l)
	}
	if len(r.phases) > 0 {
		s := statsOf(r.phases[0].byTier(0))
		verdict := "met"
		if s.p99 >= 2*time.Second || r.phases[0].missing > 0 {
			verdict = "NOT met"
		}
		fmt.Fprintf(w, "- goal p99 < 2 s to all %d mirrors with triggers: %s (p99 %s)\n", len(b.mirrors), verdict, secs(s.p99))
	}
}

func tierSizes(tiers [][]*node) string {
	var s []string
	for _, t := range tiers {
		s = append(s, fmt.Sprint(len(t)))
	}
	return strings.Join(s, "+")
}

// writeSVG plots the arrival-time distribution (a CDF) of each tier of ph.
func writeSVG(path string, ph *phase) error {
	const w, h, left, bottom, top, right = 640.0, 360.0, 56.0, 40.0, 30.0, 20.0
	all := statsOf(ph.byTier(0))
	xmax := math.Max(2.5, math.Ceil(all.max.Seconds()*2)/2)
	x := func(s float64) float64 { return left + s/xmax*(w-left-right) }
	y := func(f float64) float64 { return h - bottom - f*(h-bottom-top) }
	var sb strings.Builder
	fmt.Fprintf(&sb, `<svg xmlns="http://www.w3.org/2000/svg" width="%g" height="%g" viewBox="0 0 %g %g" font-family="sans-serif" font-size="12">`+"\n", w, h, w, h)
	fmt.Fprintf(&sb, `<rect width="100%%" height="100%%" fill="white"/><text x="%g" y="18" font-size="14">%s</text>`+"\n", left, html.EscapeString("Arrival time after the master's flip, per tier ("+ph.name+")"))
	for i := 0; i <= 4; i++ {
		f := float64(i) / 4
		fmt.Fprintf(&sb, `<line x1="%g" y1="%.1f" x2="%g" y2="%.1f" stroke="#ddd"/><text x="%g" y="%.1f" text-anchor="end">%d%%</text>`+"\n", left, y(f), w-right, y(f), left-6, y(f)+4, i*25)
	}
	for s := 0.0; s <= xmax+1e-9; s += tickStep(xmax) {
		fmt.Fprintf(&sb, `<line x1="%.1f" y1="%g" x2="%.1f" y2="%g" stroke="#ddd"/><text x="%.1f" y="%g" text-anchor="middle">%g s</text>`+"\n", x(s), top, x(s), h-bottom, x(s), h-bottom+16, s)
	}
	fmt.Fprintf(&sb, `<line x1="%.1f" y1="%g" x2="%.1f" y2="%g" stroke="#c00" stroke-dasharray="4 3"/><text x="%.1f" y="%g" fill="#c00">goal 2 s</text>`+"\n", x(2), top, x(2), h-bottom, x(2)+4, top+12)
	colors := []string{"#1f77b4", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"}
	for t := 1; ; t++ {
		ds := ph.byTier(t)
		if len(ds) == 0 {
			break
		}
		slices.Sort(ds)
		var pts []string
		for i, d := range ds {
			pts = append(pts, fmt.Sprintf("%.1f,%.1f %.1f,%.1f", x(d.Seconds()), y(float64(i)/float64(len(ds))), x(d.Seconds()), y(float64(i+1)/float64(len(ds)))))
		}
		c := colors[(t-1)%len(colors)]
		fmt.Fprintf(&sb, `<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>`+"\n", c, strings.Join(pts, " "))
		s := statsOf(ds)
		fmt.Fprintf(&sb, `<text x="%g" y="%g" fill="%s">tier %d: p50 %.2f s, p99 %.2f s (n=%d)</text>`+"\n", w-right-230, h-bottom-12-float64(t-1)*16, c, t, s.p50.Seconds(), s.p99.Seconds(), s.n)
	}
	sb.WriteString("</svg>\n")
	return os.WriteFile(path, []byte(sb.String()), 0o644)
}

// tickStep is the x axis's tick spacing in seconds.
func tickStep(xmax float64) float64 {
	switch {
	case xmax <= 3:
		return 0.5
	case xmax <= 10:
		return 1
	case xmax <= 30:
		return 5
	case xmax <= 150:
		return 20
	}
	return 60
}
