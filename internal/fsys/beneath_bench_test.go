package fsys

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// BenchmarkOpenBeneath compares OpenBeneath and BeneathDir.Open (one
// openat2, fstat and fcntl per file) with a plain O_NOFOLLOW open.
func BenchmarkOpenBeneath(b *testing.B) {
	root := b.TempDir()
	os.MkdirAll(filepath.Join(root, "snapshots", "2", "d01", "s02"), 0o755)
	rel := filepath.Join("snapshots", "2", "d01", "s02", "f.dat")
	os.WriteFile(filepath.Join(root, rel), []byte("x"), 0o644)
	b.Run("OpenBeneath", func(b *testing.B) {
		for b.Loop() {
			h, err := OpenBeneath(OS(), root, rel)
			if err != nil {
				b.Fatal(err)
			}
			h.Close()
		}
	})
	b.Run("BeneathDir.Open", func(b *testing.B) {
		d, err := OpenBeneathDir(OS(), root)
		if err != nil {
			b.Fatal(err)
		}
		defer d.Close()
		for b.Loop() {
			h, err := d.Open(rel)
			if err != nil {
				b.Fatal(err)
			}
			h.Close()
		}
	})
	b.Run("os.Open", func(b *testing.B) {
		for b.Loop() {
			h, err := os.OpenFile(filepath.Join(root, rel), os.O_RDONLY|syscall.O_NOFOLLOW, 0)
			if err != nil {
				b.Fatal(err)
			}
			h.Close()
		}
	})
}
