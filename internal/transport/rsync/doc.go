// Package rsync reads an upstream export root through the system rsync
// binary, run as a subprocess (it never speaks the rsync protocol itself).
//
// transport.Open opens it (through [Open]) for these addresses (see
// [ParseAddress]), with upstream.Options (Options.Rsync: binary, remote
// shell, extra options, default daemon port):
//
//	rsync://[user@]host[:port]/module[/path]   rsync daemon
//	[user@]host::module[/path]                 rsync daemon
//	[user@]host:path                           remote shell (Options.Rsync.Rsh, default ssh)
//
// # Contract
//
//   - Every rsync run is bounded: --timeout (I/O stall) and, for daemons,
//     --contimeout (connect) have defaults, and the context kills the run.
//     A daemon must also answer the greeting within the connect timeout
//     (--debug=proto prints a line when it has; a run without it by then is
//     killed): rsync's own --contimeout covers only the TCP connect. After
//     a timeout every later call fails at once, so a run waits for a
//     silent upstream once, not once per step or retry.
//   - rsync never creates what a snapshot may not hold: every run ends its
//     options, after Options.Rsync.Extra, with --no-devices --no-specials
//     --chmod=ugo-s,-t. What rsync reports skipping (--info=nonreg1,skip1:
//     a device, fifo or socket; a symlink where -l was not given; a file
//     over --max-size) is an error that says what the entry is upstream
//     (asked with --list-only), never a later "no such file".
//   - The cheap poll: [Upstream.Seq] fetches seq/begin, seq/end and the
//     current symlink (not what it points to) in ONE rsync run into a fresh
//     private dir below Options.ScratchDir (mirror-sync: ROOT/.work), and
//     remembers the values it did not return. The same run asks for the
//     snapshots/ entry alone: a root that has it reads a missing seq file
//     as 0. A seq file that is not a regular file, or over 21 bytes, is
//     corrupt. Seq
//     "end" (the start of a poll) reads afresh; a following Seq "begin" or
//     Current is answered from the same run if nothing else came in between
//     and it is under 10s old. Likewise a Seq "end" that directly follows a
//     Seq "begin" which ran rsync (mirror.Sync's check after a copy, then
//     its next poll) is answered from that run. So mirror.Sync's no-op poll (Seq
//     "end", then Current) and SyncClassic's (end, then begin) cost one
//     small rsync run, whatever the tree's size. Fetch, FetchManifest and
//     FetchTree forget the remembered values, so a Seq after a copy always
//     reads the upstream afresh.
//   - [Upstream.Fetch] pulls exactly the listed files of snapshots/N/ (never
//     through current/) in one rsync run with --files-from --from0 into a
//     staging directory beside the target (same filesystem), renames them
//     into place, then hashes every one and compares it with its manifest
//     record; a mismatch wraps tree.ErrHashMismatch. The --files-from
//     base is the module root, never a subdirectory: rsync 3.5's daemon
//     without chroot reports every file as vanished otherwise.
//   - [Upstream.FetchSnapshot] (transport.SnapshotFetcher, used by mirror.Sync
//     for a first copy or a rebuild) pulls snapshots/N/ whole in one
//     recursive run (-rlpt: no owners, devices or specials) straight into
//     the work dir, whose directories the mirror made; the run is stopped
//     once more than the manifest's total size plus 1 MiB has come
//     (ErrUnlisted: a hostile upstream's extras cannot fill the disk). It
//     then checks the tree in one streaming pass over the manifest (memory
//     O(depth), whatever the snapshot's size): anything the manifest does
//     not list (each directory must hold as many entries as the manifest
//     lists in it: ErrUnlisted), a type or symlink-target difference or a
//     missing entry wraps tree.ErrHashMismatch, and every regular file
//     is hashed (and its mode and mtime checked) by a worker pool before
//     the flip.
//   - Daemon runs pass --sockopts=TCP_NODELAY: the protocol is a chain of
//     small messages that Nagle would hold back (~40ms each).
//   - rsync's exit codes are mapped: 24 (vanished files) and "No such file"
//     failures of snapshot files wrap transport.ErrVanished; 5, 10, 12, 30 and
//     35 (daemon refused, socket, protocol stream, timeouts) wrap
//     transport.ErrUnavailable; 1-4 are configuration errors quoting rsync's
//     stderr; anything else (e.g. 23, partial transfer) is a plain error.
//   - [Upstream.FetchManifest] copies with --max-size the 4 GiB cap or half
//     the space free where the manifest goes, whichever is less: a larger
//     manifest is refused before a byte of it is written.
//   - [Upstream.FetchTree] implements transport.TreeFetcher for classic
//     mode: the whole tree but seq/, -rlpt (no owners), with --delete,
//     --link-dest and --modify-window=-1 (mtimes compared to the
//     nanosecond); a device or special file upstream refuses the copy
//     (tree.ErrUnsupportedType).
//   - Nothing is written outside the directories the caller names and the
//     poll's scratch dir, removed after each poll. Every write of this
//     package's own (scratch and staging directories, file lists, the
//     renames out of the stage, mode and mtime fixes) goes through the
//     fsys.FS the upstream was opened with; rsync itself writes only into
//     directories made through it.
//
// An Upstream is not safe for concurrent use.
package rsync
