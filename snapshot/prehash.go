package snapshot

import (
	"context"
	"path/filepath"
	"sync"

	"github.com/seqmirror/seqmirror/internal/fsys"
	"github.com/seqmirror/seqmirror/internal/tree"
	"github.com/seqmirror/seqmirror/manifest"
)

// prehashMax bounds how many files a prehasher keeps the sums of (a few
// MB): a change larger than that is hashed, beyond it, by hashChanged.
const prehashMax = 1 << 16

// A prehasher hashes, on the copy-on-write path, the files the listing of
// what changed (walkChanged) finds to be new or changed, on a tree.Pool of
// its own while the listing goes on, so that reading them overlaps reading the
// directories; hashFiles then takes their sums instead of reading them
// again. It is sound because the tree it reads is the attempt's private
// point-in-time snapshot of the source: nothing writes it but the attempt,
// which only removes what the listing left out (never a file it hashed).
// A file it could not hash (an error, or over prehashMax) is simply not
// kept: hashFiles hashes it and reports the error.
type prehasher struct {
	f    fsys.FS
	dir  string // the tree the paths are relative to
	pool *tree.Pool
	max  int // files queued at most (prehashMax)
	sent int

	mu   sync.Mutex
	sums map[string]prehashed
}

type prehashed struct {
	sum  manifest.Sum
	size int64
}

// newPrehasher starts workers hashing files of dir until ctx is done or
// wait is called.
func newPrehasher(ctx context.Context, f fsys.FS, dir string, workers int) *prehasher {
	return &prehasher{f: f, dir: dir, pool: tree.NewPool(ctx, workers), max: prehashMax, sums: map[string]prehashed{}}
}

// add queues the file of record e (waiting while the workers are busy),
// up to max files.
func (p *prehasher) add(e *manifest.Entry) {
	if p.sent >= p.max {
		return
	}
	p.sent++
	rel := e.Path
	_ = p.pool.Go(func(context.Context) error { // refused once cancelled: not kept
		h, n, err := tree.HashFile(p.f, filepath.Join(p.dir, filepath.FromSlash(rel)), manifest.Current)
		if err == nil {
			p.mu.Lock()
			p.sums[rel] = prehashed{sum: h, size: n}
			p.mu.Unlock()
		}
		return nil // not kept: hashFiles hashes it and reports the error
	})
}

// wait waits for the queued files to be hashed and returns how many
// were; the sums are then read-only.
func (p *prehasher) wait() int {
	_ = p.pool.Wait() // only a cancellation, which the attempt reports
	return len(p.sums)
}

// sum returns the sum of the file at rel and its size, if it was hashed.
func (p *prehasher) sum(rel string) (prehashed, bool) {
	if p == nil {
		return prehashed{}, false
	}
	s, ok := p.sums[rel]
	return s, ok
}
