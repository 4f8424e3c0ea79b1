package seqfile_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/seqmirror/seqmirror/fsys"
	"github.com/seqmirror/seqmirror/seqfile"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    uint64
		wantErr bool
	}{
		{name: "zero", in: "0\n", want: 0},
		{name: "number", in: "42\n", want: 42},
		{name: "max", in: "18446744073709551615\n", want: 1<<64 - 1},
		{name: "overflow", in: "18446744073709551616\n", wantErr: true},
		{name: "no newline", in: "42", wantErr: true},
		{name: "empty", in: "", wantErr: true},
		{name: "just newline", in: "\n", wantErr: true},
		{name: "leading zero", in: "042\n", wantErr: true},
		{name: "sign", in: "+4\n", wantErr: true},
		{name: "negative", in: "-4\n", wantErr: true},
		{name: "space", in: " 4\n", wantErr: true},
		{name: "two lines", in: "4\n5\n", wantErr: true},
		{name: "crlf", in: "4\r\n", wantErr: true},
		{name: "garbage", in: "hello\n", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := seqfile.Parse([]byte(tt.in))
			if tt.wantErr {
				if !errors.Is(err, seqfile.ErrCorrupt) {
					t.Fatalf("Parse(%q) err = %v, want ErrCorrupt", tt.in, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("Parse(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestUpdateCycle(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "seq")
	f := fsys.OS()
	p, err := seqfile.Counters(f, dir)
	if err != nil || p != (seqfile.Pair{}) {
		t.Fatalf("fresh counters = %+v, %v", p, err)
	}
	b, err := seqfile.StartUpdate(f, dir)
	if err != nil || b != 1 {
		t.Fatalf("StartUpdate = %d, %v", b, err)
	}
	if p, _ := seqfile.Counters(f, dir); p.Idle() {
		t.Fatalf("counters idle during update: %+v", p)
	}
	// A crashed update leaves begin > end; the next one goes past it.
	b, err = seqfile.StartUpdate(f, dir)
	if err != nil || b != 2 {
		t.Fatalf("second StartUpdate = %d, %v", b, err)
	}
	if err := seqfile.FinishUpdate(f, dir, b); err != nil {
		t.Fatal(err)
	}
	p, err = seqfile.Counters(f, dir)
	if err != nil || p != (seqfile.Pair{Begin: 2, End: 2}) || !p.Idle() {
		t.Fatalf("after finish = %+v, %v", p, err)
	}
	raw, _ := os.ReadFile(filepath.Join(dir, "end"))
	if string(raw) != "2\n" {
		t.Fatalf("end file = %q, want cat-able \"2\\n\"", raw)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 2 {
		t.Fatalf("seq dir holds %d entries, want begin and end only", len(ents))
	}
}

func TestReadErrors(t *testing.T) {
	dir := t.TempDir()
	f := fsys.OS()
	if _, err := seqfile.Read(f, filepath.Join(dir, "nope")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing: %v", err)
	}
	os.WriteFile(filepath.Join(dir, "end"), []byte("12x\n"), 0o644)
	_, err := seqfile.Counters(f, dir)
	if !errors.Is(err, seqfile.ErrCorrupt) {
		t.Fatalf("garbage end: %v", err)
	}
	os.WriteFile(filepath.Join(dir, "end"), make([]byte, 1<<20), 0o644)
	if _, err := seqfile.Read(f, filepath.Join(dir, "end")); !errors.Is(err, seqfile.ErrCorrupt) {
		t.Fatalf("huge end: %v", err)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"0\n", "1\n", "42\n", "18446744073709551615\n", "", "x\n", "01\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		n, err := seqfile.Parse(b)
		if err != nil {
			if !errors.Is(err, seqfile.ErrCorrupt) {
				t.Fatalf("error not ErrCorrupt: %v", err)
			}
			return
		}
		// Whatever parses must be canonical: formatting gives the same bytes.
		if got := string(seqfile.Format(n)) + "\n"; got != string(b) {
			t.Fatalf("Parse(%q)=%d but Format gives %q", b, n, got)
		}
	})
}
