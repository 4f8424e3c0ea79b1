package seqfile_test

import (
	"errors"
	"math"
	"path/filepath"
	"testing"

	"github.com/seqmirror/seqmirror/internal/fsys"
	"github.com/seqmirror/seqmirror/seqfile"
)

// StartUpdate never wraps a counter to 0: at 2^64-1 it refuses and writes
// nothing.
func TestStartUpdateRefusesToWrap(t *testing.T) {
	for _, tc := range []struct {
		name       string
		begin, end uint64
		wantErr    bool
	}{
		{name: "both at max", begin: math.MaxUint64, end: math.MaxUint64, wantErr: true},
		{name: "begin at max", begin: math.MaxUint64, end: 7, wantErr: true},
		{name: "end at max", begin: 7, end: math.MaxUint64, wantErr: true},
		{name: "one below max", begin: math.MaxUint64 - 1, end: math.MaxUint64 - 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, dir := fsys.OS(), t.TempDir()
			for name, v := range map[string]uint64{seqfile.Begin: tc.begin, seqfile.End: tc.end} {
				if err := seqfile.Write(f, filepath.Join(dir, name), v); err != nil {
					t.Fatal(err)
				}
			}
			got, err := seqfile.StartUpdate(f, dir)
			p, rerr := seqfile.Counters(f, dir)
			if rerr != nil {
				t.Fatal(rerr)
			}
			if !tc.wantErr {
				if err != nil || got != math.MaxUint64 || p.Begin != math.MaxUint64 {
					t.Fatalf("StartUpdate = %d, %v; begin %d", got, err, p.Begin)
				}
				return
			}
			if !errors.Is(err, seqfile.ErrExhausted) {
				t.Fatalf("StartUpdate = %d, %v; want ErrExhausted", got, err)
			}
			if p.Begin != tc.begin || p.End != tc.end {
				t.Fatalf("counters changed to %+v", p)
			}
		})
	}
}
