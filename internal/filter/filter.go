package filter

import (
	"errors"
	"fmt"
	"strings"
)

var (
	// ErrBadPattern means a rule's pattern could not be parsed.
	ErrBadPattern = errors.New("bad filter pattern")
	// ErrBadFilter means a filter (a rule list, or a filter file) is
	// malformed.
	ErrBadFilter = errors.New("bad filter")
)

// Limits on what a filter holds (a filter file comes from an upstream).
const (
	MaxRules   = 1024 // rules in one rule list
	MaxFilters = 16   // rule lists in a chain (one a tier, as lineage's hops)
)

// Rule is one rule of a Filter: an include or exclude pattern.
type Rule struct {
	Include bool
	p       Pattern
}

// Pattern is the rule's pattern as given.
func (r Rule) Pattern() string { return r.p.src }

// String is the rule's canonical form: "+ PATTERN" or "- PATTERN".
func (r Rule) String() string {
	if r.Include {
		return "+ " + r.p.src
	}
	return "- " + r.p.src
}

// Include and Exclude make a rule of pattern.
func Include(pattern string) (Rule, error) { return newRule(true, pattern) }

// Exclude makes an exclude rule of pattern.
func Exclude(pattern string) (Rule, error) { return newRule(false, pattern) }

func newRule(include bool, s string) (Rule, error) {
	p, err := ParsePattern(s)
	if err != nil {
		return Rule{}, fmt.Errorf("%w %q: %w", ErrBadPattern, s, err)
	}
	return Rule{Include: include, p: p}, nil
}

// ParseRule parses a rule's canonical form, "+ PATTERN" or "- PATTERN".
func ParseRule(s string) (Rule, error) {
	switch {
	case strings.HasPrefix(s, "+ "):
		return Include(s[2:])
	case strings.HasPrefix(s, "- "):
		return Exclude(s[2:])
	}
	return Rule{}, fmt.Errorf("%w: rule %q does not start with \"+ \" or \"- \"", ErrBadFilter, s)
}

// Filter is one ordered rule list. An entry's own decision is that of the
// first rule whose pattern matches it (include: keep, exclude: leave out),
// or keep if none does; an entry is kept if its own decision and that of
// every directory above it is keep. The zero Filter keeps everything.
type Filter struct{ rules []Rule }

// New returns the filter of rules, in order.
func New(rules ...Rule) (*Filter, error) {
	if len(rules) > MaxRules {
		return nil, fmt.Errorf("%w: %d rules, more than %d", ErrBadFilter, len(rules), MaxRules)
	}
	return &Filter{rules: rules}, nil
}

// Parse returns the filter of rules in canonical form (ParseRule).
func Parse(rules []string) (*Filter, error) {
	rs := make([]Rule, 0, len(rules))
	for _, s := range rules {
		r, err := ParseRule(s)
		if err != nil {
			return nil, err
		}
		rs = append(rs, r)
	}
	return New(rs...)
}

// Empty reports whether f has no rule (it keeps everything).
func (f *Filter) Empty() bool { return f == nil || len(f.rules) == 0 }

// Rules lists f's rules in canonical form.
func (f *Filter) Rules() []string {
	if f == nil {
		return nil
	}
	out := make([]string, len(f.rules))
	for i, r := range f.rules {
		out[i] = r.String()
	}
	return out
}

// String lists the rules, separated by ", ".
func (f *Filter) String() string { return strings.Join(f.Rules(), ", ") }

// own is the entry's own decision (its ancestors aside).
func (f *Filter) own(rel string, dir bool) bool {
	if f == nil {
		return true
	}
	for i := range f.rules {
		if f.rules[i].p.matches(rel, dir) {
			return f.rules[i].Include
		}
	}
	return true
}

// Keep reports whether the entry at rel (slash-separated, relative to the
// snapshot's top, clean), a directory if dir, is kept: its own decision
// and that of every directory above it is keep.
func (f *Filter) Keep(rel string, dir bool) bool {
	for i := 0; i < len(rel); i++ {
		if rel[i] == '/' && !f.own(rel[:i], true) {
			return false
		}
	}
	return f.own(rel, dir)
}

// Chain is the filter of a tier below partial tiers: an entry is kept if
// every filter of the chain keeps it (their intersection), upstream first.
// The empty Chain keeps everything; empty filters in it change nothing.
type Chain []*Filter

// Of is the chain of the non-empty filters among fs.
func Of(fs ...*Filter) Chain {
	var c Chain
	for _, f := range fs {
		if !f.Empty() {
			c = append(c, f)
		}
	}
	return c
}

// Partial reports whether c leaves anything out (has a rule).
func (c Chain) Partial() bool { return len(Of(c...)) > 0 }

// Keep reports whether every filter of c keeps the entry (Filter.Keep).
func (c Chain) Keep(rel string, dir bool) bool {
	for _, f := range c {
		if !f.Keep(rel, dir) {
			return false
		}
	}
	return true
}

// own is the intersection of the filters' own decisions.
func (c Chain) own(rel string, dir bool) bool {
	for _, f := range c {
		if !f.own(rel, dir) {
			return false
		}
	}
	return true
}

// Rules lists each non-empty filter's rules (Filter.Rules).
func (c Chain) Rules() [][]string {
	var out [][]string
	for _, f := range Of(c...) {
		out = append(out, f.Rules())
	}
	return out
}

// String shows the chain: each filter's rules in parentheses, joined by
// " and "; "" for a chain that keeps everything.
func (c Chain) String() string {
	c = Of(c...)
	if len(c) == 1 {
		return c[0].String()
	}
	parts := make([]string, len(c))
	for i, f := range c {
		parts[i] = "(" + f.String() + ")"
	}
	return strings.Join(parts, " and ")
}

// Equal reports whether c and d have the same rules in the same filters.
func (c Chain) Equal(d Chain) bool {
	a, b := c.Rules(), d.Rules()
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if strings.Join(a[i], "\n") != strings.Join(b[i], "\n") {
			return false
		}
	}
	return true
}

// ParseChain is the chain of rule lists in canonical form (Chain.Rules).
func ParseChain(lists [][]string) (Chain, error) {
	if len(lists) > MaxFilters {
		return nil, fmt.Errorf("%w: %d filters, more than %d", ErrBadFilter, len(lists), MaxFilters)
	}
	var c Chain
	for _, l := range lists {
		f, err := Parse(l)
		if err != nil {
			return nil, err
		}
		c = append(c, f)
	}
	return Of(c...), nil
}
