package manifest

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"slices"
	"testing"
)

// testEntries makes n records shaped like a gentree tree: 50 top directories
// of 40 subdirectories each, files spread over them, a few symlinks and
// names that need escaping.
func testEntries(n int) []Entry {
	var out []Entry
	perDir := max(1, n/2000)
	i := 0
	for d := 0; d < 50 && i < n; d++ {
		top := fmt.Sprintf("d%02d", d)
		out = append(out, Entry{Path: top, Type: Dir, Mode: 0o755, MTime: 1700000000000000000 + int64(d)})
		for s := 0; s < 40 && i < n; s++ {
			sub := fmt.Sprintf("%s/s%03d", top, s)
			out = append(out, Entry{Path: sub, Type: Dir, Mode: 0o755, MTime: 1700000000000000000 + int64(s)})
			for k := 0; k < perDir && i < n; k++ {
				name := fmt.Sprintf("%s/f%07d.dat", sub, i)
				if i%997 == 0 {
					name = fmt.Sprintf("%s/f%07d with space%%.dat", sub, i)
				}
				e := Entry{Path: name, Type: File, Mode: 0o644, Size: int64(100 + i%30000),
					MTime: 1700000000123456789 + int64(i), Digest: sha256.Sum256([]byte(name))}
				e.Hash = e.Digest.Hash()
				if i%1009 == 0 {
					e = Entry{Path: name, Type: Symlink, Mode: 0o777, Target: "../s000", Size: 7}
				}
				out = append(out, e)
				i++
			}
		}
	}
	// canonical order: names above are already sorted within each directory,
	// and "with space" names sort after their plain neighbours only by digit.
	slices.SortFunc(out, func(a, b Entry) int { return Compare(a.Path, b.Path) })
	return out
}

func benchManifest(b *testing.B) ([]byte, *Manifest) {
	m := &Manifest{Snapshot: 1, Entries: testEntries(100000)}
	data, err := m.Bytes()
	if err != nil {
		b.Fatal(err)
	}
	return data, m
}

func BenchmarkEncode100k(b *testing.B) {
	data, m := benchManifest(b)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if err := m.Encode(io.Discard); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecode100k(b *testing.B) {
	data, _ := benchManifest(b)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode(bytes.NewReader(data)); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCheck100k(b *testing.B) {
	data, _ := benchManifest(b)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := Check(bytes.NewReader(data)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDiffStream100k diffs two streamed manifests that differ by ~1%.
func BenchmarkDiffStream100k(b *testing.B) { benchDiffStream(b, false) }

// BenchmarkDiffStreamReadahead100k decodes the two manifests on their own
// goroutines (mirror-sync's pass 1).
func BenchmarkDiffStreamReadahead100k(b *testing.B) { benchDiffStream(b, true) }

func benchDiffStream(b *testing.B, ahead bool) {
	data, m := benchManifest(b)
	m2 := &Manifest{Snapshot: 2, Entries: append([]Entry(nil), m.Entries...)}
	for i := range m2.Entries {
		if i%100 == 50 && m2.Entries[i].Type == File {
			m2.Entries[i].Hash++
			m2.Entries[i].MTime++
		}
	}
	data2, err := m2.Bytes()
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data) + len(data2)))
	b.ReportAllocs()
	for b.Loop() {
		r1, err := NewReader(bytes.NewReader(data))
		if err != nil {
			b.Fatal(err)
		}
		r2, err := NewReader(bytes.NewReader(data2))
		if err != nil {
			b.Fatal(err)
		}
		var i1, i2 Iterator = r1, r2
		if ahead {
			a1, a2 := NewReadahead(r1), NewReadahead(r2)
			defer a1.Stop()
			defer a2.Stop()
			i1, i2 = a1, a2
		}
		changed := 0
		if err := Diff(i1, i2, func(c Change) error {
			if !c.Same {
				changed++
			}
			return nil
		}); err != nil {
			b.Fatal(err)
		}
		if changed == 0 {
			b.Fatal("no changes seen")
		}
	}
}
