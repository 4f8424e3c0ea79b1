// Package manifest defines the manifest of a seqmirror snapshot: the list of
// every directory, regular file and symlink in it, with enough metadata to
// rebuild and verify the tree. docs/protocol.md specifies the format; this
// package is the reference implementation.
//
// A manifest is text, one record per line:
//
//	seqmirror-manifest 2
//	snapshot 42
//	d 0755 0 1700000000123456789 - src
//	f 0444 0 1700000000000000000 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855 src/empty%20file
//	l 0777 6 0 - src/link main.c
//	f 0644 1234 1700000000123456789 0be279b0410c665f298717233b46e9d013c0d2a2f5a261a2ec1effe62b7e2627 src/main.c
//	end 4 85ef3160bb0978d5
//
// (the example of docs/protocol.md, valid byte for byte; a test decodes it).
// That is version 2, which names a regular file's content by its SHA-256
// ([Entry.Digest]; [Entry.Hash] is then the digest's first 8 bytes).
// Version 1, with the xxhash64 of the content in that field, is still read
// and, through [NewVersionWriter], written; [Manifest.Version] and
// [Reader.Version] say which a manifest is. [Hasher] is the one place that
// hashes a file's content for a record of either version.
// Records come in canonical order (paths compared bytewise with '/' ranking
// below every other byte, i.e. a depth-first walk with names sorted), so
// parents precede children and equal trees give byte-identical manifests.
// The footer counts the records and carries the xxhash64 of every byte before
// it, so truncation or damage is detected (in both versions; tampering is
// what a signature over the manifest's bytes detects).
//
// # Safety contract
//
// [Reader] enforces, before it returns a record: relative clean paths, no
// ".." component, no NUL, no duplicates, canonical order, every parent listed
// earlier as a directory (so no path lies below a symlink), modes within 0777,
// sizes within [MaxSize], a non-zero digest on every file record of
// version 2 and none in version 1. It reports a footer mismatch only at the end, so a
// caller that must not act on a bad manifest runs [Check] (one streaming pass,
// O(depth) memory) before acting. Errors wrap [ErrCorrupt] or [ErrUnsafePath].
//
// Readers and Writers are not safe for concurrent use; distinct ones are.
package manifest
