// Package web reads an upstream export root over HTTP or HTTPS, as any web
// server serves it as static files (nginx, Apache, seqmirror's own serve).
//
// transport.Open opens it (through [Open]) for http:// and https://
// addresses, the URL of the export root, with upstream.Options (Timeout,
// ConTimeout, Workers, HTTP.CAFile).
//
// # Contract
//
//   - One net/http client per Upstream: keep-alive connections, HTTP/2 when
//     the server offers it over TLS, or over plain http:// once an answer
//     says the server takes it with prior knowledge (export.H2CHeader, sent
//     by serve and the daemon; not through a proxy; an HTTP/2 request that
//     fails turns it off for the rest of the Upstream's life), proxies from the environment
//     (HTTP_PROXY, HTTPS_PROXY, NO_PROXY), TLS with the system roots plus
//     the PEM certificates of Options.HTTP.CAFile. Every request asks for
//     `Accept-Encoding: identity`, but a manifest's, which asks for
//     `gzip` and decodes a gzip answer (the decoded bytes bounded as a
//     manifest's; docs/protocol.md section 7); a response with any other
//     Content-Encoding, or a manifest said to be gzip that is not, is
//     refused ([ErrEncoding]). Requests
//     for what changes in place (seq files, status.json) carry
//     `Cache-Control: no-cache`, so that a caching proxy revalidates them;
//     snapshot files and manifests are immutable and may come from a cache.
//   - Timeouts: a request on which no byte moves for Options.Timeout (the
//     response header included), or a connection not made (TLS handshake
//     included) within Options.ConTimeout, fails with
//     upstream.ErrTimedOut; after that every later call fails at once, so
//     a run waits for a silent upstream once.
//   - Redirects are followed only to the same scheme and host (at most 5);
//     one to another host or scheme is refused ([ErrRedirect], wrapping
//     upstream.ErrRefused): mirror from the address it names instead.
//   - Statuses: 404 and 410 are "not there"; 401 and 403 wrap
//     upstream.ErrRefused; 408, 429 and 5xx, like a connection refused or
//     reset, wrap upstream.ErrUnavailable; any other is a plain error.
//   - The poll: [Upstream.Seq] is one GET of seq/begin or seq/end (a
//     missing one reads as 0, a root never updated); [Upstream.Current] is
//     one GET of seq/current, the snapshot pointer (docs/protocol.md), and
//     its Last-Modified is when the upstream started serving it. So a
//     no-op poll is two small GETs over one kept-alive connection. A root
//     that has published (seq/end > 0) but has no seq/current was written
//     by a seqmirror that predates the pointer: [ErrNoPointer]. One with
//     neither seq files, pointer nor snapshots/ (a HEAD answers 404) is no
//     export root at all: [ErrNotRoot].
//   - [Upstream.FetchManifest] streams snapshots/N.manifest into the new
//     file it is given, refusing more than upstream.MaxManifestSize bytes
//     (manifest.ErrCorrupt) or half the space free there (an endless body
//     does not fill the disk), and a body that does not start as a
//     manifest does (an HTML error page sent with status 200) before a
//     byte is written; nothing is left behind; 404 is upstream.ErrVanished.
//   - [Upstream.Fetch] GETs the listed files of snapshots/N/ in parallel
//     (Options.Workers, default [DefaultWorkers]), each streamed straight
//     into its place while it is hashed. Content-Length is never trusted: a body longer than the
//     record's size is refused as soon as one byte too many has come, a
//     shorter one or one whose content hash (SHA-256 for a version 2
//     record) differs is refused after it
//     (tree.ErrHashMismatch); a failed file is removed. A transient failure
//     (upstream.ErrUnavailable, not a timeout) is retried per file with
//     backoff; 404 wraps upstream.ErrVanished (a pruned snapshot).
//   - Options.Progress hears of each Fetch call's bytes as its files
//     complete (from one goroutine at a time).
//   - It implements upstream.Prober (HEAD requests, and GETs of small
//     files) for `mirror-sync check` and the lag: a directory is what
//     answers with a redirect to the same path plus "/"; a server follows
//     symlinks itself, so over HTTP nothing is seen as a symlink.
//   - [Upstream.FetchSnapshot] (upstream.SnapshotFetcher, a first copy)
//     fetches every file of a snapshot as Fetch does, handed to the
//     workers as one pass over the manifest reaches it (no pause between
//     chunks), one directory's files (at most 64) to a worker at a time so
//     that the workers create files in different directories, each file
//     given its record's mode and mtime on the open descriptor before it
//     is closed; it makes the symlinks the manifest lists. It asks only for
//     what the manifest lists, so whatever else the upstream's snapshot
//     directory holds is never fetched.
//   - It does not implement upstream.TreeFetcher: classic mode needs rsync
//     or a path.
//   - Nothing is written outside the directories the caller names; every
//     write goes through the fsys.FS the upstream was opened with.
//
// An Upstream is not safe for concurrent use.
package web
