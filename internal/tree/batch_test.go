package tree_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/seqmirror/seqmirror/internal/tree"
)

// Batches hold one directory's items, at most Max, in order.
func TestBatcher(t *testing.T) {
	paths := []string{"a", "b", "d/x", "d/y", "d/z", "d/e/1", "f"}
	var mu sync.Mutex
	var got []string
	pool := tree.NewPool(context.Background(), 2)
	b := &tree.Batcher[string]{Pool: pool, Max: 2, Job: func(_ context.Context, dir string, items []string) error {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, fmt.Sprintf("%s:%v", dir, items))
		return nil
	}}
	for _, p := range paths {
		if err := b.Add(p, tree.Base(p)); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := pool.Wait(); err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	want := []string{":[a b]", ":[f]", "d/e:[1]", "d:[x y]", "d:[z]"}
	if !slices.Equal(got, want) {
		t.Errorf("batches %q, want %q", got, want)
	}
}
