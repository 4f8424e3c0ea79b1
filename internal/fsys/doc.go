// Package fsys is seqmirror's filesystem seam and its one durable-write helper.
//
// Every package that touches disk takes an [FS]: an [afero.Fs] that can also
// lstat, read and make symlinks, make hard links and flush a whole filesystem.
// [OS] is the real thing; tests wrap it (see testutil/faultfs) to fail the Nth
// rename, sync or write without any package globals.
//
// # Durability contract
//
// [WriteFile] is the only way seqmirror writes a small file durably: it writes
// a temp file in the same directory, fsyncs it, closes it, renames it over the
// target and fsyncs the directory. After WriteFile returns nil the new content
// survives a crash; if it returns an error (or the process dies part way) the
// target holds either its old content or the new content, never a mix, and at
// worst a stray "*.tmp-*" file is left beside it, which [RemoveTemps] cleans.
//
// [Symlink] replaces a symlink atomically in the same way (new link under a
// temp name, rename over the old one, fsync the directory), so a reader that
// resolves it sees the old target or the new one, never a missing link.
//
// # Reading a tree it does not trust
//
// [OpenBeneath] (and [BeneathDir] for many files) is how seqmirror reads a
// file of a tree someone else controls: an upstream on a local path or NFS,
// a source's own seq files, any seq file. It follows no symlink below the
// root it is given and opens only regular files, without ever blocking on a
// fifo or reading a device; what it refuses wraps [ErrSymlink] or
// [ErrNotRegular] ([Refused]) and says what it found, never what it holds.
//
// Nothing here takes locks; callers serialise writers (see package export).
package fsys
