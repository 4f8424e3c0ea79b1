package export_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/seqmirror/seqmirror/internal/export"
	"github.com/seqmirror/seqmirror/internal/fsys"
	"github.com/seqmirror/seqmirror/manifest"
)

// OpenManifestFile streams a manifest at any path (one fetched into .work),
// with its errors named as the caller says; Drain checks it whole.
func TestOpenManifestFile(t *testing.T) {
	dir := t.TempDir()
	m := &manifest.Manifest{Snapshot: 2, Entries: []manifest.Entry{{Path: "d", Type: manifest.Dir, Mode: 0o755}}}
	p := filepath.Join(dir, "2.manifest")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Encode(f); err != nil {
		t.Fatal(err)
	}
	f.Close()
	tests := []struct {
		name    string
		path    string
		n       uint64
		want    int
		wantErr error
	}{
		{name: "good", path: p, n: 2, want: 1},
		{name: "another snapshot's", path: p, n: 3, wantErr: manifest.ErrCorrupt},
		{name: "missing", path: filepath.Join(dir, "nope"), n: 2, wantErr: os.ErrNotExist},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ms, err := export.OpenManifestFile(fsys.OS(), tt.path, tt.n, "manifest of snapshot X")
			count := 0
			if err == nil {
				count, err = ms.Drain()
				ms.Close()
			}
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if errors.Is(err, manifest.ErrCorrupt) && !strings.HasPrefix(err.Error(), "manifest of snapshot X: ") {
				t.Errorf("error %q not named as asked", err)
			}
			if err == nil && count != tt.want {
				t.Errorf("drained %d records, want %d", count, tt.want)
			}
		})
	}
}
