package sign

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"fmt"
	"os"
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
		return nil, fmt.Errorf("%w: no public key file given", ErrMalformed)
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
		return 0, nil, fmt.Errorf("%w: not a minisign public key: %w", ErrMalformed, err)
	}
	raw, err := base64.StdEncoding.DecodeString(k.String())
	if err != nil || len(raw) != 10+ed25519.PublicKeySize {
		return 0, nil, fmt.Errorf("%w: public key encoding", ErrMalformed)
	}
	return k.ID(), ed25519.PublicKey(raw[10:]), nil
}

// IDs lists the trusted key IDs (minisign's notation).
func (t *Trust) IDs() []string {
	var ids []string
	for id := range t.keys {
		ids = append(ids, KeyID(id))
	}
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
