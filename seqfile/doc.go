// Package seqfile reads and writes seqmirror's sequence-number files.
//
// A seq file holds one unsigned decimal number (no sign, no leading zeros
// except "0" itself, at most 20 digits) followed by one newline, so `cat`
// shows it. Nothing else is allowed: [Parse] rejects anything else with an
// error wrapping [ErrCorrupt]. A missing file reads as [ErrNotExist]-wrapped;
// [Counters] treats a missing file as 0 (a root that has never been updated).
//
// Writes go through fsys.WriteFile, so after [Write] returns nil the new value
// survives a crash and a reader never sees a partial number. Readers need no
// lock. Writers must be serialised by the caller (package export's lock).
//
// The begin/end protocol: a server bumps begin durably before it changes its
// tree and sets end to the same value once the change is complete. So
// begin == end means idle, begin > end means an update is running or died,
// and a reader that read end=E before copying and begin=B after copying knows
// nothing started meanwhile exactly when B == E.
package seqfile
