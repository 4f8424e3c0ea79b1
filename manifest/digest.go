package manifest

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"hash"

	"github.com/cespare/xxhash/v2"
)

// Digest is the SHA-256 of a regular file's content, as a version 2 record
// carries it. The zero Digest means none (a version 1 record, or not a
// file): no content hashes to it.
type Digest [sha256.Size]byte

// IsZero reports whether d is the zero Digest (none).
func (d Digest) IsZero() bool { return d == Digest{} }

// String is d in 64 lowercase hex digits, as a record writes it.
func (d Digest) String() string { return hex.EncodeToString(d[:]) }

// Hash is the 64-bit content hash of a version 2 record: the digest's
// first 8 bytes, big-endian.
func (d Digest) Hash() uint64 { return binary.BigEndian.Uint64(d[:8]) }

// Sum is what a record says of a file's content besides its size.
type Sum struct {
	Hash   uint64
	Digest Digest // zero for a version 1 record
}

// Sum returns e's Hash and Digest.
func (e Entry) Sum() Sum { return Sum{Hash: e.Hash, Digest: e.Digest} }

// SetSum sets e's Hash and Digest.
func (e *Entry) SetSum(s Sum) { e.Hash, e.Digest = s.Hash, s.Digest }

// SumVersion is the version whose content hash e's Sum is: Version2 if it
// has a Digest, else Version1. Checking a file against e hashes it with
// NewHasher(e.SumVersion()).
func (e Entry) SumVersion() int {
	if e.Digest.IsZero() {
		return Version1
	}
	return Version2
}

// Hasher computes the Sum of a file's content, written to it in one pass,
// as a record of its version names it: xxhash64 for version 1, SHA-256 (and
// its first 8 bytes as the hash) for version 2. It is the one place that
// says how a file's content is hashed for a manifest.
type Hasher struct {
	h  hash.Hash      // SHA-256 (version 2)
	x  *xxhash.Digest // xxhash64 (version 1)
	n  int64
	v2 bool
}

// NewHasher returns a Hasher for records of version v (Version2 for
// anything but Version1).
func NewHasher(v int) *Hasher {
	if v == Version1 {
		return &Hasher{x: xxhash.New()}
	}
	return &Hasher{h: sha256.New(), v2: true}
}

// Write hashes p; it never fails.
func (h *Hasher) Write(p []byte) (int, error) {
	h.n += int64(len(p))
	if h.v2 {
		return h.h.Write(p)
	}
	return h.x.Write(p)
}

// Size is the number of bytes written.
func (h *Hasher) Size() int64 { return h.n }

// Sum returns the Sum of what was written.
func (h *Hasher) Sum() Sum {
	if !h.v2 {
		return Sum{Hash: h.x.Sum64()}
	}
	var d Digest
	h.h.Sum(d[:0])
	return Sum{Hash: d.Hash(), Digest: d}
}
