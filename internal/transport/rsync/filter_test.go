package rsync_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/seqmirror/seqmirror/internal/export"
	"github.com/seqmirror/seqmirror/internal/fsys"
	"github.com/seqmirror/seqmirror/internal/transport"
	"github.com/seqmirror/seqmirror/manifest"
	"github.com/seqmirror/seqmirror/testutil"
)

// FetchManifestFilter reads the manifest and the filter file in one run:
// no filter file is a whole snapshot, a filter file comes back as it is,
// and one that is not a regular file is corrupt data.
func TestFetchManifestFilter(t *testing.T) {
	root := filepath.Join(t.TempDir(), "root")
	testutil.SnapshotRoot(t, root, 1, map[string]string{"a": "x"})
	r := export.New(fsys.OS(), root)
	d := testutil.StartRsyncdServer(t, map[string]string{"m": root})
	tests := []struct {
		name    string
		plant   func(t *testing.T)
		want    string
		wantErr error
	}{
		{name: "whole", plant: func(t *testing.T) {}},
		{name: "partial", plant: func(t *testing.T) {
			testutil.Must(t, os.WriteFile(r.FilterPath(1), []byte(`{"version":1,"filters":[["- a"]]}`), 0o644))
		}, want: `{"version":1,"filters":[["- a"]]}`},
		{name: "fifo filter", plant: func(t *testing.T) {
			testutil.Must(t, os.Remove(r.FilterPath(1)))
			testutil.Plant(t, r.FilterPath(1), "fifo")
		}, wantErr: manifest.ErrCorrupt},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.plant(t)
			work := t.TempDir()
			up, err := transport.Open(d.URL("m"), fsys.OS(), transport.Options{ScratchDir: work})
			testutil.Must(t, err)
			defer up.Close()
			dst := filepath.Join(work, "1.manifest")
			got, err := up.(transport.FilterFetcher).FetchManifestFilter(context.Background(), 1, dst)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err %v, want %v", err, tt.wantErr)
				}
				return
			}
			testutil.Must(t, err)
			if string(got) != tt.want {
				t.Fatalf("filter %q, want %q", got, tt.want)
			}
			if _, _, err := manifest.Check(mustOpen(t, dst)); err != nil {
				t.Fatalf("the manifest fetched: %v", err)
			}
		})
	}
}

func mustOpen(t *testing.T, p string) *os.File {
	t.Helper()
	f, err := os.Open(p)
	testutil.Must(t, err)
	t.Cleanup(func() { f.Close() })
	return f
}
