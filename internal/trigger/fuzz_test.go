package trigger

import (
	"bytes"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// FuzzVerify: any signature header and body, signed or not (sign chooses),
// never panics the verifier; it takes a trigger only when the header
// carries the body's signature under the secret for the time it names,
// and it refuses with one of the package's errors otherwise.
func FuzzVerify(f *testing.F) {
	now := time.Unix(1_800_000_000, 0)
	body := []byte(`{"snapshot":7,"sent":"2027-01-15T08:00:00Z","nonce":"0123456789abcdef0123456789abcdef"}`)
	f.Add("t=1800000000,v1=00", body, true)
	f.Add("", body, false)
	f.Add("t=1,t=2,v1=zz", []byte("{}"), false)
	f.Add("v1="+Sign(secret, now.Unix(), body), body, false)
	f.Fuzz(func(t *testing.T, header string, body []byte, sign bool) {
		if sign {
			header = signatureHeader(secret, now.Unix(), body) + "," + header
		}
		v := NewVerifier(secret, func() time.Time { return now })
		r := httptest.NewRequest(http.MethodPost, Path, bytes.NewReader(body))
		r.Header.Set(SignatureHeader, header)
		m, err := v.Verify(r)
		if err != nil {
			for _, known := range []error{ErrBadSignature, ErrStale, ErrReplay, ErrMalformed, ErrBusy} {
				if errors.Is(err, known) {
					return
				}
			}
			t.Fatalf("Verify refused with an error of no kind: %v", err)
		}
		ts, sigs, perr := parseSignature(r.Header.Get(SignatureHeader))
		want := Sign(secret, ts, body)
		signed := false
		for _, s := range sigs {
			if hex.EncodeToString(s) == want {
				signed = true
			}
		}
		if perr != nil || !signed || int64(len(body)) > MaxBody {
			t.Fatalf("Verify took %+v from header %q and a body of %d bytes that are not signed", m, header, len(body))
		}
	})
}
