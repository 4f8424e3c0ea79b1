package tree_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/seqmirror/seqmirror/internal/fsys"
	"github.com/seqmirror/seqmirror/internal/tree"
	"github.com/seqmirror/seqmirror/manifest"
	"github.com/seqmirror/seqmirror/testutil"
)

// BenchmarkWalk10k lists a 10k-file tree (warm cache): the parallel tree.Walk,
// the Lister (streamed, directories read ahead) and the sequential walk
// Walk replaced.
func BenchmarkWalk10k(b *testing.B) {
	dir := b.TempDir()
	testutil.GenTree(b, dir, 10000, 1)
	f := fsys.OS()
	ctx := context.Background()
	b.Run("parallel", func(b *testing.B) {
		for b.Loop() {
			if _, err := tree.Walk(ctx, f, dir, nil); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("lister", func(b *testing.B) {
		for b.Loop() {
			if _, err := listAll(b, f, dir, nil); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("sequential", func(b *testing.B) {
		for b.Loop() {
			if _, err := walkRef(ctx, f, dir, nil); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkCopyFile copies (and hashes) one file per iteration.
func BenchmarkCopyFile(b *testing.B) {
	for _, size := range []int{16 << 10, 1 << 20, 16 << 20} {
		b.Run(fmt.Sprintf("size=%dk", size>>10), func(b *testing.B) {
			dir := b.TempDir()
			src := filepath.Join(dir, "src")
			data := make([]byte, size)
			rand.Read(data)
			if err := os.WriteFile(src, data, 0o644); err != nil {
				b.Fatal(err)
			}
			f := fsys.OS()
			b.SetBytes(int64(size))
			i := 0
			for b.Loop() {
				dst := filepath.Join(dir, fmt.Sprint("dst", i%64))
				os.Remove(dst)
				if _, _, err := tree.CopyFile(f, src, f, dst, -1, manifest.Current); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}

// BenchmarkHashFile hashes one file per iteration from the page cache.
func BenchmarkHashFile(b *testing.B) {
	for _, size := range []int{16 << 10, 16 << 20} {
		b.Run(fmt.Sprintf("size=%dk", size>>10), func(b *testing.B) {
			p := filepath.Join(b.TempDir(), "f")
			data := make([]byte, size)
			rand.Read(data)
			if err := os.WriteFile(p, data, 0o644); err != nil {
				b.Fatal(err)
			}
			f := fsys.OS()
			b.SetBytes(int64(size))
			for b.Loop() {
				if _, _, err := tree.HashFile(f, p, manifest.Current); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
