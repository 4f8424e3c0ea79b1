package config

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"
)

// ErrSyntax is wrapped by every error about a line of a file.
var ErrSyntax = errors.New("syntax error")

// Entry is one `key = value` line.
type Entry struct {
	Key   string
	Value string
	Line  int // 1-based
}

// maxLine bounds a line (bufio.Scanner's token limit).
const maxLine = 1 << 20

// Parse reads a configuration file (the syntax is in the package
// documentation).
func Parse(r io.Reader) ([]Entry, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), maxLine)
	var out []Entry
	n := 0
	for sc.Scan() {
		n++
		e, ok, err := parseLine(strings.TrimSuffix(sc.Text(), "\r"))
		if err != nil {
			return nil, fmt.Errorf("line %d: %s: %w", n, err, ErrSyntax)
		}
		if ok {
			e.Line = n
			out = append(out, e)
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, fmt.Errorf("line %d: longer than %d bytes: %w", n+1, maxLine, ErrSyntax)
		}
		return nil, fmt.Errorf("line %d: %w", n+1, err)
	}
	return out, nil
}

// parseLine reads one line: ok is false for a blank or comment line.
func parseLine(line string) (e Entry, ok bool, err error) {
	if !utf8.ValidString(line) {
		return Entry{}, false, errors.New("not UTF-8")
	}
	s := strings.TrimSpace(line)
	if s == "" || s[0] == '#' {
		return Entry{}, false, nil
	}
	key, value, found := strings.Cut(s, "=")
	if !found {
		return Entry{}, false, fmt.Errorf("%q is not `key = value`", s)
	}
	key = strings.TrimSpace(key)
	if !validKey(key) {
		return Entry{}, false, fmt.Errorf("bad key %q (lower-case letters, digits and '-', starting with a letter)", key)
	}
	v, err := parseValue(strings.TrimSpace(value))
	if err != nil {
		return Entry{}, false, fmt.Errorf("key %s: %w", key, err)
	}
	return Entry{Key: key, Value: v}, true, nil
}

// validKey reports whether k is a key: [a-z][a-z0-9-]*.
func validKey(k string) bool {
	if k == "" || k[0] < 'a' || k[0] > 'z' {
		return false
	}
	for _, c := range []byte(k) {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// parseValue reads a value, blanks around it already dropped: a Go string
// literal in double quotes (then only a comment may follow), or the text
// up to a '#' that starts it or follows a blank.
func parseValue(v string) (string, error) {
	if strings.HasPrefix(v, `"`) {
		return quoted(v)
	}
	for i := 0; i < len(v); i++ {
		if v[i] == '#' && (i == 0 || v[i-1] == ' ' || v[i-1] == '\t') {
			v = strings.TrimSpace(v[:i])
			break
		}
	}
	if strings.ContainsFunc(v, isControl) {
		return "", errors.New("a control character in the value (quote it, with escapes)")
	}
	return v, nil
}

// quoted reads a value that starts with '"'.
func quoted(v string) (string, error) {
	lit, err := strconv.QuotedPrefix(v)
	if err != nil {
		return "", fmt.Errorf("bad quoted value %s (a Go string literal: \\\" and \\\\ inside)", v)
	}
	rest := strings.TrimSpace(v[len(lit):])
	if rest != "" && rest[0] != '#' {
		return "", fmt.Errorf("%q after the quoted value", rest)
	}
	s, err := strconv.Unquote(lit)
	if err != nil { // QuotedPrefix accepted it, so this does not happen
		return "", fmt.Errorf("bad quoted value %s: %w", lit, err)
	}
	if strings.ContainsAny(s, "\n\r\x00") {
		return "", fmt.Errorf("a line break or NUL in the quoted value %s: no flag value holds one", lit)
	}
	return s, nil
}

func isControl(r rune) bool { return r < 0x20 && r != '\t' || r == 0x7f }
