package trigger

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/seqmirror/seqmirror/internal/retry"
)

// receiver is a real HTTP server on 127.0.0.1 verifying triggers with
// secret: what it accepted, and how many requests it saw.
type receiver struct {
	srv      *httptest.Server
	mu       sync.Mutex
	accepted []Message
	requests atomic.Int32
}

func newReceiver(tb testing.TB, key []byte, before func(n int32, w http.ResponseWriter) bool) *receiver {
	rc := &receiver{}
	h := NewVerifier(key, nil).Handler(func(_ context.Context, m Message) error {
		rc.mu.Lock()
		defer rc.mu.Unlock()
		rc.accepted = append(rc.accepted, m)
		return nil
	}, nil)
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+Path, func(w http.ResponseWriter, r *http.Request) {
		n := rc.requests.Add(1)
		if before != nil && before(n, w) {
			return
		}
		h.ServeHTTP(w, r)
	})
	rc.srv = httptest.NewServer(mux)
	tb.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) messages() []Message {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]Message(nil), rc.accepted...)
}

// A round trip over a real listener: Send fills the time and nonce, the
// URL without a path gets /trigger, the receiver verifies and accepts.
func TestSendRoundTrip(t *testing.T) {
	rc := newReceiver(t, secret, nil)
	before := time.Now().Truncate(time.Second)
	if err := Send(context.Background(), nil, rc.srv.URL, secret, Message{Snapshot: 42, Origin: "master"}); err != nil {
		t.Fatal(err)
	}
	got := rc.messages()
	if len(got) != 1 || got[0].Snapshot != 42 || got[0].Origin != "master" || !validNonce(got[0].Nonce) ||
		got[0].Sent.Before(before) || got[0].Sent.After(time.Now()) {
		t.Fatalf("received %+v", got)
	}
	// The same message again gets a new nonce: no replay.
	if err := Send(context.Background(), rc.srv.Client(), rc.srv.URL+"/", secret, Message{Snapshot: 42}); err != nil {
		t.Fatal(err)
	}
	if got := rc.messages(); len(got) != 2 || got[1].Nonce == got[0].Nonce {
		t.Fatalf("received %+v", got)
	}
}

func TestSendFailures(t *testing.T) {
	tests := []struct {
		name     string
		key      []byte
		before   func(n int32, w http.ResponseWriter) bool
		url      func(base string) string
		want     error // nil: delivered
		requests int32
	}{
		{name: "5xx is retried", key: secret, before: func(n int32, w http.ResponseWriter) bool {
			if n < 3 {
				http.Error(w, "restarting", http.StatusBadGateway)
				return true
			}
			return false
		}, requests: 3},
		{name: "a 5xx that stays gives up", key: secret, before: func(_ int32, w http.ResponseWriter) bool {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return true
		}, want: ErrUnreachable, requests: 4},
		{name: "401 is not retried", key: []byte("the receiver's other secret"), want: ErrRejected, requests: 1},
		{name: "404 is not retried", key: secret, url: func(base string) string { return base + "/elsewhere" }, want: ErrRejected, requests: 0},
		{name: "bad URL", key: secret, url: func(string) string { return "ftp://x/" }, want: ErrBadURL},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc := newReceiver(t, tt.key, tt.before)
			u := rc.srv.URL
			if tt.url != nil {
				u = tt.url(u)
			}
			err := Send(context.Background(), nil, u, secret, Message{Snapshot: 1})
			if !errors.Is(err, tt.want) {
				t.Fatalf("Send: %v, want %v", err, tt.want)
			}
			if n := rc.requests.Load(); n != tt.requests {
				t.Fatalf("%d requests, want %d", n, tt.requests)
			}
			if tt.want == nil && len(rc.messages()) != 1 {
				t.Fatalf("accepted %v", rc.messages())
			}
		})
	}
}

// The receiver's reason reaches the sender's error.
func TestSendRejectedSaysWhy(t *testing.T) {
	rc := newReceiver(t, []byte("the receiver's other secret"), nil)
	err := Send(context.Background(), nil, rc.srv.URL, secret, Message{Snapshot: 1})
	if !errors.Is(err, ErrRejected) || !strings.Contains(err.Error(), "401 Unauthorized") || !strings.Contains(err.Error(), "no signature matches the secret") {
		t.Fatalf("Send: %v", err)
	}
}

// Nobody listening: connection refused, retried, then ErrUnreachable in a
// *retry.Exhausted.
func TestSendUnreachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	start := time.Now()
	err = Send(context.Background(), nil, "http://"+addr, secret, Message{Snapshot: 1})
	var ex *retry.Exhausted
	if !errors.Is(err, ErrUnreachable) || !errors.As(err, &ex) || ex.Attempts != 4 {
		t.Fatalf("Send: %v", err)
	}
	if d := time.Since(start); d < 1400*time.Millisecond || d > 10*time.Second {
		t.Fatalf("took %s, want the short policy's 1.4 s of backoff", d)
	}
}

// A cancelled context stops Send at once with the context's error.
func TestSendCancelled(t *testing.T) {
	rc := newReceiver(t, secret, func(_ int32, w http.ResponseWriter) bool {
		http.Error(w, "down", http.StatusServiceUnavailable)
		return true
	})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err := Send(ctx, nil, rc.srv.URL, secret, Message{Snapshot: 1})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Send: %v", err)
	}
}

// Broadcast reaches every receiver, each with its own nonce, and reports
// each outcome in order.
func TestBroadcast(t *testing.T) {
	a, b := newReceiver(t, secret, nil), newReceiver(t, secret, nil)
	bad := newReceiver(t, []byte("the receiver's other secret"), nil)
	got := Broadcast(context.Background(), nil, []string{a.srv.URL, bad.srv.URL, b.srv.URL, a.srv.URL}, secret, Message{Snapshot: 9, Origin: "m"})
	if len(got) != 4 || !got[0].OK || got[1].OK || !got[2].OK || !got[3].OK {
		t.Fatalf("deliveries %+v", got)
	}
	if !errors.Is(got[1].Err, ErrRejected) || got[1].Error == "" || got[1].URL != bad.srv.URL {
		t.Fatalf("rejected delivery %+v", got[1])
	}
	if ma := a.messages(); len(ma) != 2 || ma[0].Nonce == ma[1].Nonce || ma[0].Snapshot != 9 {
		t.Fatalf("a received %+v", ma)
	}
}
