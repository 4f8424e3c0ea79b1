package testutil

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/seqmirror/seqmirror/internal/export"
	"github.com/seqmirror/seqmirror/internal/fsys"
	"github.com/seqmirror/seqmirror/manifest"
	"github.com/seqmirror/seqmirror/seqfile"
)

// ManyDirsUpstream makes dir an export root serving snapshot n (both
// counters n) whose manifest lists dirs directories, about sqrt(dirs) of
// them at the top each holding as many, and one file "zz" with content;
// the snapshot directory itself holds only that file. It is a manifest
// that is cheap to make and costly to mirror (a hostile upstream's, or a
// tree that was pruned by hand): memory tests use it. Calling it again
// for a higher n adds that snapshot.
func ManyDirsUpstream(tb testing.TB, dir string, n uint64, dirs int, content string) {
	tb.Helper()
	r := export.New(fsys.OS(), dir)
	if err := r.Init(); err != nil {
		tb.Fatal(err)
	}
	if err := os.MkdirAll(r.SnapshotDir(n), 0o755); err != nil {
		tb.Fatal(err)
	}
	file := filepath.Join(r.SnapshotDir(n), "zz")
	if err := os.WriteFile(file, []byte(content), 0o644); err != nil {
		tb.Fatal(err)
	}
	fi, err := os.Stat(file)
	if err != nil {
		tb.Fatal(err)
	}
	zz := manifest.Entry{Path: "zz", Type: manifest.File, Mode: 0o644, Size: fi.Size(), MTime: fi.ModTime().UnixNano()}
	zz.SetSum(SumOf(content, manifest.Current))
	if err := writeManyDirs(r.ManifestPath(n), n, dirs, zz); err != nil {
		tb.Fatal(err)
	}
	for _, name := range []string{seqfile.Begin, seqfile.End} {
		if err := seqfile.Write(r.FS, filepath.Join(r.SeqDir(), name), n); err != nil {
			tb.Fatal(err)
		}
	}
	if err := r.Flip(n); err != nil {
		tb.Fatal(err)
	}
}

// writeManyDirs writes ManyDirsUpstream's manifest to p.
func writeManyDirs(p string, n uint64, dirs int, file manifest.Entry) error {
	width := 1
	for width*width < dirs {
		width++
	}
	const mtime = 1_600_000_000_000_000_000
	return fsys.WriteStream(fsys.OS(), p, 0o644, func(w io.Writer) error {
		mw := manifest.NewWriter(w, n)
		made := 0
		for i := 0; made < dirs; i++ {
			top := fmt.Sprintf("d%06d", i)
			if err := mw.Add(manifest.Entry{Path: top, Type: manifest.Dir, Mode: 0o755, MTime: mtime}); err != nil {
				return err
			}
			made++
			for j := 0; j < width-1 && made < dirs; j++ {
				if err := mw.Add(manifest.Entry{Path: fmt.Sprintf("%s/e%06d", top, j), Type: manifest.Dir, Mode: 0o755, MTime: mtime}); err != nil {
					return err
				}
				made++
			}
		}
		if err := mw.Add(file); err != nil {
			return err
		}
		return mw.Close()
	})
}
