package mirror

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/seqmirror/seqmirror/internal/export"
	"github.com/seqmirror/seqmirror/internal/fsys"
	"github.com/spf13/afero"
)

// ErrDiverged means ROOT serves a snapshot with the number the upstream
// serves but another manifest: something other than mirror-sync made it
// (publish into a mirror's root), or the upstream is another master that
// numbers its snapshots independently. Nothing was changed.
var ErrDiverged = errors.New("served snapshot differs from the upstream's snapshot of the same number")

// upstreamState is ROOT/.upstream (export.UpstreamStateName): the
// upstream snapshot the served one is known to be, written after each sync
// and after each check that compared the two manifests.
//
// A poll that finds the upstream serving the number ROOT serves trusts the
// record, and stays one small request, only if the upstream, both numbers
// and the upstream's seq/end are the recorded ones; otherwise it fetches the
// upstream's manifest once and compares its identity (export.ManifestID)
// with the served one's. A sync writes the record, so a mirror that follows
// one upstream fetches no extra manifest on its no-op polls.
type upstreamState struct {
	Upstream         string `json:"upstream"`
	Snapshot         uint64 `json:"snapshot"`          // the local snapshot the record is about
	UpstreamSnapshot uint64 `json:"upstream_snapshot"` // the upstream's number for it (the same)
	UpstreamEnd      uint64 `json:"upstream_end"`      // the upstream's seq/end when it was checked
	Manifest         string `json:"manifest"`          // export.ManifestID of its full manifest (export.Root.FullManifestPath)
	// Filter is the own filter (filter.Filter.Rules) the snapshot was
	// synced or checked with: a poll with another one builds it again.
	Filter []string `json:"filter,omitempty"`
	// Peers, for a mirror with several upstreams, are the other upstreams
	// found serving the same snapshot with the same manifest, each at its
	// seq/end then: the next poll tells them without a manifest fetch.
	Peers []peerState `json:"peers,omitempty"`
	// Signed is what the no-op poll needs of signatures (signedNote), so
	// that it reads no other file while nothing is due.
	Signed *signedNote `json:"signed,omitempty"`
}

// peerState is one of upstreamState.Peers.
type peerState struct {
	Upstream         string `json:"upstream"`
	UpstreamSnapshot uint64 `json:"upstream_snapshot"`
	UpstreamEnd      uint64 `json:"upstream_end"`
	Manifest         string `json:"manifest"`
}

// maxStateSize bounds ROOT/.upstream.
const maxStateSize = 64 << 10

func readUpstreamState(root *export.Root) (upstreamState, bool) {
	var st upstreamState
	b, err := afero.ReadFile(root.FS, root.Path(export.UpstreamStateName))
	if err != nil || len(b) > maxStateSize || json.Unmarshal(b, &st) != nil {
		return upstreamState{}, false
	}
	return st, true
}

// recordUpstream writes ROOT/.upstream for snapshot n, the upstream's
// snapshot n seen at seq/end e1. A failure is logged, not returned: the
// next poll then compares the manifests again.
// peers are kept if they are about snapshot n.
func recordUpstream(root *export.Root, up string, n, e1 uint64, peers []peerState, opt Options) {
	id, err := export.ManifestID(root.FS, root.FullManifestPath(n))
	if err == nil {
		st := upstreamState{Upstream: up, Snapshot: n, UpstreamSnapshot: n, UpstreamEnd: e1, Manifest: id, Filter: opt.Filter.Rules(), Signed: noteSigned(root, opt)}
		for _, p := range peers {
			if p.UpstreamSnapshot == n && p.Manifest == id {
				st.Peers = append(st.Peers, p)
			}
		}
		var b []byte
		if b, err = json.MarshalIndent(st, "", "  "); err == nil {
			err = fsys.WriteFile(root.FS, root.Path(export.UpstreamStateName), append(b, '\n'), 0o644)
		}
	}
	if err != nil {
		opt.Log.Warn("could not record the upstream's snapshot; the next poll compares manifests again", "file", export.UpstreamStateName, "err", err)
	}
}

// checkSame makes sure that snapshot n, which ROOT serves and the
// upstream serves (seen at seq/end e1), is the same snapshot on both: from
// the record if it vouches for exactly this, else by fetching the
// upstream's manifest and comparing identities (sameSnapshot). ErrDiverged
// if not. rebuild says that ROOT, a partial mirror, must build n again.
func (s *syncRun) checkSame(ctx context.Context, n, e1 uint64) (rebuild bool, _ error) {
	root, up, opt := s.root, s.up, s.opt
	st, ok := readUpstreamState(root)
	if ok && st.Upstream == up.String() && st.Snapshot == n && st.UpstreamSnapshot == n && st.UpstreamEnd == e1 &&
		!filterChanged(root, st, ok, n, opt.Filter) {
		return false, nil
	}
	got, err := s.mans.get(ctx, up, n) // a rebuild of n takes it (build.fetchManifest)
	if err != nil {
		return false, err
	}
	tmp := got.path
	if err := checkFetched(root.FS, tmp, n); err != nil {
		return false, fmt.Errorf("upstream %s: %w", up, err)
	}
	same, rebuild, err := s.sameSnapshot(ctx, n, tmp)
	switch {
	case err != nil:
		return false, err
	case !same:
		return false, fmt.Errorf("%w: %s and %s both serve snapshot %d, with different manifests; nothing was changed", ErrDiverged, root.Dir, up, n)
	case rebuild:
		opt.Log.Info("the served snapshot is the upstream's, with another subset; building it again", "snapshot", n, "upstream", up.String())
		return true, nil
	}
	opt.Log.Info("checked that the served snapshot is the upstream's (same manifest)", "snapshot", n, "upstream", up.String())
	recordUpstream(root, up.String(), n, e1, s.peers, opt)
	return false, nil
}

// behind reports whether an upstream that serves snapshot n, older than
// the cur ROOT serves, is behind rather than rolled back: it is not the
// upstream ROOT was last synced from, or it is that one but its seq/end
// (e1) has not advanced past the one recorded then (it was restored, or
// lags behind a peer we synced from under the same name). Only the same
// upstream that has published since (seq/end advanced) while it now serves
// an older snapshot has rolled back. Without any record it is a rollback,
// as before the record existed.
func behind(root *export.Root, up string, e1 uint64) (string, bool) {
	st, ok := readUpstreamState(root)
	switch {
	case ok && st.Upstream != up:
		return "it is not the upstream this root was last synced from (" + st.Upstream + ")", true
	case ok && e1 <= st.UpstreamEnd:
		return fmt.Sprintf("its seq/end %d has not advanced past %d, seen at the last sync", e1, st.UpstreamEnd), true
	case ok:
		return "", false
	}
	if rec := root.RecordedUpstream(); rec != "" && rec != up {
		return "it is not the upstream this root was last synced from (" + rec + ")", true
	}
	return "", false
}
