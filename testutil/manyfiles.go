package testutil

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// ManyFilesTree makes, below dir, a tree of files files that costs little
// disk but as many entries as a real one: ten files a directory, in
// files/10 directories spread over files/10000 top-level ones, each file
// empty but one in ten (0-100 bytes). With pct > 0 it instead rewrites
// pct percent of those files (one in 100/pct, a byte longer, a new mtime):
// a change for publish to find. Memory tests use it: what publish holds
// grows with the entries, not the bytes.
func ManyFilesTree(tb testing.TB, dir string, files int, pct float64) {
	tb.Helper()
	leaves := max(1, files/10)
	tops := max(1, leaves/1000)
	step := 0
	if pct > 0 {
		step = max(1, int(100/pct))
	}
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	ch := make(chan int, 64)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for l := range ch {
				if err := manyFilesLeaf(dir, l, tops, step); err != nil {
					once.Do(func() { first = err })
				}
			}
		}()
	}
	for l := range leaves {
		ch <- l
	}
	close(ch)
	wg.Wait()
	if first != nil {
		tb.Fatal(first)
	}
}

// manyFilesLeaf makes (step 0) or rewrites (every step-th file) the ten
// files of leaf directory l.
func manyFilesLeaf(dir string, l, tops, step int) error {
	d := filepath.Join(dir, fmt.Sprintf("top%03d", l%tops), fmt.Sprintf("dir%06d", l))
	if step == 0 {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	for k := range 10 {
		i := l*10 + k
		if step > 0 && i%step != 0 {
			continue
		}
		var b []byte
		if i%10 == 3 {
			b = make([]byte, i%101)
			for j := range b {
				b[j] = byte(i + j)
			}
		}
		if step > 0 {
			b = append(b, 'x')
		}
		if err := os.WriteFile(filepath.Join(d, fmt.Sprintf("file-%07d.dat", i)), b, 0o644); err != nil {
			return err
		}
	}
	return nil
}
