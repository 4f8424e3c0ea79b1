package sign

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/afero"
	"golang.org/x/crypto/blake2b"
)

var (
	// ErrMalformed means a signature, key or statement is not in its
	// format (truncated, garbled, another program's comment).
	ErrMalformed = errors.New("malformed signature")
	// ErrUntrusted means a signature is by no trusted key, or does not
	// verify with the key it names.
	ErrUntrusted = errors.New("signature not by a trusted key")
	// ErrMismatch means a valid signature vouches for something else:
	// another snapshot number, another manifest, a timestamp older than
	// one already held.
	ErrMismatch = errors.New("signature is for something else")
	// ErrExpired means the newest timestamp held has expired: nothing
	// vouches that the snapshot is still the master's newest (frozen).
	ErrExpired = errors.New("timestamp expired")
)

// The kinds of statement, the first word of a trusted comment.
const (
	KindSnapshot  = "seqmirror-snapshot/1"
	KindTimestamp = "seqmirror-timestamp/1"
)

// SnapshotExt is appended to a manifest's name for its signature file:
// snapshots/N.manifest.minisig, minisign's default name for the manifest.
const SnapshotExt = ".minisig"

// TimestampName is the timestamp's file, relative to the export root.
const TimestampName = "seq/timestamp.minisig"

// MaxSignatureSize bounds a signature file a reader accepts.
const MaxSignatureSize = 4096

// DefaultValidity is how long a timestamp is valid by default.
const DefaultValidity = 7 * 24 * time.Hour

// A Statement is what a signature vouches for, its trusted comment:
//
//	seqmirror-snapshot/1 snapshot=42 manifest-sha256=HEX time=2026-11-28T13:00:00Z
//	seqmirror-timestamp/1 snapshot=42 manifest-sha256=HEX time=2026-11-28T13:00:00Z expires=2026-12-05T13:00:00Z
//
// Fields in this order, separated by one space; times in RFC 3339, UTC,
// whole seconds; HEX 64 lower-case digits. Expires only in a timestamp.
type Statement struct {
	Kind     string
	Snapshot uint64
	SHA256   [sha256.Size]byte
	Time     time.Time
	Expires  time.Time // zero for a snapshot statement
}

const timeLayout = "2006-01-02T15:04:05Z"

// String is the statement as a trusted comment.
func (s Statement) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s snapshot=%d manifest-sha256=%s time=%s", s.Kind, s.Snapshot, hex.EncodeToString(s.SHA256[:]), s.Time.UTC().Format(timeLayout))
	if s.Kind == KindTimestamp {
		b.WriteString(" expires=" + s.Expires.UTC().Format(timeLayout))
	}
	return b.String()
}

// ParseStatement reads a trusted comment; anything but the canonical form
// of String is ErrMalformed.
func ParseStatement(c string) (Statement, error) {
	bad := func(why string) (Statement, error) {
		return Statement{}, fmt.Errorf("%w: trusted comment %.120q: %s", ErrMalformed, c, why)
	}
	f := strings.Split(c, " ")
	var s Statement
	switch {
	case len(f) == 4 && f[0] == KindSnapshot, len(f) == 5 && f[0] == KindTimestamp:
		s.Kind = f[0]
	default:
		return bad("not a seqmirror statement")
	}
	n, ok := strings.CutPrefix(f[1], "snapshot=")
	v, err := strconv.ParseUint(n, 10, 64)
	if !ok || err != nil || v == 0 || strconv.FormatUint(v, 10) != n {
		return bad("no snapshot number")
	}
	s.Snapshot = v
	h, ok := strings.CutPrefix(f[2], "manifest-sha256=")
	if d, err := hex.DecodeString(h); !ok || err != nil || len(d) != sha256.Size || hex.EncodeToString(d) != h {
		return bad("no manifest-sha256")
	} else {
		copy(s.SHA256[:], d)
	}
	if s.Time, ok = parseTime(f[3], "time="); !ok {
		return bad("no time")
	}
	if s.Kind == KindTimestamp {
		if s.Expires, ok = parseTime(f[4], "expires="); !ok || !s.Expires.After(s.Time) {
			return bad("no expiry after its time")
		}
	}
	return s, nil
}

func parseTime(f, prefix string) (time.Time, bool) {
	v, ok := strings.CutPrefix(f, prefix)
	t, err := time.Parse(timeLayout, v)
	return t, ok && err == nil && t.Format(timeLayout) == v
}

// Newer orders timestamps: s is newer than h if it was signed later, or
// in the same second for a higher snapshot, or for the same one with a
// later expiry (times have whole seconds: a publish and a resign may sign
// within one).
func (s Statement) Newer(h Statement) bool {
	switch {
	case !s.Time.Equal(h.Time):
		return s.Time.After(h.Time)
	case s.Snapshot != h.Snapshot:
		return s.Snapshot > h.Snapshot
	}
	return s.Expires.After(h.Expires)
}

// Expired reports whether a timestamp statement has expired at now.
func (s Statement) Expired(now time.Time) bool { return !now.Before(s.Expires) }

// Stale reports whether a timestamp was signed more than half its
// validity before now: the point from which a mirror asks its upstream
// for a newer one on every poll (docs/protocol.md section 10).
func (s Statement) Stale(now time.Time) bool {
	return now.Sub(s.Time) > s.Expires.Sub(s.Time)/2
}

// Digest is what a signature binds of a manifest file: its SHA-256 (in
// the statement) and its BLAKE2b-512 (minisign's prehash, which the
// Ed25519 signature covers).
type Digest struct {
	SHA256  [sha256.Size]byte
	BLAKE2b [blake2b.Size]byte
}

// DigestOf reads r to its end and returns both digests, in one pass.
func DigestOf(r io.Reader) (Digest, error) {
	g := NewDigester()
	if _, err := io.Copy(g, r); err != nil {
		return Digest{}, err
	}
	return g.Digest(), nil
}

// DigestFile is DigestOf the file at p.
func DigestFile(fs afero.Fs, p string) (Digest, error) {
	f, err := fs.Open(p)
	if err != nil {
		return Digest{}, err
	}
	defer f.Close()
	d, err := DigestOf(f)
	if err != nil {
		return Digest{}, fmt.Errorf("digest %s: %w", p, err)
	}
	return d, nil
}

// A Digester computes a Digest of what is written to it.
type Digester struct{ s, b hash.Hash }

// NewDigester returns an empty Digester.
func NewDigester() *Digester {
	b, _ := blake2b.New512(nil)
	return &Digester{s: sha256.New(), b: b}
}

// Write implements io.Writer.
func (g *Digester) Write(p []byte) (int, error) {
	g.s.Write(p)
	return g.b.Write(p)
}

// Digest is the digest of what was written so far.
func (g *Digester) Digest() Digest {
	var d Digest
	g.s.Sum(d.SHA256[:0])
	g.b.Sum(d.BLAKE2b[:0])
	return d
}
