package trigger

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/seqmirror/seqmirror/internal/retry"
)

// sendPolicy is Send's retry policy: short, since a trigger only saves the
// receiver the wait for its next poll (0.2 + 0.4 + 0.8 s of backoff).
var sendPolicy = retry.Policy{Retries: 3, Backoff: 200 * time.Millisecond, Retryable: unreachable}

// sendTimeout bounds each attempt when the client has no timeout.
const sendTimeout = 10 * time.Second

// unreachable is sendPolicy's Retryable: no answer or a 5xx status.
func unreachable(err error) (string, bool) {
	if errors.Is(err, ErrUnreachable) {
		return err.Error(), true
	}
	return "", false
}

// URL is where a trigger for rawURL goes: an http(s) URL, with Path
// appended when it has no path (or "/"). The error wraps ErrBadURL.
func URL(rawURL string) (string, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrBadURL, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return "", fmt.Errorf("%w: %q is not http(s)://host[:port][/path]", ErrBadURL, rawURL)
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = Path
	}
	return u.String(), nil
}

// Send posts m, signed with secret, to rawURL (see URL) with c (nil: a
// client with a 10 s timeout), and returns nil once the receiver answered
// 202 (any 2xx). A zero Sent or Nonce is filled afresh for every attempt.
// It retries no answer and 5xx statuses briefly (package retry); the
// error then wraps ErrUnreachable (in a *retry.Exhausted). A 4xx answer is
// ErrRejected, with the receiver's reason, not retried. The errors do not
// name the URL: the caller does.
func Send(ctx context.Context, c *http.Client, rawURL string, secret []byte, m Message) error {
	target, err := URL(rawURL)
	if err != nil {
		return err
	}
	if c == nil {
		c = &http.Client{Timeout: sendTimeout}
	}
	return retry.Do(ctx, sendPolicy, func(int) error {
		if err := ctx.Err(); err != nil {
			return context.Cause(ctx)
		}
		return post(ctx, c, target, secret, fill(m))
	})
}

// fill gives m a sent time (now, to the second) and a nonce where it has
// none.
func fill(m Message) Message {
	if m.Sent.IsZero() {
		m.Sent = time.Now().UTC().Truncate(time.Second)
	}
	if m.Nonce == "" {
		m.Nonce = newNonce()
	}
	return m
}

// post makes one attempt: signs m and posts it to target.
func post(ctx context.Context, c *http.Client, target string, secret []byte, m Message) error {
	body, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("encode trigger: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("%w: %w", ErrBadURL, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(SignatureHeader, signatureHeader(secret, m.Sent.Unix(), body))
	resp, err := c.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		var ue *url.Error // "Post URL: ...": the caller names the URL
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("%w: %w", ErrUnreachable, err)
	}
	defer resp.Body.Close()
	reason, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	why := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(string(reason)), "trigger:"))
	if why == "" {
		why = "no reason given"
	}
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return nil
	case resp.StatusCode >= 500:
		return fmt.Errorf("%w: %s: %s", ErrUnreachable, resp.Status, why)
	}
	return fmt.Errorf("%w: %s: %s", ErrRejected, resp.Status, why)
}

// Delivery is the outcome of one trigger of a Broadcast.
type Delivery struct {
	URL   string `json:"url"`
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
	Err   error  `json:"-"`
}

// Broadcast sends m to every URL in parallel (Send each, every one with a
// nonce of its own when m has none) and returns their outcomes in the
// order of urls. It returns when all are done: bound it with ctx.
func Broadcast(ctx context.Context, c *http.Client, urls []string, secret []byte, m Message) []Delivery {
	out := make([]Delivery, len(urls))
	var wg sync.WaitGroup
	for i, u := range urls {
		wg.Go(func() {
			err := Send(ctx, c, u, secret, m)
			out[i] = Delivery{URL: u, OK: err == nil, Err: err}
			if err != nil {
				out[i].Error = err.Error()
			}
		})
	}
	wg.Wait()
	return out
}
