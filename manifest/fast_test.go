package manifest

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
)

// d64 is a SHA-256 digest field (of "hello\n").
const d64 = "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03"

// The fast record parser must accept only what the reference parser accepts,
// with the same result (the reference words every error).
func FuzzParseRecordFast(f *testing.F) {
	for _, s := range []string{
		"d 0755 0 1700000000000000000 - src",
		"f 0644 1234 1700000000000000000 9ae16a3b2f90404f src/main.c",
		"f 0644 1234 -1 9ae16a3b2f90404f src/ma%25in.c",
		"l 0777 7 0 - src/link main.c",
		"l 0777 7 0 - src/link%20x ma%0Ain.c",
		"f 0644 01 0 9ae16a3b2f90404f a",
		"f 0644 -0 0 9ae16a3b2f90404f a",
		"f 0644 1 +5 9ae16a3b2f90404f a",
		"f 0644 1 9223372036854775808 9ae16a3b2f90404f a",
		"f 0644 1 -9223372036854775808 9ae16a3b2f90404f a",
		"f 0644 1 0 9AE16A3B2F90404F a",
		"f 0844 1 0 9ae16a3b2f90404f a",
		"f 0644 1 0 9ae16a3b2f90404f a b",
		"x 0644 1 0 - a",
		"f  0644 1 0 9ae16a3b2f90404f a",
	} {
		f.Add(false, s)
		f.Add(true, s)
	}
	for _, s := range []string{
		"f 0644 1234 1700000000000000000 " + d64 + " src/main.c",
		"f 0644 0 0 " + strings.Repeat("0", 64) + " a",
		"f 0644 0 0 " + strings.ToUpper(d64) + " a",
		"f 0644 0 0 " + d64[:63] + " a",
		"f 0644 0 0 " + d64 + "0 a",
		"f 0644 0 0 " + d64[:62] + "g0 a",
		"d 0755 0 0 " + d64 + " a",
	} {
		f.Add(true, s)
		f.Add(false, s)
	}
	f.Fuzz(func(t *testing.T, v2 bool, l string) {
		v := Version1
		if v2 {
			v = Version2
		}
		e, ok := parseRecordFast([]byte(l), v)
		if !ok {
			return
		}
		want, err := parseRecord(l, v)
		if err != nil {
			t.Fatalf("fast parser accepted %q, reference says %v", l, err)
		}
		if e != want {
			t.Fatalf("%q: fast %+v, reference %+v", l, e, want)
		}
	})
}

func TestParseCanonicalInt(t *testing.T) {
	for _, s := range []string{"0", "1", "-1", "10", "01", "-0", "+1", "", "-", "9223372036854775807",
		"9223372036854775808", "-9223372036854775808", "-9223372036854775809", "99999999999999999999", "1a", " 1"} {
		n, ok := parseCanonicalInt([]byte(s))
		m, err := parseInt(s)
		if ok != (err == nil) || (ok && n != m) {
			t.Errorf("%q: fast %d %v, reference %d %v", s, n, ok, m, err)
		}
	}
}

func TestRoundTripFast(t *testing.T) {
	m := &Manifest{Snapshot: 7, Entries: testEntries(5000)}
	b, err := m.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	got, err := Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Entries) != len(m.Entries) {
		t.Fatalf("%d entries, want %d", len(got.Entries), len(m.Entries))
	}
	for i := range got.Entries {
		if got.Entries[i] != m.Entries[i] {
			t.Fatalf("entry %d: %+v, want %+v", i, got.Entries[i], m.Entries[i])
		}
		// What the reference encoder (fmt) writes.
		e := m.Entries[i]
		want := fmt.Sprintf("%c %04o %d %d ", e.Type, uint32(e.Mode), e.Size, e.MTime)
		if e.Type == File && e.Digest != (Digest{}) {
			want += fmt.Sprintf("%x ", e.Digest[:])
		} else if e.Type == File {
			want += fmt.Sprintf("%016x ", e.Hash)
		} else {
			want += "- "
		}
		want += Escape(e.Path)
		if e.Type == Symlink {
			want += " " + Escape(e.Target)
		}
		if rec := string(AppendRecord(nil, e)); rec != want+"\n" {
			t.Fatalf("record %q, want %q", rec, want)
		}
	}
	if _, _, err := Check(bytes.NewReader(b[:len(b)-3])); err == nil {
		t.Fatal("truncated manifest passed Check")
	}
}
