// Package changes lists a btrfs snapshot from what changed in it since an
// earlier snapshot of the same subvolume, reading only that: publish lists
// the snapshot of its source this way against the served snapshot, and
// mirror-sync checks a snapshot of a local upstream's snapshot against its
// manifest the same way.
//
// [Find] asks btrfs which inodes of the snapshot changed since the earlier
// snapshot was taken, and which directories hold their names
// (cow.ChangedInodes: only the parts of the tree written since are read),
// and which inodes of the earlier snapshot changed after it was taken
// (its writer deleted the entries it left out of it; those are not what
// they were in the snapshot either). A [Walk] then lists the snapshot
// depth first in canonical order, handing each entry to its Emit function
// either settled — the earlier snapshot's record of the same path, taken
// without a system call — or fresh, from lstat.
//
// Why a settled record is right: an inode whose item no transaction
// changed since the earlier snapshot was taken, in either snapshot, is,
// byte for byte and in every attribute, what it is in the earlier one — a write, truncate, chmod, utime,
// rename, link or unlink of it changes its item — and it has the same
// names, each in the same directory inode: every name given to or taken
// from an inode changes its link count or ctime. So if its directory is
// stable — the same inode at the same path in the earlier snapshot — its
// path there was its path here, where the record (the earlier snapshot's
// manifest describes it exactly) describes it. The snapshot's root is
// stable; so is a directory whose parent is stable and whose inode is
// unchanged, or, changed, whose entry in its parent is as old as the
// earlier snapshot (cow.Tree.NameTransids: a rename or link writes a new
// entry, so an old one names the same inode it named then). In a directory that is not (renamed, or another
// directory renamed over it) every entry is fresh: the record at its path
// may be another inode's. A path with no record, or a record of another
// type, is fresh too.
//
// A directory is not even read (skimmed) when it is unchanged and stable,
// holds no changed inode and had nothing left out of it in the earlier
// snapshot: its entries are then its names there, which are the records
// below its path, all settled (one lstat of each directory below it
// gives the inode number the next decision needs). What the listing reads
// follows what changed, not the size of the tree.
//
// Directories are opened with O_NOATIME where the caller may (and
// fsys.OpenRegular reads files so), so that listing and hashing leave a
// snapshot's inodes as they were: the next run asks which of them changed
// after the snapshot was taken.
//
// A Walk reads the directories it will read next ahead, a few at once,
// so that on a cold cache their blocks come from the disk in parallel.
//
// Everything here needs CAP_SYS_ADMIN (the btrfs tree search) and reads
// only; a Walk is not safe for concurrent use, a Set is read-only once
// found.
package changes
