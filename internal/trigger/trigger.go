package trigger

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Message is one trigger: "snapshot N (or newer) is available upstream".
type Message struct {
	// Snapshot is the snapshot the sender serves; 0: none named (sync with
	// whatever the upstream serves).
	Snapshot uint64    `json:"snapshot"`
	Origin   string    `json:"origin,omitempty"` // who sent it: a name or address, for logs
	Sent     time.Time `json:"sent"`
	Nonce    string    `json:"nonce"` // random, 128 bits hex; replay protection
}

// SignatureHeader is the header that carries a trigger's signature.
const SignatureHeader = "Seqmirror-Signature"

// MaxBody is the largest trigger body a receiver reads, in bytes.
const MaxBody = 4096

// Path is where a receiver accepts triggers: a URL without a path gets it.
const Path = "/trigger"

var (
	// ErrBadSignature means a request had no valid signature for the
	// receiver's secret (missing, malformed or not matching).
	ErrBadSignature = errors.New("bad trigger signature")
	// ErrStale means a signed request's time is too far from the receiver's
	// clock (too old, or in the future).
	ErrStale = errors.New("stale trigger")
	// ErrReplay means a signed request's nonce was seen before.
	ErrReplay = errors.New("replayed trigger")
	// ErrMalformed means a request's body is not a trigger message (bad
	// JSON, too large, no nonce, a sent time other than the signed one).
	ErrMalformed = errors.New("malformed trigger")
	// ErrBusy means the receiver remembers as many nonces as it may and
	// refuses new triggers until some expire.
	ErrBusy = errors.New("too many triggers")
	// ErrRejected means the receiver answered a trigger with a 4xx status
	// (a bad signature, a stale time, no trigger endpoint there): final,
	// not retried.
	ErrRejected = errors.New("trigger rejected")
	// ErrUnreachable means no receiver took the trigger: no answer, or a
	// 5xx status, after the retries.
	ErrUnreachable = errors.New("trigger receiver unreachable")
	// ErrBadURL means a trigger URL is not an http(s) URL.
	ErrBadURL = errors.New("bad trigger URL")
	// ErrSecret means a secret file is unfit: empty, too short, too long,
	// or readable by others.
	ErrSecret = errors.New("unusable trigger secret")
)

// Sign is the signature of body sent at unix time t under secret: hex
// HMAC-SHA256 over "<t>." + body. It is the one rule both sides follow.
func Sign(secret []byte, t int64, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(strconv.FormatInt(t, 10)))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return hex.EncodeToString(mac.Sum(nil))
}

// signatureHeader is the header value for body sent at t.
func signatureHeader(secret []byte, t int64, body []byte) string {
	return "t=" + strconv.FormatInt(t, 10) + ",v1=" + Sign(secret, t, body)
}

// parseSignature reads a signature header: its time and its v1
// signatures (several may be given; unknown schemes are ignored).
func parseSignature(h string) (int64, [][]byte, error) {
	if h == "" {
		return 0, nil, fmt.Errorf("%w: no %s header", ErrBadSignature, SignatureHeader)
	}
	var t int64
	var sigs [][]byte
	seenT := false
	for _, part := range strings.Split(h, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return 0, nil, fmt.Errorf("%w: malformed header", ErrBadSignature)
		}
		switch k {
		case "t":
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || seenT {
				return 0, nil, fmt.Errorf("%w: malformed time", ErrBadSignature)
			}
			t, seenT = n, true
		case "v1":
			b, err := hex.DecodeString(v)
			if err != nil || len(b) != sha256.Size {
				return 0, nil, fmt.Errorf("%w: malformed v1 signature", ErrBadSignature)
			}
			sigs = append(sigs, b)
		}
	}
	if !seenT || len(sigs) == 0 {
		return 0, nil, fmt.Errorf("%w: header lacks t or v1", ErrBadSignature)
	}
	return t, sigs, nil
}

// newNonce is 128 random bits in hex.
func newNonce() string {
	var b [16]byte
	rand.Read(b[:]) // never fails (crypto/rand)
	return hex.EncodeToString(b[:])
}

// validNonce reports whether s is 32 lower-case hex digits.
func validNonce(s string) bool {
	if len(s) != 32 {
		return false
	}
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}
