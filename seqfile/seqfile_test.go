package seqfile_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/seqmirror/seqmirror/internal/fsys"
	"github.com/seqmirror/seqmirror/seqfile"
	"github.com/seqmirror/seqmirror/testutil"
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

// TestParseQuotesNothing: a seq file may be an upstream's, or (through a
// symlink) any file the reader can read; its errors describe, never quote.
func TestParseQuotesNothing(t *testing.T) {
	tests := []struct {
		name string
		in   string
	}{
		{name: "shadow line", in: "root:*:20228:0:99999:7:::\n"},
		{name: "short word", in: "SECRET\n"},
		{name: "no newline", in: "SECRET"},
		{name: "leading zero", in: "0SECRET\n"},
		{name: "digits then word", in: "12SECRET\n"},
		{name: "out of range", in: "99999999999999999999\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := seqfile.Parse([]byte(tt.in))
			if !errors.Is(err, seqfile.ErrCorrupt) {
				t.Fatalf("Parse(%q) = %v, want ErrCorrupt", tt.in, err)
			}
			for _, leak := range []string{"SECRET", "root", "99999999999999999999", "20228"} {
				if strings.Contains(tt.in, leak) && strings.Contains(err.Error(), leak) {
					t.Fatalf("Parse(%q) error quotes the content: %v", tt.in, err)
				}
			}
		})
	}
}

// TestReadRefusesNonRegular: a seq file that is a fifo (which would block
// the reader), a device (endless), or a symlink anywhere below the root it
// is read beneath (which would read another file) is refused at once.
func TestReadRefusesNonRegular(t *testing.T) {
	tests := []struct {
		name  string
		plant func(t *testing.T, root, outside string)
		want  error
	}{
		{name: "fifo", want: fsys.ErrNotRegular, plant: func(t *testing.T, root, _ string) {
			testutil.Fifo(t, filepath.Join(root, "seq", "end"))
		}},
		{name: "character device", want: fsys.ErrNotRegular, plant: func(t *testing.T, root, _ string) {
			testutil.ZeroDevice(t, filepath.Join(root, "seq", "end"))
		}},
		{name: "symlink to a number outside", want: fsys.ErrSymlink, plant: func(t *testing.T, root, outside string) {
			os.Symlink(filepath.Join(outside, "seven"), filepath.Join(root, "seq", "end"))
		}},
		{name: "symlink to a secret", want: fsys.ErrSymlink, plant: func(t *testing.T, root, outside string) {
			os.Symlink(filepath.Join(outside, "shadow"), filepath.Join(root, "seq", "end"))
		}},
		{name: "symlinked seq directory", want: fsys.ErrSymlink, plant: func(t *testing.T, root, outside string) {
			os.Remove(filepath.Join(root, "seq"))
			os.Symlink(outside, filepath.Join(root, "seq"))
			os.Rename(filepath.Join(outside, "seven"), filepath.Join(outside, "end"))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			root, outside := filepath.Join(dir, "root"), filepath.Join(dir, "outside")
			os.MkdirAll(filepath.Join(root, "seq"), 0o755)
			os.Mkdir(outside, 0o755)
			os.WriteFile(filepath.Join(outside, "seven"), []byte("7\n"), 0o600)
			os.WriteFile(filepath.Join(outside, "shadow"), []byte("root:*:20228:0:99999:7:::\n"), 0o600)
			tt.plant(t, root, outside)
			done := make(chan error, 1)
			go func() {
				_, err := seqfile.ReadBeneath(fsys.OS(), root, "seq/end")
				done <- err
			}()
			var err error
			select {
			case err = <-done:
			case <-time.After(5 * time.Second):
				t.Fatal("ReadBeneath still blocked after 5s")
			}
			if !errors.Is(err, seqfile.ErrCorrupt) || !errors.Is(err, tt.want) {
				t.Fatalf("ReadBeneath = %v, want ErrCorrupt and %v", err, tt.want)
			}
			if strings.Contains(err.Error(), "20228") {
				t.Fatalf("error quotes the secret: %v", err)
			}
			if tt.want == fsys.ErrNotRegular || tt.name == "symlinked seq directory" {
				return
			}
			// Read (the last component only) refuses a symlink too.
			if _, err := seqfile.Read(fsys.OS(), filepath.Join(root, "seq", "end")); !errors.Is(err, fsys.ErrSymlink) {
				t.Fatalf("Read = %v, want ErrSymlink", err)
			}
		})
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
