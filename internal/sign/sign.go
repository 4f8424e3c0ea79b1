package sign

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"fmt"
	"os"
	"slices"
	"time"

	"aead.dev/minisign"
)

// A Signer signs statements with the master's secret key.
type Signer struct {
	id  uint64
	key ed25519.PrivateKey
}

// ID is the signing key's ID.
func (s *Signer) ID() uint64 { return s.id }

// Sign returns the signature file of the manifest with digest d, st as
// its trusted comment (st.SHA256 is set from d).
func (s *Signer) Sign(st Statement, d Digest) []byte {
	st.SHA256 = d.SHA256
	st.Time = st.Time.UTC().Truncate(time.Second)
	st.Expires = st.Expires.UTC().Truncate(time.Second)
	msg := ed25519.Sign(s.key, d.BLAKE2b[:])
	comment := st.String()
	global := ed25519.Sign(s.key, append(bytes.Clone(msg), comment...))
	sig := minisign.Signature{
		Algorithm: minisign.HashEdDSA, KeyID: s.id,
		TrustedComment:   comment,
		UntrustedComment: "signature from seqmirror publish, key " + KeyID(s.id),
	}
	copy(sig.Signature[:], msg)
	copy(sig.CommentSignature[:], global)
	text, _ := sig.MarshalText() // the algorithm is valid
	return append(text, '\n')
}

// Trust is the set of public keys a reader trusts (several during a key
// rotation).
type Trust struct{ keys map[uint64]ed25519.PublicKey }

// LoadTrust reads public key files (minisign's format). No file is an
// error: a reader without keys verifies nothing, and says so.
func LoadTrust(paths []string) (*Trust, error) {
	if len(paths) == 0 {
		return nil, fmt.Errorf("%w: no public key file given", ErrBadKey)
	}
	t := &Trust{keys: map[uint64]ed25519.PublicKey{}}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("read trusted key: %w", err)
		}
		id, k, err := ParsePublicKey(b)
		if err != nil {
			return nil, fmt.Errorf("trusted key %s: %w", p, err)
		}
		t.keys[id] = k
	}
	return t, nil
}

// ParsePublicKey reads a public key file's content (or its base64 line).
// It returns the key ID and the Ed25519 key.
func ParsePublicKey(b []byte) (uint64, ed25519.PublicKey, error) {
	var k minisign.PublicKey
	if err := k.UnmarshalText(bytes.TrimSpace(b)); err != nil {
		return 0, nil, fmt.Errorf("%w: not a minisign public key: %w", ErrBadKey, err)
	}
	raw, err := base64.StdEncoding.DecodeString(k.String())
	if err != nil || len(raw) != 10+ed25519.PublicKeySize {
		return 0, nil, fmt.Errorf("%w: public key encoding", ErrBadKey)
	}
	return k.ID(), ed25519.PublicKey(raw[10:]), nil
}

// IDs lists the trusted key IDs (minisign's notation).
func (t *Trust) IDs() []string {
	var ids []string
	for id := range t.keys {
		ids = append(ids, KeyID(id))
	}
	slices.Sort(ids)
	return ids
}

// Verify checks the signature file sig (docs/protocol.md section 10) and
// returns its statement: a key t trusts, both signatures valid, a
// statement of the given kind. With d (the manifest's digest; nil when
// the caller does not hold the manifest) the message signature and the
// statement's manifest-sha256 are checked against it too. It does not
// compare the snapshot number or the expiry: the caller knows what it
// expects.
func (t *Trust) Verify(sig []byte, kind string, d *Digest) (Statement, error) {
	var s minisign.Signature
	if len(sig) > MaxSignatureSize {
		return Statement{}, fmt.Errorf("%w: %d bytes, more than %d", ErrMalformed, len(sig), MaxSignatureSize)
	}
	if err := s.UnmarshalText(sig); err != nil {
		return Statement{}, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if s.Algorithm != minisign.HashEdDSA {
		return Statement{}, fmt.Errorf("%w: legacy (non-prehashed) signature", ErrMalformed)
	}
	k, ok := t.keys[s.KeyID]
	if !ok {
		return Statement{}, fmt.Errorf("%w: signed by key %s, trusted: %v", ErrUntrusted, KeyID(s.KeyID), t.IDs())
	}
	pub := k
	if !ed25519.Verify(pub, append(bytes.Clone(s.Signature[:]), s.TrustedComment...), s.CommentSignature[:]) {
		return Statement{}, fmt.Errorf("%w: the trusted comment's signature does not verify with key %s", ErrUntrusted, KeyID(s.KeyID))
	}
	st, err := ParseStatement(s.TrustedComment)
	if err != nil {
		return st, err
	}
	if st.Kind != kind {
		return st, fmt.Errorf("%w: a %s statement where a %s one belongs", ErrMismatch, st.Kind, kind)
	}
	if d == nil {
		return st, nil
	}
	if st.SHA256 != d.SHA256 {
		return st, fmt.Errorf("%w: snapshot %d's statement names another manifest (its SHA-256 differs)", ErrMismatch, st.Snapshot)
	}
	if !ed25519.Verify(pub, d.BLAKE2b[:], s.Signature[:]) {
		return st, fmt.Errorf("%w: the signature of snapshot %d's manifest does not verify with key %s", ErrUntrusted, st.Snapshot, KeyID(s.KeyID))
	}
	return st, nil
}

// PeekStatement returns the statement of a signature file without
// verifying anything: for a root's own files, or to say what a refused
// signature claimed.
func PeekStatement(sig []byte) (Statement, error) {
	var s minisign.Signature
	if err := s.UnmarshalText(sig); err != nil {
		return Statement{}, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return ParseStatement(s.TrustedComment)
}

// SignSnapshot returns the signature file of snapshot n, whose manifest
// has digest d, and a timestamp for it valid for validity from now: what a
// publish writes (docs/protocol.md section 10).
func (s *Signer) SignSnapshot(n uint64, d Digest, now time.Time, validity time.Duration) (sig, timestamp []byte) {
	sig = s.Sign(Statement{Kind: KindSnapshot, Snapshot: n, Time: now}, d)
	return sig, s.SignTimestamp(n, d, now, validity)
}

// SignTimestamp returns a timestamp file for snapshot n (manifest digest
// d), signed at now and expiring validity later (at least a second).
func (s *Signer) SignTimestamp(n uint64, d Digest, now time.Time, validity time.Duration) []byte {
	now = now.UTC().Truncate(time.Second)
	return s.Sign(Statement{Kind: KindTimestamp, Snapshot: n, Time: now, Expires: now.Add(max(validity, time.Second))}, d)
}

// PeekKeyID returns the key ID a signature file names, verifying nothing.
func PeekKeyID(sig []byte) (uint64, error) {
	var s minisign.Signature
	if err := s.UnmarshalText(sig); err != nil {
		return 0, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return s.KeyID, nil
}

// VerifyTimestamp checks a timestamp file for a reader that serves (or
// reads) snapshot n, whose manifest has digest d (nil if unknown): Verify
// of a timestamp statement, against d when it names n. A timestamp naming
// another snapshot (a newer one the reader has not got yet, or an older
// one while a writer is between its flip and the timestamp's write) is
// valid; it vouches only for the time. Whether it is expired is the
// caller's to judge (Statement.Expired).
func (t *Trust) VerifyTimestamp(ts []byte, n uint64, d *Digest) (Statement, error) {
	st, err := t.Verify(ts, KindTimestamp, nil)
	if err != nil || st.Snapshot != n || d == nil {
		return st, err
	}
	return t.Verify(ts, KindTimestamp, d)
}

// VerifySnapshot is the check of snapshot n's signature file sig, whose
// manifest has digest d (docs/protocol.md section 10): a trusted key, a
// snapshot statement for n (a statement for another snapshot is
// ErrMismatch, said as such), and both the statement's SHA-256 and the
// Ed25519 signature matching these manifest bytes. nil sig (the upstream
// has none) is ErrMalformed.
func (t *Trust) VerifySnapshot(n uint64, d Digest, sig []byte) (Statement, error) {
	if sig == nil {
		return Statement{}, fmt.Errorf("%w: no signature of snapshot %d", ErrMalformed, n)
	}
	st, err := t.Verify(sig, KindSnapshot, nil)
	if err == nil && st.Snapshot != n {
		err = fmt.Errorf("%w: the signature is of snapshot %d, not %d", ErrMismatch, st.Snapshot, n)
	}
	if err != nil {
		return st, err
	}
	return t.Verify(sig, KindSnapshot, &d)
}
