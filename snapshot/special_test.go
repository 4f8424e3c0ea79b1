package snapshot_test

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/seqmirror/seqmirror/internal/fsys"
	"github.com/seqmirror/seqmirror/internal/tree"
	"github.com/seqmirror/seqmirror/testutil"
	"github.com/seqmirror/seqmirror/testutil/faultfs"
)

// specialTree writes a source with a setuid file, a setgid file, a setgid
// directory and a sticky directory.
func specialTree(tb testing.TB) string {
	tb.Helper()
	src := filepath.Join(tb.TempDir(), "src")
	testutil.WriteTree(tb, src, map[string]string{"bin/suid": "#!/bin/sh\n", "bin/sgid": "x", "shared/f": "y", "tmp/f": "z"})
	for p, mode := range map[string]fs.FileMode{"bin/suid": 0o755 | fs.ModeSetuid, "bin/sgid": 0o755 | fs.ModeSetgid,
		"shared": 0o755 | fs.ModeSetgid, "tmp": 0o777 | fs.ModeSticky} {
		testutil.Must(tb, os.Chmod(filepath.Join(src, p), mode))
	}
	return src
}

// A snapshot never carries setuid, setgid or sticky bits: publish records
// the permission bits and the published copies have exactly those.
func TestPublishDropsSpecialBits(t *testing.T) {
	src := specialTree(t)
	r := newRoot(t)
	res := publish(t, r, src, fastOpts())
	m := readManifest(t, r, res.Snapshot)
	want := map[string]fs.FileMode{"bin/suid": 0o755, "bin/sgid": 0o755, "shared": 0o755, "tmp": 0o777}
	for _, e := range m.Entries {
		w, ok := want[e.Path]
		if !ok {
			continue
		}
		if e.Mode != w {
			t.Errorf("manifest records %s as %v, want %v", e.Path, e.Mode, w)
		}
		fi, err := os.Lstat(filepath.Join(r.SnapshotDir(res.Snapshot), e.Path))
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode() &^ fs.ModeType; got != w {
			t.Errorf("published %s has mode %v, want %v", e.Path, got, w)
		}
	}
	probs, err := tree.Verify(context.Background(), fsys.OS(), r.SnapshotDir(res.Snapshot), m, 2)
	if err != nil || len(probs) > 0 {
		t.Fatalf("verify: %v %v", probs, err)
	}
}

// Verify reports a setuid, setgid or sticky bit planted in a snapshot, on
// the OS filesystem (statAt) and through a wrapping one (EntryFromInfo).
func TestVerifyReportsSpecialBits(t *testing.T) {
	tests := []struct {
		name string
		path string
		mode fs.FileMode
		want string
	}{
		{name: "setuid file", path: "bin/suid", mode: 0o755 | fs.ModeSetuid, want: "bin/suid: mode 4755, manifest says 0755"},
		{name: "setgid file", path: "bin/sgid", mode: 0o755 | fs.ModeSetgid, want: "bin/sgid: mode 2755, manifest says 0755"},
		{name: "setgid directory", path: "shared", mode: 0o755 | fs.ModeSetgid, want: "shared: mode 2755, manifest says 0755"},
		{name: "sticky directory", path: "tmp", mode: 0o777 | fs.ModeSticky, want: "tmp: mode 1777, manifest says 0777"},
	}
	src := specialTree(t)
	r := newRoot(t)
	res := publish(t, r, src, fastOpts())
	m := readManifest(t, r, res.Snapshot)
	snap := r.SnapshotDir(res.Snapshot)
	for _, tt := range tests {
		for _, f := range []struct {
			name string
			fs   fsys.FS
		}{{"os", fsys.OS()}, {"wrapped", faultfs.New(fsys.OS())}} {
			t.Run(tt.name+"/"+f.name, func(t *testing.T) {
				p := filepath.Join(snap, tt.path)
				fi, err := os.Lstat(p)
				testutil.Must(t, err)
				os.Chmod(filepath.Dir(p), 0o755)
				testutil.Must(t, os.Chmod(p, tt.mode))
				t.Cleanup(func() { os.Chmod(p, fi.Mode()&fs.ModePerm) })
				probs, err := tree.Verify(context.Background(), f.fs, snap, m, 2)
				if err != nil {
					t.Fatal(err)
				}
				var got []string
				for _, p := range probs {
					got = append(got, p.String())
				}
				if !slices.Contains(got, tt.want) {
					t.Fatalf("verify found %q, want %q", got, tt.want)
				}
			})
		}
	}
}

// Walk, which publish lists its source with, keeps only permission bits.
func TestWalkKeepsPermissionBitsOnly(t *testing.T) {
	src := specialTree(t)
	for _, f := range []fsys.FS{fsys.OS(), faultfs.New(fsys.OS())} {
		es, err := tree.Walk(context.Background(), f, src, nil)
		testutil.Must(t, err)
		for _, e := range es {
			if e.Mode&^fs.ModePerm != 0 {
				t.Errorf("%s: Walk over %s gave mode %v, beyond the permission bits", e.Path, f.Name(), e.Mode)
			}
		}
	}
}
