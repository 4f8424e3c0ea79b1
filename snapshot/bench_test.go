package snapshot

import (
	"context"
	"testing"

	"github.com/seqmirror/seqmirror/internal/fsys"
	"github.com/seqmirror/seqmirror/internal/tree"
	"github.com/seqmirror/seqmirror/manifest"
	"github.com/seqmirror/seqmirror/testutil"
)

// BenchmarkConfirm10k lists a 10k-file tree and confirms the listing, the
// two ways publish can: through the inotify watch set up while listing
// (checked once at the end), and by listing it a second time.
func BenchmarkConfirm10k(b *testing.B) {
	dir := b.TempDir()
	testutil.GenTree(b, dir, 10000, 1)
	f := fsys.OS()
	ctx := context.Background()
	b.Run("watch", func(b *testing.B) {
		for b.Loop() {
			w := newChangeWatch()
			var entries []manifest.Entry
			err := tree.WalkWith(ctx, f, dir, tree.WalkOptions{Watch: w}, func(e *manifest.Entry) { entries = append(entries, *e) })
			if err == nil {
				err = w.check(f, dir)
			}
			w.Close()
			if err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("second-walk", func(b *testing.B) {
		for b.Loop() {
			entries, err := tree.Walk(ctx, f, dir, nil)
			if err == nil {
				err = confirmListing(ctx, f, dir, nil, &manifest.SliceIterator{Entries: entries})
			}
			if err != nil {
				b.Fatal(err)
			}
		}
	})
}
