package manifest

import (
	"io"
	"sync"
)

// readaheadBatch is how many records a Readahead reads per hand-over.
const readaheadBatch = 256

// Readahead reads an Iterator in its own goroutine, a few batches ahead of
// its consumer, so that decoding overlaps the consumer's work (and two
// manifests diffed together decode on two cores). It returns the same
// records and the same error as the Iterator it reads.
//
// Stop must be called before the underlying Iterator is used again (to
// finish or close it); after Stop, Next must not be called.
type Readahead struct {
	ch   chan readaheadChunk
	stop chan struct{}
	once sync.Once
	done chan struct{}
	cur  []Entry
	i    int
	err  error
}

type readaheadChunk struct {
	entries []Entry
	err     error
}

// NewReadahead starts reading it.
func NewReadahead(it Iterator) *Readahead {
	r := &Readahead{ch: make(chan readaheadChunk, 4), stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(r.done)
		for {
			b := make([]Entry, 0, readaheadBatch)
			var err error
			for len(b) < readaheadBatch {
				e, nerr := it.Next()
				if nerr != nil {
					err = nerr
					break
				}
				b = append(b, e)
			}
			select {
			case r.ch <- readaheadChunk{b, err}:
			case <-r.stop:
				return
			}
			if err != nil {
				return
			}
		}
	}()
	return r
}

// Next returns the next record, or the error that ended the Iterator
// (io.EOF at its end).
func (r *Readahead) Next() (Entry, error) {
	for r.i >= len(r.cur) {
		if r.err != nil {
			return Entry{}, r.err
		}
		select {
		case c := <-r.ch:
			r.cur, r.i, r.err = c.entries, 0, c.err
		case <-r.done:
			// Stopped, or the last chunk was taken already.
			select {
			case c := <-r.ch:
				r.cur, r.i, r.err = c.entries, 0, c.err
			default:
				if r.err == nil {
					r.err = io.ErrClosedPipe
				}
			}
		}
	}
	e := r.cur[r.i]
	r.i++
	return e, nil
}

// Stop ends the reading goroutine and waits for it.
func (r *Readahead) Stop() {
	r.once.Do(func() { close(r.stop) })
	<-r.done
}
