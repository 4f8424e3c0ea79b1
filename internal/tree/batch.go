package tree

import (
	"context"
	"strings"
)

// Batcher hands a Pool the items of a tree in batches of one directory's
// items, at most Max each: the pool's workers then work in different
// directories (creations in one directory serialise on its lock) and a
// job costs one channel send per batch rather than per item. Items are
// added in canonical order (all items of a directory in a row), by path.
// It is used by one goroutine; Job runs on the pool's.
type Batcher[T any] struct {
	Pool *Pool
	Max  int
	// Job handles one batch: items of the directory dir ("" for the top),
	// in the order added.
	Job func(ctx context.Context, dir string, items []T) error

	dir   string
	batch []T
}

// Dir is the directory part of a slash-separated relative path ("" at the top).
func Dir(rel string) string { return rel[:max(strings.LastIndexByte(rel, '/'), 0)] }

// Base is the last element of a slash-separated relative path.
func Base(rel string) string { return rel[strings.LastIndexByte(rel, '/')+1:] }

// Add queues item, at the path rel, sending the batch before when it is
// full or of another directory. An error means the pool is stopping (its
// Wait says why).
func (b *Batcher[T]) Add(rel string, item T) error {
	d := Dir(rel)
	if len(b.batch) >= b.Max || (len(b.batch) > 0 && d != b.dir) {
		if err := b.Flush(); err != nil {
			return err
		}
	}
	b.dir = d
	b.batch = append(b.batch, item)
	return nil
}

// Flush sends the queued batch, if any.
func (b *Batcher[T]) Flush() error {
	if len(b.batch) == 0 {
		return nil
	}
	dir, items := b.dir, b.batch
	b.batch = make([]T, 0, b.Max)
	return b.Pool.Go(func(ctx context.Context) error { return b.Job(ctx, dir, items) })
}
