package export

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"time"

	"github.com/seqmirror/seqmirror/internal/fsys"
	"github.com/spf13/afero"
)

// CheckedName is the poll record below ROOT/seq: mirror-sync rewrites it
// on every run that read its upstream, so its mtime says when the mirror
// last checked (the ftpsync trace file's job).
const CheckedName = "checked"

// maxPollRecord bounds the poll record a reader accepts.
const maxPollRecord = 64 << 10

// States of an upstream in a poll of several (PolledUpstream.State).
const (
	PolledChosen      = "chosen"      // the run followed it (the newest snapshot, first in priority among equals)
	PolledLevel       = "level"       // serves the chosen snapshot too, same manifest
	PolledBehind      = "behind"      // serves an older snapshot than the chosen one
	PolledEmpty       = "empty"       // serves no snapshot
	PolledUnavailable = "unavailable" // did not answer (timed out, unreachable)
	PolledFailed      = "failed"      // answered with an error (refused, corrupt counters)
	PolledDiverged    = "diverged"    // serves a snapshot number with another manifest (another master)
)

// PolledUpstream is one upstream as a mirror-sync run with several
// upstreams found it.
type PolledUpstream struct {
	Upstream string `json:"upstream"`
	State    string `json:"state"`
	Snapshot uint64 `json:"snapshot,omitempty"`
	Error    string `json:"error,omitempty"`
}

// Poll is the content of ROOT/seq/checked. When the mirror last checked is
// the file's mtime, not a field, so that a poll that finds nothing new
// only sets that mtime (no data write, no fsync).
type Poll struct {
	// Upstream is where the mirror polled (the address as configured).
	Upstream string `json:"upstream"`
	// UpstreamSnapshot is what the upstream served at that poll.
	UpstreamSnapshot uint64 `json:"upstream_snapshot"`
	// Snapshot is what this root served when the run ended.
	Snapshot uint64 `json:"snapshot"`
	// BehindSince, when UpstreamSnapshot > Snapshot, is when a poll of
	// this mirror first found the upstream serving a snapshot newer than
	// Snapshot (the mirror's own record; it stays while the mirror serves
	// the same snapshot and is behind).
	BehindSince *time.Time `json:"behind_since,omitempty"`
	// Upstreams, when the mirror has several, is what the poll found at
	// each, in priority order; Upstream is the one it followed.
	Upstreams []PolledUpstream `json:"upstreams,omitempty"`
	// Checked is the file's mtime (filled by LastPoll; not stored).
	Checked time.Time `json:"-"`
}

// CheckedPath is ROOT/seq/checked.
func (r *Root) CheckedPath() string { return r.Path(SeqName, CheckedName) }

// LastPoll reads ROOT/seq/checked; ok is false if there is none (a master,
// or a mirror that never reached its upstream) or it is not valid.
func (r *Root) LastPoll() (Poll, bool) {
	fi, err := fsys.Lstat(r.FS, r.CheckedPath())
	if err != nil || !fi.Mode().IsRegular() || fi.Size() > maxPollRecord {
		return Poll{}, false
	}
	b, err := afero.ReadFile(r.FS, r.CheckedPath())
	if err != nil {
		return Poll{}, false
	}
	p, err := ParsePoll(b)
	if err != nil {
		return Poll{}, false
	}
	p.Checked = fi.ModTime().UTC()
	return p, true
}

// ParsePoll parses the content of a poll record.
func ParsePoll(b []byte) (Poll, error) {
	var p Poll
	if len(b) > maxPollRecord {
		return p, errors.New("poll record too large")
	}
	if err := json.Unmarshal(b, &p); err != nil {
		return p, errors.New("poll record is not valid JSON")
	}
	return p, nil
}

// RecordPoll notes that a run read its upstream, which served up, at at
// (zero: the upstream never answered, nothing is written), and that the
// root now serves served. The caller holds the lock. If the record's
// content is what the file already holds (a no-op poll of a level mirror),
// it only sets the file's mtime: no data write and no fsync, so a no-op
// poll stays as cheap as it was; a crash that loses that mtime only makes
// the mirror look one poll older. Otherwise it writes the file durably.
func (r *Root) RecordPoll(upstream string, up uint64, at time.Time, served uint64) error {
	return r.RecordPollOf(Poll{Upstream: upstream, UpstreamSnapshot: up, Snapshot: served}, at)
}

// RecordPollOf is RecordPoll of p (Upstream, UpstreamSnapshot, Snapshot
// and Upstreams; it sets BehindSince).
func (r *Root) RecordPollOf(p Poll, at time.Time) error {
	if at.IsZero() {
		return nil
	}
	p.BehindSince = nil
	if p.UpstreamSnapshot > p.Snapshot {
		t := at.UTC()
		if prev, ok := r.LastPoll(); ok && prev.Snapshot == p.Snapshot && prev.BehindSince != nil && prev.Upstream == p.Upstream {
			t = *prev.BehindSince
		}
		p.BehindSince = &t
	}
	b, err := json.Marshal(p)
	if err != nil {
		return err
	}
	b = append(b, '\n')
	old, err := afero.ReadFile(r.FS, r.CheckedPath())
	if err == nil && bytes.Equal(old, b) {
		if err := r.FS.Chtimes(r.CheckedPath(), at, at); err != nil {
			return fmt.Errorf("record the poll: %w", err)
		}
		return nil
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("record the poll: %w", err)
	}
	if err := fsys.WriteFile(r.FS, r.CheckedPath(), b, 0o644); err != nil {
		return fmt.Errorf("record the poll: %w", err)
	}
	if err := r.FS.Chtimes(r.CheckedPath(), at, at); err != nil {
		return fmt.Errorf("record the poll: %w", err)
	}
	return nil
}

// RecordPollOutcome is RecordPoll for a deferred call: it logs (does not
// return) a failure, which must not turn a good sync into a failed one.
func (r *Root) RecordPollOutcome(p Poll, at time.Time, log *slog.Logger) {
	if err := r.RecordPollOf(p, at); err != nil {
		log.Warn("could not record the poll in seq/checked", "err", err)
	}
}
