package statuspage

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"
)

// Plot geometry, in SVG user units.
const (
	plotW, plotH      = 760, 320
	padLeft, padRight = 70, 100
	padTop, padBottom = 20, 50
	markSize          = 5.0
	maxXLabels        = 15
	areaW, areaH      = plotW - padLeft - padRight, plotH - padTop - padBottom
)

// tierColours are the fills of the tiers' marks (Okabe-Ito, readable by
// the colour-blind); tiers also differ by shape and are named in the legend.
var tierColours = []string{"#0072B2", "#E69F00", "#009E73", "#CC79A7", "#D55E00", "#56B4E9"}

var tierShapes = []string{"circle", "square", "triangle"}

// plot is the SVG plot's geometry, computed from a Page's history.
type plot struct {
	W, H, Left, Top, Right, Bottom num
	XTicks, YTicks                 []tick
	Marks                          []mark
	Legend                         []legendItem
	Snapshots                      int // how many snapshots are plotted
}

type tick struct {
	X, Y  num
	Label string
}

type mark struct {
	X, Y        num
	Shape, Fill string
	Title       string // mirror, tier, snapshot, delay (hostile: escaped by the template)
}

// Points is a polygon's points attribute for a triangle mark.
func (m mark) Points() string {
	x, y := float64(m.X), float64(m.Y)
	return fmt.Sprintf("%.1f,%.1f %.1f,%.1f %.1f,%.1f", x, y-markSize, x-markSize, y+markSize*0.8, x+markSize, y+markSize*0.8)
}

type legendItem struct {
	Y     num
	Mark  mark
	Label string
}

// newPlot lays out the newest MaxPlotted snapshots of history: x is the
// snapshot (one band each), y the delay from the master's flip; one mark
// per arrival, placed in its band by tier.
func newPlot(history []Propagation) plot {
	h := slices.Clone(history)
	slices.SortFunc(h, func(a, b Propagation) int { return cmp.Compare(a.Snapshot, b.Snapshot) })
	if len(h) > MaxPlotted {
		h = h[len(h)-MaxPlotted:]
	}
	p := plot{W: plotW, H: plotH, Left: padLeft, Top: padTop, Right: padLeft + areaW, Bottom: padTop + areaH, Snapshots: len(h)}
	tiers := tiersOf(h)
	step, top := yScale(maxDelay(h))
	for v := time.Duration(0); v <= top; v += step {
		p.YTicks = append(p.YTicks, tick{X: p.Left, Y: p.yOf(v, top), Label: fmtDur(v)})
	}
	band := num(areaW / float64(max(1, len(h))))
	every := (len(h) + maxXLabels - 1) / maxXLabels
	for i, prop := range h {
		x0 := p.Left + band*num(i)
		if i%max(1, every) == 0 {
			p.XTicks = append(p.XTicks, tick{X: x0 + band/2, Y: p.Bottom, Label: fmt.Sprint(prop.Snapshot)})
		}
		for _, a := range prop.Arrivals {
			ti := slices.Index(tiers, a.Tier)
			x := x0 + band*(num(ti)+0.5)/num(len(tiers))
			m := tierMark(ti, x, p.yOf(max(0, prop.Delay(a)), top))
			m.Title = fmt.Sprintf("%s (tier %d): snapshot %d after %s", a.Mirror, a.Tier, prop.Snapshot, fmtLag(prop.Delay(a)))
			p.Marks = append(p.Marks, m)
		}
	}
	for i, t := range tiers {
		y := p.Top + 10 + 20*num(i)
		p.Legend = append(p.Legend, legendItem{Y: y, Mark: tierMark(i, p.Right+20, y), Label: fmt.Sprintf("tier %d", t)})
	}
	return p
}

// num is an SVG coordinate: printed with at most one decimal.
type num float64

func (n num) String() string {
	return strconv.FormatFloat(math.Round(float64(n)*10)/10, 'f', -1, 64)
}

// yOf is the y coordinate of delay d on a scale from 0 to top.
func (p plot) yOf(d, top time.Duration) num {
	return p.Bottom - num(areaH*float64(d)/float64(top))
}

func tierMark(i int, x, y num) mark {
	return mark{X: x, Y: y, Shape: tierShapes[i%len(tierShapes)], Fill: tierColours[i%len(tierColours)]}
}

// tiersOf lists the tiers that arrivals name, ascending.
func tiersOf(h []Propagation) []int {
	var tiers []int
	for _, p := range h {
		for _, a := range p.Arrivals {
			if !slices.Contains(tiers, a.Tier) {
				tiers = append(tiers, a.Tier)
			}
		}
	}
	slices.Sort(tiers)
	return tiers
}

func maxDelay(h []Propagation) time.Duration {
	var m time.Duration
	for _, p := range h {
		for _, a := range p.Arrivals {
			m = max(m, p.Delay(a))
		}
	}
	return m
}

// niceSteps are the y axis's tick steps to choose from.
var niceSteps = []time.Duration{
	time.Millisecond, 2 * time.Millisecond, 5 * time.Millisecond, 10 * time.Millisecond, 20 * time.Millisecond,
	50 * time.Millisecond, 100 * time.Millisecond, 200 * time.Millisecond, 500 * time.Millisecond,
	time.Second, 2 * time.Second, 5 * time.Second, 10 * time.Second, 15 * time.Second, 30 * time.Second,
	time.Minute, 2 * time.Minute, 5 * time.Minute, 10 * time.Minute, 15 * time.Minute, 30 * time.Minute,
	time.Hour, 2 * time.Hour, 6 * time.Hour, 12 * time.Hour, 24 * time.Hour,
}

// yScale picks a tick step and the axis's top (a multiple of the step, at
// least m) so that the axis has at most 5 steps.
func yScale(m time.Duration) (step, top time.Duration) {
	m = max(m, time.Millisecond)
	step = niceSteps[len(niceSteps)-1]
	for _, s := range niceSteps {
		if (m+s-1)/s <= 5 {
			step = s
			break
		}
	}
	top = (m + step - 1) / step * step
	return step, top
}

// fmtDur is a short duration for people: 250 ms, 1.5 s, 3.2 min, 2.0 h.
func fmtDur(d time.Duration) string {
	switch {
	case d < 0:
		return "-" + fmtDur(-d)
	case d < time.Second:
		return fmt.Sprintf("%d ms", d.Milliseconds())
	case d < time.Minute:
		return trim(fmt.Sprintf("%.2f", d.Seconds())) + " s"
	case d < time.Hour:
		return trim(fmt.Sprintf("%.1f", d.Minutes())) + " min"
	case d < 48*time.Hour:
		return trim(fmt.Sprintf("%.1f", d.Hours())) + " h"
	}
	return trim(fmt.Sprintf("%.1f", d.Hours()/24)) + " d"
}

// fmtLag is a lag: +fmtDur, or a negative one marked as a clock skew.
func fmtLag(d time.Duration) string {
	if d < 0 {
		return fmtDur(d) + " (clocks disagree)"
	}
	return "+" + fmtDur(d)
}

// trim drops trailing zeros of a decimal: 1.50 -> 1.5, 2.00 -> 2.
func trim(s string) string {
	for len(s) > 1 && s[len(s)-1] == '0' && slices.Contains([]byte(s), '.') {
		s = s[:len(s)-1]
	}
	if s[len(s)-1] == '.' {
		s = s[:len(s)-1]
	}
	return s
}
