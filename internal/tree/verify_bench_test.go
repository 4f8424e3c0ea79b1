package tree_test

import (
	"bufio"
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/seqmirror/seqmirror/internal/fsys"
	"github.com/seqmirror/seqmirror/internal/tree"
	"github.com/seqmirror/seqmirror/manifest"
	"github.com/seqmirror/seqmirror/testutil"
)

// BenchmarkVerify100k verifies a 100k-file tree (testutil.GenTree, warm
// cache, no differences) against its manifest: held in memory, and read
// from a file as the verify commands do. cpu-s/op is the process's CPU
// time (user and system), steadier than the wall time on a shared machine.
func BenchmarkVerify100k(b *testing.B) {
	dir := testutil.FastDir(b)
	src := filepath.Join(dir, "t")
	testutil.GenTree(b, src, 100_000, 1)
	f := fsys.OS()
	m := benchManifest(b, f, src)
	file := filepath.Join(dir, "manifest")
	if err := fsys.WriteStream(f, file, 0o644, m.Encode); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.Run("memory", func(b *testing.B) {
		benchCPU(b, func() ([]tree.Problem, error) { return tree.Verify(ctx, f, src, m, tree.Workers()) })
	})
	b.Run("file", func(b *testing.B) {
		benchCPU(b, func() ([]tree.Problem, error) { return verifyFile(ctx, f, src, file) })
	})
}

// verifyFile verifies the tree at dir against the manifest in file.
func verifyFile(ctx context.Context, f fsys.FS, dir, file string) ([]tree.Problem, error) {
	h, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer h.Close()
	r, err := manifest.NewReader(bufio.NewReader(h))
	if err != nil {
		return nil, err
	}
	v, err := tree.VerifyStream(ctx, f, dir, r, tree.VerifyOptions{Workers: tree.Workers()})
	return v.List(), err
}

// benchCPU runs verify b.N times, reporting CPU seconds per run.
func benchCPU(b *testing.B, verify func() ([]tree.Problem, error)) {
	cpu0 := cpuTime()
	for b.Loop() {
		if probs, err := verify(); err != nil || len(probs) > 0 {
			b.Fatalf("verify: %v %v", probs, err)
		}
	}
	b.ReportMetric((cpuTime()-cpu0).Seconds()/float64(b.N), "cpu-s/op")
}

// cpuTime is the process's user and system time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchManifest is the manifest of the tree at dir (tree.Walk, files hashed).
func benchManifest(tb testing.TB, f fsys.FS, dir string) *manifest.Manifest {
	tb.Helper()
	es, err := tree.Walk(context.Background(), f, dir, nil)
	if err != nil {
		tb.Fatal(err)
	}
	for i := range es {
		if es[i].Type == manifest.File {
			h, _, err := tree.HashFile(f, filepath.Join(dir, es[i].Path), manifest.Current)
			if err != nil {
				tb.Fatal(err)
			}
			es[i].SetSum(h)
		}
	}
	return &manifest.Manifest{Snapshot: 1, Entries: es}
}
