package ha

import (
	"context"
	"fmt"
	"math"
	"strings"

	"github.com/seqmirror/seqmirror/internal/export"
)

// SyncFunc brings root up to the newest snapshot the upstreams at addrs
// serve (the CLI runs mirror.SyncFrom).
type SyncFunc func(ctx context.Context, root *export.Root, addrs []string) error

// Hold makes sure root serves the group's head snapshot, with the
// recorded manifest, before this master publishes: a new leader's first
// step. It is done if root serves it already; if root holds it complete
// but not served (this master was killed between its claim and its flip)
// it flips to it; otherwise it syncs it (sync) from the live masters that
// announce it. It fails with ErrBehind if none does, or if root serves a
// snapshot the group's record does not have.
func (n *Node) Hold(ctx context.Context, root *export.Root, sync SyncFunc) error {
	head, ok, err := n.Head(ctx)
	if err != nil || !ok {
		return err
	}
	cur, err := root.Current()
	if err != nil {
		return err
	}
	if cur > head.Snapshot {
		return fmt.Errorf("%w: %s serves snapshot %d, above the group's newest record %d (master %s): not recorded, it may reuse a number the group gives another manifest",
			ErrBehind, root.Dir, cur, head.Snapshot, head.Master)
	}
	if cur < head.Snapshot && root.Complete(head.Snapshot) && n.same(root, head) {
		n.cfg.Log.Info("flipping to the group's newest snapshot, claimed here before a crash", "snapshot", head.Snapshot)
		if err := flipTo(ctx, root, head.Snapshot); err != nil {
			return err
		}
		cur = head.Snapshot
	}
	if cur < head.Snapshot {
		if err := n.fetch(ctx, root, head, sync); err != nil {
			return err
		}
	}
	if !n.same(root, head) {
		return fmt.Errorf("%w: %s's snapshot %d is not the one the group recorded (manifest %s, master %s)",
			ErrBehind, root.Dir, head.Snapshot, head.Manifest, head.Master)
	}
	return nil
}

// same reports whether root's snapshot head.Snapshot has the recorded
// manifest.
func (n *Node) same(root *export.Root, head Record) bool {
	d, err := Digest(root.FS, root.ManifestPath(head.Snapshot))
	return err == nil && d == head.Manifest
}

// fetch syncs head from the live masters that announce it.
func (n *Node) fetch(ctx context.Context, root *export.Root, head Record, sync SyncFunc) error {
	ms, err := n.Masters(ctx)
	if err != nil {
		return err
	}
	var addrs, names []string
	for _, m := range ms {
		names = append(names, fmt.Sprintf("%s (snapshot %d)", m.Name, m.Snapshot))
		if m.Name != n.cfg.Name && m.Address != "" && m.Snapshot == head.Snapshot && m.Manifest == head.Manifest {
			addrs = append(addrs, m.Address)
		}
	}
	if len(addrs) == 0 {
		return fmt.Errorf("%w: the group's newest snapshot %d (recorded by master %s) is served by no live master (live: %s); start %s again, or force the group's record to a master's state",
			ErrBehind, head.Snapshot, head.Master, strings.Join(names, ", "), head.Master)
	}
	n.cfg.Log.Info("syncing the group's newest snapshot before publishing", "snapshot", head.Snapshot, "from", addrs)
	if err := sync(ctx, root, addrs); err != nil {
		return fmt.Errorf("sync the group's newest snapshot %d: %w", head.Snapshot, err)
	}
	return nil
}

// flipTo serves root's complete snapshot s: an update that only flips.
func flipTo(ctx context.Context, root *export.Root, s uint64) (err error) {
	u, err := root.Begin(ctx, export.UpdateOptions{Keep: math.MaxInt})
	if err != nil {
		return err
	}
	defer func() { _, err = u.Done(err) }()
	if err := u.Start(); err != nil {
		return err
	}
	return u.Install(ctx, export.Built{N: s})
}

// Served is what root serves and its manifest's Digest (0, "": nothing).
func Served(root *export.Root) (uint64, string, error) {
	cur, err := root.Current()
	if err != nil || cur == 0 {
		return 0, "", err
	}
	d, err := Digest(root.FS, root.ManifestPath(cur))
	return cur, d, err
}
