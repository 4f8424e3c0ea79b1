package tree

import (
	"context"
	"errors"
	"io"
	"sync"

	"github.com/seqmirror/seqmirror/internal/fsys"
	"github.com/seqmirror/seqmirror/manifest"
)

// listAhead is how many of a directory's subdirectories a Lister reads
// ahead of the one it is in, on the walk's workers.
const listAhead = 8

// Lister lists a tree in canonical order, as a manifest.Iterator yielding
// the entries Walk would return and then Walk's error (io.EOF at the end).
// Unlike Walk it holds only the listings of the directories above the next
// entry and, for each, of up to listAhead subdirectories read ahead of
// time by a bounded set of goroutines: memory is O(depth x listAhead x
// widest directory), whatever the size of the tree, and the directories
// are still read and their entries lstat'ed in parallel.
//
// A Lister is used by one goroutine; Close it to stop the reads ahead. A
// Watcher (WalkOptions.Watch) is told of each directory when it is read,
// which may be before the Lister yields it.
type Lister struct {
	w      *walker
	cancel context.CancelFunc
	wg     sync.WaitGroup
	stack  []*listLevel
	err    error // the error that ended the listing, then returned for good
}

// listing is one directory's entries and the error that stopped its read
// (those before it were read); done is closed once both are set.
type listing struct {
	entries []manifest.Entry
	err     error
	done    chan struct{}
}

// listLevel is a directory being yielded: next is its next entry, and
// subs holds the listings read ahead of its subdirectories (by entry
// index) from ahead on.
type listLevel struct {
	*listing
	next    int
	ahead   int // entries before ahead were considered for reading ahead
	subs    map[int]*listing
	pending int // len(subs)
}

// NewLister starts listing the tree at dir (Skip and Watch of opt apply;
// Size is not called).
func NewLister(ctx context.Context, f fsys.FS, dir string, opt WalkOptions) (*Lister, error) {
	ctx, cancel := context.WithCancel(ctx)
	w, err := newWalker(ctx, f, dir, opt.Skip)
	if err != nil {
		cancel()
		return nil, err
	}
	if opt.Watch != nil && !fsys.IsOS(f) {
		opt.Watch.Fail(errors.New("not the OS filesystem"))
		opt.Watch = nil
	}
	w.watch = opt.Watch
	return startLister(w, cancel), nil
}

// startLister reads the top of w's tree, in the background.
func startLister(w *walker, cancel context.CancelFunc) *Lister {
	l := &Lister{w: w, cancel: cancel}
	l.stack = append(l.stack, &listLevel{listing: l.read("")})
	return l
}

// read reads the directory rel on the caller's goroutine.
func (l *Lister) read(rel string) *listing {
	d := &listing{done: make(chan struct{})}
	d.err = l.w.readDir(rel, func(n int) { d.entries = make([]manifest.Entry, 0, n) },
		func(e manifest.Entry) { d.entries = append(d.entries, e) })
	close(d.done)
	return d
}

// readAhead starts reading the directory rel on a goroutine of its own,
// once one of the walk's worker slots is free.
func (l *Lister) readAhead(rel string) *listing {
	d := &listing{done: make(chan struct{})}
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		l.w.sem <- struct{}{}
		defer func() { <-l.w.sem }()
		r := l.read(rel)
		d.entries, d.err = r.entries, r.err
		close(d.done)
	}()
	return d
}

// Next implements manifest.Iterator.
func (l *Lister) Next() (manifest.Entry, error) {
	if l.err != nil {
		return manifest.Entry{}, l.err
	}
	for len(l.stack) > 0 {
		top := l.stack[len(l.stack)-1]
		if top.next == len(top.entries) {
			l.stack = l.stack[:len(l.stack)-1]
			if top.err != nil {
				l.err = top.err
				return manifest.Entry{}, l.err
			}
			continue
		}
		i := top.next
		e := top.entries[i]
		top.entries[i] = manifest.Entry{} // let the collector have it
		top.next++
		if e.Type == manifest.Dir {
			sub := top.take(i)
			if sub == nil {
				sub = l.read(e.Path)
			} else {
				<-sub.done
			}
			l.stack = append(l.stack, &listLevel{listing: sub})
		}
		top.fill(l)
		if len(l.stack) > 0 && l.stack[len(l.stack)-1] != top {
			l.stack[len(l.stack)-1].fill(l)
		}
		return e, nil
	}
	l.err = io.EOF
	return manifest.Entry{}, io.EOF
}

// take returns the listing read ahead for entry i (nil if none).
func (v *listLevel) take(i int) *listing {
	s, ok := v.subs[i]
	if !ok {
		v.ahead = max(v.ahead, i+1)
		return nil
	}
	delete(v.subs, i)
	v.pending--
	return s
}

// fill starts reading ahead the next subdirectories of v, up to listAhead
// of them pending.
func (v *listLevel) fill(l *Lister) {
	v.ahead = max(v.ahead, v.next)
	for v.pending < listAhead && v.ahead < len(v.entries) {
		i := v.ahead
		v.ahead++
		if v.entries[i].Type != manifest.Dir || l.w.ctx.Err() != nil {
			continue
		}
		if v.subs == nil {
			v.subs = map[int]*listing{}
		}
		v.subs[i] = l.readAhead(v.entries[i].Path)
		v.pending++
	}
}

// Close stops the reads ahead and waits for them.
func (l *Lister) Close() {
	l.cancel()
	l.wg.Wait()
	l.stack = nil
	if l.err == nil {
		l.err = context.Canceled
	}
}
