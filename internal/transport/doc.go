// Package transport reads an upstream export root: its seq files, the
// snapshot its current serves, a snapshot's manifest, and a snapshot's files.
//
// An [Upstream] never writes outside the directory it is given, and the files
// [Upstream.Fetch] leaves there have been checked against the size and
// xxhash64 of their manifest records; a file that does not match is an error
// wrapping tree.ErrHashMismatch. An error wrapping [ErrVanished] means the
// snapshot disappeared upstream (pruned) mid-transfer: the caller should
// start over from reading the seq files. [ErrUnavailable] marks transient
// failures worth a retry with backoff.
//
// [Open] picks the implementation from the address: kinds registered with
// [Register] first (package transport/rsync: rsync://, host::module,
// host:path), else a path, read directly (local disk or NFS). Upstreams
// that can also copy a plain tree with no snapshots (classic mode)
// implement [TreeFetcher]. Upstreams are not safe for concurrent use.
//
// A path upstream ([Local]) may be hostile: every file it reads (seq files,
// manifests, snapshot files, classic copies) is opened with fsys.OpenBeneath,
// following no symlink below the upstream's root and reading only regular
// files. A fifo, a device or a symlink where a file should be is refused at
// once: seqfile.ErrCorrupt for a seq file, manifest.ErrCorrupt for a
// manifest, tree.ErrHashMismatch for a snapshot file, [ErrVanished] for
// a classic copy (the tree changed since it was listed).
package transport
