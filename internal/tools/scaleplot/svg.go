package main

import (
	"encoding/xml"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// The default title of the plot.
const defaultTitle = "seqmirror vs rsync: time against tree size"

// Geometry of the SVG: a panel is a plot area and its legend to the right.
const (
	panelW, panelH = 660.0, 420.0
	plotL, plotT   = 64.0, 34.0   // plot area's offset in its panel
	plotW, plotH   = 340.0, 330.0 // plot area's size
	plotPad        = 12.0         // inner margin, so markers stay off the frame
	titleH         = 40.0
	legendX        = plotL + plotW + 24
)

// families are the columns of the grid.
var families = []string{"publish", "sync"}

// palette colors a line by op (initial, 1%, no-op) and via (local, rsync, http).
var palette = [3][3]string{
	{"#1f77b4", "#17becf", "#393b79"},
	{"#d62728", "#ff7f0e", "#8c564b"},
	{"#2ca02c", "#bcbd22", "#9467bd"},
}

// dashes marks the tool of a line.
var dashes = map[string]string{"seqmirror": "", "rsync": "6 4", "cp-al": "2 3"}

// axes map files and seconds to a panel's coordinates (log10 both), the
// same in every panel.
type axes struct {
	x0, x1, y0, y1 float64 // decades of the files and seconds ranges
}

func axesOf(res *results) axes {
	a := axes{x0: math.Floor(math.Log10(float64(res.files[0]))), x1: math.Ceil(math.Log10(float64(res.files[len(res.files)-1])))}
	if a.x0 == a.x1 {
		a.x0, a.x1 = a.x0-1, a.x1+1
	}
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, s := range res.median {
		if s > 0 {
			lo, hi = min(lo, s), max(hi, s)
		}
	}
	a.y0, a.y1 = -3, 0
	if hi > 0 {
		a.y0, a.y1 = math.Floor(math.Log10(lo)), math.Ceil(math.Log10(hi))
	}
	if a.y0 == a.y1 {
		a.y1++
	}
	return a
}

// x is the horizontal position of n files in a panel.
func (a axes) x(n float64) float64 {
	f := (math.Log10(n) - a.x0) / (a.x1 - a.x0)
	return plotL + plotPad + f*(plotW-2*plotPad)
}

// y is the vertical position of s seconds in a panel (0 s: the bottom).
func (a axes) y(s float64) float64 {
	f := 0.0
	if s > 0 {
		f = max((math.Log10(s)-a.y0)/(a.y1-a.y0), 0)
	}
	return plotT + plotH - plotPad - f*(plotH-2*plotPad)
}

// writeSVG writes the plot of res to path, whole or not at all.
func writeSVG(path string, res *results, title string) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".scaleplot-*.svg")
	if err != nil {
		return fmt.Errorf("writing the plot: %w", err)
	}
	defer os.Remove(f.Name())
	_, err = f.WriteString(renderSVG(res, title))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(f.Name(), 0o644)
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("writing the plot %s: %w", path, err)
	}
	return nil
}

// renderSVG is the whole SVG document of res.
func renderSVG(res *results, title string) string {
	w, h := panelW*float64(len(families)), titleH+panelH*float64(len(res.fs))
	var sb strings.Builder
	sb.WriteString(`<?xml version="1.0" encoding="UTF-8"?>` + "\n")
	fmt.Fprintf(&sb, `<svg xmlns="http://www.w3.org/2000/svg" width="%g" height="%g" viewBox="0 0 %g %g" font-family="sans-serif" font-size="12">`+"\n", w, h, w, h)
	fmt.Fprintf(&sb, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&sb, `<text x="%g" y="26" font-size="18" text-anchor="middle">%s</text>`+"\n", w/2, esc(title))
	a := axesOf(res)
	for i, fs := range res.fs {
		for j, fam := range families {
			fmt.Fprintf(&sb, `<g transform="translate(%g,%g)">`+"\n", panelW*float64(j), titleH+panelH*float64(i))
			writePanel(&sb, a, fs+": "+fam, res.seriesOf(fs, fam))
			sb.WriteString("</g>\n")
		}
	}
	sb.WriteString("</svg>\n")
	return sb.String()
}

// line is one series' points, ascending by files.
type line struct {
	series
	files []int
	secs  []float64
}

// seriesOf is the lines of fs's ops of family fam, in table order (op,
// via, tool).
func (res *results) seriesOf(fs, fam string) []line {
	byS := map[series]*line{}
	for _, n := range res.files {
		for _, op := range ops {
			for _, via := range vias {
				for _, tool := range tools {
					k := key{fs, n, op, via, tool}
					s, ok := res.median[k]
					if !ok || family(op) != fam {
						continue
					}
					if byS[k.series()] == nil {
						byS[k.series()] = &line{series: k.series()}
					}
					l := byS[k.series()]
					l.files, l.secs = append(l.files, n), append(l.secs, s)
				}
			}
		}
	}
	var out []line
	for _, l := range byS {
		out = append(out, *l)
	}
	slices.SortFunc(out, func(p, q line) int { return order(p.series) - order(q.series) })
	return out
}

// order is the position of s's op, via and tool in table order.
func order(s series) int {
	return (slices.Index(ops, s.op)*len(vias)+slices.Index(vias, s.via))*len(tools) + slices.Index(tools, s.tool)
}

// writePanel draws the axes, the lines and the legend of one panel.
func writePanel(sb *strings.Builder, a axes, name string, lines []line) {
	fmt.Fprintf(sb, `<text x="%g" y="%g" font-size="14" font-weight="bold">%s</text>`+"\n", plotL, plotT-12, esc(name))
	writeAxes(sb, a)
	if len(lines) == 0 {
		fmt.Fprintf(sb, `<text x="%g" y="%g" text-anchor="middle" fill="#888">no runs</text>`+"\n", plotL+plotW/2, plotT+plotH/2)
	}
	for i, l := range lines {
		writeLine(sb, a, name, l)
		writeLegend(sb, i, l)
	}
}

// writeAxes draws the frame, the grid and the decade labels of a panel.
func writeAxes(sb *strings.Builder, a axes) {
	bottom, right := plotT+plotH, plotL+plotW
	for _, t := range ticks(a.x0, a.x1) {
		x := a.x(t.v)
		if !t.major {
			fmt.Fprintf(sb, `<line x1="%.1f" y1="%g" x2="%.1f" y2="%g" stroke="#f0f0f0"/>`+"\n", x, plotT, x, bottom)
			continue
		}
		label := filesLabel(int(math.Round(t.v)))
		if t.v >= 1e10 {
			label = decade(t.v)
		}
		fmt.Fprintf(sb, `<line x1="%.1f" y1="%g" x2="%.1f" y2="%g" stroke="#ccc"/><text x="%.1f" y="%g" text-anchor="middle">%s</text>`+"\n",
			x, plotT, x, bottom, x, bottom+16, label)
	}
	for _, t := range ticks(a.y0, a.y1) {
		y := a.y(t.v)
		if !t.major {
			fmt.Fprintf(sb, `<line x1="%g" y1="%.1f" x2="%g" y2="%.1f" stroke="#f0f0f0"/>`+"\n", plotL, y, right, y)
			continue
		}
		label := strconv.FormatFloat(t.v, 'f', -1, 64)
		if t.v < 1e-4 || t.v >= 1e5 {
			label = decade(t.v)
		}
		fmt.Fprintf(sb, `<line x1="%g" y1="%.1f" x2="%g" y2="%.1f" stroke="#ccc"/><text x="%g" y="%.1f" text-anchor="end">%s s</text>`+"\n",
			plotL, y, right, y, plotL-6, y+4, label)
	}
	fmt.Fprintf(sb, `<rect x="%g" y="%g" width="%g" height="%g" fill="none" stroke="#333"/>`+"\n", plotL, plotT, plotW, plotH)
	fmt.Fprintf(sb, `<text x="%g" y="%g" text-anchor="middle">files</text>`+"\n", plotL+plotW/2, bottom+32)
}

// tick is a gridline of a log axis: a labelled power of 10 or one of 2..9 times it.
type tick struct {
	v     float64
	major bool
}

// ticks are the gridlines of the decades lo to hi: every decade and the
// minor lines between them; over more than 12 decades, only every n-th
// decade, no minor lines.
func ticks(lo, hi float64) []tick {
	step := max(1, math.Ceil((hi-lo)/12))
	var out []tick
	for e := lo; e <= hi; e += step {
		out = append(out, tick{math.Pow(10, e), true})
		for m := 2.0; step == 1 && m < 10 && e+math.Log10(m) < hi; m++ {
			out = append(out, tick{m * math.Pow(10, e), false})
		}
	}
	return out
}

// decade is the power of 10 v as 1e-5, 1e12.
func decade(v float64) string { return fmt.Sprintf("1e%d", int(math.Round(math.Log10(v)))) }

// writeLine draws l: a polyline when it has two points or more, and a
// marker on every point.
func writeLine(sb *strings.Builder, a axes, panel string, l line) {
	color := colorOf(l.series)
	var pts []string
	for i, n := range l.files {
		pts = append(pts, fmt.Sprintf("%.1f,%.1f", a.x(float64(n)), a.y(l.secs[i])))
	}
	if len(pts) >= 2 {
		fmt.Fprintf(sb, `<polyline fill="none" stroke="%s" stroke-width="2"%s points="%s"><title>%s</title></polyline>`+"\n",
			color, dashAttr(l.tool), strings.Join(pts, " "), esc(panel+", "+legendLabel(l.series)))
	}
	for i, n := range l.files {
		tip := fmt.Sprintf("%s, %s: %s files, %s s", panel, legendLabel(l.series), filesLabel(n), seconds(l.secs[i]))
		writeMarker(sb, l.tool, color, a.x(float64(n)), a.y(l.secs[i]), tip)
	}
}

// writeMarker draws a point: seqmirror a dot, rsync a ring, cp -al a
// square; tip, when not empty, is its tooltip.
func writeMarker(sb *strings.Builder, tool, color string, x, y float64, tip string) {
	switch tool {
	case "rsync":
		fmt.Fprintf(sb, `<circle cx="%.1f" cy="%.1f" r="3.5" fill="white" stroke="%s" stroke-width="1.5">`, x, y, color)
	case "cp-al":
		fmt.Fprintf(sb, `<rect x="%.1f" y="%.1f" width="6" height="6" fill="%s">`, x-3, y-3, color)
	default:
		fmt.Fprintf(sb, `<circle cx="%.1f" cy="%.1f" r="3.5" fill="%s">`, x, y, color)
	}
	if tip != "" {
		sb.WriteString("<title>" + esc(tip) + "</title>")
	}
	if tool == "cp-al" {
		sb.WriteString("</rect>\n")
		return
	}
	sb.WriteString("</circle>\n")
}

// writeLegend draws the i-th legend entry of a panel: a sample and the label.
func writeLegend(sb *strings.Builder, i int, l line) {
	y := plotT + 6 + 15*float64(i)
	color := colorOf(l.series)
	fmt.Fprintf(sb, `<line x1="%g" y1="%g" x2="%g" y2="%g" stroke="%s" stroke-width="2"%s/>`+"\n", legendX, y, legendX+28, y, color, dashAttr(l.tool))
	writeMarker(sb, l.tool, color, legendX+14, y, "")
	fmt.Fprintf(sb, `<text x="%g" y="%g">%s</text>`+"\n", legendX+36, y+4, esc(legendLabel(l.series)))
}

// legendLabel names a line: `1% over http — seqmirror` (publish: `1% — seqmirror`).
func legendLabel(s series) string {
	_, what, _ := strings.Cut(s.op, "-")
	what = map[string]string{"initial": "initial", "1pct": "1%", "noop": "no-op"}[what]
	if family(s.op) != "publish" {
		what += " over " + s.via
	}
	tool := s.tool
	if tool == "cp-al" {
		tool = "cp -al"
	}
	return what + " — " + tool
}

// colorOf is the palette's color of s's op (within its family) and via.
func colorOf(s series) string {
	return palette[slices.Index(ops, s.op)%3][slices.Index(vias, s.via)]
}

func dashAttr(tool string) string {
	if d := dashes[tool]; d != "" {
		return ` stroke-dasharray="` + d + `"`
	}
	return ""
}

// esc is s as XML character data (invalid characters become U+FFFD).
func esc(s string) string {
	var sb strings.Builder
	_ = xml.EscapeText(&sb, []byte(s)) // a strings.Builder does not fail
	return sb.String()
}
