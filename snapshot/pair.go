package snapshot

import (
	"fmt"
	"io"

	"github.com/seqmirror/seqmirror/internal/export"
	"github.com/seqmirror/seqmirror/manifest"
)

// pairer pairs the source's entries, handed to it in canonical order, with
// the records of the served snapshot's manifest, streamed (and decoded on
// its own goroutine) alongside: an entry at the same path with the same
// type, mode, size and mtime is linkable and gets the recorded hash and
// digest, if the record has a digest (version 2). It
// reads the whole manifest and is what validates it: an error from finish
// comes before anything is written.
type pairer struct {
	ms    *export.ManifestStream // nil: no served snapshot
	ra    *manifest.Readahead
	p     manifest.Entry // the next record
	perr  error          // the error that ended the records (io.EOF)
	count int            // records read
	n     int            // entries paired
	same  bool           // every entry so far had its identical record
	files int            // regular files in the served snapshot
	del   int            // of which the new listing has no entry at the path
	unr   unreadable     // entries other users cannot read
}

func openPairer(root *export.Root, prev uint64) (*pairer, error) {
	if prev == 0 {
		return &pairer{perr: io.EOF}, nil
	}
	ms, err := root.OpenManifest(prev)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrServedManifest, err)
	}
	pr := &pairer{ms: ms, ra: manifest.NewReadahead(ms), same: true}
	pr.p, pr.perr = pr.ra.Next()
	return pr, nil
}

// pair reports whether e is linkable, setting its hash if so.
func (pr *pairer) pair(e *manifest.Entry) bool {
	pr.n++
	for pr.perr == nil && manifest.Compare(pr.p.Path, e.Path) < 0 {
		pr.deleted()
		pr.advance()
		pr.same = false
	}
	matched := pr.perr == nil && pr.p.Path == e.Path
	pr.unr.note(e, matched && pr.p.Type == e.Type && !othersCanRead(pr.p))
	if !matched {
		pr.same = false
		return false
	}
	if pr.p.Type == manifest.File {
		pr.files++
	}
	defer pr.advance()
	c := *e
	c.SetSum(pr.p.Sum())
	if !c.SameContent(pr.p) || pr.p.Type == manifest.File && pr.p.Digest.IsZero() {
		// A version 1 record vouches for no SHA-256: publish writes
		// version 2, so the file is copied and hashed afresh.
		pr.same = false
		return false
	}
	e.SetSum(pr.p.Sum())
	return true
}

// Peek advances to the record at path (the records before it counted as
// left out of the listing, as pair does) and returns it, if there is one;
// pair(e) for the entry at path follows (changes.Base).
func (pr *pairer) Peek(path string) (manifest.Entry, bool) {
	for pr.perr == nil && manifest.Compare(pr.p.Path, path) < 0 {
		pr.deleted()
		pr.advance()
		pr.same = false
	}
	return pr.p, pr.perr == nil && pr.p.Path == path
}

// Current returns the next record, if there is one (changes.Base).
func (pr *pairer) Current() (manifest.Entry, bool) { return pr.p, pr.perr == nil }

// Drop passes over the next record: the new listing has no entry at its
// path (changes.Base).
func (pr *pairer) Drop() {
	pr.deleted()
	pr.advance()
	pr.same = false
}

// deleted counts the current record as left out of the new listing.
func (pr *pairer) deleted() {
	if pr.p.Type == manifest.File {
		pr.files++
		pr.del++
	}
}

func (pr *pairer) advance() {
	pr.count++
	pr.p, pr.perr = pr.ra.Next()
}

// finish reads the rest of the manifest and reports whether the entries
// paired were exactly the served snapshot.
func (pr *pairer) finish() (same bool, err error) {
	if pr.ms == nil {
		return false, nil
	}
	for pr.perr == nil {
		pr.deleted()
		pr.advance()
	}
	if pr.perr == io.EOF {
		pr.ra.Stop()
		pr.perr = pr.ms.Finish()
	}
	if pr.perr != nil {
		return false, fmt.Errorf("%w: %w", ErrServedManifest, pr.perr)
	}
	return pr.same && pr.count == pr.n, nil
}

func (pr *pairer) close() {
	if pr.ms != nil {
		pr.ra.Stop()
		pr.ms.Close()
	}
}
