// Package digestbench compares content digests for manifest version 2 on a
// real tree (docs/performance.md, "Per-file digest"): SHA-256 (crypto/sha256,
// SHA-NI where the CPU has it), BLAKE3 (two implementations) and xxhash64
// alone and in one pass with SHA-256. It is a module of its own so that the
// candidates it measures are no dependency of seqmirror.
//
//	python3 scripts/gentree.py /tmp/t 50000
//	cd scripts/digestbench && DIGEST_TREE=/tmp/t go test -bench . -benchtime 3x -count 5
package digestbench

import (
	"crypto/sha256"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/cespare/xxhash/v2"
	zblake3 "github.com/zeebo/blake3"
	lblake3 "lukechampine.com/blake3"
)

// loadTree reads every regular file of DIGEST_TREE into memory, so that the
// benchmark measures the hash, not the disk.
func loadTree(tb testing.TB) ([][]byte, int64) {
	dir := os.Getenv("DIGEST_TREE")
	if dir == "" {
		tb.Fatal("DIGEST_TREE is not set: make one with scripts/gentree.py DIR N")
	}
	var files [][]byte
	var total int64
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		b, err := os.ReadFile(p)
		files = append(files, b)
		total += int64(len(b))
		return err
	})
	if err != nil || len(files) == 0 {
		tb.Fatalf("read %s: %d files, %v", dir, len(files), err)
	}
	return files, total
}

type both struct{ x, s hash.Hash }

func (b both) Write(p []byte) (int, error) { b.x.Write(p); return b.s.Write(p) }

var cases = []struct {
	name string
	new  func() io.Writer
	sum  func(w io.Writer) []byte
}{
	{"xxhash64", func() io.Writer { return xxhash.New() }, func(w io.Writer) []byte { return w.(hash.Hash).Sum(nil) }},
	{"sha256", func() io.Writer { return sha256.New() }, func(w io.Writer) []byte { return w.(hash.Hash).Sum(nil) }},
	{"sha256+xxhash64", func() io.Writer { return both{xxhash.New(), sha256.New()} }, func(w io.Writer) []byte { return w.(both).s.Sum(nil) }},
	{"blake3-lukechampine", func() io.Writer { return lblake3.New(32, nil) }, func(w io.Writer) []byte { return w.(hash.Hash).Sum(nil) }},
	{"blake3-zeebo", func() io.Writer { return zblake3.New() }, func(w io.Writer) []byte { return w.(hash.Hash).Sum(nil) }},
}

// BenchmarkTree hashes every file of the tree with a fresh hasher per file,
// writing in 256 KiB pieces as seqmirror's copy loop does; ns/op is one pass
// over the whole tree, MB/s its throughput, ns/file the cost per file.
func BenchmarkTree(b *testing.B) {
	files, total := loadTree(b)
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(total)
			for b.Loop() {
				for _, f := range files {
					w := c.new()
					for off := 0; off < len(f); off += 256 << 10 {
						w.Write(f[off:min(len(f), off+256<<10)])
					}
					_ = c.sum(w)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(files)), "ns/file")
		})
	}
}
