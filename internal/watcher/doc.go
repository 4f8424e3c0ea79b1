// Package watcher runs a job each time a directory tree has changed and
// then settled: the loop of `publish --watch`.
//
// [Run] watches the tree recursively and calls its job once at the start,
// then once after each burst of changes. A burst ends when the tree has
// had no change for [Options.Quiet], or at the latest [Options.MaxDelay]
// after its first change while changes go on. Before each job, Run asks
// [Options.Busy] whether the tree's own writer is mid-update (publish: the
// source's seq/begin is ahead of its seq/end); while it is, no job starts,
// whatever the maximum delay, and Run asks again on the next change or
// after the quiet window. Changes made while a job runs are not lost: they
// start the next burst, and the next job runs after it settles.
//
// How changes are seen: through inotify (github.com/fsnotify/fsnotify), one
// watch on every directory, a directory that appears being added (with
// everything below it) as its creation is seen; an event queue overflow
// counts as a change. Where inotify cannot see every change, Run polls:
// every [Options.PollInterval] it lists the tree (lstat of every entry)
// and compares a digest of the listing with the previous one. It polls
// when the tree's root or any directory in it is on a filesystem whose
// changes may be made by another machine or by a user-space process
// (statfs type NFS, CIFS/SMB, FUSE, 9p, Ceph, AFS, GlusterFS, Lustre...:
// [RemoteFS]), when the inotify watch limit is reached (at the start or
// later, when a new directory cannot be watched: Run then switches to
// polling for good), when the root directory itself is removed or renamed
// (its watch goes with it; polling looks at the path), or when
// [Options.ForcePoll] says so. It logs at the
// start (and at a switch) which way it watches and why.
//
// With [Options.Every], a job also runs that long after the last one
// ended while nothing changes (a writer that must act on time as well as
// on change: publish --watch refreshes a signed timestamp so).
//
// A job that fails is logged and tried again after a backoff that starts
// at [Options.Backoff] and doubles up to [Options.MaxBackoff] (changes in
// the meantime are folded in, not started earlier); a job that succeeds
// resets it. A job's failure never ends Run.
//
// Run returns nil once its context is done (the job in progress gets the
// same context: it finishes or abandons its work as it does for any
// cancellation), or an error if the tree cannot be watched at all (its
// root is missing). Nothing here writes anything; the job does. Run keeps
// its state to itself: any number of Runs may go on at once, each calling
// its own job from one goroutine, never two calls at once.
package watcher
