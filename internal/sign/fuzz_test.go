package sign_test

import (
	"errors"
	"testing"

	"github.com/seqmirror/seqmirror/internal/sign"
)

// FuzzParseStatement: any trusted comment is either ErrMalformed or a
// statement whose canonical form is the comment itself (one spelling per
// statement, so two signers cannot disagree on what was signed).
func FuzzParseStatement(f *testing.F) {
	for _, s := range []string{
		"seqmirror-snapshot/1 snapshot=42 manifest-sha256=" + hex64 + " time=2026-11-28T13:00:00Z",
		"seqmirror-timestamp/1 snapshot=42 manifest-sha256=" + hex64 + " time=2026-11-28T13:00:00Z expires=2026-12-05T13:00:00Z",
		"seqmirror-snapshot/1 snapshot=042 manifest-sha256=" + hex64 + " time=2026-11-28T13:00:00Z",
		"seqmirror-timestamp/1 snapshot=1 manifest-sha256=" + hex64 + " time=2026-11-28T13:00:00Z expires=2026-11-28T13:00:00Z",
		"timestamp:1795872560\tfile:x.manifest\thashed",
		"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, c string) {
		s, err := sign.ParseStatement(c)
		if err != nil {
			if !errors.Is(err, sign.ErrMalformed) {
				t.Fatalf("%q: %v, not ErrMalformed", c, err)
			}
			return
		}
		if got := s.String(); got != c {
			t.Fatalf("%q parses to a statement written %q", c, got)
		}
	})
}

// FuzzVerify: any bytes as a signature file, against a trusted key that
// signed none of them, are refused with one of the package's errors,
// never a panic.
func FuzzVerify(f *testing.F) {
	f.Add([]byte("untrusted comment: x\nRWQ=\ntrusted comment: seqmirror-snapshot/1\n\n"))
	f.Add([]byte{})
	prefix := f.TempDir() + "/k"
	if _, err := sign.WriteKeyPair(prefix, nil, sign.KDF{}); err != nil {
		f.Fatal(err)
	}
	tr, err := sign.LoadTrust([]string{prefix + ".pub"})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if _, err := tr.Verify(b, sign.KindSnapshot, nil); err == nil {
			t.Fatalf("%q verified, signed by nobody", b)
		} else if !errors.Is(err, sign.ErrMalformed) && !errors.Is(err, sign.ErrUntrusted) && !errors.Is(err, sign.ErrMismatch) {
			t.Fatalf("%q: %v, not one of the package's errors", b, err)
		}
	})
}

const hex64 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
