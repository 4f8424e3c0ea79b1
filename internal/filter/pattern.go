package filter

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// maxPatternLen bounds one pattern (a path is at most 4096 bytes).
const maxPatternLen = 4096

// Pattern is one compiled path pattern: the syntax of partial mirrors'
// rules (docs/protocol.md section 11) and of publish's --exclude
// (snapshot.Excludes), rsync's subset:
//
//   - matched against an entry's path relative to the tree's top ("a/b/c");
//   - a leading '/' anchors it there: it must match the whole path; without
//     one it matches any tail of the path that starts at a component ("b/c"
//     matches "a/b/c", "c" matches "a/b/c");
//   - a trailing '/' matches directories only;
//   - '*' matches any run of characters but '/', '?' one character but
//     '/', "[...]" one character (but '/') of a set ("[a-z0-9]", negated by
//     a leading '!' or '^'), '**' any run of characters including '/';
//     '\' makes the character after it literal.
type Pattern struct {
	src      string
	anchored bool // leading '/': match the whole path
	dirOnly  bool // trailing '/': directories only
	toks     []token
}

// token is one element of a pattern.
type token struct {
	kind  byte // 'c' a literal character, '?' any one, '[' a set, '*' a star, 'S' a double star
	r     rune
	set   []runeRange
	negat bool
}

type runeRange struct{ lo, hi rune }

// matches reports whether p matches the entry at rel (a directory if dir).
func (p *Pattern) matches(rel string, dir bool) bool {
	return (!p.dirOnly || dir) && p.MatchPath(rel)
}

// DirOnly reports whether p matches directories only (a trailing '/').
func (p *Pattern) DirOnly() bool { return p.dirOnly }

// String is the pattern as given.
func (p *Pattern) String() string { return p.src }

func ParsePattern(s string) (Pattern, error) {
	p := Pattern{src: s}
	switch {
	case s == "":
		return p, errors.New("empty")
	case len(s) > maxPatternLen:
		return p, fmt.Errorf("longer than %d bytes", maxPatternLen)
	case !utf8.ValidString(s):
		return p, errors.New("not valid UTF-8")
	case strings.ContainsRune(s, 0):
		return p, errors.New("contains a NUL byte")
	}
	if strings.HasPrefix(s, "/") {
		p.anchored, s = true, s[1:]
	}
	if strings.HasSuffix(s, "/") {
		p.dirOnly, s = true, s[:len(s)-1]
	}
	if s == "" || strings.HasPrefix(s, "/") || strings.HasSuffix(s, "/") || strings.Contains(s, "//") {
		return p, errors.New("has an empty path component")
	}
	for i := 0; i < len(s); {
		r, w := utf8.DecodeRuneInString(s[i:])
		switch r {
		case '\\':
			if i+1 >= len(s) {
				return p, errors.New("ends in a lone '\\'")
			}
			r2, w2 := utf8.DecodeRuneInString(s[i+1:])
			p.toks = append(p.toks, token{kind: 'c', r: r2})
			i += 1 + w2
			continue
		case '*':
			if strings.HasPrefix(s[i:], "**") {
				for i < len(s) && s[i] == '*' {
					i++
				}
				p.toks = append(p.toks, token{kind: 'S'})
				continue
			}
			p.toks = append(p.toks, token{kind: '*'})
		case '?':
			p.toks = append(p.toks, token{kind: '?'})
		case '[':
			t, n, err := parseSet(s[i:])
			if err != nil {
				return p, err
			}
			p.toks = append(p.toks, t)
			i += n
			continue
		default:
			p.toks = append(p.toks, token{kind: 'c', r: r})
		}
		i += w
	}
	return p, nil
}

// parseSet parses the "[...]" at the start of s; it returns the token and
// the bytes it used.
func parseSet(s string) (token, int, error) {
	t := token{kind: '['}
	i := 1
	if i < len(s) && (s[i] == '!' || s[i] == '^') {
		t.negat = true
		i++
	}
	first := true
	for {
		if i >= len(s) {
			return t, 0, errors.New("unterminated '['")
		}
		if s[i] == ']' && !first {
			return t, i + 1, nil
		}
		first = false
		lo, w := setRune(s, i)
		if w == 0 {
			return t, 0, errors.New("lone '\\' in '['")
		}
		i += w
		hi := lo
		if i+1 < len(s) && s[i] == '-' && s[i+1] != ']' {
			if hi, w = setRune(s, i+1); w == 0 {
				return t, 0, errors.New("lone '\\' in '['")
			}
			i += 1 + w
			if hi < lo {
				return t, 0, errors.New("reversed range in '['")
			}
		}
		if lo == '/' || (lo < '/' && hi >= '/') {
			return t, 0, errors.New("'/' in '[' (a set matches one character of a name)")
		}
		t.set = append(t.set, runeRange{lo, hi})
	}
}

// setRune reads one (possibly escaped) character of a set at s[i:]; w is 0
// for a '\' that ends s.
func setRune(s string, i int) (rune, int) {
	if s[i] == '\\' {
		if i+1 >= len(s) {
			return 0, 0
		}
		r, w := utf8.DecodeRuneInString(s[i+1:])
		return r, 1 + w
	}
	return utf8.DecodeRuneInString(s[i:])
}

// MatchPath reports whether p matches the path rel, whatever the entry's
// type (see DirOnly).
func (p *Pattern) MatchPath(rel string) bool {
	if p.anchored {
		return globMatch(p.toks, rel)
	}
	for i := 0; ; {
		if globMatch(p.toks, rel[i:]) {
			return true
		}
		j := strings.IndexByte(rel[i:], '/')
		if j < 0 {
			return false
		}
		i += j + 1
	}
}

// globMatch matches toks against all of s, in O(len(toks)*len(s)).
func globMatch(toks []token, s string) bool {
	rs := []rune(s)
	// cur[j]: toks[:i] matches rs[:j].
	cur := make([]bool, len(rs)+1)
	next := make([]bool, len(rs)+1)
	cur[0] = true
	for _, t := range toks {
		for j := range next {
			next[j] = false
		}
		switch t.kind {
		case '*', 'S':
			any := false
			for j := 0; j <= len(rs); j++ {
				if cur[j] {
					any = true
				}
				next[j] = any
				if t.kind == '*' && j < len(rs) && rs[j] == '/' {
					any = false
				}
			}
		default:
			for j := 0; j < len(rs); j++ {
				if cur[j] && t.one(rs[j]) {
					next[j+1] = true
				}
			}
		}
		cur, next = next, cur
	}
	return cur[len(rs)]
}

// one reports whether a one-character token matches r.
func (t *token) one(r rune) bool {
	switch t.kind {
	case 'c':
		return r == t.r
	case '?':
		return r != '/'
	}
	if r == '/' {
		return false
	}
	in := false
	for _, rr := range t.set {
		if r >= rr.lo && r <= rr.hi {
			in = true
			break
		}
	}
	return in != t.negat
}
