package testutil

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// ChromeOptions tune the browser StartChromedriver starts.
type ChromeOptions struct {
	// NoScript turns JavaScript off in the pages (Chromium's content
	// setting; chromedriver's own commands still work): to show that a
	// page works without it.
	NoScript bool
	// Width and Height are the window's size in CSS pixels, what a
	// screenshot shows (default 1280 x 1400).
	Width, Height int
}

// Browser is a headless Chromium (Debian's chromium) driven by chromedriver
// through the W3C WebDriver HTTP API, one session, started by
// StartChromedriver and stopped when the test ends. Its methods fail the
// test on error.
type Browser struct {
	// DriverStart is how long chromedriver took to answer; SessionStart how
	// long the session took to open (Chromium's start).
	DriverStart, SessionStart time.Duration

	tb       testing.TB
	dir      string // chromedriver.log, the browser profile
	driver   string // http://127.0.0.1:PORT
	session  string // driver + /session/ID
	client   *http.Client
	cmd      *exec.Cmd
	done     chan struct{}
	stopOnce sync.Once
}

// Element is an element found in the page.
type Element struct {
	b  *Browser
	id string
}

// Rect is an element's position and size in CSS pixels.
type Rect struct{ X, Y, Width, Height float64 }

// webElementKey is the W3C key of an element reference.
const webElementKey = "element-6066-11e4-a52e-4f735466cecf"

// StartChromedriver starts chromedriver on a free 127.0.0.1 port and opens a
// session of headless Chromium (a temporary profile, no network of its
// own: background networking, updates, sync and QUIC off, since this
// machine's closed network refuses them). Both must be installed (apt-get
// install chromium chromium-driver); under SEQMIRROR_REQUIRE_PEERS their
// absence fails the test.
func StartChromedriver(tb testing.TB, opts ...ChromeOptions) *Browser {
	tb.Helper()
	chromium := RequireBinary(tb, "chromium")
	driver := RequireBinaryOf(tb, "chromedriver", "chromium-driver")
	var o ChromeOptions
	if len(opts) > 0 {
		o = opts[0]
	}
	b := &Browser{tb: tb, dir: tb.TempDir(), client: &http.Client{Timeout: 60 * time.Second}, done: make(chan struct{})}
	start := time.Now()
	if err := b.startDriver(driver); err != nil {
		tb.Fatalf("start chromedriver: %v", err)
	}
	tb.Cleanup(b.stop)
	b.DriverStart = time.Since(start)
	start = time.Now()
	if err := b.newSession(chromium, o); err != nil {
		tb.Fatalf("start chromium through chromedriver: %v\n%s", err, b.log())
	}
	b.SessionStart = time.Since(start)
	return b
}

// startDriver runs chromedriver (its own process group) and waits until
// it answers /status, trying another port if the first is taken.
func (b *Browser) startDriver(bin string) error {
	port, err := freePort()
	if err != nil {
		return err
	}
	b.driver = fmt.Sprintf("http://127.0.0.1:%d", port)
	b.cmd = exec.Command(bin, fmt.Sprintf("--port=%d", port), "--log-path="+filepath.Join(b.dir, "chromedriver.log"))
	b.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var stderr strings.Builder
	b.cmd.Stdout, b.cmd.Stderr = io.Discard, &stderr
	if err := b.cmd.Start(); err != nil {
		return fmt.Errorf("%s: %w", bin, err)
	}
	go func() { _ = b.cmd.Wait(); close(b.done) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case <-b.done:
			return fmt.Errorf("chromedriver exited: %s", stderr.String())
		default:
		}
		var st struct {
			Ready bool `json:"ready"`
		}
		if err := b.call(http.MethodGet, b.driver+"/status", nil, &st); err == nil && st.Ready {
			return nil
		} else if time.Now().After(deadline) {
			b.stop()
			return fmt.Errorf("chromedriver on port %d not ready within 10s: %v", port, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// newSession opens the WebDriver session: Chromium starts.
func (b *Browser) newSession(chromium string, o ChromeOptions) error {
	w, h := o.Width, o.Height
	if w == 0 || h == 0 {
		w, h = 1280, 1400
	}
	chrome := map[string]any{
		"binary": chromium,
		"args": []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
			"--disable-background-networking", "--disable-component-update", "--disable-sync",
			"--disable-dev-shm-usage", "--hide-scrollbars", fmt.Sprintf("--window-size=%d,%d", w, h),
			"--user-data-dir=" + filepath.Join(b.dir, "profile")},
	}
	if o.NoScript {
		chrome["prefs"] = map[string]any{"profile.managed_default_content_settings.javascript": 2}
	}
	caps := map[string]any{"capabilities": map[string]any{"alwaysMatch": map[string]any{
		"browserName": "chrome", "goog:chromeOptions": chrome}}}
	var resp struct {
		SessionID string `json:"sessionId"`
	}
	if err := b.call(http.MethodPost, b.driver+"/session", caps, &resp); err != nil {
		return err
	}
	b.session = b.driver + "/session/" + resp.SessionID
	return nil
}

// stop closes the session (Chromium quits), then kills chromedriver's
// process group (whatever is left of Chromium too) and waits for it.
func (b *Browser) stop() {
	b.stopOnce.Do(func() {
		if b.session != "" {
			_ = b.call(http.MethodDelete, b.session, nil, nil)
		}
		if b.cmd != nil && b.cmd.Process != nil {
			_ = syscall.Kill(-b.cmd.Process.Pid, syscall.SIGKILL)
			<-b.done
		}
	})
}

// log is chromedriver's log so far, for failure messages.
func (b *Browser) log() string {
	data, _ := os.ReadFile(filepath.Join(b.dir, "chromedriver.log"))
	if len(data) > 4000 {
		data = data[len(data)-4000:]
	}
	return string(data)
}

// call sends one WebDriver command and decodes its "value" into out (if
// not nil); a WebDriver error is returned as one.
func (b *Browser) call(method, url string, body, out any) error {
	var rd io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := b.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var env struct {
		Value json.RawMessage `json:"value"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&env); err != nil {
		return fmt.Errorf("%s %s: %s, undecodable answer: %w", method, url, resp.Status, err)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct{ Error, Message string }
		_ = json.Unmarshal(env.Value, &e)
		return fmt.Errorf("%s %s: %s: %s: %s", method, url, resp.Status, e.Error, firstLine(e.Message))
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(env.Value, out)
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// do is call for the session's commands (path below the session), failing
// the test on error.
func (b *Browser) do(method, path string, body, out any) {
	b.tb.Helper()
	if err := b.call(method, b.session+path, body, out); err != nil {
		b.tb.Fatalf("webdriver: %v", err)
	}
}

// Navigate loads url and waits for the page to load.
func (b *Browser) Navigate(url string) {
	b.tb.Helper()
	b.do(http.MethodPost, "/url", map[string]string{"url": url}, nil)
}

// Title is the page's title.
func (b *Browser) Title() string {
	b.tb.Helper()
	var s string
	b.do(http.MethodGet, "/title", nil, &s)
	return s
}

// FindAll returns the elements the CSS selector matches, in document
// order (none: an empty list).
func (b *Browser) FindAll(css string) []Element {
	b.tb.Helper()
	return b.findAll("", css)
}

// Find returns the first element the CSS selector matches; none fails the
// test.
func (b *Browser) Find(css string) Element {
	b.tb.Helper()
	els := b.FindAll(css)
	if len(els) == 0 {
		b.tb.Fatalf("webdriver: no element matches %q", css)
	}
	return els[0]
}

// ElementText is the visible text of the first element the CSS selector
// matches.
func (b *Browser) ElementText(css string) string {
	b.tb.Helper()
	return b.Find(css).Text()
}

func (b *Browser) findAll(from, css string) []Element {
	b.tb.Helper()
	var refs []map[string]string
	b.do(http.MethodPost, from+"/elements", map[string]string{"using": "css selector", "value": css}, &refs)
	els := make([]Element, len(refs))
	for i, r := range refs {
		els[i] = Element{b: b, id: r[webElementKey]}
	}
	return els
}

// FindAll returns the elements below e the CSS selector matches.
func (e Element) FindAll(css string) []Element {
	e.b.tb.Helper()
	return e.b.findAll("/element/"+e.id, css)
}

// Text is the element's visible text, as rendered.
func (e Element) Text() string {
	e.b.tb.Helper()
	var s string
	e.b.do(http.MethodGet, "/element/"+e.id+"/text", nil, &s)
	return s
}

// Attribute is the element's attribute name ("" if it has none).
func (e Element) Attribute(name string) string {
	e.b.tb.Helper()
	var s *string
	e.b.do(http.MethodGet, "/element/"+e.id+"/attribute/"+name, nil, &s)
	if s == nil {
		return ""
	}
	return *s
}

// Rect is where the element is laid out, and its size.
func (e Element) Rect() Rect {
	e.b.tb.Helper()
	var r Rect
	e.b.do(http.MethodGet, "/element/"+e.id+"/rect", nil, &r)
	return r
}

// Displayed reports whether the element is visible to a person.
func (e Element) Displayed() bool {
	e.b.tb.Helper()
	var v bool
	e.b.do(http.MethodGet, "/element/"+e.id+"/displayed", nil, &v)
	return v
}

// Screenshot is a PNG of the window (the viewport) as it is rendered now.
func (b *Browser) Screenshot() []byte {
	b.tb.Helper()
	var s string
	b.do(http.MethodGet, "/screenshot", nil, &s)
	png, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		b.tb.Fatalf("webdriver screenshot: %v", err)
	}
	return png
}

// SaveScreenshot saves a screenshot as name (e.g. "status-page.png") in a
// temporary directory of the test and, when SEQMIRROR_ARTIFACTS names a
// directory (created if need be), there too, for people to look at; it
// logs where and returns the path to keep (the artifacts copy if any).
func (b *Browser) SaveScreenshot(name string) string {
	b.tb.Helper()
	png := b.Screenshot()
	path := filepath.Join(b.tb.TempDir(), name)
	Must(b.tb, os.WriteFile(path, png, 0o644))
	if dir := os.Getenv("SEQMIRROR_ARTIFACTS"); dir != "" {
		Must(b.tb, os.MkdirAll(dir, 0o755))
		path = filepath.Join(dir, name)
		Must(b.tb, os.WriteFile(path, png, 0o644))
	}
	b.tb.Logf("screenshot (%d bytes): %s", len(png), path)
	return path
}
