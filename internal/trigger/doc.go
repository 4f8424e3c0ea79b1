// Package trigger is seqmirror's authenticated push trigger: one short,
// signed HTTP request that tells a mirror "snapshot N (or newer) is
// available upstream", so it syncs at once instead of at its next poll.
// docs/protocol.md ("Triggers") is normative; this is its code.
//
// # Wire format
//
// A trigger is POST /trigger (the path is the receiver's choice; [Send]
// appends /trigger to a URL with no path) with a JSON [Message] as the body
// (at most [MaxBody] bytes) and the header
//
//	Seqmirror-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>
//
// as Stripe signs its webhooks. The message's sent time is t (to the
// second) and its nonce is 128 random bits in hex. [Sign] is the one
// function that computes the signature; both sides use it.
//
// # What a receiver accepts
//
// [Verifier.Verify] accepts a request only if a v1 signature matches
// (compared in constant time, [hmac.Equal]), t is within MaxSkew (default 5
// minutes) of the receiver's clock in either direction, the body is a
// message whose Sent is t and whose nonce it has not seen within the
// window. It remembers each accepted nonce until t + MaxSkew, when a replay
// would be stale anyway, and at most MaxNonces of them: beyond that it
// refuses new triggers ([ErrBusy], 503) rather than forget a nonce early.
// A refused request changes nothing but the log: [Verifier.Handler] answers
// 401 (bad signature, stale, replay), 400 (not a message), 413 (too large),
// 405 (not POST) or 503 (busy) and logs one line; an accepted one is passed
// to the accept function, which should only enqueue, and answered 202.
// Snapshot 0 means "no number given": sync with whatever the upstream serves.
//
// # Sending
//
// [Send] signs and posts one message, filling its Sent and Nonce afresh for
// every attempt when they are zero (a retry is a new message, so a receiver
// that saw the first never takes the retry for a replay), and retries what
// may pass (no answer, 5xx) through package retry with a short policy. A
// 4xx answer is final ([ErrRejected]). [Broadcast] sends one message to
// many receivers in parallel. A daemon forwarding a trigger downstream
// sends a new message (its own Origin, Sent and Nonce zero), never the one
// it received.
//
// # Concurrency and state
//
// A Verifier is safe for concurrent use; its nonce memory lives in the
// process only (a restarted receiver forgets it, and so accepts a replay of
// a trigger sent within the last MaxSkew: harmless, since a trigger only
// asks for a sync that the receiver would make anyway). Nothing here writes
// to disk. Send and Broadcast are safe for concurrent use.
package trigger
