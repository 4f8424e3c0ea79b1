package sign_test

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/seqmirror/seqmirror/internal/sign"
	"github.com/spf13/afero"
)

// cheap is a KDF for tests: minisign's format, a fraction of its cost.
var cheap = sign.KDF{Ops: 1 << 15, Mem: 1 << 20}

var t0 = time.Date(2026, 11, 28, 13, 0, 0, 0, time.UTC)

// fixture is a key pair and a manifest-like file in a temp dir.
type fixture struct {
	dir, prefix, file string
	d                 sign.Digest
}

func newFixture(t testing.TB, password []byte) fixture {
	t.Helper()
	dir := t.TempDir()
	f := fixture{dir: dir, prefix: filepath.Join(dir, "master"), file: filepath.Join(dir, "42.manifest")}
	if _, err := sign.WriteKeyPair(f.prefix, password, cheap); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(f.file, []byte("seqmirror-manifest 1\nsnapshot 42\nend 0 0000000000000000\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var err error
	if f.d, err = sign.DigestFile(afero.NewOsFs(), f.file); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f fixture) signer(t testing.TB, password []byte) *sign.Signer {
	t.Helper()
	s, err := sign.LoadSigner(f.prefix+".key", password)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (f fixture) trust(t testing.TB) *sign.Trust {
	t.Helper()
	tr, err := sign.LoadTrust([]string{f.prefix + ".pub"})
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func minisignBin(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath("minisign")
	if err != nil {
		t.Fatalf("the stock minisign tool is needed (make deps: apt-get install minisign): %v", err)
	}
	return p
}

// TestStockMinisignVerifiesOurs: `minisign -V` accepts what publish
// writes, for both kinds, and prints the statement as the trusted comment.
func TestStockMinisignVerifiesOurs(t *testing.T) {
	bin := minisignBin(t)
	f := newFixture(t, nil)
	s := f.signer(t, nil)
	for _, st := range []sign.Statement{
		{Kind: sign.KindSnapshot, Snapshot: 42, Time: t0},
		{Kind: sign.KindTimestamp, Snapshot: 42, Time: t0, Expires: t0.Add(sign.DefaultValidity)},
	} {
		sig := f.file + ".minisig"
		if err := os.WriteFile(sig, s.Sign(st, f.d), 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(bin, "-V", "-p", f.prefix+".pub", "-m", f.file).CombinedOutput()
		if err != nil {
			t.Fatalf("minisign -V refused our %s signature: %v\n%s", st.Kind, err, out)
		}
		st.SHA256 = f.d.SHA256
		if !strings.Contains(string(out), "Trusted comment: "+st.String()) {
			t.Errorf("minisign -V printed %q, want the statement %q", out, st.String())
		}
	}
}

// TestWeAcceptStockMinisign: a statement signed with `minisign -S` by an
// unencrypted key made with `minisign -G -W` verifies; our key files work
// with the stock tool too (unencrypted and encrypted).
func TestWeAcceptStockMinisign(t *testing.T) {
	bin := minisignBin(t)
	f := newFixture(t, nil)
	theirs := filepath.Join(f.dir, "theirs")
	run := func(stdin string, args ...string) {
		t.Helper()
		c := exec.Command(bin, args...)
		c.Stdin = strings.NewReader(stdin)
		if out, err := c.CombinedOutput(); err != nil {
			t.Fatalf("minisign %v: %v\n%s", args, err, out)
		}
	}
	run("", "-G", "-W", "-p", theirs+".pub", "-s", theirs+".key")
	st := sign.Statement{Kind: sign.KindSnapshot, Snapshot: 42, SHA256: f.d.SHA256, Time: t0}
	run("", "-S", "-s", theirs+".key", "-m", f.file, "-t", st.String())
	tr, err := sign.LoadTrust([]string{theirs + ".pub"})
	if err != nil {
		t.Fatal(err)
	}
	sig, _ := os.ReadFile(f.file + ".minisig")
	got, err := tr.Verify(sig, sign.KindSnapshot, &f.d)
	if err != nil || got != st {
		t.Fatalf("Verify(minisign -S's signature) = %v, %v; want %v", got, err, st)
	}
	// Their secret key signs here, and ours there.
	if _, err := sign.LoadSigner(theirs+".key", nil); err != nil {
		t.Errorf("LoadSigner(minisign -G -W's key): %v", err)
	}
	run("", "-S", "-s", f.prefix+".key", "-m", f.file)
	enc := newFixture(t, []byte("correct horse"))
	run("correct horse\n", "-S", "-s", enc.prefix+".key", "-m", enc.file)
	if _, err := sign.LoadSigner(enc.prefix+".key", []byte("correct horse")); err != nil {
		t.Errorf("LoadSigner(encrypted, right password): %v", err)
	}
}

func TestKeyFiles(t *testing.T) {
	f := newFixture(t, []byte("pw"))
	fi, err := os.Stat(f.prefix + ".key")
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("secret key mode %v, %v; want 0600", fi.Mode(), err)
	}
	if _, err := sign.LoadSigner(f.prefix+".key", nil); !errors.Is(err, sign.ErrKeyEncrypted) {
		t.Errorf("LoadSigner(encrypted, no password) = %v, want ErrKeyEncrypted", err)
	}
	if _, err := sign.LoadSigner(f.prefix+".key", []byte("wrong")); err == nil {
		t.Error("LoadSigner(wrong password) succeeded")
	}
	if _, err := sign.WriteKeyPair(f.prefix, nil, cheap); !errors.Is(err, os.ErrExist) {
		t.Errorf("WriteKeyPair over existing files = %v, want ErrExist", err)
	}
}

func TestVerifyRefusals(t *testing.T) {
	f := newFixture(t, nil)
	other := newFixture(t, nil)
	good := f.signer(t, nil).Sign(sign.Statement{Kind: sign.KindSnapshot, Snapshot: 42, Time: t0}, f.d)
	garbled := bytes.Clone(good)
	i := bytes.IndexByte(garbled, '\n') + 20
	garbled[i] = map[bool]byte{true: 'B', false: 'A'}[garbled[i] == 'A'] // another base64 digit: a signature that parses and does not verify
	comment := bytes.Replace(good, []byte("snapshot=42"), []byte("snapshot=43"), 1)
	otherDigest := f.d
	otherDigest.SHA256[0] ^= 1
	tests := []struct {
		name string
		sig  []byte
		kind string
		d    *sign.Digest
		want error
	}{
		{name: "truncated", sig: good[:len(good)/2], kind: sign.KindSnapshot, want: sign.ErrMalformed},
		{name: "empty", sig: nil, kind: sign.KindSnapshot, want: sign.ErrMalformed},
		{name: "garbled signature", sig: garbled, kind: sign.KindSnapshot, d: &f.d, want: sign.ErrUntrusted},
		{name: "statement edited", sig: comment, kind: sign.KindSnapshot, want: sign.ErrUntrusted},
		{name: "untrusted key", sig: other.signer(t, nil).Sign(sign.Statement{Kind: sign.KindSnapshot, Snapshot: 42, Time: t0}, f.d), kind: sign.KindSnapshot, want: sign.ErrUntrusted},
		{name: "other manifest", sig: good, kind: sign.KindSnapshot, d: &otherDigest, want: sign.ErrMismatch},
		{name: "wrong kind", sig: good, kind: sign.KindTimestamp, want: sign.ErrMismatch},
	}
	tr := f.trust(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := tr.Verify(tt.sig, tt.kind, tt.d); !errors.Is(err, tt.want) {
				t.Errorf("Verify = %v, want %v", err, tt.want)
			}
		})
	}
	if st, err := tr.Verify(good, sign.KindSnapshot, &f.d); err != nil || st.Snapshot != 42 {
		t.Errorf("Verify(good) = %v, %v", st, err)
	}
}

func TestParseStatement(t *testing.T) {
	h := strings.Repeat("ab", 32)
	tests := []struct {
		name, c string
		ok      bool
	}{
		{name: "snapshot", c: "seqmirror-snapshot/1 snapshot=42 manifest-sha256=" + h + " time=2026-11-28T13:00:00Z", ok: true},
		{name: "timestamp", c: "seqmirror-timestamp/1 snapshot=42 manifest-sha256=" + h + " time=2026-11-28T13:00:00Z expires=2026-12-05T13:00:00Z", ok: true},
		{name: "expires before time", c: "seqmirror-timestamp/1 snapshot=42 manifest-sha256=" + h + " time=2026-11-28T13:00:00Z expires=2026-11-28T13:00:00Z"},
		{name: "leading zero", c: "seqmirror-snapshot/1 snapshot=042 manifest-sha256=" + h + " time=2026-11-28T13:00:00Z"},
		{name: "upper hex", c: "seqmirror-snapshot/1 snapshot=42 manifest-sha256=" + strings.ToUpper(h) + " time=2026-11-28T13:00:00Z"},
		{name: "minisign's default", c: "timestamp:1795860000\tfile:42.manifest\thashed"},
		{name: "extra field", c: "seqmirror-snapshot/1 snapshot=42 manifest-sha256=" + h + " time=2026-11-28T13:00:00Z x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, err := sign.ParseStatement(tt.c)
			if (err == nil) != tt.ok || (err != nil && !errors.Is(err, sign.ErrMalformed)) {
				t.Fatalf("ParseStatement = %v, ok %v", err, tt.ok)
			}
			if tt.ok && st.String() != tt.c {
				t.Errorf("String() = %q, want %q", st.String(), tt.c)
			}
		})
	}
}

func TestStale(t *testing.T) {
	st := sign.Statement{Kind: sign.KindTimestamp, Time: t0, Expires: t0.Add(4 * time.Hour)}
	if st.Stale(t0.Add(time.Hour)) || !st.Stale(t0.Add(3*time.Hour)) || st.Expired(t0.Add(3*time.Hour)) || !st.Expired(t0.Add(4*time.Hour)) {
		t.Error("Stale/Expired: wrong at the half and at the end of validity")
	}
}
