package snapshot

import (
	"io"
	"testing"

	"github.com/seqmirror/seqmirror/internal/fsys"
	"github.com/seqmirror/seqmirror/manifest"
)

// The spool gives back what was added, in order, to every reader, and
// leaves no file behind.
func TestSpoolRoundTrip(t *testing.T) {
	dir := t.TempDir()
	want := []spooled{
		{Entry: manifest.Entry{Path: "a", Type: manifest.Dir, Mode: 0o755, MTime: 1700000000123456789}},
		{Entry: manifest.Entry{Path: "a/b c", Type: manifest.File, Mode: 0o644, Size: 12, MTime: -5, Hash: 0xfedcba9876543210, Digest: manifest.Digest{0xfe, 0xdc, 31: 7}}, linkable: true},
		{Entry: manifest.Entry{Path: "a/b d", Type: manifest.File, Mode: 0o644, Size: 12, MTime: -5, Hash: 0x10, Digest: manifest.Digest{1, 2, 3}}, linkable: true, settled: true},
		{Entry: manifest.Entry{Path: "a/b e", Type: manifest.File, Mode: 0o644, Size: 1, MTime: 9}, settled: true},
		{Entry: manifest.Entry{Path: "a/b%d", Type: manifest.File, Mode: 0o600, Size: 1 << 40, MTime: 3}},
		{Entry: manifest.Entry{Path: "a/l", Type: manifest.Symlink, Mode: 0o777, Size: 6, Target: "../x/y"}, linkable: true},
		{Entry: manifest.Entry{Path: "ab", Type: manifest.File, Mode: 0o400}},
		{Entry: manifest.Entry{Path: "z", Type: manifest.Dir, Mode: 0o700}},
	}
	s, err := newSpool(fsys.OS(), dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	for i := range want {
		if err := s.add(&want[i]); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.seal(); err != nil {
		t.Fatal(err)
	}
	readers := []*spoolReader{s.open(), s.open()}
	for i, w := range want {
		for k, r := range readers {
			got, err := r.next()
			if err != nil || got != w {
				t.Fatalf("reader %d, record %d: %+v, %v; want %+v", k, i, got, err, w)
			}
		}
	}
	for k, r := range readers {
		if _, err := r.next(); err != io.EOF {
			t.Fatalf("reader %d after the last record: %v, want io.EOF", k, err)
		}
	}
	if ents, err := fsys.OS().Open(dir); err == nil {
		names, _ := ents.Readdirnames(-1)
		ents.Close()
		if len(names) != 0 {
			t.Fatalf("%s holds %v", dir, names)
		}
	}
}
