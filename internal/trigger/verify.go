package trigger

import (
	"bytes"
	"context"
	"crypto/hmac"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"
)

// DefaultMaxSkew is how far a trigger's time may be from the receiver's
// clock, either way, by default.
const DefaultMaxSkew = 5 * time.Minute

// DefaultMaxNonces is how many nonces a Verifier remembers at most by
// default.
const DefaultMaxNonces = 10000

// errTooLarge is a body over MaxBody (413 rather than 400).
var errTooLarge = fmt.Errorf("%w: body larger than %d bytes", ErrMalformed, MaxBody)

// Verifier checks triggers signed with one secret and remembers the nonces
// it accepted. It is safe for concurrent use; set MaxSkew and MaxNonces,
// if at all, before its first use.
type Verifier struct {
	MaxSkew   time.Duration // default DefaultMaxSkew
	MaxNonces int           // default DefaultMaxNonces

	now func() time.Time

	mu     sync.Mutex
	secret []byte
	nonces map[string]time.Time // nonce -> when it may be forgotten
}

// NewVerifier returns a Verifier for secret; now is its clock (nil:
// time.Now).
func NewVerifier(secret []byte, now func() time.Time) *Verifier {
	if now == nil {
		now = time.Now
	}
	return &Verifier{MaxSkew: DefaultMaxSkew, MaxNonces: DefaultMaxNonces,
		secret: bytes.Clone(secret), now: now, nonces: map[string]time.Time{}}
}

// SetSecret makes secret the one triggers must be signed with from now on
// (a configuration re-read), keeping the nonces already seen.
func (v *Verifier) SetSecret(secret []byte) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.secret = bytes.Clone(secret)
}

// key is the current secret.
func (v *Verifier) key() []byte {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.secret
}

// Verify reads r's body (at most MaxBody bytes) and returns its message if
// r is a valid, fresh trigger never seen before; the error wraps
// ErrBadSignature, ErrStale, ErrReplay, ErrMalformed or ErrBusy. An
// accepted nonce is remembered: the same request verifies once.
func (v *Verifier) Verify(r *http.Request) (Message, error) {
	body, err := io.ReadAll(io.LimitReader(r.Body, MaxBody+1))
	if err != nil {
		return Message{}, fmt.Errorf("%w: reading the body: %w", ErrMalformed, err)
	}
	if len(body) > MaxBody {
		return Message{}, errTooLarge
	}
	t, err := v.checkSignature(r.Header.Get(SignatureHeader), body)
	if err != nil {
		return Message{}, err
	}
	m, err := decode(body, t)
	if err != nil {
		return Message{}, err
	}
	return m, v.remember(m.Nonce, time.Unix(t, 0))
}

// checkSignature checks header against body and the clock, returning the
// signed time.
func (v *Verifier) checkSignature(header string, body []byte) (int64, error) {
	t, sigs, err := parseSignature(header)
	if err != nil {
		return 0, err
	}
	want, _ := hex.DecodeString(Sign(v.key(), t, body))
	matched := false
	for _, s := range sigs {
		matched = hmac.Equal(s, want) || matched
	}
	if !matched {
		return 0, fmt.Errorf("%w: no signature matches the secret", ErrBadSignature)
	}
	skew := v.now().Sub(time.Unix(t, 0))
	if skew > v.MaxSkew || skew < -v.MaxSkew {
		return 0, fmt.Errorf("%w: signed at %s, %s from this receiver's clock (at most %s allowed)",
			ErrStale, time.Unix(t, 0).UTC().Format(time.RFC3339), skew.Round(time.Second), v.MaxSkew)
	}
	return t, nil
}

// decode parses a signed body: a message sent at t with a nonce.
func decode(body []byte, t int64) (Message, error) {
	var m Message
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&m); err != nil {
		return Message{}, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if dec.More() {
		return Message{}, fmt.Errorf("%w: data after the message", ErrMalformed)
	}
	if m.Sent.Unix() != t {
		return Message{}, fmt.Errorf("%w: sent %s, but signed at unix time %d", ErrMalformed, m.Sent.Format(time.RFC3339), t)
	}
	if !validNonce(m.Nonce) {
		return Message{}, fmt.Errorf("%w: nonce %q is not 32 lower-case hex digits", ErrMalformed, m.Nonce)
	}
	return m, nil
}

// remember records nonce, sent at sent, refusing one already seen; it
// forgets nonces whose window has passed.
func (v *Verifier) remember(nonce string, sent time.Time) error {
	now := v.now()
	v.mu.Lock()
	defer v.mu.Unlock()
	if _, seen := v.nonces[nonce]; seen {
		return fmt.Errorf("%w: nonce %s already used", ErrReplay, nonce)
	}
	if len(v.nonces) >= v.MaxNonces {
		for n, until := range v.nonces {
			if !now.Before(until) {
				delete(v.nonces, n)
			}
		}
	}
	if len(v.nonces) >= v.MaxNonces {
		return fmt.Errorf("%w: %d accepted within %s", ErrBusy, len(v.nonces), v.MaxSkew)
	}
	v.nonces[nonce] = sent.Add(v.MaxSkew)
	return nil
}

// forget drops nonce, so that a trigger whose delivery failed after it
// was verified may be sent again.
func (v *Verifier) forget(nonce string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	delete(v.nonces, nonce)
}

// Handler serves triggers: POST only (405 otherwise); a request that does
// not verify gets its status (401: bad signature, stale, replay; 400:
// malformed; 413: too large; 503: busy) and one log line, and nothing else
// happens. A verified trigger is passed to accept, which should only
// enqueue it; then 202 Accepted, or 503 if accept failed (the nonce is
// forgotten, so the sender's retry is no replay). log nil: no log.
func (v *Verifier) Handler(accept func(context.Context, Message) error, log *slog.Logger) http.Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			log.Warn("trigger refused", "remote", r.RemoteAddr, "status", http.StatusMethodNotAllowed, "error", "method "+r.Method)
			http.Error(w, "trigger: POST only", http.StatusMethodNotAllowed)
			return
		}
		m, err := v.Verify(r)
		if err != nil {
			code := statusOf(err)
			log.Warn("trigger refused", "remote", r.RemoteAddr, "status", code, "error", err.Error())
			http.Error(w, "trigger: "+err.Error(), code)
			return
		}
		if err := accept(r.Context(), m); err != nil {
			v.forget(m.Nonce)
			log.Error("trigger not taken", "remote", r.RemoteAddr, "origin", m.Origin, "snapshot", m.Snapshot, "error", err.Error())
			http.Error(w, "trigger: not taken: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		log.Info("trigger accepted", "remote", r.RemoteAddr, "origin", m.Origin, "snapshot", m.Snapshot)
		w.WriteHeader(http.StatusAccepted)
		fmt.Fprintf(w, "accepted snapshot %d\n", m.Snapshot)
	})
}

// statusOf is the HTTP status for a Verify error.
func statusOf(err error) int {
	switch {
	case errors.Is(err, errTooLarge):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, ErrMalformed):
		return http.StatusBadRequest
	case errors.Is(err, ErrBusy):
		return http.StatusServiceUnavailable
	}
	return http.StatusUnauthorized
}
