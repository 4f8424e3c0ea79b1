// Package server serves an export root read-only over HTTP: the handler
// behind `serve`, its server (timeouts, a connection limit, graceful
// shutdown), its Prometheus metrics, and the nginx configuration that
// serves a root the same way.
//
// # What is served
//
// Only what a client of the export layout needs, and nothing else: seq/begin,
// seq/end, seq/current (the snapshot pointer), status.json,
// snapshots/N.manifest and snapshots/N/... of complete snapshots (and a
// partial snapshot's N.full and N.filter), HTML
// listings of directories for people, /current/PATH (a 302 redirect to
// /snapshots/N/PATH for the N served at that moment) and /metrics. Everything
// else is 404: .work/, .lock, the current symlink itself, seq/checked, temp
// files (names holding fsys.TempMarker) anywhere, and any request path that is
// not clean (no "." or ".." segment, no empty segment, no NUL).
//
// Files and directories are opened below the root with openat2
// (RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS, non-blocking, regular files only),
// or fsys.BeneathDir's walk where the kernel has no openat2: no symlink is
// followed on disk. Files up to 32 KiB are read whole and written with the
// headers in one write; larger ones go out by sendfile (the connection
// limit's wrapper keeps the TCP connection's ReadFrom, without which
// net/http copies through a buffer). A
// symlink of a snapshot (its manifest's record) whose target stays inside
// the snapshot is answered with a redirect to the target; one that leaves it
// is 404.
//
// # Caching
//
// Snapshot files get a strong ETag from their manifest record,
// "<hash>-<size>" with the record's 64-bit hash (a version 2 record's: the
// first 8 bytes of its SHA-256; version 1: its xxhash64), Cache-Control "public, max-age=31536000, immutable",
// and http.ServeContent's Range, HEAD and conditional requests. A file whose
// size differs from its record is refused (500), never served with the
// record's ETag. Manifests are immutable too (ETag from their footer's hash),
// and come in gzip to a request that takes it, without a Range (ETag
// "...-gz", Vary: Accept-Encoding; compressed once per manifest and kept
// for the last 4, each up to 64 MiB: gzip.go);
// the seq files, the pointer and status.json are "no-cache" with an ETag of
// their content, so a poller's conditional GET costs a 304.
//
// The records are looked up in a per-snapshot index built lazily from the
// manifest on the first request for a file of that snapshot (concurrent
// requests wait for the one build) and kept for at most Options.Indexes
// snapshots, least recently used first out. An index holds 24 bytes per file
// or directory (the xxhash64 of the path, the 64-bit content hash, the size) plus
// the snapshot's symlinks, so a 1M-file snapshot costs ~24 MB. A snapshot
// is immutable, so an index never goes stale; the manifest's identity
// (device, inode, size, mtime) is checked again when an index is used a
// second or more after the last check, so that a number reused after a
// rollback gets a new index.
//
// A plain GET or HEAD of a small file (no Range, no condition) is answered
// with http.ServeContent's headers without going through it.
//
// # The fast path
//
// Under Serve with ServerOptions.Files, a plain (not TLS) connection
// starts on a fast path that answers the request mirrors and downloads
// make most — a GET or HEAD of a snapshot file by its canonical
// /snapshots/N/PATH, HTTP/1.1, with no range, no condition and no body —
// itself: the same status, headers (Date aside, which is the time) and
// body as the Handler through net/http, the headers and a file of up to
// 32 KiB in one write, a bigger file by sendfile. Its request parser is
// strict: a request line of GET or HEAD, an origin-form target of
// characters that need no escaping, HTTP/1.1, CRLF line ends, exactly one
// non-empty Host, and no field that changes the answer or the framing
// (Range, If-*, Content-Length, Transfer-Encoding, Expect, Upgrade, a
// Connection but keep-alive). The first request it does not take — any
// other, any it cannot parse so, any that would not be a 200 (a
// directory, a link, a missing or damaged file) — goes to net/http with
// the connection and the bytes read of it, and the connection stays
// there; so every refusal, error and redirect is net/http's and the
// Handler's. Its timeouts are net/http's (HeaderTimeout from a request's
// first byte to the end of its head, IdleTimeout between requests, a write
// deadline per write); at shutdown its idle connections close at once and
// one answering finishes its answer. TLS connections (and HTTP/2 over
// them) are net/http's throughout; so is h2c, which the fast path hands
// over on its preface.
package server
