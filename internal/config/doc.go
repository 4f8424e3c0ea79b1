// Package config reads seqmirror's per-root configuration files: one
// setting a line, `key = value`, the keys being the long flag names of the
// command that reads the file (the command decides what a key means and
// whether it knows it; this package only reads the syntax).
//
// The syntax, all of it:
//
//   - a blank line, or a line whose first non-blank character is '#', is
//     ignored;
//   - any other line is `key = value`: a key of lower-case letters, digits
//     and '-' (starting with a letter), '=', and a value; blanks around the
//     key and the value are dropped;
//   - a value may be written in double quotes, read as a Go string literal
//     (strconv.Unquote): the way to keep blanks at its ends, a '#' after a
//     blank, or a control character;
//   - an unquoted value ends at the first '#' that starts it or follows a
//     blank (an end-of-line comment): `keep = 5  # a week` is "5",
//     `rsync-opt = --filter=-_/#tmp` keeps its '#';
//   - a key may be repeated: every line is an [Entry], in file order (the
//     command decides whether a key is a list);
//   - lines end with "\n" or "\r\n"; the file is UTF-8.
//
// [Parse] returns the entries or the first error, which names its line
// (1-based) and wraps [ErrSyntax]. Parse reads its reader to the end or to
// the first error and keeps no state: it is safe for concurrent use, and
// nothing here writes anything.
package config
