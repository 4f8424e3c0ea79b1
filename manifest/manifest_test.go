package manifest_test

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/cespare/xxhash/v2"
	"github.com/seqmirror/seqmirror/manifest"
)

// sample is a manifest exercising every record type and the escaping rules.
func sample() *manifest.Manifest {
	return &manifest.Manifest{Snapshot: 42, Version: manifest.Version1, Entries: []manifest.Entry{
		{Path: "a", Type: manifest.Dir, Mode: 0o755, MTime: 1700000000000000000},
		{Path: "a/b c", Type: manifest.File, Mode: 0o644, Size: 5, MTime: 1700000000123456789, Hash: 0x9ae16a3b2f90404f},
		{Path: "a/empty", Type: manifest.File, Mode: 0o444, Size: 0, MTime: -5, Hash: 0xef46db3751d8e999},
		{Path: "a/link", Type: manifest.Symlink, Mode: 0o777, Size: 12, Target: "../x y/%z\tq\n"},
		{Path: "a/sub", Type: manifest.Dir, Mode: 0o700},
		{Path: "a/sub/x", Type: manifest.File, Mode: 0o600, Size: 1, Hash: 1},
		{Path: "a-b", Type: manifest.File, Mode: 0o755, Size: manifest.MaxSize, Hash: ^uint64(0)},
		{Path: "caf\xc3\xa9 100%", Type: manifest.File, Mode: 0, Size: 3},
		{Path: "z\x7f\xff", Type: manifest.Symlink, Mode: 0o777, Size: 1, Target: "/"},
	}}
}

// sampleV2 is sample as version 2: every file with a SHA-256 digest.
func sampleV2() *manifest.Manifest {
	m := sample()
	m.Version = manifest.Version2
	for i := range m.Entries {
		if e := &m.Entries[i]; e.Type == manifest.File {
			e.SetSum(digestOf(e.Path))
		}
	}
	return m
}

// digestOf is the version 2 Sum of content s.
func digestOf(s string) manifest.Sum {
	h := manifest.NewHasher(manifest.Version2)
	h.Write([]byte(s))
	return h.Sum()
}

func encode(tb testing.TB, m *manifest.Manifest) []byte {
	tb.Helper()
	b, err := m.Bytes()
	if err != nil {
		tb.Fatalf("encode: %v", err)
	}
	return b
}

func TestRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		m    *manifest.Manifest
	}{
		{name: "empty", m: &manifest.Manifest{Snapshot: 1}},
		{name: "sample", m: sample()},
		{name: "sample v2", m: sampleV2()},
		{name: "random v1", m: toV1(randomManifest(rand.New(rand.NewPCG(5, 6)), 300))},
		{name: "longest path and target", m: &manifest.Manifest{Snapshot: 2, Entries: []manifest.Entry{
			{Path: strings.Repeat("\x01", 4096), Type: manifest.Symlink, Mode: 0o777, Size: 4096, Target: strings.Repeat("\xff", 4096)},
		}}},
		{name: "max snapshot", m: &manifest.Manifest{Snapshot: ^uint64(0), Entries: sample().Entries[:1]}},
		{name: "random 1", m: randomManifest(rand.New(rand.NewPCG(1, 2)), 200)},
		{name: "random 2", m: randomManifest(rand.New(rand.NewPCG(3, 4)), 500)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := encode(t, tt.m)
			got, err := manifest.Decode(bytes.NewReader(b))
			if err != nil {
				t.Fatalf("Decode(Encode(m)): %v\n%s", err, b)
			}
			if got.Snapshot != tt.m.Snapshot {
				t.Errorf("snapshot %d, want %d", got.Snapshot, tt.m.Snapshot)
			}
			if want := max(tt.m.Version, manifest.Current); tt.m.Version != 0 && got.Version != tt.m.Version || tt.m.Version == 0 && got.Version != want {
				t.Errorf("version %d, want %d", got.Version, want)
			}
			if len(got.Entries) != len(tt.m.Entries) || (len(got.Entries) > 0 && !reflect.DeepEqual(got.Entries, tt.m.Entries)) {
				t.Fatalf("entries differ after round trip:\n got %+v\nwant %+v", got.Entries, tt.m.Entries)
			}
			if b2 := encode(t, got); !bytes.Equal(b, b2) {
				t.Fatalf("re-encoding is not byte-identical:\n%s\n---\n%s", b, b2)
			}
			snap, count, err := manifest.Check(bytes.NewReader(b))
			if err != nil || snap != tt.m.Snapshot || count != len(tt.m.Entries) {
				t.Fatalf("Check = %d, %d, %v; want %d, %d, nil", snap, count, err, tt.m.Snapshot, len(tt.m.Entries))
			}
			// Every line is printable ASCII: escaping leaves no raw bytes.
			for i, c := range b {
				if c != '\n' && (c < 0x20 || c >= 0x7f) {
					t.Fatalf("raw byte %#x at offset %d", c, i)
				}
			}
		})
	}
}

func TestSampleFormat(t *testing.T) {
	// The documented layout, checked line by line on a small manifest.
	m := &manifest.Manifest{Snapshot: 7, Version: manifest.Version1, Entries: []manifest.Entry{
		{Path: "src", Type: manifest.Dir, Mode: 0o755, MTime: 1700000000000000000},
		{Path: "src/main.c", Type: manifest.File, Mode: 0o644, Size: 1234, MTime: 1700000000000000000, Hash: 0x9ae16a3b2f90404f},
		{Path: "src/link", Type: manifest.Symlink, Mode: 0o777, Size: 6, Target: "main.c"},
	}}
	// src/link sorts before src/main.c.
	m.Entries[1], m.Entries[2] = m.Entries[2], m.Entries[1]
	b := string(encode(t, m))
	body := "seqmirror-manifest 1\nsnapshot 7\n" +
		"d 0755 0 1700000000000000000 - src\n" +
		"l 0777 6 0 - src/link main.c\n" +
		"f 0644 1234 1700000000000000000 9ae16a3b2f90404f src/main.c\n"
	want := body + fmt.Sprintf("end 3 %016x\n", xxhash.Sum64String(body))
	if b != want {
		t.Fatalf("encoded:\n%s\nwant:\n%s", b, want)
	}
	// Version 2: the same records, the file's content field its SHA-256.
	m.Version = manifest.Version2
	m.Entries[2].SetSum(digestOf("hello\n"))
	b = string(encode(t, m))
	body = "seqmirror-manifest 2\nsnapshot 7\n" +
		"d 0755 0 1700000000000000000 - src\n" +
		"l 0777 6 0 - src/link main.c\n" +
		"f 0644 1234 1700000000000000000 " + d64 + " src/main.c\n"
	want = body + fmt.Sprintf("end 3 %016x\n", xxhash.Sum64String(body))
	if b != want {
		t.Fatalf("encoded:\n%s\nwant:\n%s", b, want)
	}
	if got := m.Entries[2].Hash; got != 0x5891b5b522d5df08 {
		t.Fatalf("version 2 hash %016x, want the digest's first 8 bytes", got)
	}
}

// d64 is the SHA-256 of "hello\n" as a version 2 record writes it.
const d64 = "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03"

// hdr2 is the header of a version 2 manifest.
const hdr2 = "seqmirror-manifest 2\nsnapshot 3\n"

// withFooter appends a correct footer to body (header + records).
func withFooter(body string) string {
	n := strings.Count(body, "\n") - 2
	return body + fmt.Sprintf("end %d %016x\n", n, xxhash.Sum64String(body))
}

const hdr = "seqmirror-manifest 1\nsnapshot 3\n"
const h16 = "0123456789abcdef"

func TestDecodeInvalid(t *testing.T) {
	valid := withFooter(hdr + "d 0755 0 5 - a\nf 0644 3 5 " + h16 + " a/f\n")
	if _, err := manifest.Decode(strings.NewReader(valid)); err != nil {
		t.Fatalf("baseline manifest refused: %v", err)
	}
	if _, err := manifest.Decode(strings.NewReader(withFooter(hdr2 + "d 0755 0 5 - a\nf 0644 3 5 " + d64 + " a/f\n"))); err != nil {
		t.Fatalf("baseline version 2 manifest refused: %v", err)
	}
	corrupt, unsafe := manifest.ErrCorrupt, manifest.ErrUnsafePath
	rec := func(lines ...string) string { return withFooter(hdr + strings.Join(lines, "\n") + "\n") }
	tests := []struct {
		name string
		in   string
		want error
	}{
		{name: "empty input", in: "", want: corrupt},
		{name: "wrong magic", in: withFooter("seqmirror-manifest 3\nsnapshot 3\n"), want: corrupt},
		{name: "v2 file with a v1 hash", in: withFooter(hdr2 + "f 0644 0 0 " + h16 + " a\n"), want: corrupt},
		{name: "v1 file with a v2 digest", in: rec("f 0644 0 0 " + d64 + " a"), want: corrupt},
		{name: "v2 zero digest", in: withFooter(hdr2 + "f 0644 0 0 " + strings.Repeat("0", 64) + " a\n"), want: corrupt},
		{name: "v2 digest uppercase", in: withFooter(hdr2 + "f 0644 0 0 " + strings.ToUpper(d64) + " a\n"), want: corrupt},
		{name: "v2 digest short", in: withFooter(hdr2 + "f 0644 0 0 " + d64[:63] + " a\n"), want: corrupt},
		{name: "v2 digest long", in: withFooter(hdr2 + "f 0644 0 0 " + d64 + "0 a\n"), want: corrupt},
		{name: "v2 digest not hex", in: withFooter(hdr2 + "f 0644 0 0 " + d64[:63] + "g a\n"), want: corrupt},
		{name: "v2 dir with digest", in: withFooter(hdr2 + "d 0755 0 0 " + d64 + " a\n"), want: corrupt},
		{name: "v2 symlink with digest", in: withFooter(hdr2 + "l 0777 1 0 " + d64 + " a b\n"), want: corrupt},
		{name: "v2 file without digest", in: withFooter(hdr2 + "f 0644 0 0 - a\n"), want: corrupt},
		{name: "v2 unsafe path", in: withFooter(hdr2 + "f 0644 0 0 " + d64 + " ../a\n"), want: unsafe},
		{name: "magic without newline", in: "seqmirror-manifest 1", want: corrupt},
		{name: "snapshot 0", in: withFooter("seqmirror-manifest 1\nsnapshot 0\n"), want: corrupt},
		{name: "snapshot leading zero", in: withFooter("seqmirror-manifest 1\nsnapshot 03\n"), want: corrupt},
		{name: "snapshot sign", in: withFooter("seqmirror-manifest 1\nsnapshot +3\n"), want: corrupt},
		{name: "snapshot overflow", in: withFooter("seqmirror-manifest 1\nsnapshot 18446744073709551616\n"), want: corrupt},
		{name: "snapshot missing", in: "seqmirror-manifest 1\nend 0 0000000000000000\n", want: corrupt},
		{name: "dotdot path", in: rec("f 0644 0 0 " + h16 + " .."), want: unsafe},
		{name: "dotdot prefix", in: rec("f 0644 0 0 " + h16 + " ../etc"), want: unsafe},
		{name: "dotdot middle", in: rec("d 0755 0 0 - a", "f 0644 0 0 "+h16+" a/../../x"), want: unsafe},
		{name: "dotdot suffix", in: rec("d 0755 0 0 - a", "d 0755 0 0 - a/.."), want: unsafe},
		{name: "absolute path", in: rec("f 0644 0 0 " + h16 + " /etc/passwd"), want: unsafe},
		{name: "dot path", in: rec("d 0755 0 0 - ."), want: unsafe},
		{name: "dot slash", in: rec("f 0644 0 0 " + h16 + " ./a"), want: unsafe},
		{name: "double slash", in: rec("d 0755 0 0 - a", "f 0644 0 0 "+h16+" a//b"), want: unsafe},
		{name: "trailing slash", in: rec("d 0755 0 0 - a/"), want: unsafe},
		{name: "empty path", in: rec("f 0644 0 0 " + h16 + " "), want: unsafe},
		{name: "NUL in path", in: rec("f 0644 0 0 " + h16 + " a%00b"), want: unsafe},
		{name: "duplicate", in: rec("f 0644 0 0 "+h16+" a", "f 0644 0 0 "+h16+" a"), want: unsafe},
		{name: "duplicate dir", in: rec("d 0755 0 0 - a", "d 0755 0 0 - a"), want: unsafe},
		{name: "wrong order", in: rec("f 0644 0 0 "+h16+" b", "f 0644 0 0 "+h16+" a"), want: unsafe},
		{name: "slash ranks lowest", in: rec("d 0755 0 0 - a", "f 0644 0 0 "+h16+" a-b", "f 0644 0 0 "+h16+" a/x"), want: unsafe},
		{name: "parent not listed", in: rec("f 0644 0 0 " + h16 + " a/b"), want: unsafe},
		{name: "grandparent not listed", in: rec("d 0755 0 0 - a", "f 0644 0 0 "+h16+" a/b/c"), want: unsafe},
		{name: "parent is a symlink", in: rec("l 0777 1 0 - a b", "f 0644 0 0 "+h16+" a/c"), want: unsafe},
		{name: "parent is a file", in: rec("f 0644 0 0 "+h16+" a", "f 0644 0 0 "+h16+" a/c"), want: unsafe},
		{name: "parent closed", in: rec("d 0755 0 0 - a", "d 0755 0 0 - b", "f 0644 0 0 "+h16+" b/x", "f 0644 0 0 "+h16+" a/y"), want: unsafe},
		{name: "raw tab", in: rec("f 0644 0 0 " + h16 + " a\tb"), want: corrupt},
		{name: "raw high byte", in: rec("f 0644 0 0 " + h16 + " caf\xc3\xa9"), want: corrupt},
		{name: "truncated escape", in: rec("f 0644 0 0 " + h16 + " a%2"), want: corrupt},
		{name: "lone percent", in: rec("f 0644 0 0 " + h16 + " a%"), want: corrupt},
		{name: "non-hex escape", in: rec("f 0644 0 0 " + h16 + " a%zz"), want: corrupt},
		{name: "lowercase escape", in: rec("f 0644 0 0 " + h16 + " a%0a"), want: corrupt},
		{name: "needless escape", in: rec("f 0644 0 0 " + h16 + " %41"), want: corrupt},
		{name: "escaped slash", in: rec("d 0755 0 0 - a", "f 0644 0 0 "+h16+" a%2Fb"), want: corrupt},
		{name: "bad escape in target", in: rec("l 0777 1 0 - a %G0"), want: corrupt},
		{name: "mode not octal", in: rec("f 0648 0 0 " + h16 + " a"), want: corrupt},
		{name: "mode 3 digits", in: rec("f 644 0 0 " + h16 + " a"), want: corrupt},
		{name: "mode 5 digits", in: rec("f 00644 0 0 " + h16 + " a"), want: corrupt},
		{name: "mode sticky", in: rec("d 1777 0 0 - a"), want: corrupt},
		{name: "mode setuid", in: rec("f 4755 0 0 " + h16 + " a"), want: corrupt},
		{name: "size above MaxSize", in: rec(fmt.Sprintf("f 0644 %d 0 %s a", int64(manifest.MaxSize)+1, h16)), want: corrupt},
		{name: "size negative", in: rec("f 0644 -1 0 " + h16 + " a"), want: corrupt},
		{name: "size leading zero", in: rec("f 0644 01 0 " + h16 + " a"), want: corrupt},
		{name: "size plus", in: rec("f 0644 +1 0 " + h16 + " a"), want: corrupt},
		{name: "size overflow", in: rec("f 0644 9223372036854775808 0 " + h16 + " a"), want: corrupt},
		{name: "mtime not a number", in: rec("f 0644 1 x " + h16 + " a"), want: corrupt},
		{name: "mtime minus zero", in: rec("f 0644 1 -0 " + h16 + " a"), want: corrupt},
		{name: "hash uppercase", in: rec("f 0644 1 0 0123456789ABCDEF a"), want: corrupt},
		{name: "hash short", in: rec("f 0644 1 0 0123456789abcde a"), want: corrupt},
		{name: "hash not hex", in: rec("f 0644 1 0 0123456789abcdeg a"), want: corrupt},
		{name: "file without hash", in: rec("f 0644 1 0 - a"), want: corrupt},
		{name: "dir with hash", in: rec("d 0755 0 0 " + h16 + " a"), want: corrupt},
		{name: "dir with size", in: rec("d 0755 4096 0 - a"), want: corrupt},
		{name: "symlink with hash", in: rec("l 0777 1 0 " + h16 + " a b"), want: corrupt},
		{name: "symlink with mtime", in: rec("l 0777 1 5 - a b"), want: corrupt},
		{name: "symlink size mismatch", in: rec("l 0777 2 0 - a b"), want: corrupt},
		{name: "symlink NUL target", in: rec("l 0777 1 0 - a %00"), want: corrupt},
		{name: "symlink empty target", in: rec("l 0777 0 0 - a "), want: corrupt},
		{name: "symlink target too long", in: rec(fmt.Sprintf("l 0777 4097 0 - a %s", strings.Repeat("x", 4097))), want: corrupt},
		{name: "symlink without target", in: rec("l 0777 1 0 - a"), want: corrupt},
		{name: "file with target", in: rec("f 0644 1 0 " + h16 + " a b"), want: corrupt},
		{name: "unknown type", in: rec("x 0644 1 0 - a"), want: corrupt},
		{name: "two-letter type", in: rec("ff 0644 1 0 " + h16 + " a"), want: corrupt},
		{name: "double space", in: rec("f  0644 1 0 " + h16 + " a"), want: corrupt},
		{name: "trailing space", in: rec("f 0644 1 0 " + h16 + " a "), want: corrupt},
		{name: "too few fields", in: rec("f 0644 1 0"), want: corrupt},
		{name: "blank line", in: rec(""), want: corrupt},
		{name: "CRLF", in: strings.ReplaceAll(valid, "\n", "\r\n"), want: corrupt},
		{name: "path too long", in: rec("f 0644 1 0 " + h16 + " " + strings.Repeat("a", 4097)), want: unsafe},
		{name: "line too long", in: rec("f 0644 1 0 " + h16 + " " + strings.Repeat("a", 30000)), want: corrupt},
		{name: "wrong checksum", in: strings.Replace(valid, valid[len(valid)-17:len(valid)-1], "0000000000000000", 1), want: corrupt},
		{name: "uppercase checksum", in: valid[:len(valid)-17] + strings.ToUpper(valid[len(valid)-17:]), want: corrupt},
		{name: "edited record", in: strings.Replace(valid, "f 0644 3", "f 0644 4", 1), want: corrupt},
		{name: "footer count high", in: strings.Replace(valid, "end 2 ", "end 3 ", 1), want: corrupt},
		{name: "footer count low", in: strings.Replace(valid, "end 2 ", "end 1 ", 1), want: corrupt},
		{name: "footer count leading zero", in: strings.Replace(valid, "end 2 ", "end 02 ", 1), want: corrupt},
		{name: "footer without checksum", in: hdr + "end 0\n", want: corrupt},
		{name: "footer not a number", in: strings.Replace(valid, "end 2 ", "end two ", 1), want: corrupt},
		{name: "trailing data", in: valid + "x", want: corrupt},
		{name: "trailing newline", in: valid + "\n", want: corrupt},
		{name: "second footer", in: valid + valid[strings.LastIndex(valid[:len(valid)-1], "\n")+1:], want: corrupt},
		{name: "footer without newline", in: valid[:len(valid)-1], want: corrupt},
		{name: "no footer", in: hdr + "d 0755 0 5 - a\n", want: corrupt},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := manifest.Decode(strings.NewReader(tt.in))
			if !errors.Is(err, tt.want) {
				t.Fatalf("Decode = %v, %v; want error wrapping %v\ninput:\n%.300s", m != nil, err, tt.want, tt.in)
			}
			if _, _, cerr := manifest.Check(strings.NewReader(tt.in)); !errors.Is(cerr, tt.want) {
				t.Fatalf("Check: %v; want error wrapping %v", cerr, tt.want)
			}
		})
	}
}

// TestTruncated checks that every proper prefix of a valid manifest is
// refused, wherever the cut falls.
func TestTruncated(t *testing.T) {
	b := encode(t, sample())
	lines := 0
	for i := 0; i < len(b); i++ {
		if i > 0 && b[i-1] == '\n' {
			lines++
		}
		_, err := manifest.Decode(bytes.NewReader(b[:i]))
		if !errors.Is(err, manifest.ErrCorrupt) {
			t.Fatalf("prefix of %d bytes (after %d lines): err = %v, want ErrCorrupt", i, lines, err)
		}
	}
	if lines != strings.Count(string(b), "\n")-1 {
		t.Fatalf("walked %d line boundaries", lines)
	}
}

// TestReaderStopsAtBadRecord checks the streaming reader returns the good
// records before a bad one and then the error, never the bad record.
func TestReaderStopsAtBadRecord(t *testing.T) {
	in := hdr + "d 0755 0 0 - a\nf 0644 0 0 " + h16 + " a/x\nf 0644 0 0 " + h16 + " ../evil\nend 3 " + h16 + "\n"
	r, err := manifest.NewReader(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if r.Snapshot() != 3 {
		t.Fatalf("Snapshot() = %d", r.Snapshot())
	}
	var got []string
	for {
		e, err := r.Next()
		if err != nil {
			if !errors.Is(err, manifest.ErrUnsafePath) {
				t.Fatalf("Next error = %v, want ErrUnsafePath", err)
			}
			if !strings.Contains(err.Error(), "line 5") {
				t.Errorf("error %q does not name line 5", err)
			}
			break
		}
		got = append(got, e.Path)
	}
	if want := []string{"a", "a/x"}; !slices.Equal(got, want) {
		t.Fatalf("records before the error = %q, want %q", got, want)
	}
}

func TestWriterRefuses(t *testing.T) {
	f := func(p string) manifest.Entry { return manifest.Entry{Path: p, Type: manifest.File, Mode: 0o644} }
	d := func(p string) manifest.Entry { return manifest.Entry{Path: p, Type: manifest.Dir, Mode: 0o755} }
	v2f := func(p string) manifest.Entry {
		e := f(p)
		e.SetSum(digestOf(p))
		return e
	}
	tests := []struct {
		name    string
		v2      bool
		entries []manifest.Entry
		want    error
	}{
		{name: "dotdot", entries: []manifest.Entry{f("../x")}, want: manifest.ErrUnsafePath},
		{name: "absolute", entries: []manifest.Entry{f("/x")}, want: manifest.ErrUnsafePath},
		{name: "unclean", entries: []manifest.Entry{d("a"), f("a/./b")}, want: manifest.ErrUnsafePath},
		{name: "NUL", entries: []manifest.Entry{f("a\x00")}, want: manifest.ErrUnsafePath},
		{name: "duplicate", entries: []manifest.Entry{f("a"), f("a")}, want: manifest.ErrUnsafePath},
		{name: "order", entries: []manifest.Entry{f("b"), f("a")}, want: manifest.ErrUnsafePath},
		{name: "orphan", entries: []manifest.Entry{f("a/b")}, want: manifest.ErrUnsafePath},
		{name: "under symlink", entries: []manifest.Entry{{Path: "a", Type: manifest.Symlink, Mode: 0o777, Size: 1, Target: "b"}, f("a/c")}, want: manifest.ErrUnsafePath},
		{name: "mode", entries: []manifest.Entry{{Path: "a", Type: manifest.File, Mode: 0o4755}}, want: manifest.ErrCorrupt},
		{name: "size", entries: []manifest.Entry{{Path: "a", Type: manifest.File, Size: manifest.MaxSize + 1}}, want: manifest.ErrCorrupt},
		{name: "negative size", entries: []manifest.Entry{{Path: "a", Type: manifest.File, Size: -1}}, want: manifest.ErrCorrupt},
		{name: "type", entries: []manifest.Entry{{Path: "a", Type: 'x'}}, want: manifest.ErrCorrupt},
		{name: "symlink hash", entries: []manifest.Entry{{Path: "a", Type: manifest.Symlink, Size: 1, Target: "b", Hash: 1}}, want: manifest.ErrCorrupt},
		{name: "symlink size", entries: []manifest.Entry{{Path: "a", Type: manifest.Symlink, Size: 2, Target: "b"}}, want: manifest.ErrCorrupt},
		{name: "dir target", entries: []manifest.Entry{{Path: "a", Type: manifest.Dir, Target: "b"}}, want: manifest.ErrCorrupt},
		{name: "file target", entries: []manifest.Entry{{Path: "a", Type: manifest.File, Target: "b"}}, want: manifest.ErrCorrupt},
		// The Writer must refuse what a Reader would refuse: a path so long
		// that its record exceeds the reader's line limit.
		{name: "path too long", entries: []manifest.Entry{f(strings.Repeat("\x01", 9000))}, want: manifest.ErrUnsafePath},
		{name: "path just too long", entries: []manifest.Entry{f(strings.Repeat("a", 4097))}, want: manifest.ErrUnsafePath},
		{name: "v1 with digest", entries: []manifest.Entry{v2f("a")}, want: manifest.ErrCorrupt},
		{name: "v2 without digest", v2: true, entries: []manifest.Entry{f("a")}, want: manifest.ErrCorrupt},
		{name: "v2 hash not the digest's", v2: true, entries: []manifest.Entry{{Path: "a", Type: manifest.File, Digest: v2f("a").Digest, Hash: 1}}, want: manifest.ErrCorrupt},
		{name: "v2 dir with digest", v2: true, entries: []manifest.Entry{{Path: "a", Type: manifest.Dir, Digest: v2f("a").Digest}}, want: manifest.ErrCorrupt},
		{name: "v2 symlink with digest", v2: true, entries: []manifest.Entry{{Path: "a", Type: manifest.Symlink, Size: 1, Target: "b", Digest: v2f("a").Digest}}, want: manifest.ErrCorrupt},
		{name: "v2 unsafe", v2: true, entries: []manifest.Entry{v2f("../a")}, want: manifest.ErrUnsafePath},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			w := manifest.NewVersionWriter(&buf, 1, manifest.Version1)
			if tt.v2 {
				w = manifest.NewWriter(&buf, 1)
			}
			var err error
			for _, e := range tt.entries {
				if err = w.Add(e); err != nil {
					break
				}
			}
			if !errors.Is(err, tt.want) {
				if err == nil {
					_ = w.Close()
					_, rerr := manifest.Decode(&buf)
					t.Fatalf("Writer accepted %.300v (Reader says: %v); want error wrapping %v", tt.entries, rerr, tt.want)
				}
				t.Fatalf("Add: %v, want error wrapping %v", err, tt.want)
			}
		})
	}
}

// failWriter fails after n bytes.
type failWriter struct{ n int }

var errDisk = errors.New("disk full")

func (w *failWriter) Write(p []byte) (int, error) {
	if len(p) > w.n {
		return 0, errDisk
	}
	w.n -= len(p)
	return len(p), nil
}

func TestWriterPropagatesWriteError(t *testing.T) {
	m := randomManifest(rand.New(rand.NewPCG(9, 9)), 5000) // more than the 256 KiB buffer
	if err := m.Encode(&failWriter{n: 1000}); !errors.Is(err, errDisk) {
		t.Fatalf("Encode to failing writer: %v, want %v", err, errDisk)
	}
}

// compareRef is the definition Compare must agree with on clean paths:
// component-wise comparison, each component compared bytewise.
func compareRef(a, b string) int {
	return slices.Compare(strings.Split(a, "/"), strings.Split(b, "/"))
}

func TestCompare(t *testing.T) {
	tests := []struct {
		name string
		a, b string
		want int
	}{
		{name: "equal", a: "a/b", b: "a/b", want: 0},
		{name: "bytewise", a: "a", b: "b", want: -1},
		{name: "prefix first", a: "a", b: "ab", want: -1},
		{name: "parent before child", a: "a", b: "a/b", want: -1},
		{name: "child before sibling with dash", a: "a/b", b: "a-b", want: -1},
		{name: "child before sibling with dot", a: "a/z", b: "a.b", want: -1},
		{name: "child before sibling with space", a: "a/z", b: "a b", want: -1},
		{name: "slash below NUL", a: "a/z", b: "a\x00", want: -1},
		{name: "deep subtree before sibling", a: "a/b/c/d", b: "a0", want: -1},
		{name: "high bytes", a: "\xff", b: "\x7f", want: 1},
		{name: "uppercase first", a: "B", b: "a", want: -1},
		{name: "empty first", a: "", b: "a", want: -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := manifest.Compare(tt.a, tt.b); got != tt.want {
				t.Errorf("Compare(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
			}
			if got := manifest.Compare(tt.b, tt.a); got != -tt.want {
				t.Errorf("Compare(%q, %q) = %d, want %d", tt.b, tt.a, got, -tt.want)
			}
		})
	}
}

// TestCompareOrderProperties sorts many paths and checks Compare is a total
// order that agrees with the component-wise definition and puts every
// directory right before its subtree.
func TestCompareOrderProperties(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	alphabet := []string{"a", "b", "-", ".", "A", " ", "\x7f", "\xff", "aa", "a-", "0"}
	var paths []string
	seen := map[string]bool{}
	for len(paths) < 400 {
		n := 1 + r.IntN(4)
		var parts []string
		for range n {
			parts = append(parts, alphabet[r.IntN(len(alphabet))])
		}
		p := strings.Join(parts, "/")
		if manifest.CheckPath(p) != nil || seen[p] {
			continue
		}
		seen[p] = true
		paths = append(paths, p)
	}
	for _, a := range paths {
		for _, b := range paths {
			c := manifest.Compare(a, b)
			if c != compareRef(a, b) {
				t.Fatalf("Compare(%q, %q) = %d, component-wise order says %d", a, b, c, compareRef(a, b))
			}
			if c != -manifest.Compare(b, a) {
				t.Fatalf("Compare not antisymmetric on %q, %q", a, b)
			}
			if (c == 0) != (a == b) {
				t.Fatalf("Compare(%q, %q) = %d", a, b, c)
			}
		}
	}
	slices.SortFunc(paths, manifest.Compare)
	// Transitivity along the sorted order, and the subtree of p is contiguous
	// right after p.
	for i := 1; i < len(paths); i++ {
		if manifest.Compare(paths[i-1], paths[i]) >= 0 {
			t.Fatalf("sorted order broken at %q, %q", paths[i-1], paths[i])
		}
	}
	for i, p := range paths {
		in := true
		for _, q := range paths[i+1:] {
			under := strings.HasPrefix(q, p+"/")
			if under && !in {
				t.Fatalf("%q sorts after a path outside the subtree of %q", q, p)
			}
			in = in && under
		}
	}
}

func TestCheckPath(t *testing.T) {
	tests := []struct {
		name string
		p    string
		ok   bool
	}{
		{name: "simple", p: "a", ok: true},
		{name: "nested", p: "a/b/c", ok: true},
		{name: "dotfile", p: ".git", ok: true},
		{name: "dots in name", p: "a/..b/c..", ok: true},
		{name: "triple dot", p: "...", ok: true},
		{name: "space and percent", p: "a b/100%", ok: true},
		{name: "empty", p: ""},
		{name: "dot", p: "."},
		{name: "dotdot", p: ".."},
		{name: "dotdot prefix", p: "../a"},
		{name: "dotdot inside", p: "a/../b"},
		{name: "dotdot end", p: "a/.."},
		{name: "absolute", p: "/a"},
		{name: "root", p: "/"},
		{name: "trailing slash", p: "a/"},
		{name: "double slash", p: "a//b"},
		{name: "dot component", p: "a/./b"},
		{name: "NUL", p: "a\x00b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := manifest.CheckPath(tt.p)
			if tt.ok && err != nil {
				t.Fatalf("CheckPath(%q) = %v, want nil", tt.p, err)
			}
			if !tt.ok && !errors.Is(err, manifest.ErrUnsafePath) {
				t.Fatalf("CheckPath(%q) = %v, want ErrUnsafePath", tt.p, err)
			}
		})
	}
}

func TestEscape(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string
	}{
		{name: "plain", in: "abc/def.txt", want: "abc/def.txt"},
		{name: "empty", in: "", want: ""},
		{name: "space", in: "a b", want: "a%20b"},
		{name: "percent", in: "100%", want: "100%25"},
		{name: "control", in: "\x00\x01\n\t", want: "%00%01%0A%09"},
		{name: "del and high", in: "\x7f\x80\xff", want: "%7F%80%FF"},
		{name: "utf8", in: "é", want: "%C3%A9"},
		{name: "printable edges", in: "!~", want: "!~"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := manifest.Escape(tt.in); got != tt.want {
				t.Fatalf("Escape(%q) = %q, want %q", tt.in, got, tt.want)
			}
			back, err := manifest.Unescape(tt.want)
			if err != nil || back != tt.in {
				t.Fatalf("Unescape(%q) = %q, %v; want %q", tt.want, back, err, tt.in)
			}
		})
	}
}

func TestEscapeAllBytes(t *testing.T) {
	var all []byte
	for c := 0; c < 256; c++ {
		all = append(all, byte(c))
	}
	for _, s := range []string{string(all), string(all[:128]), strings.Repeat("%", 3) + string(all[200:])} {
		e := manifest.Escape(s)
		for i := 0; i < len(e); i++ {
			if e[i] <= 0x20 || e[i] >= 0x7f {
				t.Fatalf("Escape left raw byte %#x", e[i])
			}
		}
		got, err := manifest.Unescape(e)
		if err != nil || got != s {
			t.Fatalf("Unescape(Escape(s)) = %q, %v; want %q", got, err, s)
		}
	}
}

func TestUnescapeInvalid(t *testing.T) {
	tests := []struct {
		name string
		in   string
	}{
		{name: "lone percent", in: "%"},
		{name: "one digit", in: "a%4"},
		{name: "not hex", in: "%g0"},
		{name: "lowercase", in: "%7f"},
		{name: "needless", in: "%61"},
		{name: "needless slash", in: "%2F"},
		{name: "sign", in: "%+1"},
		{name: "raw space", in: "a b"},
		{name: "raw space after escape", in: "%20 "},
		{name: "raw newline", in: "\n"},
		{name: "raw high", in: "\x80"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := manifest.Unescape(tt.in)
			if !errors.Is(err, manifest.ErrCorrupt) {
				t.Fatalf("Unescape(%q) = %q, %v; want ErrCorrupt", tt.in, got, err)
			}
		})
	}
}

func TestSameContent(t *testing.T) {
	base := manifest.Entry{Path: "a", Type: manifest.File, Mode: 0o644, Size: 3, MTime: 9, Hash: 7}
	tests := []struct {
		name   string
		change func(*manifest.Entry)
		same   bool
	}{
		{name: "identical", change: func(*manifest.Entry) {}, same: true},
		{name: "path ignored", change: func(e *manifest.Entry) { e.Path = "b" }, same: true},
		{name: "type", change: func(e *manifest.Entry) { e.Type = manifest.Dir }},
		{name: "mode", change: func(e *manifest.Entry) { e.Mode = 0o600 }},
		{name: "size", change: func(e *manifest.Entry) { e.Size = 4 }},
		{name: "mtime", change: func(e *manifest.Entry) { e.MTime = 10 }},
		{name: "hash", change: func(e *manifest.Entry) { e.Hash = 8 }},
		{name: "target", change: func(e *manifest.Entry) { e.Target = "x" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := base
			tt.change(&e)
			if got := base.SameContent(e); got != tt.same {
				t.Fatalf("SameContent = %v, want %v", got, tt.same)
			}
		})
	}
}

// randomManifest makes a valid manifest of about n records over a small
// alphabet of names, so that two random manifests overlap.
func randomManifest(r *rand.Rand, n int) *manifest.Manifest {
	names := []string{"a", "b", "c", "a-b", "a.b", "A", "z z", "%", "é", "x\x7f", "dd", "0"}
	set := map[string]manifest.Entry{}
	var dirs []string
	for i := 0; len(set) < n && i < 50*n; i++ {
		parent := ""
		if len(dirs) > 0 && r.IntN(4) != 0 {
			parent = dirs[r.IntN(len(dirs))] + "/"
		}
		p := parent + names[r.IntN(len(names))]
		if _, ok := set[p]; ok {
			continue
		}
		e := manifest.Entry{Path: p, Mode: fs0(r), MTime: r.Int64N(1 << 62)}
		switch r.IntN(5) {
		case 0:
			e.Type = manifest.Dir
			dirs = append(dirs, p)
		case 1:
			e.Type, e.Mode, e.MTime = manifest.Symlink, 0o777, 0
			e.Target = names[r.IntN(len(names))] + "/../" + names[r.IntN(len(names))]
			e.Size = int64(len(e.Target))
		default:
			e.Type, e.Size = manifest.File, r.Int64N(manifest.MaxSize+1)
			for i := range e.Digest {
				e.Digest[i] = byte(r.Uint32())
			}
			e.Hash = e.Digest.Hash()
		}
		set[p] = e
	}
	m := &manifest.Manifest{Snapshot: 1 + r.Uint64N(1000)}
	for _, e := range set {
		m.Entries = append(m.Entries, e)
	}
	slices.SortFunc(m.Entries, func(a, b manifest.Entry) int { return manifest.Compare(a.Path, b.Path) })
	return m
}

// toV1 makes m a version 1 manifest: no digests, the hashes kept.
func toV1(m *manifest.Manifest) *manifest.Manifest {
	m.Version = manifest.Version1
	for i := range m.Entries {
		m.Entries[i].Digest = manifest.Digest{}
	}
	return m
}

func fs0(r *rand.Rand) fs.FileMode { return fs.FileMode(r.IntN(0o1000)) }

// change is a Diff step in comparable form.
type change struct {
	path string
	kind string // added, removed, changed, same
}

func collectDiff(tb testing.TB, old, new manifest.Iterator) []change {
	tb.Helper()
	var out []change
	err := manifest.Diff(old, new, func(c manifest.Change) error {
		switch {
		case c.Old == nil && c.New == nil:
			tb.Fatalf("change with neither side")
		case c.Old == nil:
			out = append(out, change{c.New.Path, "added"})
		case c.New == nil:
			out = append(out, change{c.Old.Path, "removed"})
		default:
			if c.Old.Path != c.New.Path {
				tb.Fatalf("paired %q with %q", c.Old.Path, c.New.Path)
			}
			k := "changed"
			if c.Same {
				k = "same"
			}
			out = append(out, change{c.New.Path, k})
		}
		return nil
	})
	if err != nil {
		tb.Fatalf("Diff: %v", err)
	}
	return out
}

// bruteDiff is the map-based reference for Diff.
func bruteDiff(old, new []manifest.Entry) []change {
	o, n := map[string]manifest.Entry{}, map[string]manifest.Entry{}
	var all []string
	for _, e := range old {
		o[e.Path] = e
		all = append(all, e.Path)
	}
	for _, e := range new {
		n[e.Path] = e
		if _, ok := o[e.Path]; !ok {
			all = append(all, e.Path)
		}
	}
	slices.SortFunc(all, manifest.Compare)
	var out []change
	for _, p := range all {
		oe, inOld := o[p]
		ne, inNew := n[p]
		switch {
		case !inOld:
			out = append(out, change{p, "added"})
		case !inNew:
			out = append(out, change{p, "removed"})
		case oe == ne:
			out = append(out, change{p, "same"})
		default:
			out = append(out, change{p, "changed"})
		}
	}
	return out
}

// mutate derives a new manifest from m: some records dropped, some changed,
// some added.
func mutate(r *rand.Rand, m *manifest.Manifest) *manifest.Manifest {
	other := randomManifest(r, len(m.Entries)/2+1)
	set := map[string]manifest.Entry{}
	for _, e := range m.Entries {
		switch r.IntN(6) {
		case 0:
			continue // removed
		case 1:
			if e.Type == manifest.File {
				e.Digest[31]++ // changed content, same hash: Diff must see it
			} else if e.Type == manifest.Dir {
				e.MTime++
			}
		}
		set[e.Path] = e
	}
	for _, e := range other.Entries {
		if _, ok := set[e.Path]; !ok {
			set[e.Path] = e
		}
	}
	// Keep it a valid tree: drop records whose parent is not a directory.
	var paths []string
	for p := range set {
		paths = append(paths, p)
	}
	slices.SortFunc(paths, manifest.Compare)
	out := &manifest.Manifest{Snapshot: m.Snapshot + 1}
	for _, p := range paths {
		if i := strings.LastIndexByte(p, '/'); i >= 0 {
			if pe, ok := set[p[:i]]; !ok || pe.Type != manifest.Dir {
				delete(set, p)
				continue
			}
		}
		out.Entries = append(out.Entries, set[p])
	}
	return out
}

func TestDiff(t *testing.T) {
	small := sample()
	tests := []struct {
		name     string
		old, new *manifest.Manifest
	}{
		{name: "both empty", old: &manifest.Manifest{Snapshot: 1}, new: &manifest.Manifest{Snapshot: 2}},
		{name: "all added", old: &manifest.Manifest{Snapshot: 1}, new: small},
		{name: "all removed", old: small, new: &manifest.Manifest{Snapshot: 2}},
		{name: "identical", old: small, new: small},
	}
	for seed := uint64(1); seed <= 20; seed++ {
		r := rand.New(rand.NewPCG(seed, 77))
		old := randomManifest(r, 5+int(seed)*10)
		tests = append(tests, struct {
			name     string
			old, new *manifest.Manifest
		}{name: fmt.Sprintf("random %d", seed), old: old, new: mutate(r, old)})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The generated manifests must be valid, or the test proves little.
			for _, m := range []*manifest.Manifest{tt.old, tt.new} {
				if _, err := manifest.Decode(bytes.NewReader(encode(t, m))); err != nil {
					t.Fatalf("test manifest invalid: %v", err)
				}
			}
			got := collectDiff(t, tt.old.Iter(), tt.new.Iter())
			want := bruteDiff(tt.old.Entries, tt.new.Entries)
			if !slices.Equal(got, want) {
				t.Fatalf("Diff:\n got %v\nwant %v", got, want)
			}
			// A streaming Reader gives the same diff as the in-memory one.
			r1, err := manifest.NewReader(bytes.NewReader(encode(t, tt.old)))
			if err != nil {
				t.Fatal(err)
			}
			r2, err := manifest.NewReader(bytes.NewReader(encode(t, tt.new)))
			if err != nil {
				t.Fatal(err)
			}
			if got := collectDiff(t, r1, r2); !slices.Equal(got, want) {
				t.Fatalf("Diff over Readers:\n got %v\nwant %v", got, want)
			}
		})
	}
}

func TestDiffNilOld(t *testing.T) {
	m := sample()
	got := collectDiff(t, nil, m.Iter())
	if len(got) != len(m.Entries) {
		t.Fatalf("got %d changes, want %d", len(got), len(m.Entries))
	}
	for i, c := range got {
		if c.kind != "added" || c.path != m.Entries[i].Path {
			t.Fatalf("change %d = %v, want added %q", i, c, m.Entries[i].Path)
		}
	}
}

func TestDiffErrors(t *testing.T) {
	stop := errors.New("stop")
	calls := 0
	err := manifest.Diff(sample().Iter(), nil, func(manifest.Change) error {
		calls++
		if calls == 3 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || calls != 3 {
		t.Fatalf("Diff = %v after %d calls; want the callback's error after 3", err, calls)
	}
	// A corrupt stream's error comes out of Diff.
	bad := hdr + "f 0644 0 0 " + h16 + " b\nf 0644 0 0 " + h16 + " a\n"
	r, err := manifest.NewReader(strings.NewReader(bad))
	if err != nil {
		t.Fatal(err)
	}
	err = manifest.Diff(sample().Iter(), r, func(manifest.Change) error { return nil })
	if !errors.Is(err, manifest.ErrUnsafePath) {
		t.Fatalf("Diff over a bad stream = %v, want ErrUnsafePath", err)
	}
	// And so does a truncated one.
	r, err = manifest.NewReader(strings.NewReader(hdr + "f 0644 0 0 " + h16 + " b\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := manifest.Diff(r, nil, func(manifest.Change) error { return nil }); !errors.Is(err, manifest.ErrCorrupt) {
		t.Fatalf("Diff over a truncated stream = %v, want ErrCorrupt", err)
	}
}

// TestDocExample decodes the example manifests shown in doc.go and
// docs/protocol.md (version 2, then version 1), so the documentation cannot
// drift from the format: each holds the hashes of the contents it says.
func TestDocExample(t *testing.T) {
	doc, err := os.ReadFile("../docs/protocol.md")
	if err != nil {
		t.Fatal(err)
	}
	var ex []byte
	for _, v := range []int{manifest.Version1, manifest.Version2} {
		start := bytes.Index(doc, []byte("```\n"+manifest.MagicOf(v)+"\n"))
		if start < 0 {
			t.Fatalf("docs/protocol.md has no example manifest of version %d", v)
		}
		ex = doc[start+4:]
		ex = ex[:bytes.Index(ex, []byte("```"))]
		m, err := manifest.Decode(bytes.NewReader(ex))
		if err != nil {
			t.Fatalf("the documented example of version %d does not decode: %v", v, err)
		}
		if m.Snapshot != 42 || len(m.Entries) != 4 || m.Version != v {
			t.Fatalf("example decoded to snapshot %d, version %d, with %d entries", m.Snapshot, m.Version, len(m.Entries))
		}
		for i, content := range map[int]string{1: "", 3: strings.Repeat("x", 1234)} {
			h := manifest.NewHasher(v)
			h.Write([]byte(content))
			if m.Entries[i].Sum() != h.Sum() {
				t.Fatalf("version %d example: %s does not hold the hash of its content", v, m.Entries[i].Path)
			}
		}
	}
	src, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	var fromGo []byte
	for _, l := range strings.Split(string(src), "\n") {
		if rest, ok := strings.CutPrefix(l, "//\t"); ok {
			fromGo = append(fromGo, rest+"\n"...)
		}
	}
	if !bytes.Equal(fromGo, ex) {
		t.Fatalf("doc.go's example differs from docs/protocol.md's:\n%s\nvs\n%s", fromGo, ex)
	}
}
