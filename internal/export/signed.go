package export

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strconv"
	"time"

	"github.com/seqmirror/seqmirror/internal/filter"
	"github.com/seqmirror/seqmirror/internal/fsys"
	"github.com/seqmirror/seqmirror/internal/sign"
	"github.com/seqmirror/seqmirror/manifest"
	"github.com/spf13/afero"
)

// Signature files (docs/protocol.md section 10; package sign).
const (
	// SignatureExt ends a snapshot's signature file,
	// snapshots/N.manifest.minisig: immutable, like the manifest.
	SignatureExt = ManifestExt + sign.SnapshotExt
	// TimestampName is the timestamp, ROOT/seq/timestamp.minisig,
	// replaced atomically by publish, `publish resign` and mirrors.
	TimestampName = sign.TimestampName
	// SignedStateName is ROOT/.signed, private: how the root's writer
	// treats signatures and the highest signed snapshot it has seen.
	SignedStateName = ".signed"
)

// Signature modes (SignedState.Mode, Status.Signature).
const (
	SignSigned   = "signed"   // a master that signs
	SignVerified = "verified" // a mirror that verifies with trusted keys
	SignUnsigned = "unsigned" // a mirror that trusts no key: verifies nothing
)

// StateFrozen is the state of a root whose newest timestamp has expired:
// nothing vouches that it serves the master's newest snapshot.
const StateFrozen = "frozen"

// SignaturePath is ROOT/snapshots/N.manifest.minisig.
func (r *Root) SignaturePath(n uint64) string {
	return r.Path(SnapshotsName, strconv.FormatUint(n, 10)+SignatureExt)
}

// TimestampPath is ROOT/seq/timestamp.minisig.
func (r *Root) TimestampPath() string { return r.Path(TimestampName) }

// SignedState is ROOT/.signed.
type SignedState struct {
	Mode string   `json:"mode"`
	Keys []string `json:"keys,omitempty"` // the key IDs signing or trusted
	// Highest is the highest snapshot number a verified statement (a
	// snapshot signature or a timestamp) named: nothing lower is accepted
	// without AllowRollback.
	Highest uint64 `json:"highest,omitempty"`
}

// ReadSignedState reads ROOT/.signed; false if there is none (or it is
// not valid).
func (r *Root) ReadSignedState() (SignedState, bool) {
	var s SignedState
	b, err := afero.ReadFile(r.FS, r.Path(SignedStateName))
	if err != nil || len(b) > 64<<10 || json.Unmarshal(b, &s) != nil {
		return SignedState{}, false
	}
	return s, true
}

// WriteSignedState durably writes ROOT/.signed if it differs from what
// is there. The caller holds the lock.
func (r *Root) WriteSignedState(s SignedState) error {
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	if old, err := afero.ReadFile(r.FS, r.Path(SignedStateName)); err == nil && string(old) == string(b)+"\n" {
		return nil
	}
	if err := fsys.WriteFile(r.FS, r.Path(SignedStateName), append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", SignedStateName, err)
	}
	return nil
}

// ReadTimestamp returns ROOT/seq/timestamp.minisig (nil if there is none).
func (r *Root) ReadTimestamp() ([]byte, error) {
	f, err := fsys.OpenBeneath(r.FS, r.Dir, TimestampName)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read timestamp: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, sign.MaxSignatureSize+1))
	if err != nil {
		return nil, fmt.Errorf("read timestamp: %w", err)
	}
	if len(b) > sign.MaxSignatureSize {
		return nil, fmt.Errorf("read timestamp: %w: more than %d bytes", sign.ErrMalformed, sign.MaxSignatureSize)
	}
	return b, nil
}

// WriteTimestamp durably replaces ROOT/seq/timestamp.minisig with b (a
// timestamp file, verbatim). It changes neither begin nor end: the
// snapshot served is the same. The caller holds the lock.
func (r *Root) WriteTimestamp(b []byte) error {
	if err := fsys.WriteFile(r.FS, r.TimestampPath(), b, 0o644); err != nil {
		return fmt.Errorf("write timestamp: %w", err)
	}
	return nil
}

// signatureStatus fills the signature fields of s (live): the mode from
// ROOT/.signed and the expiry of the timestamp ROOT holds. The timestamp is
// the root's own file, read as it is: verifying it is the job of whoever
// wrote it there (and of every reader downstream). It returns why the
// root is frozen (nil if it is not).
func (r *Root) signatureStatus(s *Status, now time.Time) error {
	if st, ok := r.ReadSignedState(); ok {
		s.Signature = st.Mode
	}
	b, err := r.ReadTimestamp()
	if err != nil || b == nil {
		return nil
	}
	st, err := sign.PeekStatement(b)
	if err != nil || st.Kind != sign.KindTimestamp {
		return nil
	}
	t := st.Expires
	s.TimestampExpires = &t
	if st.Expired(now) {
		return fmt.Errorf("%w: the newest timestamp (snapshot %d, signed %s) expired at %s", sign.ErrExpired, st.Snapshot, st.Time.Format(time.RFC3339), t.Format(time.RFC3339))
	}
	return nil
}

// VerifySigned is docs/protocol.md section 10's check of snapshot n's
// signature file sig (nil: none) with t, over manifest files on f: full,
// the master's manifest of n (N.full on a partial snapshot), and sub, the
// manifest of the files served (N.manifest; "" or full itself for a whole
// snapshot). The signature must verify over full's bytes
// (sign.Trust.VerifySnapshot: sign's sentinels); then sub must be a
// subset of full, record for record (filter.CheckSubset; else
// manifest.ErrCorrupt), so that the signature vouches for every file sub
// lists. It returns the statement and full's digest (a timestamp names
// it).
func VerifySigned(f fsys.FS, t *sign.Trust, n uint64, sig []byte, full, sub string) (sign.Statement, sign.Digest, error) {
	d, err := sign.DigestFile(f, full)
	if err != nil {
		return sign.Statement{}, d, err
	}
	st, err := t.VerifySnapshot(n, d, sig)
	if err != nil || sub == "" || sub == full {
		return st, d, err
	}
	fr, err := f.Open(full)
	if err != nil {
		return st, d, err
	}
	defer fr.Close()
	sr, err := f.Open(sub)
	if err != nil {
		return st, d, err
	}
	defer sr.Close()
	if err := filter.CheckSubset(fr, sr); err != nil {
		return st, d, fmt.Errorf("%w: snapshot %d: %s is not a subset of the signed %s: %w", manifest.ErrCorrupt, n, sub, full, err)
	}
	return st, d, nil
}

// VerifySignature is VerifySigned for snapshot n of r: its signature file,
// over its full manifest (FullManifestPath), then its manifest against it.
func (r *Root) VerifySignature(t *sign.Trust, n uint64) (sign.Statement, error) {
	sig, err := afero.ReadFile(r.FS, r.SignaturePath(n))
	if errors.Is(err, fs.ErrNotExist) {
		sig, err = nil, nil
	}
	if err != nil {
		return sign.Statement{}, fmt.Errorf("read signature of snapshot %d: %w", n, err)
	}
	st, _, err := VerifySigned(r.FS, t, n, sig, r.FullManifestPath(n), r.ManifestPath(n))
	return st, err
}
