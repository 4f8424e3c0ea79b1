package statuspage

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/seqmirror/seqmirror/internal/export"
)

func TestHopLags(t *testing.T) {
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	hop := func(name string, since time.Time) Hop { return Hop{Name: name, Snapshot: 7, Since: since} }
	cases := []struct {
		name    string
		lineage []Hop
		now     time.Time
		lags    []time.Duration
		age     time.Duration
		total   time.Duration
	}{
		{name: "no lineage", now: at(5000), lags: []time.Duration{}},
		{name: "the master alone", lineage: []Hop{hop("m", at(0))}, now: at(5000), lags: []time.Duration{0}, age: 5 * time.Second},
		{name: "three tiers", lineage: []Hop{hop("m", at(0)), hop("t1", at(400)), hop("t2", at(1100))}, now: at(3100),
			lags: []time.Duration{0, 400 * time.Millisecond, 700 * time.Millisecond}, age: 2 * time.Second, total: 1100 * time.Millisecond},
		{name: "a hop's since unknown", lineage: []Hop{hop("m", at(0)), hop("t1", time.Time{}), hop("t2", at(900))}, now: at(1000),
			lags: []time.Duration{0, 0, 0}, age: 100 * time.Millisecond, total: 900 * time.Millisecond},
		{name: "the last since unknown", lineage: []Hop{hop("m", at(0)), hop("t1", time.Time{})}, now: at(1000),
			lags: []time.Duration{0, 0}},
		{name: "clocks disagree", lineage: []Hop{hop("m", at(1000)), hop("t1", at(800))}, now: at(700),
			lags: []time.Duration{0, -200 * time.Millisecond}, age: -100 * time.Millisecond, total: -200 * time.Millisecond},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			hops, age := HopLags(tc.lineage, tc.now)
			lags := make([]time.Duration, len(hops))
			for i, h := range hops {
				lags[i] = h.Lag
				if !reflect.DeepEqual(h.Hop, tc.lineage[i]) {
					t.Errorf("hop %d is %+v, want %+v", i, h.Hop, tc.lineage[i])
				}
			}
			if fmt.Sprint(lags) != fmt.Sprint(tc.lags) || age != tc.age {
				t.Errorf("lags %v age %v, want %v and %v", lags, age, tc.lags, tc.age)
			}
			if got := Total(tc.lineage); got != tc.total {
				t.Errorf("total %v, want %v", got, tc.total)
			}
		})
	}
}

func TestClassifyDownstream(t *testing.T) {
	refused := errors.New("dial tcp 127.0.0.1:1: connection refused")
	whole := func(n uint64) export.Observed { return export.Observed{Snapshot: n, Begin: 3, End: 3, Complete: true} }
	with := func(o export.Observed, f func(*export.Observed)) export.Observed { f(&o); return o }
	cases := []struct {
		name    string
		obs     export.Observed
		ours    uint64
		state   string
		problem string
		behind  uint64
	}{
		{name: "level", obs: whole(9), ours: 9, state: "fresh"},
		{name: "ahead of us", obs: whole(10), ours: 9, state: "fresh"},
		{name: "behind us", obs: whole(7), ours: 9, state: "stale", behind: 2},
		{name: "behind its own upstream's record", obs: with(whole(7), func(o *export.Observed) { o.Upstream = 8 }), ours: 7, state: "stale", behind: 1},
		{name: "updating", obs: with(whole(9), func(o *export.Observed) { o.Begin = 4 }), ours: 9, state: "updating"},
		{name: "updating and behind", obs: with(whole(8), func(o *export.Observed) { o.Begin = 4 }), ours: 9, state: "updating", behind: 1},
		{name: "empty", obs: export.Observed{}, ours: 9, state: "empty"},
		{name: "incomplete snapshot", obs: with(whole(9), func(o *export.Observed) { o.Complete = false }), ours: 9, state: "torn",
			problem: "current points to snapshot 9, which is not complete", behind: 0},
		{name: "corrupt pointer", obs: export.Observed{Corrupt: export.ErrBadCurrent, Snapshot: 0}, ours: 9, state: "torn", problem: "bad current symlink"},
		{name: "unreachable", obs: export.Observed{Unreachable: refused}, ours: 9, state: "unreachable", problem: refused.Error()},
		{name: "unreachable wins over the rest", obs: with(whole(3), func(o *export.Observed) { o.Unreachable = refused }), ours: 9,
			state: "unreachable", problem: refused.Error()},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			state, problem, behind := ClassifyDownstream(tc.obs, tc.ours)
			if state != tc.state || problem != tc.problem || behind != tc.behind {
				t.Errorf("got %q %q %d, want %q %q %d", state, problem, behind, tc.state, tc.problem, tc.behind)
			}
			if stateClass(state) != "state-"+state {
				t.Errorf("state %q has class %q", state, stateClass(state))
			}
		})
	}
}

func TestFormat(t *testing.T) {
	cases := []struct {
		name string
		d    time.Duration
		dur  string
		lag  string
	}{
		{name: "zero", d: 0, dur: "0 ms", lag: "+0 ms"},
		{name: "ms", d: 420 * time.Millisecond, dur: "420 ms", lag: "+420 ms"},
		{name: "seconds", d: 1500 * time.Millisecond, dur: "1.5 s", lag: "+1.5 s"},
		{name: "whole seconds", d: 2 * time.Second, dur: "2 s", lag: "+2 s"},
		{name: "minutes", d: 299 * time.Second, dur: "5 min", lag: "+5 min"},
		{name: "hours", d: 90 * time.Minute, dur: "1.5 h", lag: "+1.5 h"},
		{name: "days", d: 72 * time.Hour, dur: "3 d", lag: "+3 d"},
		{name: "negative", d: -200 * time.Millisecond, dur: "-200 ms", lag: "-200 ms (clocks disagree)"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := fmtDur(tc.d); got != tc.dur {
				t.Errorf("fmtDur %q, want %q", got, tc.dur)
			}
			if got := fmtLag(tc.d); got != tc.lag {
				t.Errorf("fmtLag %q, want %q", got, tc.lag)
			}
		})
	}
}

// hostile names try to break out of text, attributes, <title>, the SVG.
var hostile = []string{
	`<script>alert(1)</script>`,
	`"><img src=x onerror=alert(1)>`,
	`'><svg onload=alert(1)>`,
	`</title><script>alert(1)</script>`,
	`]]><!--&amp;<x y="`,
	"javascript:alert(1)",
}

// hostilePage is the three-tier page with name in every string that comes
// from another server.
func hostilePage(name string) Page {
	p := threeTiers()
	p.Server.Name, p.Server.Root, p.Server.State = name, name, name
	for i := range p.Lineage {
		p.Lineage[i].Name, p.Lineage[i].Address = name+fmt.Sprint(i), name
	}
	for i := range p.Downstreams {
		d := &p.Downstreams[i]
		d.Name, d.URL, d.Error = name, name, name
	}
	p.Downstreams[0].State = name
	for i := range p.History {
		for j := range p.History[i].Arrivals {
			p.History[i].Arrivals[j].Mirror = name
		}
	}
	return p
}

func TestRenderEscapesHostileNames(t *testing.T) {
	for _, name := range hostile {
		t.Run(name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := Render(&buf, hostilePage(name)); err != nil {
				t.Fatal(err)
			}
			out := buf.String()
			for _, bad := range []string{"<script", "<img", "<svg onload", "<x ", name} {
				if strings.Contains(out, bad) && strings.ContainsAny(name, `<>"'&`) {
					t.Errorf("page holds %q unescaped", bad)
				}
			}
			if !strings.Contains(out, "javascript:alert(1)") && name == "javascript:alert(1)" {
				t.Errorf("a plain name is shown as it is")
			}
			if strings.Contains(out, `href="`) || strings.Contains(out, `src="`) {
				t.Errorf("the page links or loads something")
			}
			if !strings.Contains(out, `<tr class="downstream state-unknown">`) {
				t.Errorf("a hostile state gets no class of its own")
			}
			checkSVG(t, extractSVG(t, out), arrivals(threeTiers()))
		})
	}
}

// extractSVG is the <svg> element of a rendered page.
func extractSVG(t *testing.T, page string) string {
	t.Helper()
	i, j := strings.Index(page, "<svg"), strings.LastIndex(page, "</svg>")
	if i < 0 || j < i {
		t.Fatalf("no <svg> in the page")
	}
	return page[i : j+len("</svg>")]
}

// checkSVG parses svg as XML (strict) and checks it has marks marks: <g
// class="mark"> elements, each with a title and one shape.
func checkSVG(t *testing.T, svg string, marks int) {
	t.Helper()
	d := xml.NewDecoder(strings.NewReader(svg))
	d.Strict = true
	found, depth, inMark, shapes := 0, 0, -1, 0
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("svg is not well-formed XML: %v\n%s", err, svg)
		}
		switch e := tok.(type) {
		case xml.StartElement:
			depth++
			if e.Name.Local == "svg" && e.Name.Space != "http://www.w3.org/2000/svg" {
				t.Errorf("svg in namespace %q", e.Name.Space)
			}
			if e.Name.Local == "g" && attr(e, "class") == "mark" {
				found, inMark = found+1, depth
			}
			if inMark >= 0 && (e.Name.Local == "circle" || e.Name.Local == "rect" || e.Name.Local == "polygon") {
				shapes++
			}
		case xml.EndElement:
			if depth == inMark {
				inMark = -1
			}
			depth--
		}
	}
	if found != marks || shapes != marks {
		t.Errorf("svg has %d marks with %d shapes, want %d", found, shapes, marks)
	}
}

func attr(e xml.StartElement, name string) string {
	for _, a := range e.Attr {
		if a.Name.Local == name {
			return a.Value
		}
	}
	return ""
}

func TestPlot(t *testing.T) {
	long := func(n int) []Propagation {
		var h []Propagation
		for i := n; i >= 1; i-- { // newest first: the plot sorts
			h = append(h, Propagation{Snapshot: uint64(i), Flipped: t0, Arrivals: []Arrival{
				{Mirror: "a", Tier: 1, At: t0.Add(time.Duration(i) * time.Second)},
				{Mirror: "b", Tier: 3, At: t0.Add(-time.Second)}, // clocks disagree: drawn at 0
			}})
		}
		return h
	}
	cases := []struct {
		name      string
		history   []Propagation
		marks     int
		snapshots int
		firstX    string // the first x label
	}{
		{name: "three tiers", history: threeTiers().History, marks: arrivals(threeTiers()), snapshots: 8, firstX: "35"},
		{name: "no history", marks: 0, snapshots: 0},
		{name: "more than plotted", history: long(MaxPlotted + 5), marks: 2 * MaxPlotted, snapshots: MaxPlotted, firstX: "6"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := WritePlot(&buf, tc.history); err != nil {
				t.Fatal(err)
			}
			checkSVG(t, buf.String(), tc.marks)
			p := newPlot(tc.history)
			if p.Snapshots != tc.snapshots || (tc.firstX != "" && p.XTicks[0].Label != tc.firstX) {
				t.Errorf("plots %d snapshots, x ticks %+v; want %d from %s", p.Snapshots, p.XTicks, tc.snapshots, tc.firstX)
			}
			if len(p.XTicks) > maxXLabels {
				t.Errorf("%d x labels, at most %d", len(p.XTicks), maxXLabels)
			}
			for _, m := range p.Marks {
				if m.X < p.Left || m.X > p.Right || m.Y < p.Top || m.Y > p.Bottom {
					t.Errorf("mark %+v outside the axes", m)
				}
			}
		})
	}
}

func TestYScale(t *testing.T) {
	cases := []struct {
		name      string
		max       time.Duration
		step, top time.Duration
	}{
		{name: "nothing", max: 0, step: time.Millisecond, top: time.Millisecond},
		{name: "sub-second", max: 1420 * time.Millisecond, step: 500 * time.Millisecond, top: 1500 * time.Millisecond},
		{name: "exact", max: 2 * time.Second, step: 500 * time.Millisecond, top: 2 * time.Second},
		{name: "a poll interval", max: 61 * time.Second, step: 15 * time.Second, top: 75 * time.Second},
		{name: "days", max: 200 * time.Hour, step: 24 * time.Hour, top: 216 * time.Hour},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if step, top := yScale(tc.max); step != tc.step || top != tc.top {
				t.Errorf("yScale(%v) = %v, %v; want %v, %v", tc.max, step, top, tc.step, tc.top)
			}
		})
	}
}

func TestHandler(t *testing.T) {
	page := threeTiers()
	page.Refresh = 7 * time.Second
	var fail error
	srv := httptest.NewServer(Handler(func(ctx context.Context) (Page, error) { return page, fail }))
	defer srv.Close()
	cases := []struct {
		name   string
		method string
		fail   error
		code   int
		ctype  string
		body   string
	}{
		{name: "get", method: "GET", code: 200, ctype: "text/html; charset=utf-8", body: `<meta http-equiv="refresh" content="7">`},
		{name: "head", method: "HEAD", code: 200, ctype: "text/html; charset=utf-8"},
		{name: "post", method: "POST", code: 405, ctype: "text/plain; charset=utf-8", body: "method not allowed"},
		{name: "source fails", method: "GET", fail: errors.New("root <gone>"), code: 503, ctype: "text/plain; charset=utf-8", body: "root <gone>"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fail = tc.fail
			req, _ := http.NewRequest(tc.method, srv.URL+"/status", nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.code || resp.Header.Get("Content-Type") != tc.ctype || !strings.Contains(string(body), tc.body) {
				t.Fatalf("%s: %s %q, want %d %q with %q\n%s", tc.method, resp.Status, resp.Header.Get("Content-Type"), tc.code, tc.ctype, tc.body, body)
			}
			if tc.code == 200 {
				if resp.Header.Get("Cache-Control") != "no-cache" || !strings.Contains(resp.Header.Get("Content-Security-Policy"), "default-src 'none'") {
					t.Errorf("headers %v", resp.Header)
				}
			}
		})
	}
}

func TestRefreshDefault(t *testing.T) {
	var buf bytes.Buffer
	if err := Render(&buf, Page{Server: Server{Name: "m"}}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`content="30"`, "No lineage recorded", "No downstream mirrors", "No propagation recorded"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("an empty page lacks %q", want)
		}
	}
}

// FuzzRender renders the three-tier page with a random name in every
// string from another server: it renders, the plot stays well-formed XML,
// and wherever the name appears (between sentinels) it holds no markup
// character as it is.
func FuzzRender(f *testing.F) {
	for _, h := range hostile {
		f.Add(h)
	}
	f.Add("\x00\xff\ufeff")
	const sentinel = "\u2063"
	f.Fuzz(func(t *testing.T, name string) {
		name = strings.ReplaceAll(name, sentinel, "")
		if r := []rune(name); len(r) > 150 {
			name = string(r[:150])
		}
		var buf bytes.Buffer
		if err := Render(&buf, hostilePage(sentinel+name+sentinel)); err != nil {
			t.Fatal(err)
		}
		out := buf.String()
		parts := strings.Split(out, sentinel)
		for i := 1; i < len(parts); i += 2 { // the name as shown
			if strings.ContainsAny(parts[i], "<>\"'") {
				t.Fatalf("%q shown as %q: markup unescaped", name, parts[i])
			}
		}
		if strings.Contains(out, "<script") {
			t.Fatalf("a script element")
		}
		checkSVG(t, extractSVG(t, out), arrivals(threeTiers()))
	})
}

func TestClean(t *testing.T) {
	cases := []struct {
		name, in, want string
		limit          int
	}{
		{name: "plain", in: "mirror.example.org", want: "mirror.example.org", limit: 50},
		{name: "markup is left to the template", in: "<b>&", want: "<b>&", limit: 50},
		{name: "controls", in: "a\x00b\nc\x1bd\x7f", want: "a\ufffdb\ufffdc\ufffdd\ufffd", limit: 50},
		{name: "invalid UTF-8", in: "a\xffb", want: "a\ufffdb", limit: 50},
		{name: "bidi override", in: "gro.\u202eevil", want: "gro.\ufffdevil", limit: 50},
		{name: "noncharacter", in: "a\uffffb", want: "a\ufffdb", limit: 50},
		{name: "cut", in: "ééééé", want: "ééé…", limit: 3},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := clean(tc.in, tc.limit); got != tc.want {
				t.Errorf("clean(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

// TestRenderLeavesPageAlone: the caller's Page (its slices) is only read.
func TestRenderLeavesPageAlone(t *testing.T) {
	p := hostilePage("a\x00<b>")
	before := fmt.Sprintf("%#v", p)
	if err := Render(io.Discard, p); err != nil {
		t.Fatal(err)
	}
	if after := fmt.Sprintf("%#v", p); after != before {
		t.Errorf("Render changed its Page")
	}
}
