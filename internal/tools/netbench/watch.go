package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/seqmirror/seqmirror/client"
	"github.com/seqmirror/seqmirror/manifest"
)

// flip is one flip of a root's current: to snapshot n, at the mtime of the
// new symlink.
type flip struct {
	n  uint64
	at time.Time
}

// watcher follows one root's current and checks each snapshot it flips
// to with a reader.
type watcher struct {
	root   string
	sample int
	mu     sync.Mutex
	flips  []flip
	checks int      // snapshots read whole by the reader
	torn   []string // what the reader found wrong
	gone   int      // snapshots pruned before the reader was done (not torn)
	kick   chan struct{}
}

func newWatcher(root string, sample int) *watcher {
	return &watcher{root: root, sample: sample, kick: make(chan struct{}, 1)}
}

// run polls current every 20 ms until ctx ends; a reader goroutine checks
// the newest flip.
func (w *watcher) run(ctx context.Context, seed uint64) {
	go w.reader(ctx, rand.New(rand.NewPCG(seed, 1)))
	last := ""
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		cur := filepath.Join(w.root, "current")
		if target, err := os.Readlink(cur); err == nil && target != last {
			if fi, err := os.Lstat(cur); err == nil {
				n, perr := snapshotOf(target)
				w.mu.Lock()
				if perr != nil {
					w.torn = append(w.torn, fmt.Sprintf("current -> %q", target))
				} else {
					w.flips = append(w.flips, flip{n: n, at: fi.ModTime()})
				}
				w.mu.Unlock()
				last = target
				select {
				case w.kick <- struct{}{}:
				default:
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// snapshotOf is N of a current target snapshots/N.
func snapshotOf(target string) (uint64, error) {
	s, ok := strings.CutPrefix(target, "snapshots/")
	if !ok {
		return 0, fmt.Errorf("not snapshots/N: %q", target)
	}
	return strconv.ParseUint(s, 10, 64)
}

// reader opens the root as a client does after each flip and reads a
// sample of its files, each checked against the manifest.
func (w *watcher) reader(ctx context.Context, rng *rand.Rand) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.kick:
		}
		err := w.check(ctx, rng)
		w.mu.Lock()
		switch {
		case err == nil:
			w.checks++
		case errors.Is(err, client.ErrSnapshotGone) || ctx.Err() != nil:
			w.gone++
		default:
			w.torn = append(w.torn, err.Error())
		}
		w.mu.Unlock()
	}
}

// check pins the snapshot the root serves and reads w.sample random files.
func (w *watcher) check(ctx context.Context, rng *rand.Rand) error {
	snap, err := client.Open(ctx, w.root, client.Options{})
	if err != nil {
		return err
	}
	var files []string
	for e := range snap.Entries() {
		if e.Type == manifest.File {
			files = append(files, e.Path)
		}
	}
	for i := 0; i < w.sample && len(files) > 0; i++ {
		if _, err := snap.ReadFile(files[rng.IntN(len(files))]); err != nil {
			_ = snap.Close()
			return fmt.Errorf("snapshot %d: %w", snap.N(), err)
		}
	}
	return snap.Close()
}

// arrival is when the root first served a snapshot >= n, if it did.
func (w *watcher) arrival(n uint64) (time.Time, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, f := range w.flips {
		if f.n >= n {
			return f.at, true
		}
	}
	return time.Time{}, false
}

// serves is the newest snapshot the root flipped to (0: none).
func (w *watcher) serves() uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.flips) == 0 {
		return 0
	}
	return w.flips[len(w.flips)-1].n
}

// counts is what the reader found so far.
func (w *watcher) counts() (checks, gone int, torn []string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.checks, w.gone, append([]string(nil), w.torn...)
}
