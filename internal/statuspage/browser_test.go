package statuspage_test

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/seqmirror/seqmirror/internal/statuspage"
	"github.com/seqmirror/seqmirror/testutil"
)

// TestBrowserShowsThreeTiers opens the page of a tier-1 mirror of a
// 3-tier network (one downstream stale, one unreachable) in headless
// Chromium, JavaScript off, through Handler on a real listener, and checks
// what a person sees: the states as words on the right rows, the lineage
// in order with its lag, the plot drawn with one mark per arrival. It
// saves a screenshot (SEQMIRROR_ARTIFACTS: where to keep it).
func TestBrowserShowsThreeTiers(t *testing.T) {
	start := time.Now()
	page := statuspage.ThreeTiersForTest()
	srv := httptest.NewServer(statuspage.Handler(func(context.Context) (statuspage.Page, error) { return page, nil }))
	defer srv.Close()
	b := testutil.StartChromedriver(t, testutil.ChromeOptions{NoScript: true, Width: 1100, Height: 1500})
	t.Logf("chromedriver ready in %v, chromium session in %v", b.DriverStart.Round(time.Millisecond), b.SessionStart.Round(time.Millisecond))
	b.Navigate(srv.URL + "/status")
	if got := b.Title(); !strings.Contains(got, "t1-a.example.org") {
		t.Errorf("title %q, want the server's name", got)
	}
	checkDownstreams(t, b)
	checkLineage(t, b)
	checkPlot(t, b, statuspage.ArrivalsForTest(page))
	b.SaveScreenshot("status-page.png")
	t.Logf("browser test took %v", time.Since(start).Round(time.Millisecond))
}

func checkDownstreams(t *testing.T, b *testutil.Browser) {
	t.Helper()
	want := map[string]string{"t2-a.example.org": "stale", "t2-b.example.org": "unreachable"}
	rows := b.FindAll("#downstreams tbody tr")
	if len(rows) != len(want) {
		t.Fatalf("%d downstream rows, want %d", len(rows), len(want))
	}
	for _, r := range rows {
		text := r.Text()
		name, _, _ := strings.Cut(text, "\n")
		state, ok := want[strings.TrimSpace(name)]
		if !ok {
			t.Errorf("unexpected downstream row %q", text)
			continue
		}
		if !strings.Contains(text, state) || !strings.Contains(r.Attribute("class"), "state-"+state) {
			t.Errorf("row of %s reads %q (class %q), want it shown as %s", name, text, r.Attribute("class"), state)
		}
		if !r.Displayed() {
			t.Errorf("row of %s is not visible", name)
		}
	}
}

func checkLineage(t *testing.T, b *testutil.Browser) {
	t.Helper()
	hops := b.FindAll("#lineage tbody tr")
	if len(hops) != 2 {
		t.Fatalf("%d lineage rows, want 2", len(hops))
	}
	first, second := hops[0].Text(), hops[1].Text()
	if !strings.HasPrefix(first, "master master.example.org") || !strings.HasPrefix(second, "1 t1-a.example.org") {
		t.Errorf("lineage rows out of order:\n%s\n%s", first, second)
	}
	if !strings.HasSuffix(second, "+420 ms") {
		t.Errorf("tier-1 hop %q, want its lag +420 ms", second)
	}
	if s := b.ElementText("#lineage-summary"); !strings.Contains(s, "+420 ms") || !strings.Contains(s, "5 min") {
		t.Errorf("lineage summary %q, want the total lag and the snapshot's age", s)
	}
}

func checkPlot(t *testing.T, b *testutil.Browser, marks int) {
	t.Helper()
	svg := b.Find("#propagation svg")
	if r := svg.Rect(); r.Width < 100 || r.Height < 50 || !svg.Displayed() {
		t.Errorf("plot laid out at %+v, want it visible", r)
	}
	if got := len(b.FindAll("#propagation svg g.mark")); got != marks {
		t.Errorf("plot has %d marks, want %d (one per arrival)", got, marks)
	}
	if got := b.ElementText("#propagation figcaption"); !strings.Contains(got, "Delay") {
		t.Errorf("plot caption %q", got)
	}
}
