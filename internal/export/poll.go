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
const maxPollRecord = 4096

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
	if at.IsZero() {
		return nil
	}
	p := Poll{Upstream: upstream, UpstreamSnapshot: up, Snapshot: served}
	if up > served {
		t := at.UTC()
		if prev, ok := r.LastPoll(); ok && prev.Snapshot == served && prev.BehindSince != nil && prev.Upstream == upstream {
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
func (r *Root) RecordPollOutcome(upstream string, up uint64, at time.Time, served uint64, log *slog.Logger) {
	if err := r.RecordPoll(upstream, up, at, served); err != nil {
		log.Warn("could not record the poll in seq/checked", "err", err)
	}
}
