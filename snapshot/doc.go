// Package snapshot builds and checks snapshot trees, and implements publish.
//
// A snapshot is built in ROOT/.work/N and becomes visible only when the whole
// tree is on disk: [Publish] (and package mirror) flush the filesystem, write
// the manifest durably, rename the work directory to ROOT/snapshots/N, flip
// current, and only then bump seq/end. A crash at any step leaves the served
// snapshot untouched; docs/design.md walks through each step.
//
// Unchanged files are hard-linked from the served snapshot rather than
// copied, and files it lacks from another retained complete snapshot that
// has them (pairOlder, when that is cheaper than copying). "Unchanged" (the
// quick check, as rsync's) means: same path, type, permission bits, size and
// modification time to the nanosecond; with Force, a file is linked only if
// both the source file and the file it would link hash to the record, so a
// forced republish never carries damage forward.
//
// A source that changes while Publish copies it is noticed and the attempt
// retried: the snapshot is the source as it was at one instant (the end of
// its listing), or nothing is published. On local filesystems an inotify
// watch on every source directory tells (changeWatch); elsewhere a second
// listing does. docs/protocol.md (publish, step 6) states the rule and its
// blind spots.
//
// Copies hash while they copy (one pass over the data), and every file that
// came from anywhere but a verified local snapshot is checked against its
// manifest hash before the flip.
//
// [VerifyStream] (and [Verify], over a manifest in memory) checks a tree
// against its manifest in memory bounded independently of the number of
// records: it merges the manifest, read once as a stream in canonical
// order, with the tree read lazily (a stack of the sorted listings of the
// directories above the current path: O(depth x widest directory)),
// hashes regular files in a bounded pool, and keeps the first
// [DefaultMaxProblems] differences of the sorted whole, counting the rest
// (Verification.More), so a tree that has nothing to do with its manifest
// costs no more. The differences, and their wording, are those of a
// complete listing compared record by record: "not in manifest" for each
// entry below a directory the manifest does not name, "missing" for each
// record below one the tree lacks.
//
// Snapshot trees are immutable once renamed into place; nothing here writes
// into snapshots/N, with one exception: [Repair] replaces a damaged file of
// a snapshot, and the same damaged file in every other retained snapshot,
// by renaming a fresh, checked and flushed copy over it (never by writing
// into the file, whose inode other snapshots may share); docs/design.md
// ("Repair") gives the rules. Functions are safe for concurrent use on
// distinct roots; one root is serialised by its lock (package export).
package snapshot
