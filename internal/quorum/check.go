package quorum

import (
	"context"
	"fmt"

	"github.com/seqmirror/seqmirror/internal/export"
	"github.com/seqmirror/seqmirror/internal/transport"
	"github.com/seqmirror/seqmirror/internal/transport/upstream"
	"github.com/seqmirror/seqmirror/seqfile"
)

// check is the rule by which a mirror counts (doc.go): one bounded look
// through a freshly opened upstream at its seq files, its current and its
// manifest of the target. The Mirror it returns counts, or says why not.
func (p poller) check(ctx context.Context) Mirror {
	ctx, cancel := context.WithTimeout(ctx, p.s.RequestTimeout)
	defer cancel()
	m := Mirror{Addr: p.addr}
	up, err := p.s.Open(p.addr)
	if err != nil {
		m.Why = "cannot be opened: " + err.Error()
		return m
	}
	defer up.Close()
	e1, err := up.Seq(ctx, seqfile.End)
	if err != nil {
		m.Why = "unreachable: " + err.Error()
		return m
	}
	if why := p.idle(ctx, up, e1); why != "" {
		m.Why = why
		return m
	}
	if m.Snapshot, _, err = up.Current(ctx); err != nil {
		m.Why = "unreachable: " + err.Error()
		return m
	}
	if m.Snapshot < p.s.Target {
		m.Why = fmt.Sprintf("serves snapshot %d", m.Snapshot)
		return m
	}
	if m.Why = p.sameManifest(ctx, up); m.Why != "" {
		return m
	}
	if m.Why = p.idle(ctx, up, e1); m.Why != "" {
		return m
	}
	m.Counted = true
	return m
}

// idle says why the mirror is not idle at seq/end e1 ("" if its seq/begin
// is e1: no update runs, and none started since e1 was read).
func (p poller) idle(ctx context.Context, up transport.Upstream, e1 uint64) string {
	b, err := up.Seq(ctx, seqfile.Begin)
	switch {
	case err != nil:
		return "unreachable: " + err.Error()
	case b != e1:
		return fmt.Sprintf("is updating (seq/begin %d, seq/end %d)", b, e1)
	}
	return ""
}

// sameManifest fetches the mirror's manifest of the target and says why
// it is not the master's ("" if it is: the same export.ManifestID).
func (p poller) sameManifest(ctx context.Context, up transport.Upstream) string {
	f := p.s.FS
	_ = f.Remove(p.manifest)
	defer f.Remove(p.manifest)
	if err := up.FetchManifest(ctx, p.s.Target, p.manifest); err != nil {
		return fmt.Sprintf("its manifest of snapshot %d cannot be read: %v", p.s.Target, err)
	}
	id, err := export.ManifestID(f, p.manifest)
	if err != nil {
		return fmt.Sprintf("its manifest of snapshot %d: %v", p.s.Target, err)
	}
	if id != p.s.ManifestID {
		if p.partialOf(ctx, up) {
			return fmt.Sprintf("is a partial mirror of snapshot %d (it serves a subset of it, --include/--exclude): only whole copies count", p.s.Target)
		}
		return fmt.Sprintf("serves a snapshot %d with another manifest than the master's (%s, not %s): another master's, or published into the mirror's root", p.s.Target, id, p.s.ManifestID)
	}
	return ""
}

// partialOf reports whether the mirror keeps the master's manifest of the
// target as its full manifest (snapshots/N.full): a partial mirror of it.
func (p poller) partialOf(ctx context.Context, up transport.Upstream) bool {
	ff, ok := up.(upstream.FullFetcher)
	if !ok {
		return false
	}
	f := p.s.FS
	_ = f.Remove(p.manifest)
	defer f.Remove(p.manifest)
	if err := ff.FetchFull(ctx, p.s.Target, p.manifest); err != nil {
		return false
	}
	id, err := export.ManifestID(f, p.manifest)
	return err == nil && id == p.s.ManifestID
}
