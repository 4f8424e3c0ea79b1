package mirror

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"time"

	"github.com/seqmirror/seqmirror/internal/export"
	"github.com/seqmirror/seqmirror/internal/sign"
	"github.com/seqmirror/seqmirror/internal/transport"
)

// ErrSignedRollback means the upstream serves a signed snapshot older than
// the highest one a verified statement named here (ROOT/.signed): a
// replay, unless Options.AllowRollback.
var ErrSignedRollback = errors.New("signed snapshot older than one already seen")

// ErrNoProber means the upstream's transport cannot read the signature
// files (no upstream.Prober).
var ErrNoProber = errors.New("upstream cannot read signature files")

// signatureName is the upstream path of snapshot n's signature.
func signatureName(n uint64) string {
	return export.SnapshotsName + "/" + strconv.FormatUint(n, 10) + export.SignatureExt
}

// fetchSigned reads the given files of the upstream in one request
// (upstream.Prober.ReadSmall); a file that is not there is nil.
func fetchSigned(ctx context.Context, up transport.Upstream, names ...string) ([][]byte, error) {
	p, ok := up.(transport.Prober)
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrNoProber, up)
	}
	got, err := p.ReadSmall(ctx, names, sign.MaxSignatureSize)
	if err != nil {
		return nil, fmt.Errorf("read signatures from %s: %w", up, err)
	}
	out := make([][]byte, len(names))
	for i, n := range names {
		if f, ok := got[n]; ok {
			out[i] = f.Data
		}
	}
	return out, nil
}

// signatures is docs/protocol.md section 10's rule for a snapshot a
// mirror is about to install: snapshot n, whose fetched and validated
// manifest is at manPath (for a partial snapshot its N.full, the master's
// manifest, which partial checked the subset against record by record:
// the signature over it vouches for the subset's files). It fetches the upstream's signature of n and its
// timestamp (one request), unless read holds them (read beside the
// manifest: fetched). With trusted keys it verifies both, BEFORE
// anything is installed: the signature by a trusted key, for n, over
// exactly these manifest bytes; n not below the highest signed snapshot
// seen (ROOT/.signed) unless AllowRollback; the timestamp, if any, valid
// too. It returns the files to install verbatim (a timestamp older than
// the one ROOT holds is not installed), and records the highest snapshot
// seen. Without trusted keys it verifies nothing and copies both as they
// are, so that tiers below that do trust keys can verify them.
func (s *syncRun) signatures(ctx context.Context, n uint64, manPath string, read [][]byte) (sig, ts []byte, err error) {
	files := read
	if files == nil {
		files, err = fetchSigned(ctx, s.up, signatureName(n), export.TimestampName)
	}
	if errors.Is(err, ErrNoProber) && s.opt.Trust == nil {
		return nil, nil, s.recordSigned(0) // nothing to copy with
	}
	if err != nil {
		return nil, nil, err
	}
	sig, ts = files[0], files[1]
	held := heldTimestamp(s.root)
	if s.opt.Trust == nil {
		if ts != nil && !newerTimestamp(ts, held) {
			ts = nil
		}
		return sig, ts, s.recordSigned(0)
	}
	d, err := sign.DigestFile(s.root.FS, manPath)
	if err != nil {
		return nil, nil, err
	}
	if _, err := s.opt.Trust.VerifySnapshot(n, d, sig); err != nil {
		return nil, nil, fmt.Errorf("snapshot %d from %s (%s): %w", n, s.up, signatureName(n), err)
	}
	seen, _ := s.root.ReadSignedState()
	if n < seen.Highest && !s.opt.AllowRollback {
		return nil, nil, fmt.Errorf("%w: %s serves signed snapshot %d, and a signed statement for snapshot %d was seen here", ErrSignedRollback, s.up, n, seen.Highest)
	}
	high := n
	if ts != nil {
		tst, err := s.opt.Trust.VerifyTimestamp(ts, n, &d)
		if err != nil {
			return nil, nil, fmt.Errorf("timestamp from %s: %w", s.up, err)
		}
		high = max(high, tst.Snapshot)
		if !newerTimestamp(ts, held) {
			ts = nil
		}
	}
	return sig, ts, s.recordSigned(high)
}

// heldTimestamp is ROOT's timestamp (nil if none or unreadable).
func heldTimestamp(root *export.Root) []byte {
	b, err := root.ReadTimestamp()
	if err != nil {
		return nil
	}
	return b
}

// newerTimestamp reports whether timestamp file ts is newer than held (or
// held is none), by sign.Statement.Newer: only a newer timestamp replaces
// the one held, so no upstream can turn a mirror's timestamp back.
func newerTimestamp(ts, held []byte) bool {
	st, err := sign.PeekStatement(ts)
	if err != nil {
		return false
	}
	h, err := sign.PeekStatement(held)
	return err != nil || st.Newer(h)
}

// recordSigned writes ROOT/.signed: the mode (verified with trusted keys,
// else unsigned) and the highest signed snapshot seen, at least high. It
// writes nothing when that is what the file says.
func (s *syncRun) recordSigned(high uint64) error {
	st, _ := s.root.ReadSignedState()
	next := export.SignedState{Mode: mode(s.opt), Highest: max(st.Highest, high)}
	if s.opt.Trust != nil {
		next.Keys = s.opt.Trust.IDs()
	}
	if st.Mode == next.Mode && st.Highest == next.Highest && slices.Equal(st.Keys, next.Keys) {
		return nil
	}
	return s.root.WriteSignedState(next)
}

// signedNote is .upstream's note for the no-op poll (upstreamState.Signed):
// the signature mode the last writing run had, and when the timestamp ROOT
// holds is due for a refresh (half its validity; nil: ROOT holds none).
type signedNote struct {
	Mode    string     `json:"mode"`
	Refresh *time.Time `json:"refresh,omitempty"`
}

// mode is the signature mode of a run with opt.
func mode(opt Options) string {
	if opt.Trust != nil {
		return export.SignVerified
	}
	return export.SignUnsigned
}

// noteSigned is the note for ROOT as it is now.
func noteSigned(root *export.Root, opt Options) *signedNote {
	n := &signedNote{Mode: mode(opt)}
	if st, err := sign.PeekStatement(heldTimestamp(root)); err == nil {
		t := st.Time.Add(st.Expires.Sub(st.Time) / 2)
		n.Refresh = &t
	}
	return n
}

// refreshTimestamp is the no-op poll's part of section 10: ROOT serves
// the upstream's snapshot n already (seen at seq/end e1). While the record
// that vouched for the poll says the mode is this run's and the timestamp
// ROOT holds is less than half its validity old (or ROOT holds none), it
// does nothing: no request, no other file read. Otherwise it asks the
// upstream for its timestamp (one request) and installs it if it is newer
// (verified, with trusted keys), and brings the record's note up to date.
// A root that holds no timestamp asks nothing: it gets one with its next
// snapshot. So the common no-op poll stays one request.
func (s *syncRun) refreshTimestamp(ctx context.Context, n, e1 uint64) error {
	if note := s.rec.Signed; s.vouched && note != nil && note.Mode == mode(s.opt) &&
		(note.Refresh == nil || s.opt.Now().Before(*note.Refresh)) {
		return nil
	}
	if err := s.takeTimestamp(ctx, n); err != nil {
		return err
	}
	if note := noteSigned(s.root, s.opt); s.vouched && !reflect.DeepEqual(note, s.rec.Signed) {
		recordUpstream(s.root, s.up.String(), n, e1, s.rec.Peers, s.opt)
	}
	return nil
}

// takeTimestamp is refreshTimestamp's slow path: with a timestamp held
// and due, fetch the upstream's, verify it, install it if newer.
func (s *syncRun) takeTimestamp(ctx context.Context, n uint64) error {
	held := heldTimestamp(s.root)
	if held == nil {
		return s.recordSigned(0)
	}
	if hst, err := sign.PeekStatement(held); err == nil && !hst.Stale(s.opt.Now()) {
		return s.recordSigned(0)
	}
	files, err := fetchSigned(ctx, s.up, export.TimestampName)
	if errors.Is(err, ErrNoProber) && s.opt.Trust == nil {
		return nil
	}
	if err != nil {
		return err
	}
	ts := files[0]
	if ts != nil && s.opt.Trust != nil {
		// The statement first (cheap): a garbled or forged timestamp is
		// refused whether or not it claims to be newer.
		if _, err := s.opt.Trust.VerifyTimestamp(ts, n, nil); err != nil {
			return fmt.Errorf("timestamp from %s: %w", s.up, err)
		}
	}
	if ts == nil || !newerTimestamp(ts, held) {
		s.warnFrozen(held)
		return s.recordSigned(0)
	}
	high := uint64(0)
	if s.opt.Trust != nil {
		d, err := sign.DigestFile(s.root.FS, s.root.FullManifestPath(n)) // the master's bytes: N.full on a partial mirror
		if err != nil {
			return err
		}
		tst, err := s.opt.Trust.VerifyTimestamp(ts, n, &d)
		if err != nil {
			return fmt.Errorf("timestamp from %s: %w", s.up, err)
		}
		high = tst.Snapshot
	}
	if err := s.recordSigned(high); err != nil {
		return err
	}
	s.opt.Log.Info("took the upstream's newer timestamp", "snapshot", n)
	return s.root.WriteTimestamp(ts)
}

// warnFrozen logs that the timestamp ROOT holds has expired.
func (s *syncRun) warnFrozen(held []byte) {
	if st, err := sign.PeekStatement(held); err == nil && st.Expired(s.opt.Now()) {
		s.opt.Log.Warn("frozen: the newest timestamp has expired and the upstream has no newer one; the master has not signed a timestamp since", "expired", st.Expires, "snapshot", st.Snapshot)
	}
}
