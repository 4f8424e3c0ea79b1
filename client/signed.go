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
	"github.com/seqmirror/seqmirror/internal/filter"
	"github.com/seqmirror/seqmirror/internal/fsys"
	"github.com/seqmirror/seqmirror/internal/sign"
	"github.com/seqmirror/seqmirror/internal/transport"
	"github.com/seqmirror/seqmirror/manifest"
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
// the trusted keys: its signature over the master's manifest (p, or a
// partial upstream's N.full, which p must then be a subset of:
// export.VerifySigned), its timestamp, and the state file's highest
// snapshot; then it records n there.
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
	filterName := transport.FilterName(n)
	got, err := p2.ReadSmall(ctx, []string{sigName, export.TimestampName, filterName}, max(sign.MaxSignatureSize, filter.MaxFileSize))
	if err != nil {
		return classify(err)
	}
	full, err := s.fullManifest(ctx, n, p, got[filterName].Data != nil)
	if err != nil {
		return err
	}
	if full != p {
		defer os.Remove(full)
	}
	_, d, err := export.VerifySigned(fsys.OS(), sg.trust, n, got[sigName].Data, full, p)
	switch {
	case errors.Is(err, manifest.ErrCorrupt):
		return fmt.Errorf("%w: %w", ErrCorrupt, err)
	case err != nil:
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

// fullManifest is the manifest the master signed of snapshot n, whose
// served manifest is at p: p itself, or, from a partial upstream (it
// serves snapshots/N.filter), its snapshots/N.full fetched beside p
// (docs/protocol.md section 11). Whichever it is, the signature must
// verify over it and p must be a subset of it: a partial upstream that
// passes for a whole one is refused all the same.
func (s *Snapshot) fullManifest(ctx context.Context, n uint64, p string, partial bool) (string, error) {
	if !partial {
		return p, nil
	}
	ff, ok := s.up.(transport.FullFetcher)
	if !ok {
		return "", fmt.Errorf("%w: snapshot %d is partial and this transport cannot fetch its full manifest", ErrUntrusted, n)
	}
	full := p + export.FullExt
	if err := ff.FetchFull(ctx, n, full); err != nil {
		os.Remove(full)
		return "", fmt.Errorf("snapshot %d: full manifest: %w", n, classify(err))
	}
	return full, nil
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
