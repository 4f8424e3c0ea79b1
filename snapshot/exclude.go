package snapshot

import (
	"errors"
	"fmt"
	"strings"

	"github.com/seqmirror/seqmirror/internal/filter"
)

// ErrBadPattern means an exclude pattern could not be parsed.
var ErrBadPattern = errors.New("bad exclude pattern")

// Excludes is a parsed list of exclude patterns (filter.Pattern), in the
// subset of rsync's syntax publish supports:
//
//   - a pattern is matched against the path of an entry relative to the
//     source root ("a/b/c"); an excluded directory is left out with
//     everything below it;
//   - a leading '/' anchors the pattern at the source root: it must match
//     the whole path; without one it matches any tail of the path that
//     starts at a component ("b/c" matches "a/b/c", "c" matches "a/b/c");
//   - a trailing '/' matches directories only;
//   - '*' matches any run of characters but '/', '?' one character but
//     '/', "[...]" one character (but '/') of a set ("[a-z0-9]", negated by
//     a leading '!' or '^'), '**' any run of characters including '/';
//     '\' makes the character after it literal.
//
// Not supported: rsync's "+ "/"- " rule prefixes, include patterns, the
// special "dir/***", and character class names ("[[:alpha:]]").
type Excludes struct{ pats []filter.Pattern }

// ParseExcludes parses patterns (see Excludes). It returns nil for none.
func ParseExcludes(patterns []string) (*Excludes, error) {
	if len(patterns) == 0 {
		return nil, nil
	}
	x := &Excludes{}
	for _, s := range patterns {
		p, err := filter.ParsePattern(s)
		if err != nil {
			return nil, fmt.Errorf("%w %q: %w", ErrBadPattern, s, err)
		}
		x.pats = append(x.pats, p)
	}
	return x, nil
}

// Match reports whether the entry at rel (slash-separated, relative to the
// source root) is excluded. isDir is asked only when a directory-only
// pattern matches the path.
func (x *Excludes) Match(rel string, isDir func() bool) bool {
	if x == nil {
		return false
	}
	for i := range x.pats {
		p := &x.pats[i]
		if p.MatchPath(rel) && (!p.DirOnly() || isDir()) {
			return true
		}
	}
	return false
}

// String lists the patterns as given.
func (x *Excludes) String() string {
	if x == nil {
		return ""
	}
	s := make([]string, len(x.pats))
	for i := range x.pats {
		s[i] = x.pats[i].String()
	}
	return strings.Join(s, " ")
}
