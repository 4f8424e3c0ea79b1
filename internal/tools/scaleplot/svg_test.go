package main

import (
	"encoding/xml"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// curve has three lines of three points (10k, 100k, 1M) on ext4, a line
// of two on btrfs, and two lines of one point.
const curve = header + `
ext4,10000,sync-1pct,http,seqmirror,0.1,
ext4,100000,sync-1pct,http,seqmirror,1,
ext4,1000000,sync-1pct,http,seqmirror,10,
ext4,10000,sync-1pct,http,rsync,1,
ext4,100000,sync-1pct,http,rsync,10,
ext4,1000000,sync-1pct,http,rsync,100,
ext4,10000,sync-1pct,http,cp-al,0.5,
ext4,100000,sync-1pct,http,cp-al,5,
ext4,1000000,sync-1pct,http,cp-al,50,
ext4,500000,publish-noop,local,seqmirror,0.002,
btrfs,10000,publish-1pct,local,seqmirror,0.01,
btrfs,500000,publish-1pct,local,seqmirror,0,
btrfs,10000,sync-noop,rsync,rsync,3,
`

// node is any SVG element, its attributes and children.
type node struct {
	XMLName  xml.Name
	Attrs    []xml.Attr `xml:",any,attr"`
	Title    string     `xml:"title"`
	Text     string     `xml:",chardata"`
	Children []node     `xml:",any"`
}

func (n node) attr(name string) string {
	for _, a := range n.Attrs {
		if a.Name.Local == name {
			return a.Value
		}
	}
	return ""
}

// all is every element below n named name, in document order.
func (n node) all(name string) []node {
	var out []node
	for _, c := range n.Children {
		if c.XMLName.Local == name {
			out = append(out, c)
		}
		out = append(out, c.all(name)...)
	}
	return out
}

// decode parses doc as XML, or fails tb.
func decode(tb testing.TB, doc string) node {
	tb.Helper()
	if err := wellFormed(doc); err != nil {
		tb.Fatalf("not well-formed: %v\n%s", err, doc)
	}
	var root node
	if err := xml.Unmarshal([]byte(doc), &root); err != nil {
		tb.Fatal(err)
	}
	return root
}

// points are a polyline's coordinates.
func points(tb testing.TB, pl node) [][2]float64 {
	tb.Helper()
	var out [][2]float64
	for _, p := range strings.Fields(pl.attr("points")) {
		xs, ys, _ := strings.Cut(p, ",")
		x, err1 := strconv.ParseFloat(xs, 64)
		y, err2 := strconv.ParseFloat(ys, 64)
		if err1 != nil || err2 != nil {
			tb.Fatalf("point %q", p)
		}
		out = append(out, [2]float64{x, y})
	}
	return out
}

// polyline is the one polyline titled title.
func polyline(tb testing.TB, root node, title string) node {
	tb.Helper()
	var found []node
	for _, pl := range root.all("polyline") {
		if pl.Title == title {
			found = append(found, pl)
		}
	}
	if len(found) != 1 {
		tb.Fatalf("%d polylines titled %q", len(found), title)
	}
	return found[0]
}

func TestSVGStandalone(t *testing.T) {
	root := decode(t, renderSVG(mustParse(t, curve), "a < b & \"c\""))
	if root.XMLName.Local != "svg" || root.XMLName.Space != "http://www.w3.org/2000/svg" {
		t.Errorf("root element %v, want svg in the SVG namespace", root.XMLName)
	}
	if vb := strings.Fields(root.attr("viewBox")); len(vb) != 4 || vb[0] != "0" || vb[1] != "0" || vb[2] != root.attr("width") || vb[3] != root.attr("height") {
		t.Errorf("viewBox %q, width %q, height %q", root.attr("viewBox"), root.attr("width"), root.attr("height"))
	}
	if bg := root.Children[0]; bg.XMLName.Local != "rect" || bg.attr("fill") != "white" || bg.attr("width") != "100%" {
		t.Errorf("first element %v %v, want a white background", bg.XMLName.Local, bg.Attrs)
	}
	if title := root.Children[1]; title.XMLName.Local != "text" || title.Text != "a < b & \"c\"" {
		t.Errorf("title %q", title.Text)
	}
	if got := len(root.all("g")); got != 4 {
		t.Errorf("%d panels, want 4 (2 filesystems x publish, sync)", got)
	}
}

// A polyline for every (fs, op, via, tool) with two points or more.
func TestSVGOneLinePerSeries(t *testing.T) {
	res := mustParse(t, curve)
	n := map[series]int{}
	for k := range res.median {
		n[k.series()]++
	}
	want := 0
	for _, c := range n {
		if c >= 2 {
			want++
		}
	}
	if want != 4 {
		t.Fatalf("the fixture has %d lines of 2 points or more, want 4", want)
	}
	root := decode(t, renderSVG(res, defaultTitle))
	if got := len(root.all("polyline")); got != want {
		t.Errorf("%d polylines, want %d", got, want)
	}
	polyline(t, root, "btrfs: publish, 1% — seqmirror")
	dashes := map[string]string{"seqmirror": "", "rsync": "6 4", "cp -al": "2 3"}
	for tool, dash := range dashes {
		pl := polyline(t, root, "ext4: sync, 1% over http — "+tool)
		if got := pl.attr("stroke-dasharray"); got != dash {
			t.Errorf("%s dashed %q, want %q", tool, got, dash)
		}
		if len(points(t, pl)) != 3 {
			t.Errorf("%s: %d points, want 3", tool, len(points(t, pl)))
		}
	}
	// Single points: only their marker.
	for _, tip := range []string{"ext4: publish, no-op — seqmirror: 500k files, 0.0020 s", "btrfs: sync, no-op over rsync — rsync: 10k files, 3.00 s"} {
		markers := 0
		for _, c := range root.all("circle") {
			if c.Title == tip {
				markers++
			}
		}
		if markers != 1 {
			t.Errorf("%d markers titled %q, want 1", markers, tip)
		}
	}
	legend := 0
	for _, tx := range root.all("text") {
		if tx.Text == "1% over http — cp -al" || tx.Text == "no-op — seqmirror" {
			legend++
		}
	}
	if legend != 2 {
		t.Errorf("%d of 2 legend entries", legend)
	}
}

// Both axes are log10: 100k halfway between 10k and 1M, and 1 s halfway
// between 0.1 s and 10 s; more time is higher up.
func TestSVGLogAxes(t *testing.T) {
	root := decode(t, renderSVG(mustParse(t, curve), defaultTitle))
	for _, tool := range []string{"seqmirror", "rsync"} {
		p := points(t, polyline(t, root, "ext4: sync, 1% over http — "+tool))
		if mid := (p[0][0] + p[2][0]) / 2; math.Abs(p[1][0]-mid) > 0.1 {
			t.Errorf("%s: 100k at x=%v, want %v (halfway between 10k and 1M)", tool, p[1][0], mid)
		}
		if mid := (p[0][1] + p[2][1]) / 2; math.Abs(p[1][1]-mid) > 0.1 {
			t.Errorf("%s: y = %v, want the middle one halfway", tool, p)
		}
		if !(p[0][0] < p[1][0] && p[0][1] > p[1][1] && p[1][1] > p[2][1]) {
			t.Errorf("%s: %v, want files to the right and time upwards", tool, p)
		}
	}
	seq := points(t, polyline(t, root, "ext4: sync, 1% over http — seqmirror"))
	rs := points(t, polyline(t, root, "ext4: sync, 1% over http — rsync"))
	// rsync is 10x seqmirror, one decade: the vertical distance of 10k to 100k.
	if d, dec := seq[0][1]-rs[0][1], seq[0][1]-seq[1][1]; math.Abs(d-dec) > 0.1 {
		t.Errorf("a factor of 10 is %v high, a decade %v", d, dec)
	}
	// Zero seconds sit at the bottom of the axis, not off the plot.
	z := points(t, polyline(t, root, "btrfs: publish, 1% — seqmirror"))
	if want := plotT + plotH - plotPad; math.Abs(z[1][1]-want) > 0.1 {
		t.Errorf("0 s at y=%v, want the bottom %v", z[1][1], want)
	}
}

func TestWriteSVGFile(t *testing.T) {
	res := mustParse(t, curve)
	dir := t.TempDir()
	path := filepath.Join(dir, "plot.svg")
	if err := writeSVG(path, res, defaultTitle); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != renderSVG(res, defaultTitle) {
		t.Error("the file is not the rendered SVG")
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("%d entries in the directory, want only the plot", len(ents))
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o644 {
		t.Errorf("mode %v, want 0644", fi.Mode())
	}
	if err := writeSVG(filepath.Join(dir, "missing", "plot.svg"), res, defaultTitle); err == nil {
		t.Error("writing into a missing directory succeeded")
	}
}

func TestTicks(t *testing.T) {
	tests := []struct {
		name         string
		lo, hi       float64
		major, minor int
	}{
		{name: "10k to 1M", lo: 4, hi: 6, major: 3, minor: 16},
		{name: "1 ms to 1000 s", lo: -3, hi: 3, major: 7, minor: 48},
		{name: "600 decades: every 50th, no minor lines", lo: -300, hi: 300, major: 13, minor: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			major, minor := 0, 0
			for _, tk := range ticks(tt.lo, tt.hi) {
				if tk.major {
					major++
				} else {
					minor++
				}
			}
			if major != tt.major || minor != tt.minor {
				t.Errorf("%d major and %d minor ticks, want %d and %d", major, minor, tt.major, tt.minor)
			}
		})
	}
}
