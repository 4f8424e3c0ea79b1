// Package manifest defines the manifest of a seqmirror snapshot: the list of
// every directory, regular file and symlink in it, with enough metadata to
// rebuild and verify the tree. docs/protocol.md specifies the format; this
// package is the reference implementation.
//
// A manifest is text, one record per line:
//
//	seqmirror-manifest 1
//	snapshot 42
//	d 0755 0 1700000000123456789 - src
//	f 0444 0 1700000000000000000 ef46db3751d8e999 src/empty%20file
//	l 0777 6 0 - src/link main.c
//	f 0644 1234 1700000000123456789 ad793ea0c7a50b22 src/main.c
//	end 4 9581584e68690ade
//
// (the example of docs/protocol.md, valid byte for byte; a test decodes it).
// Records come in canonical order (paths compared bytewise with '/' ranking
// below every other byte, i.e. a depth-first walk with names sorted), so
// parents precede children and equal trees give byte-identical manifests.
// The footer counts the records and carries the xxhash64 of every byte before
// it, so truncation or editing is detected.
//
// # Safety contract
//
// [Reader] enforces, before it returns a record: relative clean paths, no
// ".." component, no NUL, no duplicates, canonical order, every parent listed
// earlier as a directory (so no path lies below a symlink), modes within 0777,
// sizes within [MaxSize]. It reports a footer mismatch only at the end, so a
// caller that must not act on a bad manifest runs [Check] (one streaming pass,
// O(depth) memory) before acting. Errors wrap [ErrCorrupt] or [ErrUnsafePath].
//
// Readers and Writers are not safe for concurrent use; distinct ones are.
package manifest
