package manifest_test

import (
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/seqmirror/seqmirror/manifest"
)

// failingIter yields n records, then err.
type failingIter struct {
	n, i int
	err  error
}

func (f *failingIter) Next() (manifest.Entry, error) {
	if f.i >= f.n {
		return manifest.Entry{}, f.err
	}
	f.i++
	return manifest.Entry{Path: fmt.Sprintf("f%06d", f.i), Type: manifest.File}, nil
}

func TestReadaheadSameRecordsAndError(t *testing.T) {
	boom := errors.New("boom")
	tests := []struct {
		name string
		n    int
		err  error
	}{
		{name: "empty", n: 0, err: io.EOF},
		{name: "one", n: 1, err: io.EOF},
		{name: "batch minus one", n: 255, err: io.EOF},
		{name: "one batch", n: 256, err: io.EOF},
		{name: "batch plus one", n: 257, err: io.EOF},
		{name: "many", n: 5000, err: io.EOF},
		{name: "error mid-batch", n: 300, err: boom},
		{name: "error at once", n: 0, err: boom},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := manifest.NewReadahead(&failingIter{n: tt.n, err: tt.err})
			defer r.Stop()
			for i := 1; i <= tt.n; i++ {
				e, err := r.Next()
				if err != nil {
					t.Fatalf("record %d: %v", i, err)
				}
				if want := fmt.Sprintf("f%06d", i); e.Path != want {
					t.Fatalf("record %d is %q, want %q", i, e.Path, want)
				}
			}
			for k := 0; k < 2; k++ { // the error sticks
				if _, err := r.Next(); !errors.Is(err, tt.err) {
					t.Fatalf("after %d records: %v, want %v", tt.n, err, tt.err)
				}
			}
		})
	}
}

// Stop part way returns, and the underlying iterator is no longer read.
func TestReadaheadStop(t *testing.T) {
	it := &failingIter{n: 1 << 20, err: io.EOF}
	r := manifest.NewReadahead(it)
	if _, err := r.Next(); err != nil {
		t.Fatal(err)
	}
	r.Stop()
	read := it.i
	r.Stop() // twice is fine
	if it.i != read || read >= 1<<20 {
		t.Fatalf("iterator read to %d after Stop (had %d)", it.i, read)
	}
}
