package testutil_test

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/seqmirror/seqmirror/testutil"
)

// TestChromedriver drives headless Chromium through the WebDriver client
// on a small page: finding, text, attributes, layout, a screenshot, and
// NoScript really turning scripts off (the <noscript> text shows, the
// script does not run).
func TestChromedriver(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, `<!DOCTYPE html><html><head><title>static</title></head><body>
<ul><li class="a">one</li><li class="b" data-x="2">two</li></ul>
<div id="box" style="width:200px;height:50px;background:#09c"></div>
<noscript><p id="ns">scripts are off</p></noscript>
<script>document.title = "script ran";</script></body></html>`)
	}))
	defer srv.Close()
	b := testutil.StartChromedriver(t, testutil.ChromeOptions{NoScript: true, Width: 400, Height: 300})
	t.Logf("chromedriver ready in %v, chromium session in %v", b.DriverStart, b.SessionStart)
	b.Navigate(srv.URL)
	if got := b.Title(); got != "static" {
		t.Errorf("title %q: the script ran", got)
	}
	if got := b.ElementText("#ns"); got != "scripts are off" {
		t.Errorf("noscript text %q", got)
	}
	items := b.Find("ul").FindAll("li")
	if len(items) != 2 || items[0].Text() != "one" || items[1].Attribute("data-x") != "2" || items[1].Attribute("nope") != "" {
		t.Errorf("list items wrong: %d", len(items))
	}
	if n := len(b.FindAll(".missing")); n != 0 {
		t.Errorf("%d elements match nothing", n)
	}
	if r := b.Find("#box").Rect(); r.Width != 200 || r.Height != 50 {
		t.Errorf("box laid out %+v", r)
	}
	if png := b.Screenshot(); !bytes.HasPrefix(png, []byte("\x89PNG\r\n\x1a\n")) {
		t.Errorf("screenshot is no PNG")
	}
}
