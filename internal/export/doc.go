// Package export is the on-disk layout of a seqmirror export root, the same
// on the master and on every mirror (docs/protocol.md is normative):
//
//	ROOT/current               relative symlink -> snapshots/N
//	ROOT/snapshots/N/          immutable snapshot tree
//	ROOT/snapshots/N.manifest  its manifest (package manifest)
//	ROOT/snapshots/N.full      partial mirrors: the master's manifest of N, verbatim
//	ROOT/snapshots/N.filter    partial mirrors: the filter chain N.manifest was made with
//	ROOT/seq/begin, seq/end    this server's own update counters (package seqfile)
//	ROOT/snapshots/N.manifest.minisig  its signature, if the master signs (package sign)
//	ROOT/seq/timestamp.minisig the master's latest timestamp, if it signs
//	ROOT/.signed               how the writer treats signatures; highest signed N seen
//	ROOT/status.json           last run's status, for humans and scripts
//	ROOT/.lock                 flock(2) target serialising writers
//	ROOT/.daemon.lock          flock(2) target held by a daemon for its life
//	ROOT/.work/                work in progress; never served
//
// # Contract
//
//   - A snapshot is complete when both snapshots/N/ and snapshots/N.manifest
//     exist. Writers make the manifest durable first and then rename a fully
//     synced work directory to snapshots/N, so a crash leaves at worst an
//     orphan manifest, which [Root.Cleanup] removes.
//   - current is replaced atomically ([Root.Flip]); readers that resolve it
//     once see one complete snapshot.
//   - Every writer run is one [Update] ([Root.Begin], [Update.Start],
//     [Update.Install], [Update.Done]): the begin/end protocol as a type.
//     Begin takes the lock and removes a killed run's leftovers; Start bumps
//     seq/begin before the first write of a new snapshot; Install is the one
//     commit sequence (manifest and tree durable, both renamed into
//     snapshots/, current flipped), checking before each visible step that
//     the run was not stopped; Done sets seq/end = seq/begin and prunes, or
//     records the failure in status.json, and releases the lock. A crash
//     between any two steps leaves the served snapshot whole and at worst
//     begin > end, which the next run's Done settles.
//   - Writers hold [Root.Lock] (an flock, released by the kernel when the
//     process dies, so a killed run never leaves a stale lock). Readers take
//     no lock and never block writers.
//   - [Root.Prune] never deletes the served snapshot, keeps the newest K, and
//     keeps any snapshot superseded less than the grace period ago.
//   - A snapshot is immutable once renamed into snapshots/N: writers put a
//     tree there only whole (the commit step, [Update.Install]) and never
//     write into it after, with one exception, [Repair]. Repair
//     (under the lock) replaces a damaged regular file of a snapshot, and the
//     same damaged file in every other retained snapshot, by renaming a
//     staged, checked and flushed good copy over it, never by writing into
//     the file (its inode may be shared by hard links with other snapshots);
//     and it gives a directory whose mode differs its recorded mode. A
//     partial mirror whose filter changed replaces its served snapshot N
//     with another subset of the same snapshot ([Built].Replace: the trees
//     exchanged at once, marked by ROOT/.replacing until the manifest
//     follows); every file of either is the master's file of N. A reader
//     sees the damaged file or the good one, never a mix; the manifest and
//     the seq files do not change. docs/design.md ("Repair") gives the rules.
package export
