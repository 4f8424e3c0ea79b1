package trigger

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/seqmirror/seqmirror/internal/fsys"
)

var (
	secret = []byte("0123456789abcdef0123456789abcdef")
	t0     = time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
)

// clock is a settable clock for a Verifier.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time   { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) set(t time.Time)  { c.mu.Lock(); defer c.mu.Unlock(); c.t = t }
func newClock(t time.Time) *clock { return &clock{t: t} }
func msg(n uint64, sent time.Time) Message {
	return Message{Snapshot: n, Origin: "test", Sent: sent, Nonce: newNonce()}
}

// request is a signed trigger request for m, its body as encoded, signed
// with key at m.Sent.
func request(tb testing.TB, key []byte, m Message) *http.Request {
	tb.Helper()
	body, err := json.Marshal(m)
	if err != nil {
		tb.Fatal(err)
	}
	return signed(key, m.Sent.Unix(), body)
}

func signed(key []byte, t int64, body []byte) *http.Request {
	r := httptest.NewRequest(http.MethodPost, Path, bytes.NewReader(body))
	r.Header.Set(SignatureHeader, signatureHeader(key, t, body))
	return r
}

func TestVerify(t *testing.T) {
	good := msg(7, t0)
	body, _ := json.Marshal(good)
	tests := []struct {
		name string
		req  func() *http.Request
		want error // nil: accepted
	}{
		{name: "valid", req: func() *http.Request { return request(t, secret, msg(7, t0)) }},
		{name: "valid, sent 4m59s ago", req: func() *http.Request { return request(t, secret, msg(7, t0.Add(-299*time.Second))) }},
		{name: "valid, several v1 signatures (rotation)", req: func() *http.Request {
			r := signed(secret, t0.Unix(), body)
			r.Header.Set(SignatureHeader, fmt.Sprintf("t=%d,v1=%s,v1=%s", t0.Unix(), Sign([]byte("another secret 0123"), t0.Unix(), body), Sign(secret, t0.Unix(), body)))
			return r
		}},
		{name: "snapshot 0 (none named)", req: func() *http.Request { return request(t, secret, msg(0, t0)) }},
		{name: "no signature", req: func() *http.Request {
			r := signed(secret, t0.Unix(), body)
			r.Header.Del(SignatureHeader)
			return r
		}, want: ErrBadSignature},
		{name: "wrong secret", req: func() *http.Request { return request(t, []byte("not the secret, but long enough"), msg(7, t0)) }, want: ErrBadSignature},
		{name: "body changed after signing", req: func() *http.Request {
			r := signed(secret, t0.Unix(), body)
			r.Body = http.NoBody
			changed := bytes.Replace(body, []byte(`"snapshot":7`), []byte(`"snapshot":8`), 1)
			return withBody(r, changed)
		}, want: ErrBadSignature},
		{name: "time changed after signing", req: func() *http.Request {
			r := signed(secret, t0.Unix(), body)
			r.Header.Set(SignatureHeader, fmt.Sprintf("t=%d,v1=%s", t0.Unix()+1, Sign(secret, t0.Unix(), body)))
			return r
		}, want: ErrBadSignature},
		{name: "malformed header", req: func() *http.Request {
			r := signed(secret, t0.Unix(), body)
			r.Header.Set(SignatureHeader, "v1=zz")
			return r
		}, want: ErrBadSignature},
		{name: "only an unknown scheme", req: func() *http.Request {
			r := signed(secret, t0.Unix(), body)
			r.Header.Set(SignatureHeader, fmt.Sprintf("t=%d,v0=%s", t0.Unix(), Sign(secret, t0.Unix(), body)))
			return r
		}, want: ErrBadSignature},
		{name: "stale", req: func() *http.Request { return request(t, secret, msg(7, t0.Add(-301*time.Second))) }, want: ErrStale},
		{name: "future", req: func() *http.Request { return request(t, secret, msg(7, t0.Add(301*time.Second))) }, want: ErrStale},
		{name: "sent is not the signed time", req: func() *http.Request {
			b, _ := json.Marshal(msg(7, t0.Add(-time.Minute)))
			return signed(secret, t0.Unix(), b)
		}, want: ErrMalformed},
		{name: "no nonce", req: func() *http.Request { m := msg(7, t0); m.Nonce = ""; return request(t, secret, m) }, want: ErrMalformed},
		{name: "upper-case nonce", req: func() *http.Request {
			m := msg(7, t0)
			m.Nonce = strings.ToUpper(m.Nonce)
			return request(t, secret, m)
		}, want: ErrMalformed},
		{name: "not JSON", req: func() *http.Request { return signed(secret, t0.Unix(), []byte("sync 7")) }, want: ErrMalformed},
		{name: "two messages", req: func() *http.Request {
			return signed(secret, t0.Unix(), append(append(append([]byte{}, body...), '\n'), body...))
		}, want: ErrMalformed},
		{name: "oversized body", req: func() *http.Request {
			m := msg(7, t0)
			m.Origin = strings.Repeat("x", MaxBody)
			return request(t, secret, m)
		}, want: errTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := NewVerifier(secret, newClock(t0).now)
			m, err := v.Verify(tt.req())
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				if m.Origin != "test" || m.Sent.Unix() > t0.Unix() || len(m.Nonce) != 32 {
					t.Fatalf("message %+v", m)
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("Verify: %v, want %v", err, tt.want)
			}
		})
	}
}

func withBody(r *http.Request, b []byte) *http.Request {
	r.Body = ioNopCloser(bytes.NewReader(b))
	r.ContentLength = int64(len(b))
	return r
}

// The same request verifies once; its nonce is remembered until the
// window has passed, when a replay is stale anyway.
func TestReplay(t *testing.T) {
	clk := newClock(t0)
	v := NewVerifier(secret, clk.now)
	m := msg(3, t0)
	if _, err := v.Verify(request(t, secret, m)); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(request(t, secret, m)); !errors.Is(err, ErrReplay) {
		t.Fatalf("replay: %v", err)
	}
	// The same snapshot with a fresh nonce is a new trigger.
	if _, err := v.Verify(request(t, secret, msg(3, t0))); err != nil {
		t.Fatalf("fresh nonce: %v", err)
	}
	clk.set(t0.Add(DefaultMaxSkew + time.Second))
	if _, err := v.Verify(request(t, secret, m)); !errors.Is(err, ErrStale) {
		t.Fatalf("replay after the window: %v", err)
	}
}

// The nonce memory is bounded: full, it refuses new triggers (503) rather
// than forget a nonce early, and it frees what has expired.
func TestNonceMemoryBounded(t *testing.T) {
	clk := newClock(t0)
	v := NewVerifier(secret, clk.now)
	v.MaxNonces = 5
	for i := range 5 {
		if _, err := v.Verify(request(t, secret, msg(uint64(i), t0))); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := v.Verify(request(t, secret, msg(9, t0))); !errors.Is(err, ErrBusy) {
		t.Fatalf("full memory: %v", err)
	}
	clk.set(t0.Add(DefaultMaxSkew))
	if _, err := v.Verify(request(t, secret, msg(9, t0.Add(DefaultMaxSkew)))); err != nil {
		t.Fatalf("after expiry: %v", err)
	}
	if n := len(v.nonces); n != 1 {
		t.Fatalf("%d nonces remembered, want 1", n)
	}
}

// Many goroutines verifying at once: each distinct trigger is accepted
// once, each replay refused once (run with -race).
func TestConcurrentVerify(t *testing.T) {
	v := NewVerifier(secret, newClock(t0).now)
	const n = 64
	msgs := make([]Message, n)
	for i := range msgs {
		msgs[i] = msg(uint64(i), t0)
	}
	var ok, replays atomic.Int32
	var wg sync.WaitGroup
	for i := range 2 * n {
		wg.Go(func() {
			_, err := v.Verify(request(t, secret, msgs[i%n]))
			switch {
			case err == nil:
				ok.Add(1)
			case errors.Is(err, ErrReplay):
				replays.Add(1)
			default:
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if ok.Load() != n || replays.Load() != n {
		t.Fatalf("%d accepted, %d replays; want %d each", ok.Load(), replays.Load(), n)
	}
}

// logBuffer is a concurrency-safe log destination.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) lines() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := strings.TrimSpace(l.b.String())
	l.b.Reset()
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

func TestHandler(t *testing.T) {
	tests := []struct {
		name     string
		req      func() *http.Request
		status   int
		accepted bool
	}{
		{name: "accepted", req: func() *http.Request { return request(t, secret, msg(5, t0)) }, status: http.StatusAccepted, accepted: true},
		{name: "wrong method", req: func() *http.Request { return httptest.NewRequest(http.MethodGet, Path, nil) }, status: http.StatusMethodNotAllowed},
		{name: "bad signature", req: func() *http.Request { return request(t, []byte("the wrong secret, long enough"), msg(5, t0)) }, status: http.StatusUnauthorized},
		{name: "stale", req: func() *http.Request { return request(t, secret, msg(5, t0.Add(-time.Hour))) }, status: http.StatusUnauthorized},
		{name: "malformed", req: func() *http.Request { return signed(secret, t0.Unix(), []byte("{}")) }, status: http.StatusBadRequest},
		{name: "oversized", req: func() *http.Request {
			return signed(secret, t0.Unix(), bytes.Repeat([]byte(" "), MaxBody+1))
		}, status: http.StatusRequestEntityTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs logBuffer
			var got []Message
			v := NewVerifier(secret, newClock(t0).now)
			h := v.Handler(func(_ context.Context, m Message) error { got = append(got, m); return nil }, slogTo(&logs))
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, tt.req())
			if rec.Code != tt.status {
				t.Fatalf("status %d, want %d (%s)", rec.Code, tt.status, rec.Body)
			}
			if lines := logs.lines(); len(lines) != 1 {
				t.Fatalf("log lines %q, want one", lines)
			}
			if (len(got) == 1) != tt.accepted || len(got) > 1 {
				t.Fatalf("accept called with %v", got)
			}
		})
	}
}

// A trigger that accept could not take is answered 503 and forgotten:
// the same message, sent again, is no replay.
func TestHandlerAcceptFails(t *testing.T) {
	v := NewVerifier(secret, newClock(t0).now)
	fail := true
	h := v.Handler(func(context.Context, Message) error {
		if fail {
			return errors.New("queue closed")
		}
		return nil
	}, nil)
	m := msg(5, t0)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, request(t, secret, m))
	if rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("status %d", rec.Code)
	}
	fail = false
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, request(t, secret, m))
	if rec.Code != http.StatusAccepted {
		t.Fatalf("second try: status %d: %s", rec.Code, rec.Body)
	}
}

func TestURL(t *testing.T) {
	tests := []struct {
		name, in, want string
		err            error
	}{
		{name: "no path", in: "http://mirror:8873", want: "http://mirror:8873/trigger"},
		{name: "root path", in: "https://mirror/", want: "https://mirror/trigger"},
		{name: "a path is kept", in: "http://mirror/hooks/seqmirror", want: "http://mirror/hooks/seqmirror"},
		{name: "query kept", in: "http://m:1?x=1", want: "http://m:1/trigger?x=1"},
		{name: "no scheme", in: "mirror:8873", err: ErrBadURL},
		{name: "rsync", in: "rsync://mirror/pub", err: ErrBadURL},
		{name: "no host", in: "http:///trigger", err: ErrBadURL},
		{name: "unparsable", in: "http://[::1", err: ErrBadURL},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := URL(tt.in)
			if !errors.Is(err, tt.err) || got != tt.want {
				t.Fatalf("URL(%q) = %q, %v; want %q, %v", tt.in, got, err, tt.want, tt.err)
			}
		})
	}
}

func TestReadSecret(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name    string
		content string
		mode    os.FileMode
		want    string
		err     error
	}{
		{name: "base64 with a newline", content: "c2VjcmV0IHNlY3JldCBzZWNyZXQ=\n", mode: 0o600, want: "c2VjcmV0IHNlY3JldCBzZWNyZXQ="},
		{name: "one newline only is trimmed", content: "0123456789abcdef\n\n", mode: 0o600, want: "0123456789abcdef\n"},
		{name: "group may read", content: "0123456789abcdef", mode: 0o640, want: "0123456789abcdef"},
		{name: "empty", content: "", mode: 0o600, err: ErrSecret},
		{name: "too short", content: "short secret\n", mode: 0o600, err: ErrSecret},
		{name: "too long", content: strings.Repeat("x", MaxSecret+1), mode: 0o600, err: ErrSecret},
		{name: "others may read", content: "0123456789abcdef", mode: 0o644, err: ErrSecret},
		{name: "group may write", content: "0123456789abcdef", mode: 0o660, err: ErrSecret},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "_"))
			if err := os.WriteFile(p, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(p, tt.mode); err != nil {
				t.Fatal(err)
			}
			got, err := ReadSecret(fsys.OS(), p)
			if !errors.Is(err, tt.err) || string(got) != tt.want {
				t.Fatalf("ReadSecret = %q, %v; want %q, %v", got, err, tt.want, tt.err)
			}
		})
	}
	if _, err := ReadSecret(fsys.OS(), filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) || !errors.Is(err, ErrSecret) {
		t.Fatalf("missing file: %v", err)
	}
	if _, err := ReadSecret(fsys.OS(), dir); !errors.Is(err, ErrSecret) {
		t.Fatalf("a directory: %v", err)
	}
}

// A new secret (a configuration re-read) applies at once; the nonces seen
// under the old one are still refused.
func TestSetSecret(t *testing.T) {
	v := NewVerifier(secret, newClock(t0).now)
	m := msg(1, t0)
	if _, err := v.Verify(request(t, secret, m)); err != nil {
		t.Fatal(err)
	}
	next := []byte("the next secret, long enough")
	v.SetSecret(next)
	if _, err := v.Verify(request(t, secret, msg(2, t0))); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("old secret: %v", err)
	}
	if _, err := v.Verify(request(t, next, msg(2, t0))); err != nil {
		t.Fatalf("new secret: %v", err)
	}
	if _, err := v.Verify(request(t, next, m)); !errors.Is(err, ErrReplay) {
		t.Fatalf("a nonce seen before the change: %v", err)
	}
}

// docs/protocol.md's worked example verifies, so the document cannot drift
// from the code: its body, its header, its secret.
func TestProtocolExample(t *testing.T) {
	doc, err := os.ReadFile("../../docs/protocol.md")
	if err != nil {
		t.Fatal(err)
	}
	_, sec, ok := strings.Cut(string(doc), "\n## 8. Triggers\n")
	if !ok {
		t.Fatal("docs/protocol.md has no section 8. Triggers")
	}
	var body, header string
	for _, l := range strings.Split(sec, "\n") {
		l = strings.TrimPrefix(l, "    ")
		switch {
		case strings.HasPrefix(l, `{"snapshot":`) && body == "":
			body = l
		case strings.HasPrefix(l, SignatureHeader+": t=1"):
			header = strings.TrimPrefix(l, SignatureHeader+": ")
		}
	}
	_, rest, _ := strings.Cut(sec, "With the secret\n`")
	key, _, _ := strings.Cut(rest, "`")
	if body == "" || header == "" || key == "" {
		t.Fatalf("example not found: body %q, header %q, secret %q", body, header, key)
	}
	r := httptest.NewRequest(http.MethodPost, Path, strings.NewReader(body))
	r.Header.Set(SignatureHeader, header)
	m, err := NewVerifier([]byte(key), newClock(time.Date(2026, 11, 28, 10, 1, 0, 0, time.UTC)).now).Verify(r)
	if err != nil {
		t.Fatalf("the documented trigger does not verify: %v", err)
	}
	if m.Snapshot != 1234 || m.Origin != "master.example.org" {
		t.Fatalf("message %+v", m)
	}
}
