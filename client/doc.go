// Package client reads one snapshot of a seqmirror export root, verified,
// for programs that read from a mirror: open an address, pin the snapshot
// it serves, list and read its files, and learn at the end whether that
// snapshot is still there.
//
//	snap, err := client.Open(ctx, "rsync://mirror.example.org/pub", client.Options{})
//	if err != nil { ... }
//	b, err := snap.ReadFile("releases/latest/SHA256SUMS")
//	...
//	if err := snap.Close(); errors.Is(err, client.ErrSnapshotGone) { ... }
//
// # Contract
//
//   - [Open] takes any address the seqmirror tools take for an upstream: a
//     path (local disk, NFS), an rsync address (rsync://host/module,
//     host::module, host:path) and, through the same transport layer,
//     http:// and https:// where this build has the HTTP transport. It reads
//     the snapshot N the address serves (its current), fetches
//     snapshots/N.manifest and validates it whole (format, checksum, the
//     number N, safe paths: docs/protocol.md section 3) before it returns.
//     N is then pinned: every later read is of snapshot N, never of
//     whatever the mirror serves by then, so a program sees one whole
//     snapshot or an error.
//   - The manifest is held in memory (about 100 bytes plus the path per
//     record: some 150 MB for a million files). [Snapshot.Stat] is a binary
//     search, [Snapshot.List] reads a directory's records, [Snapshot.Entries]
//     yields every record in canonical order. The top directory of the
//     snapshot has no record: List("") lists it.
//   - [Snapshot.Open] (and [Snapshot.ReadFile]) hands out bytes only after
//     they were checked: the whole file is fetched through the transport
//     into a private scratch directory (the transport checks it), then
//     opened and checked again against its record's size and content hash
//     (the whole SHA-256 of a version 2 record, the xxhash64 of version 1)
//     through the very descriptor handed out, rewound (so the guarantee
//     does not rest on the transport); the scratch name is removed at
//     once, the open file stays readable. A reader gets an error
//     wrapping [ErrCorrupt], never wrong bytes, and never a part of a file.
//     A file costs its size in scratch space until its reader is closed,
//     and a local path is copied, not read in place (an in-place read could
//     change after its check).
//   - Only regular files are opened. A directory or a symlink record is
//     refused with [ErrNotFile]: Stat it to read a symlink's Target, which
//     this package never follows (it may point anywhere, outside the
//     snapshot included); a caller that wants to follow one resolves the
//     target against the link's directory and Opens the result.
//   - [Snapshot.Check] and [Snapshot.Close] ask the upstream whether it
//     still holds snapshot N, served or not: snapshots/N.manifest is still
//     there and still the one read at open (pruning removes it first). A
//     transport that can stat (path, rsync) compares its size, in one
//     call; another one fetches it again and compares its footer, whose
//     checksum covers the rest. If it was pruned (or another snapshot took
//     its number, a rollback) the error wraps [ErrSnapshotGone]. Close
//     also removes the scratch directory and closes the upstream. A file
//     read fails with ErrSnapshotGone too when the snapshot disappeared
//     before its fetch.
//   - With [Options].TrustKeys, Open also verifies the pinned snapshot's
//     signature (docs/protocol.md section 10: a trusted minisign key, a
//     statement for N over exactly the manifest read; from a partial
//     mirror over its snapshots/N.full, the master's manifest, which the
//     manifest read must be a subset of, record for record, else
//     [ErrCorrupt]) and the timestamp, before it returns; a refusal wraps
//     [ErrUntrusted]. [Snapshot.State]
//     says StateVerified, or StateFrozen once the newest timestamp has
//     expired (StateUnsigned without keys). With Options.StateFile it keeps
//     the highest signed snapshot seen there (replaced atomically) and
//     refuses an older one unless Options.AllowRollback.
//   - Errors wrap sentinels: [ErrNotFound] (the path has no record; it also
//     matches fs.ErrNotExist), [ErrNotFile], [ErrNotDir], [ErrNoSnapshot],
//     [ErrSnapshotGone], [ErrCorrupt] (a damaged file, manifest, seq file
//     or current: the transport's error stays wrapped too), and the
//     transport's [ErrUnavailable] (worth a retry) and [ErrBadAddress].
//     After Close, methods that reach the upstream fail with fs.ErrClosed.
//   - A Snapshot is safe for concurrent use. Stat, List and Entries only
//     read the manifest in memory; Open and Check go to the upstream, one
//     at a time (upstreams are not safe for concurrent use).
//
// docs/clients.md shows the same reading done from a shell (cat, rsync,
// curl) and how a client tells fresh, updating, stale and torn;
// docs/protocol.md is the normative reference.
package client
