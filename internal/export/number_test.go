package export_test

import (
	"errors"
	"os"
	"strconv"
	"testing"

	"github.com/seqmirror/seqmirror/internal/export"
	"github.com/seqmirror/seqmirror/internal/fsys"
)

// NextNumber is one above every number in use and never wraps to 0.
func TestNextNumber(t *testing.T) {
	for _, tc := range []struct {
		name    string
		used    []uint64 // snapshot directories with a manifest
		want    uint64
		wantErr error
	}{
		{name: "empty root", want: 1},
		{name: "after 7", used: []uint64{3, 7}, want: 8},
		{name: "below the last number", used: []uint64{1<<64 - 2}, want: 1<<64 - 1},
		{name: "last number used", used: []uint64{1, 1<<64 - 1}, wantErr: export.ErrNumbersExhausted},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := export.New(fsys.OS(), t.TempDir())
			if err := r.Init(); err != nil {
				t.Fatal(err)
			}
			for _, n := range tc.used {
				if err := os.Mkdir(r.SnapshotDir(n), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(r.ManifestPath(n), nil, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			got, err := r.NextNumber()
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil && got != tc.want) {
				t.Fatalf("NextNumber = %s, %v; want %d, %v", strconv.FormatUint(got, 10), err, tc.want, tc.wantErr)
			}
		})
	}
}
