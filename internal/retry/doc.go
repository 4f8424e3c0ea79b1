// Package retry is the one retry loop of seqmirror: publish retrying a
// source that changed while it was copied, mirror-sync retrying an upstream
// that moved or did not answer, publish's quorum wait polling its mirrors
// until a deadline, all with a bounded number of attempts and a doubling
// backoff, optionally capped ([Do], [Policy]).
//
// An attempt that should be made again returns an [*Error] ([Again]); a
// policy may widen what is retried ([Policy.Retryable]). When the retries
// are spent, [Do] returns an [*Exhausted] wrapping the last attempt's error,
// so errors.Is and errors.As still see it; the caller words what to do next.
// Nothing here writes anything: an attempt cleans up after itself. Do is
// safe for concurrent use (it keeps no state between calls).
package retry
