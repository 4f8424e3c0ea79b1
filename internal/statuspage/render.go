package statuspage

import (
	"bytes"
	"cmp"
	_ "embed"
	"fmt"
	"html/template"
	"io"
	"slices"
	"sync"
	"time"
)

//go:embed page.tmpl
var pageTemplate string

// templates are parsed on first use, not at every start of the tools that
// link this package.
var templates = sync.OnceValue(func() *template.Template {
	return template.Must(template.New("statuspage").Funcs(template.FuncMap{
		"stateClass": stateClass,
		"fmtDur":     fmtDur,
		"fmtLag":     fmtLag,
		"fmtTime":    fmtTime,
		"add":        func(a num, b float64) num { return a + num(b) },
		"sub":        func(a num, b float64) num { return a - num(b) },
		"mid":        func(a, b num) num { return (a + b) / 2 },
	}).Parse(pageTemplate))
})

// view is what the page template reads: the Page and what is computed
// from it.
type view struct {
	Page
	RefreshSeconds int
	Hops           []HopLag
	Age, Total     time.Duration
	Plot           plot
	Tiers          []int
	Rows           []historyRow
}

// Last is the last hop of the lineage (this server).
func (v view) Last() HopLag { return v.Hops[len(v.Hops)-1] }

// Ago is how long before the page t was: "12 s ago" ("in 3 s" if the
// clocks disagree).
func (v view) Ago(t time.Time) string {
	if d := v.Now.Sub(t); d >= 0 {
		return fmtDur(d) + " ago"
	}
	return "in " + fmtDur(t.Sub(v.Now))
}

// fmtTime is a UTC time to the second, or "unknown".
func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "unknown"
	}
	return t.UTC().Format("2006-01-02 15:04:05.999Z")
}

// historyRow is one snapshot of the propagation table.
type historyRow struct {
	Snapshot uint64
	Flipped  time.Time
	Arrivals int
	Slowest  []slowest // one per tier of view.Tiers
}

type slowest struct {
	Known bool
	Delay time.Duration
}

// Render writes the status page of p to w.
func Render(w io.Writer, p Page) error {
	var buf bytes.Buffer
	if err := templates().ExecuteTemplate(&buf, "page", newView(p)); err != nil {
		return fmt.Errorf("render status page: %w", err)
	}
	if _, err := w.Write(buf.Bytes()); err != nil {
		return fmt.Errorf("write status page: %w", err)
	}
	return nil
}

// WritePlot writes the propagation plot of history alone, as an SVG
// document (what the page shows inline).
func WritePlot(w io.Writer, history []Propagation) error {
	var buf bytes.Buffer
	buf.WriteString(`<?xml version="1.0" encoding="UTF-8"?>` + "\n")
	if err := templates().ExecuteTemplate(&buf, "plot", newPlot(cleanHistory(history))); err != nil {
		return fmt.Errorf("render plot: %w", err)
	}
	buf.WriteString("\n")
	if _, err := w.Write(buf.Bytes()); err != nil {
		return fmt.Errorf("write plot: %w", err)
	}
	return nil
}

func newView(p Page) view {
	p = cleanPage(p)
	if p.Now.IsZero() {
		p.Now = time.Now()
	}
	v := view{Page: p, RefreshSeconds: int(max(time.Second, cmp.Or(p.Refresh, DefaultRefresh)) / time.Second)}
	v.Hops, v.Age = HopLags(p.Lineage, p.Now)
	v.Total = Total(p.Lineage)
	v.Plot = newPlot(p.History)
	v.Tiers = tiersOf(p.History)
	v.Rows = historyRows(p.History, v.Tiers)
	return v
}

// historyRows is the propagation table, newest snapshot first: per
// snapshot the slowest arrival of each tier.
func historyRows(history []Propagation, tiers []int) []historyRow {
	rows := make([]historyRow, 0, len(history))
	for _, p := range history {
		r := historyRow{Snapshot: p.Snapshot, Flipped: p.Flipped, Arrivals: len(p.Arrivals), Slowest: make([]slowest, len(tiers))}
		for _, a := range p.Arrivals {
			s := &r.Slowest[slices.Index(tiers, a.Tier)]
			if d := p.Delay(a); !s.Known || d > s.Delay {
				*s = slowest{Known: true, Delay: d}
			}
		}
		rows = append(rows, r)
	}
	slices.SortFunc(rows, func(a, b historyRow) int { return cmp.Compare(b.Snapshot, a.Snapshot) })
	return rows
}
