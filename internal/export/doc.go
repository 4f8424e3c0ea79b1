// Package export is the on-disk layout of a seqmirror export root, the same
// on the master and on every mirror (docs/protocol.md is normative):
//
//	ROOT/current               relative symlink -> snapshots/N
//	ROOT/snapshots/N/          immutable snapshot tree
//	ROOT/snapshots/N.manifest  its manifest (package manifest)
//	ROOT/seq/begin, seq/end    this server's own update counters (package seqfile)
//	ROOT/status.json           last run's status, for humans and scripts
//	ROOT/.lock                 flock(2) target serialising writers
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
//   - Writers hold [Root.Lock] (an flock, released by the kernel when the
//     process dies, so a killed run never leaves a stale lock). Readers take
//     no lock and never block writers.
//   - [Root.Prune] never deletes the served snapshot, keeps the newest K, and
//     keeps any snapshot superseded less than the grace period ago.
package export
