package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/seqmirror/seqmirror/internal/export"
	"github.com/seqmirror/seqmirror/internal/fsys"
	"github.com/seqmirror/seqmirror/internal/sign"
	"github.com/seqmirror/seqmirror/internal/transport"
)

// ErrUntrusted means Options.TrustKeys are given and the snapshot's
// signature was refused: missing, malformed, by another key, for another
// snapshot or manifest (a tier rewrote the snapshot), or a signed snapshot
// older than one the StateFile records (a replay).
var ErrUntrusted = errors.New("snapshot signature refused")

// The states of a Snapshot's signatures (Snapshot.State).
const (
	// StateUnsigned: no TrustKeys were given; nothing was verified.
	StateUnsigned = export.SignUnsigned
	// StateVerified: the snapshot's signature verified, and the newest
	// timestamp has not expired.
	StateVerified = export.SignVerified
	// StateFrozen: the signature verified, but no timestamp that has not
	// expired vouches that the snapshot is still the master's newest (a
	// tier, or the master, stopped updating).
	StateFrozen = export.StateFrozen
)

// signing is Options' signature settings and what Open found.
type signing struct {
	trust         *sign.Trust
	stateFile     string
	allowRollback bool
	now           func() time.Time
	state         string
	expires       time.Time
}

func newSigning(opt Options) (signing, error) {
	sg := signing{stateFile: opt.StateFile, allowRollback: opt.AllowRollback, now: opt.Now, state: StateUnsigned}
	if sg.now == nil {
		sg.now = time.Now
	}
	if len(opt.TrustKeys) == 0 {
		return sg, nil
	}
	t, err := sign.LoadTrust(opt.TrustKeys)
	sg.trust = t
	return sg, err
}

// State is StateUnsigned, StateVerified or StateFrozen (see Options).
func (s *Snapshot) State() string { return s.sig.state }

// TimestampExpires is when the newest timestamp seen expires (zero
// without TrustKeys, or if the upstream has none).
func (s *Snapshot) TimestampExpires() time.Time { return s.sig.expires }

// verifySigned checks snapshot n, whose manifest was fetched to p, with
// the trusted keys (sign.Trust.VerifySnapshot), its timestamp, and the
// state file's highest snapshot; then it records n there.
func (s *Snapshot) verifySigned(ctx context.Context, n uint64, p string) error {
	sg := &s.sig
	if sg.trust == nil {
		return nil
	}
	p2, ok := s.up.(transport.Prober)
	if !ok {
		return fmt.Errorf("%w: this transport cannot read signature files", ErrUntrusted)
	}
	sigName := export.SnapshotsName + "/" + strconv.FormatUint(n, 10) + export.SignatureExt
	got, err := p2.ReadSmall(ctx, []string{sigName, export.TimestampName}, sign.MaxSignatureSize)
	if err != nil {
		return classify(err)
	}
	d, err := sign.DigestFile(fsys.OS(), p)
	if err != nil {
		return err
	}
	if _, err := sg.trust.VerifySnapshot(n, d, got[sigName].Data); err != nil {
		return fmt.Errorf("%w: snapshot %d: %w", ErrUntrusted, n, err)
	}
	high := readHighest(sg.stateFile)
	if n < high && !sg.allowRollback {
		return fmt.Errorf("%w: signed snapshot %d is older than snapshot %d, seen before", ErrUntrusted, n, high)
	}
	sg.state = StateFrozen
	if ts, ok := got[export.TimestampName]; ok {
		st, err := sg.trust.VerifyTimestamp(ts.Data, n, &d)
		if err != nil {
			return fmt.Errorf("%w: timestamp: %w", ErrUntrusted, err)
		}
		high, sg.expires = max(high, st.Snapshot), st.Expires
		if !st.Expired(sg.now()) {
			sg.state = StateVerified
		}
	}
	return writeHighest(sg.stateFile, max(high, n))
}

// clientState is Options.StateFile.
type clientState struct {
	Highest uint64 `json:"highest"`
}

// readHighest reads the state file (0 if none or unreadable).
func readHighest(path string) uint64 {
	var st clientState
	if path == "" {
		return 0
	}
	if b, err := os.ReadFile(path); err == nil && json.Unmarshal(b, &st) == nil {
		return st.Highest
	}
	return 0
}

// writeHighest replaces the state file atomically if n is higher than
// what it records.
func writeHighest(path string, n uint64) error {
	if path == "" || n <= readHighest(path) {
		return nil
	}
	b, _ := json.Marshal(clientState{Highest: n})
	if err := fsys.WriteFile(fsys.OS(), filepath.Clean(path), append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("record the highest signed snapshot: %w", err)
	}
	return nil
}
