// Package cow is seqmirror's use of copy-on-write filesystems: btrfs
// subvolume snapshots and reflink copies (btrfs, XFS), through ioctls, never
// the btrfs program.
//
// [Probe] says what the filesystem of a directory can do ([Caps]); callers
// choose the CoW path or the hard-link farm by it at run time. On any
// other filesystem, or when an ioctl is refused (an older kernel, a
// filesystem mounted without the feature, a test's fault), every function
// returns an error wrapping [ErrUnsupported] and the caller falls back.
//
// What is atomic, and what survives a crash:
//   - [Snapshot] is one ioctl: the new subvolume is the source as it was at
//     one instant (a point-in-time copy of the whole tree, whatever its
//     size), or it does not exist. A crash leaves either no subvolume or a
//     complete one under the new name; btrfs commits it with the next
//     transaction (syncfs makes it durable).
//   - [Delete] removes a whole subvolume at once (its space is reclaimed in
//     the background by the filesystem); a crash before the deletion's
//     transaction commits leaves the subvolume whole.
//   - [SetReadOnly] flips one flag of a subvolume; a read-only subvolume
//     refuses every write below it (EROFS), root's included, but can be
//     renamed and deleted.
//   - [Clone] makes dst share src's data (FICLONE), which later writes to
//     either copy apart: a crash leaves dst as an empty or a whole copy,
//     like any file being written; the callers write into work trees only.
//   - [RemoveAll] deletes the subvolumes at path and in its direct children
//     first, then the rest as os.RemoveAll does.
//
// [ChangedInodes] lists the inodes of a subvolume whose inode item was
// written after a given transaction (a snapshot's [Info].OTransid), reading
// only the parts of the tree written since: what changed since a snapshot,
// without walking the tree.
//
// Nested subvolumes are not part of a snapshot (they appear in it as empty
// directories): [HasNested] tells, and callers do not snapshot such a
// source.
//
// All functions are safe for concurrent use; they hold no state.
package cow
