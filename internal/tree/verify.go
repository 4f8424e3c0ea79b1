package tree

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/seqmirror/seqmirror/internal/fsys"
	"github.com/seqmirror/seqmirror/manifest"
)

// DefaultMaxProblems is how many differences a verification lists unless
// told otherwise; it counts the others (Verification.More), so that a tree
// that has nothing to do with its manifest costs bounded memory too.
const DefaultMaxProblems = 10000

// Problem is one difference found by Verify.
type Problem struct {
	Path   string `json:"path"`
	Reason string `json:"reason"`
}

func (p Problem) String() string { return p.Path + ": " + p.Reason }

// VerifyOptions tune VerifyStream.
type VerifyOptions struct {
	Workers     int // files hashed at once; 0: Workers()
	MaxProblems int // differences listed; 0: DefaultMaxProblems
}

// Verification is what VerifyStream found.
type Verification struct {
	// Problems are the differences, sorted by path (canonical order), at
	// most MaxProblems of them: the first ones of the whole sorted list.
	Problems []Problem
	// More counts the differences found beyond Problems, not listed.
	More int
	// records are the manifest's records at the paths of Problems that
	// have one (Repair needs them, and only them).
	records map[string]manifest.Entry
}

// Records returns the manifest's records at the paths of Problems that
// have one, by path.
func (v Verification) Records() map[string]manifest.Entry { return v.records }

// List is Problems followed, if More is not 0, by a last one (path "...")
// saying how many more there are.
func (v Verification) List() []Problem {
	if v.More == 0 {
		return v.Problems
	}
	return append(slices.Clip(v.Problems), Problem{Path: "...", Reason: fmt.Sprintf("and %d more differences, not listed", v.More)})
}

// Verify is VerifyStream over a manifest in memory; its result is
// Verification.List.
func Verify(ctx context.Context, f fsys.FS, dir string, m *manifest.Manifest, workers int) ([]Problem, error) {
	v, err := VerifyStream(ctx, f, dir, m.Iter(), VerifyOptions{Workers: workers})
	if err != nil {
		return nil, err
	}
	return v.List(), nil
}

// VerifyStream re-reads the tree at dir and compares it with the manifest
// records it yields (canonical order, read once): every record must exist
// with the same type, mode, size, mtime, content hash and target, and
// nothing else may exist. A setuid, setgid or sticky bit on a file or
// directory is a difference: a manifest records only permission bits and a
// snapshot never has those. A device, fifo or socket in the tree is a
// difference at "." whose reason is the ErrUnsupportedType error naming
// it (and a record at its path is "missing"). Other errors reading the tree
// or the records end it with an error.
//
// Memory is bounded independently of the number of records: the tree is
// read lazily, a directory at a time, as the merge with the records enters
// it, with a few directories read ahead (Lister); regular files are hashed by a pool of
// Workers; and at most MaxProblems differences are kept (and up to as many
// again before they are sorted and cut).
func VerifyStream(ctx context.Context, f fsys.FS, dir string, it manifest.Iterator, opt VerifyOptions) (Verification, error) {
	if opt.Workers <= 0 {
		opt.Workers = Workers()
	}
	set := &problemSet{max: opt.MaxProblems}
	if set.max <= 0 {
		set.max = DefaultMaxProblems
	}
	tree, err := newTreeIter(ctx, f, dir, func(err error) { set.add(".", err.Error(), nil) })
	if err != nil {
		return Verification{}, err
	}
	defer tree.Close()
	have, want := manifest.NewReadahead(tree), manifest.NewReadahead(it)
	defer have.Stop()
	defer want.Stop()
	c := &comparer{f: f, dir: dir, pool: NewPool(ctx, opt.Workers), set: set}
	err = manifest.Diff(have, want, c.change)
	if werr := c.pool.Wait(); err == nil {
		err = werr
	}
	if err != nil {
		return Verification{}, err
	}
	return set.result(), nil
}

// comparer compares what the tree has (Change.Old) with the record
// (Change.New), hashing regular files in pool.
type comparer struct {
	f    fsys.FS
	dir  string
	pool *Pool
	set  *problemSet
}

func (c *comparer) change(ch manifest.Change) error {
	if ch.New == nil {
		c.set.add(ch.Old.Path, "not in manifest", nil)
		return nil
	}
	have, want := ch.Old, ch.New
	add := func(why string) { c.set.add(want.Path, why, want) }
	switch {
	case have == nil:
		add("missing")
	case have.Type != want.Type:
		add(fmt.Sprintf("is type %c, manifest says %c", have.Type, want.Type))
	case have.Type == manifest.Symlink && have.Target != want.Target:
		add(fmt.Sprintf("symlink target %q, manifest says %q", have.Target, want.Target))
	case have.Mode != want.Mode && have.Type != manifest.Symlink:
		add(fmt.Sprintf("mode %04o, manifest says %04o", unixMode(have.Mode), unixMode(want.Mode)))
	case have.Size != want.Size:
		add(fmt.Sprintf("size %d, manifest says %d", have.Size, want.Size))
	case have.Type == manifest.File && have.MTime != want.MTime:
		add(fmt.Sprintf("mtime %d, manifest says %d", have.MTime, want.MTime))
	case have.Type == manifest.File:
		return c.pool.Go(c.hashJob(*want))
	}
	return nil
}

// hashJob compares the content of the file recorded as want with its
// record's content hash: its SHA-256 if the record has a digest (version
// 2), else its xxhash64.
func (c *comparer) hashJob(want manifest.Entry) func(context.Context) error {
	return func(context.Context) error {
		h, _, err := HashFile(c.f, filepath.Join(c.dir, filepath.FromSlash(want.Path)), want.SumVersion())
		switch {
		case err != nil:
			c.set.add(want.Path, err.Error(), &want)
		case h != want.Sum() && !want.Digest.IsZero():
			c.set.add(want.Path, fmt.Sprintf("content hash sha256:%s, manifest says sha256:%s", h.Digest, want.Digest), &want)
		case h != want.Sum():
			c.set.add(want.Path, fmt.Sprintf("content hash %016x, manifest says %016x", h.Hash, want.Hash), &want)
		}
		return nil
	}
}

// problemSet collects differences from several goroutines, keeping the
// first max of them in sorted order and counting the rest.
type problemSet struct {
	mu    sync.Mutex
	max   int
	found []found
	more  int
}

// found is a difference and the record at its path, if any.
type found struct {
	p   Problem
	rec *manifest.Entry
}

func (s *problemSet) add(path, why string, rec *manifest.Entry) {
	if rec != nil {
		r := *rec
		rec = &r
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.found = append(s.found, found{Problem{path, why}, rec})
	if len(s.found) >= 2*s.max {
		s.trim()
	}
}

// trim sorts what was found and keeps the first max.
func (s *problemSet) trim() {
	slices.SortFunc(s.found, func(a, b found) int {
		if c := manifest.Compare(a.p.Path, b.p.Path); c != 0 {
			return c
		}
		return strings.Compare(a.p.Reason, b.p.Reason)
	})
	if len(s.found) > s.max {
		s.more += len(s.found) - s.max
		clear(s.found[s.max:])
		s.found = s.found[:s.max]
	}
}

func (s *problemSet) result() Verification {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.trim()
	v := Verification{More: s.more, records: map[string]manifest.Entry{}}
	for _, f := range s.found {
		v.Problems = append(v.Problems, f.p)
		if f.rec != nil {
			v.records[f.p.Path] = *f.rec
		}
	}
	return v
}

// newTreeIter lists the tree at dir for VerifyStream (a Lister whose
// entries keep their setuid, setgid and sticky bits); unsupported is told
// of each entry of an unsupported type, which is left out.
func newTreeIter(ctx context.Context, f fsys.FS, dir string, unsupported func(error)) (*Lister, error) {
	ctx, cancel := context.WithCancel(ctx)
	w, err := newWalker(ctx, f, dir, nil)
	if err != nil {
		cancel()
		return nil, err
	}
	w.special, w.unsupported = true, unsupported
	return startLister(w, cancel), nil
}
