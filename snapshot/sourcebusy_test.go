package snapshot_test

import (
	"errors"
	"testing"

	"github.com/seqmirror/seqmirror/internal/fsys"
	"github.com/seqmirror/seqmirror/seqfile"
	"github.com/seqmirror/seqmirror/snapshot"
	"github.com/seqmirror/seqmirror/testutil"
)

// SourceBusy: busy only while the source's own seq/begin differs from its
// seq/end; no pair is never busy; corrupt counters are an error.
func TestSourceBusy(t *testing.T) {
	tests := []struct {
		name    string
		files   map[string]string
		busy    bool
		corrupt bool
	}{
		{name: "no counters", files: map[string]string{"a": "a"}},
		{name: "begin only", files: map[string]string{"seq/begin": "2\n"}},
		{name: "idle", files: map[string]string{"seq/begin": "3\n", "seq/end": "3\n"}},
		{name: "mid-update", files: map[string]string{"seq/begin": "4\n", "seq/end": "3\n"}, busy: true},
		{name: "corrupt", files: map[string]string{"seq/begin": "x\n", "seq/end": "3\n"}, corrupt: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := t.TempDir()
			testutil.WriteTree(t, src, tt.files)
			busy, err := snapshot.SourceBusy(fsys.OS(), src)
			if tt.corrupt != errors.Is(err, seqfile.ErrCorrupt) || (!tt.corrupt && err != nil) {
				t.Fatalf("SourceBusy: %v, want corrupt=%v", err, tt.corrupt)
			}
			if busy != tt.busy {
				t.Errorf("SourceBusy = %v, want %v", busy, tt.busy)
			}
		})
	}
}
