package cliapp

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/seqmirror/seqmirror/internal/export"
	"github.com/seqmirror/seqmirror/internal/filter"
)

// checkHop is one hop of check --json's lineage.
type checkHop struct {
	export.Hop
	// LagSeconds is this hop's since minus the previous hop's (absent
	// for the master): how long the snapshot took to reach it.
	LagSeconds *float64 `json:"lag_seconds,omitempty"`
}

// hops is the lineage with each hop's lag after the previous one.
func (r *checkReport) hops() []checkHop {
	var out []checkHop
	for i, h := range r.lineage {
		c := checkHop{Hop: h}
		if i > 0 {
			d := h.Since.Sub(r.lineage[i-1].Since).Seconds()
			c.LagSeconds = &d
		}
		out = append(out, c)
	}
	return out
}

// lineageAge is how long the last hop (ADDR) has served the snapshot.
func (r *checkReport) lineageAge() *float64 {
	if len(r.lineage) == 0 {
		return nil
	}
	d := r.now.Sub(r.lineage[len(r.lineage)-1].Since).Seconds()
	return &d
}

// printLineage prints the lineage after the plugin line (the plugin
// format's long output): one line a hop, master first, with its lag after
// the previous hop, then the age of the last.
func (r *checkReport) printLineage(w io.Writer) {
	for i, h := range r.hops() {
		lag := "master"
		if h.LagSeconds != nil {
			lag = "+" + fmtSecs(time.Duration(*h.LagSeconds*float64(time.Second))) + "s"
		}
		addr := ""
		if h.Address != "" {
			addr = " " + clean(h.Address)
		}
		filt := ""
		if len(h.Filter) > 0 {
			filt = " filter " + clean(strings.Join(h.Filter, ", "))
		}
		fmt.Fprintf(w, "hop %d %s%s snapshot %d since %s %s%s\n", i+1, clean(h.Name), addr, h.Snapshot, h.Since.Format(time.RFC3339Nano), lag, filt)
	}
	if age := r.lineageAge(); age != nil {
		fmt.Fprintf(w, "serving it for %ss\n", fmtSecs(time.Duration(*age*float64(time.Second))))
	}
	if r.linNote != "" {
		fmt.Fprintf(w, "lineage note: %s\n", r.linNote)
	}
}

// fmtSecs prints d in seconds with millisecond precision.
func fmtSecs(d time.Duration) string {
	return strconv.FormatFloat(d.Round(time.Millisecond).Seconds(), 'f', -1, 64)
}

// addFilter takes the served snapshot's filter chain (snapshots/N.filter)
// from data; one that cannot be parsed is a warning.
func (r *checkReport) addFilter(data []byte) {
	c, err := filter.Decode(data)
	if err != nil {
		r.raise(PluginWarning, "the filter of snapshot %d cannot be read: %v", r.snapshot, err)
		return
	}
	r.partial = &export.Partial{Filters: c.Rules(), Filter: c.String()}
}

// printPartial says, after the plugin line, that ADDR is a partial mirror
// and with which filter chain (its upstreams' filters, then its own).
func (r *checkReport) printPartial(w io.Writer) {
	if r.partial != nil {
		fmt.Fprintf(w, "partial mirror, filter: %s\n", clean(r.partial.Filter))
	}
}
