package manifest_test

import (
	"bytes"
	"errors"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/seqmirror/seqmirror/manifest"
)

// FuzzDecode: any input is refused with ErrCorrupt or ErrUnsafePath, or
// decodes to a manifest whose encoding is the input itself (the format is
// canonical) and decodes again to the same thing. Seeds are in
// testdata/fuzz/FuzzDecode.
func FuzzDecode(f *testing.F) {
	f.Add(encode(f, sample()))
	f.Add(encode(f, sampleV2()))
	f.Add([]byte(withFooter(hdr + "d 0755 0 5 - a\nf 0644 3 5 " + h16 + " a/f\n")))
	f.Add([]byte(withFooter(hdr2 + "d 0755 0 5 - a\nf 0644 3 5 " + d64 + " a/f\n")))
	f.Add([]byte(withFooter(hdr2 + "d 0755 0 5 - a\nf 0644 3 5 " + h16 + " a/f\n")))
	f.Fuzz(func(t *testing.T, in []byte) {
		m, err := manifest.Decode(bytes.NewReader(in))
		_, _, cerr := manifest.Check(bytes.NewReader(in))
		if (err == nil) != (cerr == nil) {
			t.Fatalf("Decode error %v but Check error %v", err, cerr)
		}
		if err != nil {
			if !errors.Is(err, manifest.ErrCorrupt) && !errors.Is(err, manifest.ErrUnsafePath) {
				t.Fatalf("error wraps neither ErrCorrupt nor ErrUnsafePath: %v", err)
			}
			return
		}
		out, err := m.Bytes()
		if err != nil {
			t.Fatalf("decoded manifest does not re-encode: %v", err)
		}
		if !bytes.Equal(out, in) {
			t.Fatalf("accepted a non-canonical manifest:\n%q\nre-encodes as\n%q", in, out)
		}
		m2, err := manifest.Decode(bytes.NewReader(out))
		if err != nil {
			t.Fatalf("re-encoded manifest refused: %v", err)
		}
		if m2.Snapshot != m.Snapshot || m2.Version != m.Version || !reflect.DeepEqual(m2.Entries, m.Entries) {
			t.Fatalf("re-decoded manifest differs")
		}
		for _, e := range m.Entries {
			if err := manifest.CheckPath(e.Path); err != nil {
				t.Fatalf("accepted unsafe path: %v", err)
			}
			// A version 2 file always has a digest, and only then.
			if hasDigest := !e.Digest.IsZero(); hasDigest != (m.Version == manifest.Version2 && e.Type == manifest.File) {
				t.Fatalf("version %d %c record %q: digest %v", m.Version, e.Type, e.Path, e.Digest)
			}
		}
	})
}

// FuzzUnescape: Unescape accepts exactly the canonical escapings, so what it
// accepts Escape reproduces; and Unescape inverts Escape on any string.
func FuzzUnescape(f *testing.F) {
	for _, s := range []string{"", "a", "a%20b", "%25", "%7F%FF", "%7f", "%41", "%", "%2", "a b", "\x80"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if back, err := manifest.Unescape(manifest.Escape(s)); err != nil || back != s {
			t.Fatalf("Unescape(Escape(%q)) = %q, %v", s, back, err)
		}
		u, err := manifest.Unescape(s)
		if err != nil {
			if !errors.Is(err, manifest.ErrCorrupt) {
				t.Fatalf("Unescape(%q) error does not wrap ErrCorrupt: %v", s, err)
			}
			return
		}
		if e := manifest.Escape(u); e != s {
			t.Fatalf("Unescape accepted non-canonical %q (canonical %q)", s, e)
		}
		if strings.ContainsAny(s, " \n\x00") {
			t.Fatalf("Unescape accepted raw separator bytes in %q", s)
		}
	})
}

// FuzzPathOrder: on paths CheckPath accepts, Compare is a strict total order
// equal to component-wise comparison, parents sort right before their
// subtree, and the manifest validator accepts two sibling files exactly in
// Compare order.
func FuzzPathOrder(f *testing.F) {
	for _, p := range [][2]string{{"a", "b"}, {"a/b", "a-b"}, {"a", "a/b"}, {"x y", "x"}, {"\xff", "\x7f/a"}, {"..a", "a/.."}, {"", "."}} {
		f.Add(p[0], p[1])
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		c := manifest.Compare(a, b)
		if c < -1 || c > 1 || c != -manifest.Compare(b, a) || (c == 0) != (a == b) {
			t.Fatalf("Compare(%q, %q) = %d, reverse %d", a, b, c, manifest.Compare(b, a))
		}
		okA, okB := manifest.CheckPath(a) == nil, manifest.CheckPath(b) == nil
		for _, p := range []string{a, b} {
			err := manifest.CheckPath(p)
			if err != nil && !errors.Is(err, manifest.ErrUnsafePath) {
				t.Fatalf("CheckPath(%q) error does not wrap ErrUnsafePath: %v", p, err)
			}
			if err == nil {
				// Independent restatement of the rule.
				for _, part := range strings.Split(p, "/") {
					if part == "" || part == "." || part == ".." || strings.IndexByte(part, 0) >= 0 {
						t.Fatalf("CheckPath accepted %q", p)
					}
				}
			}
		}
		if !okA || !okB {
			return
		}
		if c != compareRef(a, b) {
			t.Fatalf("Compare(%q, %q) = %d, component-wise %d", a, b, c, compareRef(a, b))
		}
		if strings.HasPrefix(b, a+"/") && c >= 0 {
			t.Fatalf("parent %q does not sort before %q", a, b)
		}
		if len(a) > 4096 || len(b) > 4096 || strings.Contains(a, "/") || strings.Contains(b, "/") || a == b {
			return
		}
		lo, hi := a, b
		if c > 0 {
			lo, hi = b, a
		}
		rec := func(p string) manifest.Entry { return manifest.Entry{Path: p, Type: manifest.File, Mode: 0o644} }
		good := &manifest.Manifest{Snapshot: 1, Version: manifest.Version1, Entries: []manifest.Entry{rec(lo), rec(hi)}}
		bin, err := good.Bytes()
		if err != nil {
			t.Fatalf("Writer refused %q, %q in Compare order: %v", lo, hi, err)
		}
		if _, err := manifest.Decode(bytes.NewReader(bin)); err != nil {
			t.Fatalf("Reader refused %q, %q in Compare order: %v", lo, hi, err)
		}
		bad := &manifest.Manifest{Snapshot: 1, Version: manifest.Version1, Entries: []manifest.Entry{rec(hi), rec(lo)}}
		if _, err := bad.Bytes(); !errors.Is(err, manifest.ErrUnsafePath) {
			t.Fatalf("Writer accepted %q, %q out of order: %v", hi, lo, err)
		}
	})
}

// TestDecodeSeedCorpus keeps the checked-in FuzzDecode seeds meaningful:
// valid-* seeds decode, invalid-* seeds are refused.
func TestDecodeSeedCorpus(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzDecode")
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var valid, invalid int
	for _, e := range ents {
		t.Run(e.Name(), func(t *testing.T) {
			raw, err := os.ReadFile(filepath.Join(dir, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			lines := strings.Split(strings.TrimSuffix(string(raw), "\n"), "\n")
			if len(lines) != 2 || lines[0] != "go test fuzz v1" || !strings.HasPrefix(lines[1], "[]byte(") {
				t.Fatalf("not a one-value go test fuzz v1 file: %q", raw)
			}
			in, err := strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(lines[1], "[]byte("), ")"))
			if err != nil {
				t.Fatal(err)
			}
			_, err = manifest.Decode(strings.NewReader(in))
			switch {
			case strings.HasPrefix(e.Name(), "valid-"):
				valid++
				if err != nil {
					t.Fatalf("valid seed refused: %v", err)
				}
			case strings.HasPrefix(e.Name(), "invalid-"):
				invalid++
				if err == nil {
					t.Fatalf("invalid seed accepted")
				}
			}
		})
	}
	if valid < 2 || invalid < 2 {
		t.Fatalf("seed corpus has %d valid and %d invalid manifests", valid, invalid)
	}
}

// FuzzCheckPath holds CheckPath's fast path to the definition it shortcuts:
// relative, no NUL, clean by path.Clean, no ".." component.
func FuzzCheckPath(f *testing.F) {
	for _, s := range []string{"a", "a/b", "a//b", "a/./b", "./a", "a/", "/a", "..", "../a", "a/..", "a/../b", "a/..b", "...", ".a", "a\x00b", "", ".", "a/b/c.d/e"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		want := p != "" && p != "." && !strings.Contains(p, "\x00") && !strings.HasPrefix(p, "/") &&
			path.Clean(p) == p && p != ".." && !strings.HasPrefix(p, "../") && !strings.Contains(p, "/../") && !strings.HasSuffix(p, "/..")
		if err := manifest.CheckPath(p); (err == nil) != want {
			t.Fatalf("CheckPath(%q) = %v, want ok=%v", p, err, want)
		}
		if err := manifest.CheckPath(p); err != nil && !errors.Is(err, manifest.ErrUnsafePath) {
			t.Fatalf("CheckPath(%q) = %v, not ErrUnsafePath", p, err)
		}
	})
}
