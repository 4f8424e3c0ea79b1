// Package sign is seqmirror's use of minisign (docs/protocol.md section
// 10): the master signs, every tier verifies, nobody re-signs.
//
// Two kinds of signature file, both minisign signatures (algorithm "ED",
// Ed25519 over the BLAKE2b-512 of the message, as `minisign -S` makes) of
// a snapshot's manifest file, by the master's key, with a [Statement] as
// the trusted comment:
//
//   - snapshots/N.manifest.minisig, the snapshot signature (KindSnapshot):
//     "seqmirror-snapshot/1 snapshot=N manifest-sha256=HEX time=T";
//   - seq/timestamp.minisig, the timestamp (KindTimestamp), which adds
//     "expires=E": the master vouches at T that N is its newest snapshot
//     and will vouch again before E (TUF's timestamp role). A reader that
//     holds only expired timestamps is frozen.
//
// `minisign -V -p KEY.pub -m snapshots/N.manifest` verifies either by
// hand (-x seq/timestamp.minisig for the timestamp).
//
// # Contract
//
//   - [Trust.Verify] accepts a signature only if its key ID is one of the
//     trusted keys, both Ed25519 signatures (the message's and the trusted
//     comment's) verify, the trusted comment is a well-formed statement of
//     the kind asked for, and, when the caller holds the manifest's bytes
//     ([Digest]), the statement's manifest-sha256 is theirs. Every
//     refusal wraps one of [ErrMalformed], [ErrUntrusted] or [ErrMismatch];
//     an expired timestamp is [ErrExpired] (a state, not a forgery).
//   - Nothing here writes an export root; [WriteKeyPair] writes the two
//     key files (the secret one created with O_EXCL and mode 0600, then
//     the public one), and never replaces an existing file.
//   - Keys, a [Trust] and a [Signer] are immutable once made and safe for
//     concurrent use. Nothing is done at package initialisation.
package sign
