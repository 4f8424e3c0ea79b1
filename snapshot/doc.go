// Package snapshot is the publisher: it makes a snapshot of a source tree
// in an export root and serves it (publish).
//
// A snapshot is built in ROOT/.work/N and becomes visible only when the whole
// tree is on disk. [Publish] is one export.Update of the root (Begin: lock,
// cleanup; Done: seq/end, status, prune, or the failure recorded), made of
// attempts in four phases (attempt: list, confirm, build, commit); commit
// installs through export.Update.Install, the one commit step of every
// writer (flush the tree and the manifest, rename both into snapshots/,
// flip current). A crash at any step leaves the served snapshot untouched;
// docs/design.md walks through each step.
//
// Options are taken as given ([DefaultOptions] holds the defaults), and
// errors name no command-line flags: the CLI (internal/cliapp) adds what to
// run, keyed by the sentinel errors.
//
// Unchanged files are hard-linked from the served snapshot rather than
// copied, and files it lacks from another retained complete snapshot that
// has them (olders, when that is cheaper than copying). "Unchanged" (the
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
// Publish holds no record per file in memory: the listing is spooled to
// an unlinked file in ROOT/.work and each pass streams it (attempt).
//
// On btrfs, a source that is a subvolume is published copy-on-write
// instead (cow.go): a snapshot of the source, taken at once, is listed
// (no confirmation needed: it is one instant of the source; only the
// inodes btrfs says changed since the served snapshot are stat'ed, and
// only the directories holding them read: cowlist.go, package changes),
// becomes the new snapshot as it is (what the listing leaves
// out deleted from it), and only its changed files are read, to hash them; Install makes it a read-only subvolume. Nothing is linked
// or copied. Elsewhere, or when the filesystem refuses, the hard links
// above are taken and the debug log says why.
//
// Copies hash while they copy (one pass over the data), and every file that
// came from anywhere but a verified local snapshot is checked against its
// manifest hash before the flip.
//
// Snapshot trees are immutable once renamed into place; nothing here writes
// into snapshots/N (the one exception, repair, is package export's).
// Functions are safe for concurrent use on distinct roots; one root is
// serialised by its lock (package export).
package snapshot
