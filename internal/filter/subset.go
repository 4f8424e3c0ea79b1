package filter

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/seqmirror/seqmirror/manifest"
)

// ErrNotSubset means a manifest is not a subset of the full manifest it is
// checked against: another snapshot number, a record that is not in the
// full manifest or differs from its record there, or (CheckExact) not
// exactly what the filter keeps of it.
var ErrNotSubset = errors.New("manifest is not a subset of the full manifest")

// Subset yields the records of it (a validated manifest, in canonical
// order) that c keeps. It relies on the order: a directory left out is
// skipped with everything below it, which follows it at once.
func Subset(it manifest.Iterator, c Chain) manifest.Iterator {
	return &subset{it: it, c: Of(c...)}
}

type subset struct {
	it   manifest.Iterator
	c    Chain
	skip string // a directory left out: everything below it is too
}

// Next implements manifest.Iterator.
func (s *subset) Next() (manifest.Entry, error) {
	for {
		e, err := s.it.Next()
		if err != nil {
			return e, err
		}
		if len(s.c) == 0 {
			return e, nil
		}
		if s.skip != "" && strings.HasPrefix(e.Path, s.skip) && e.Path[len(s.skip)] == '/' {
			continue
		}
		s.skip = ""
		dir := e.Type == manifest.Dir
		if s.c.own(e.Path, dir) {
			return e, nil
		}
		if dir {
			s.skip = e.Path
		}
	}
}

// WriteSubset writes to w the manifest of snapshot n holding the records
// of full (a validated manifest of n) that c keeps; it returns how many.
func WriteSubset(w io.Writer, full manifest.Iterator, n uint64, c Chain) (int, error) {
	mw := manifest.NewWriter(w, n)
	it, count := Subset(full, c), 0
	for {
		e, err := it.Next()
		if err == io.EOF {
			return count, mw.Close()
		}
		if err != nil {
			return count, err
		}
		if err := mw.Add(e); err != nil {
			return count, err
		}
		count++
	}
}

// CheckSubset checks the manifest subset against full, the manifest of the
// whole snapshot (the bytes the master published, whose digest a signature
// covers): both valid, of the same snapshot, and every record of subset
// identical to the record of the same path in full. It reads each once,
// as a stream. A signature over full's bytes then vouches for every file
// of the subset too.
func CheckSubset(full, subset io.Reader) error { return check(full, subset, nil) }

// CheckExact is CheckSubset, and also that subset holds exactly the
// records of full that c keeps (what a mirror with filter c serves).
func CheckExact(full, subset io.Reader, c Chain) error { return check(full, subset, &c) }

func check(full, subset io.Reader, c *Chain) error {
	fr, err := manifest.NewReader(full)
	if err != nil {
		return fmt.Errorf("full manifest: %w", err)
	}
	sr, err := manifest.NewReader(subset)
	if err != nil {
		return fmt.Errorf("subset manifest: %w", err)
	}
	if fr.Snapshot() != sr.Snapshot() {
		return fmt.Errorf("%w: it is of snapshot %d, the full manifest of %d", ErrNotSubset, sr.Snapshot(), fr.Snapshot())
	}
	var want manifest.Iterator = fr
	if c != nil {
		want = Subset(fr, *c)
	}
	err = manifest.Diff(want, sr, func(ch manifest.Change) error {
		switch {
		case ch.Old == nil && c != nil:
			return fmt.Errorf("%w: %s is not in the full manifest, or the filter leaves it out", ErrNotSubset, ch.New.Path)
		case ch.Old == nil:
			return fmt.Errorf("%w: %s is not in the full manifest", ErrNotSubset, ch.New.Path)
		case ch.New == nil && c != nil:
			return fmt.Errorf("%w: %s is kept by the filter but missing", ErrNotSubset, ch.Old.Path)
		case ch.New != nil && *ch.Old != *ch.New:
			return fmt.Errorf("%w: %s differs from its record in the full manifest", ErrNotSubset, ch.New.Path)
		}
		return nil
	})
	return err // Diff read both to their ends: their footers are checked
}

// Missing counts the records of full (a validated manifest) that own keeps
// but have (a validated manifest of the same snapshot) lacks: what a
// mirror with filter own wants and its upstream does not carry. It returns
// up to max of their paths too.
func Missing(full, have manifest.Iterator, own Chain, max int) (int, []string, error) {
	count, first := 0, []string(nil)
	err := manifest.Diff(have, Subset(full, own), func(ch manifest.Change) error {
		if ch.Old == nil {
			count++
			if len(first) < max {
				first = append(first, ch.New.Path)
			}
		}
		return nil
	})
	return count, first, err
}

// FileVersion is the version of the filter file format (File).
const FileVersion = 1

// MaxFileSize bounds a filter file.
const MaxFileSize = 256 << 10

// File is the JSON of a snapshot's filter file (snapshots/N.filter,
// docs/protocol.md section 11): the chain its manifest was made with.
type File struct {
	Version int        `json:"version"`
	Filters [][]string `json:"filters"`
}

// Encode is c's filter file.
func Encode(c Chain) []byte {
	f := File{Version: FileVersion, Filters: c.Rules()}
	if f.Filters == nil {
		f.Filters = [][]string{}
	}
	b, _ := json.Marshal(f) // strings only: cannot fail
	return append(b, '\n')
}

// Decode parses a filter file.
func Decode(b []byte) (Chain, error) {
	if len(b) > MaxFileSize {
		return nil, fmt.Errorf("%w: filter file of %d bytes, more than %d", ErrBadFilter, len(b), MaxFileSize)
	}
	var f File
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadFilter, err)
	}
	if f.Version != FileVersion {
		return nil, fmt.Errorf("%w: version %d, want %d", ErrBadFilter, f.Version, FileVersion)
	}
	return ParseChain(f.Filters)
}
