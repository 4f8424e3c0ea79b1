package snapshot

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"time"

	"github.com/seqmirror/seqmirror/internal/export"
	"github.com/seqmirror/seqmirror/internal/fsys"
	"github.com/seqmirror/seqmirror/internal/sign"
)

// ErrNothingServed means there is no snapshot to sign a timestamp for.
var ErrNothingServed = errors.New("root serves no snapshot")

// ResignOptions tunes Resign.
type ResignOptions struct {
	Signer   *sign.Signer
	Validity time.Duration    // how long the new timestamp is valid
	LockWait time.Duration    // wait this long for the root's lock (0: fail at once)
	Now      func() time.Time // nil: time.Now
	// IfStale refreshes only a timestamp that is missing, by another key,
	// or signed more than half its validity ago (a publish that found
	// nothing changed: it stays write-free most of the time).
	IfStale bool
}

// ResignResult is what Resign did.
type ResignResult struct {
	Snapshot uint64    `json:"snapshot"`
	Expires  time.Time `json:"expires"`
	// Signed: the served snapshot had no signature (published before the
	// master signed) and got one.
	Signed bool `json:"signed_snapshot,omitempty"`
	// Kept: IfStale found the timestamp fresh and wrote nothing.
	Kept bool `json:"kept,omitempty"`
}

// Resign refreshes the root's timestamp (docs/protocol.md section 10):
// under the lock, it signs a new timestamp for the snapshot served, valid
// for opt.Validity, and replaces seq/timestamp.minisig with it (begin and
// end do not move: the snapshot served is the same). A served snapshot
// without a signature gets one first. It is what `publish resign` runs
// from cron, and what a publish that finds nothing changed does.
func Resign(ctx context.Context, root *export.Root, opt ResignOptions) (ResignResult, error) {
	var res ResignResult
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if err := root.Exists(); err != nil {
		return res, err
	}
	lock, err := root.LockWait(ctx, opt.LockWait)
	if err != nil {
		return res, err
	}
	defer lock.Unlock()
	n, err := root.Current()
	if err != nil {
		return res, err
	}
	if n == 0 || !root.Complete(n) {
		return res, fmt.Errorf("resign %s: %w", root.Dir, ErrNothingServed)
	}
	if opt.IfStale {
		if st, ok := freshTimestamp(root, opt.Signer, n, opt.Now()); ok {
			return ResignResult{Snapshot: n, Expires: st.Expires, Kept: true}, nil
		}
	}
	d, err := sign.DigestFile(root.FS, root.ManifestPath(n))
	if err != nil {
		return res, fmt.Errorf("resign: %w", err)
	}
	if err := root.WriteSignedState(signerState(opt.Signer)); err != nil {
		return res, err
	}
	now := opt.Now()
	sig, ts := opt.Signer.SignSnapshot(n, d, now, opt.Validity)
	if _, err := root.FS.Stat(root.SignaturePath(n)); errors.Is(err, fs.ErrNotExist) {
		if err := writeSignature(root, n, sig); err != nil {
			return res, err
		}
		res.Signed = true
	}
	if err := root.WriteTimestamp(ts); err != nil {
		return res, err
	}
	st, _ := sign.PeekStatement(ts)
	res.Snapshot, res.Expires = n, st.Expires
	return res, nil
}

// writeSignature adds the signature of served snapshot n.
func writeSignature(root *export.Root, n uint64, sig []byte) error {
	if err := fsys.WriteFile(root.FS, root.SignaturePath(n), sig, 0o644); err != nil {
		return fmt.Errorf("sign snapshot %d: %w", n, err)
	}
	return nil
}

// signerState is ROOT/.signed on a master that signs with s.
func signerState(s *sign.Signer) export.SignedState {
	return export.SignedState{Mode: export.SignSigned, Keys: []string{sign.KeyID(s.ID())}}
}

// freshTimestamp returns the root's timestamp if it is s's, for snapshot
// n, and not past half its validity at now.
func freshTimestamp(root *export.Root, s *sign.Signer, n uint64, now time.Time) (sign.Statement, bool) {
	b, err := root.ReadTimestamp()
	if err != nil || b == nil {
		return sign.Statement{}, false
	}
	st, err := sign.PeekStatement(b)
	id, idErr := sign.PeekKeyID(b)
	ok := err == nil && idErr == nil && id == s.ID() && st.Kind == sign.KindTimestamp && st.Snapshot == n && !st.Stale(now)
	return st, ok
}
