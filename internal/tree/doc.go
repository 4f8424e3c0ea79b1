// Package tree is the tree I/O that publish, mirror-sync and the transports
// share: listing a tree in canonical order ([Walk], [WalkEach], [WalkWith]),
// copying a file while hashing it ([CopyFile], [CopyFrom]), hashing one
// ([HashFile]) and checking one against its record ([CheckFile]), setting a
// record's mode and mtime ([SetMeta]), making and finishing directories in
// parallel ([MakeDirs], [MakeDirsStream], [FinishDirsParallel],
// [FinishDirsStream]), a bounded worker [Pool] fed in batches of one
// directory's items by a [Batcher] (the links and copies of publish and
// mirror-sync), a [Pairer] that merges batches of entries with a manifest
// stream, and verification of a tree against its manifest ([VerifyStream],
// [Verify]).
//
// Nothing here knows of export roots, seq files or snapshots' lifecycle:
// callers build in a work directory of their own, and package export
// installs the result. Reads of regular files go through fsys.OpenRegular,
// so a file that became a fifo or a device is refused, not read
// ([ErrUnsupportedType]); a content that does not match its record wraps
// [ErrHashMismatch]. Writes go through the fsys.FS given. Functions are
// safe for concurrent use; a [Pool] is used by one goroutine (Go, Wait) and
// runs its jobs on others.
//
// [VerifyStream] (and [Verify], over a manifest in memory) checks a tree
// against its manifest in memory bounded independently of the number of
// records: it merges the manifest, read once as a stream in canonical
// order, with the tree read lazily (a stack of the sorted listings of the
// directories above the current path and a few read ahead, [Lister]:
// O(depth x widest directory)),
// hashes regular files in a bounded pool, and keeps the first
// [DefaultMaxProblems] differences of the sorted whole, counting the rest
// (Verification.More), so a tree that has nothing to do with its manifest
// costs no more. The differences, and their wording, are those of a
// complete listing compared record by record: "not in manifest" for each
// entry below a directory the manifest does not name, "missing" for each
// record below one the tree lacks.
package tree
