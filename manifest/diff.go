package manifest

import "io"

// Iterator yields records in canonical order and io.EOF at the end.
type Iterator interface {
	Next() (Entry, error)
}

// SliceIterator iterates over an in-memory slice.
type SliceIterator struct {
	Entries []Entry
	i       int
}

// Next implements Iterator.
func (s *SliceIterator) Next() (Entry, error) {
	if s.i >= len(s.Entries) {
		return Entry{}, io.EOF
	}
	s.i++
	return s.Entries[s.i-1], nil
}

// Iter returns an iterator over m's entries.
func (m *Manifest) Iter() Iterator { return &SliceIterator{Entries: m.Entries} }

// Change is one step of a diff: Old and/or New are set.
//   - Old nil: New was added.
//   - New nil: Old was removed.
//   - both set: the path exists in both; Same tells whether it is unchanged.
type Change struct {
	Old, New *Entry
	Same     bool
}

// Diff merges two canonical streams and calls fn for every path in either, in
// canonical order. It holds two records in memory at a time. old may be nil.
func Diff(old, new Iterator, fn func(Change) error) error {
	next := func(it Iterator) (*Entry, error) {
		if it == nil {
			return nil, nil
		}
		e, err := it.Next()
		if err == io.EOF {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		return &e, nil
	}
	o, err := next(old)
	if err != nil {
		return err
	}
	n, err := next(new)
	if err != nil {
		return err
	}
	for o != nil || n != nil {
		var c Change
		switch {
		case n == nil || (o != nil && Compare(o.Path, n.Path) < 0):
			c.Old = o
		case o == nil || Compare(o.Path, n.Path) > 0:
			c.New = n
		default:
			c.Old, c.New, c.Same = o, n, o.SameContent(*n)
		}
		if err := fn(c); err != nil {
			return err
		}
		if c.Old != nil {
			if o, err = next(old); err != nil {
				return err
			}
		}
		if c.New != nil {
			if n, err = next(new); err != nil {
				return err
			}
		}
	}
	return nil
}
