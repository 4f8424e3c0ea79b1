// Package transport reads an upstream export root: its seq files, the
// snapshot its current serves, a snapshot's manifest, and a snapshot's files.
//
// An [Upstream] never writes outside the directory it is given, and the files
// [Upstream.Fetch] leaves there have been checked against the size and
// content hash of their manifest records (tree.CheckHash: the whole SHA-256
// of a version 2 record, hashed in the pass that copies it; the xxhash64 of
// version 1); a file that does not match is an error
// wrapping tree.ErrHashMismatch. An error wrapping [ErrVanished] means the
// snapshot disappeared upstream (pruned) mid-transfer: the caller should
// start over from reading the seq files. [ErrUnavailable] marks transient
// failures worth a retry with backoff.
//
// [Open] picks the implementation from the address (package transport/web
// for http:// and https://, package
// transport/rsync for rsync://, host::module and host:path; else a path,
// read directly from local disk or NFS: [Local]) and opens it with all its
// [Options]: nothing is set on an upstream after Open. The interfaces,
// errors and Options are defined in the leaf package transport/upstream,
// which transport packages implement, and re-exported here; a new
// transport joins with one case in Open and one row in the conformance
// suite (conformance_test.go), which every transport passes. Upstreams
// that can also copy a plain tree with no snapshots (classic mode)
// implement [TreeFetcher]. Upstreams are not safe for concurrent use.
//
// Every write an upstream makes itself goes through the fsys.FS it was
// opened with (the seam fault injection wraps); what an rsync subprocess
// writes, it writes into directories made through it.
//
// A path upstream ([Local]) may be hostile: every file it reads (seq files,
// manifests, snapshot files, classic copies) is opened with fsys.OpenBeneath,
// following no symlink below the upstream's root and reading only regular
// files. A fifo, a device or a symlink where a file should be is refused at
// once: seqfile.ErrCorrupt for a seq file, manifest.ErrCorrupt for a
// manifest, tree.ErrHashMismatch for a snapshot file, [ErrVanished] for
// a classic copy (the tree changed since it was listed).
package transport
