// Package quorum is publish's wait for its mirrors: after the master
// flipped to snapshot N, [Wait] polls a list of mirrors (any address
// transport.Open accepts) until K of them serve N or a newer snapshot, or
// until a deadline.
//
// A mirror counts when one check (the one rule: check, in check.go)
// reads, in this order, its seq/end E and seq/begin equal to E (not
// mid-update), a current of N or more, the identity (export.ManifestID) of
// its snapshot N's manifest equal to the master's, and seq/begin still E (it
// did not start an update while it was read). A mirror's seq counters are
// its own (each of its updates bumps them by one), so they say whether it is
// idle, not which snapshot it has: the number comes from current. A mirror
// that serves an N with another manifest (another master's, or a publish
// into the mirror's root) never counts. Once counted, a mirror is not
// checked again.
//
// Each mirror is polled by its own goroutine, through its own upstream,
// opened for each check and closed after it (an upstream that timed out
// stays timed out for the run it was opened for); each check is bounded by
// a per-request timeout; between checks the goroutine waits, starting at
// an interval that doubles up to a cap (retry.Do). When K mirrors count,
// the other polls are cancelled; [Wait] returns when every goroutine has.
//
// Nothing here writes anything but the fetched manifests, in a private
// directory below [Spec.ScratchDir] that Wait removes before it returns
// (and whatever scratch files the transports Open makes keep, such as
// rsync's copies of seq/);
// it never changes the master's root or a mirror. A crash leaves at most
// that directory. A failure to reach the quorum is [ErrNotReached]; the
// [Result] says which mirrors counted and what each other one served or
// why it could not be read. Wait is safe for concurrent use (it keeps no
// state between calls); a Spec's Open must be.
package quorum
