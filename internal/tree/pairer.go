package tree

import (
	"io"

	"github.com/seqmirror/seqmirror/manifest"
)

// Pairer merge-joins a manifest stream (canonical order) against
// successive batches of entries, each in canonical order and after the
// batch before, so that the stream is read once in all, whatever the
// number of batches. It holds one record of the stream.
type Pairer struct {
	it   manifest.Iterator
	same func(want, have *manifest.Entry) bool
	head manifest.Entry
	has  bool // head is a record not yet passed
	eof  bool
}

// NewPairer pairs entries with the records of it by same.
func NewPairer(it manifest.Iterator, same func(want, have *manifest.Entry) bool) *Pairer {
	return &Pairer{it: it, same: same}
}

// Pair returns the index of each entry at the indexes todo for which the
// stream has a record of the same path and same(entry, record) holds, with
// the record's Sum (hash and digest).
func (p *Pairer) Pair(entries []manifest.Entry, todo []int) (map[int]manifest.Sum, error) {
	found := map[int]manifest.Sum{}
	for _, i := range todo {
		h, ok, err := p.Find(&entries[i])
		if err != nil || p.eof {
			return found, err
		}
		if ok {
			found[i] = h
		}
	}
	return found, nil
}

// Find is Pair of one entry, after those of the calls before: the Sum of
// the stream's record of e's path, if it has one and same(e, record) holds.
func (p *Pairer) Find(e *manifest.Entry) (sum manifest.Sum, ok bool, err error) {
	for {
		if !p.has {
			if err := p.next(); err != nil || p.eof {
				return manifest.Sum{}, false, err
			}
		}
		c := manifest.Compare(p.head.Path, e.Path)
		if c < 0 {
			p.has = false
			continue
		}
		if c == 0 && p.same(e, &p.head) {
			return p.head.Sum(), true, nil
		}
		return manifest.Sum{}, false, nil
	}
}

// Drain reads the rest of the stream (so that it is checked whole).
func (p *Pairer) Drain() error {
	for !p.eof {
		if err := p.next(); err != nil {
			return err
		}
	}
	return nil
}

func (p *Pairer) next() error {
	if p.eof {
		return nil
	}
	r, err := p.it.Next()
	if err == io.EOF {
		p.eof, p.has = true, false
		return nil
	}
	if err != nil {
		return err
	}
	p.head, p.has = r, true
	return nil
}
