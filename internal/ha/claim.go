package ha

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"time"

	"github.com/seqmirror/seqmirror/internal/export"
	"github.com/seqmirror/seqmirror/internal/fsys"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Claim records snapshot num, whose manifest file is at manifest, as this
// master's, before it is served: the hook of export.UpdateOptions.Claim.
// It is the group's one compare-and-swap (docs/protocol.md), a single etcd
// transaction that succeeds only if
//
//   - this master's election key is still the one it won with (its lease
//     is alive: it still leads),
//   - no record of num exists, and
//   - the head record is unchanged since this claim read it (and num is
//     above it),
//
// and then writes the record of num and the head together. Otherwise
// nothing is written and the error wraps ErrNotLeader (leadership lost,
// or etcd did not answer: leadership cannot be shown) or ErrNumberTaken.
// A record of num with this very manifest already there is no error.
func (n *Node) Claim(ctx context.Context, num uint64, manifest string) error {
	if !n.leading {
		return fmt.Errorf("%w: snapshot %d: this master did not win the election", ErrNotLeader, num)
	}
	digest, err := Digest(n.cfg.FS, manifest)
	if err != nil {
		return err
	}
	ctx, cancel := n.timeout(ctx)
	defer cancel()
	var head Record
	headRev, ok, err := getJSON(ctx, n.cli, n.k.head(), &head)
	if err != nil {
		return fmt.Errorf("%w: cannot record snapshot %d: %w", ErrNotLeader, num, err)
	}
	if ok && num <= head.Snapshot {
		return n.recorded(ctx, num, digest, head)
	}
	rec := mustJSON(Record{Snapshot: num, Manifest: digest, Master: n.cfg.Name, Time: time.Now().UTC()})
	resp, err := n.cli.Txn(ctx).If(
		clientv3.Compare(clientv3.CreateRevision(n.elec.Key()), "=", n.elec.Rev()),
		clientv3.Compare(clientv3.CreateRevision(n.k.snapshot(num)), "=", 0),
		clientv3.Compare(clientv3.ModRevision(n.k.head()), "=", headRev),
	).Then(
		clientv3.OpPut(n.k.snapshot(num), rec),
		clientv3.OpPut(n.k.head(), rec),
	).Else(
		clientv3.OpGet(n.elec.Key()),
		clientv3.OpGet(n.k.snapshot(num)),
	).Commit()
	if err != nil {
		// The transaction may have been committed and its answer lost:
		// keep the snapshot (export.ErrUnconfirmed) until Resolve knows.
		n.unconfirmed = &Record{Snapshot: num, Manifest: digest, Master: n.cfg.Name}
		return fmt.Errorf("%w: cannot record snapshot %d: %w (%w)", ErrNotLeader, num, err, export.ErrUnconfirmed)
	}
	if !resp.Succeeded {
		return n.refused(num, resp)
	}
	n.cfg.Log.Info("recorded snapshot in etcd", "snapshot", num, "manifest", digest)
	return nil
}

// recorded is Claim for a number at or below the head: no error only if
// the group recorded num with this manifest already.
func (n *Node) recorded(ctx context.Context, num uint64, digest string, head Record) error {
	var have Record
	_, ok, err := getJSON(ctx, n.cli, n.k.snapshot(num), &have)
	if err != nil {
		return fmt.Errorf("%w: cannot record snapshot %d: %w", ErrNotLeader, num, err)
	}
	if ok && have.Manifest == digest {
		return nil
	}
	return fmt.Errorf("%w: snapshot %d: the group's newest is %d (recorded by master %s)", ErrNumberTaken, num, head.Snapshot, head.Master)
}

// refused says why Claim's transaction did not go through.
func (n *Node) refused(num uint64, resp *clientv3.TxnResponse) error {
	if len(resp.Responses[0].GetResponseRange().Kvs) == 0 {
		n.leading = false
		return fmt.Errorf("%w: snapshot %d: this master's lease expired (its election key is gone)", ErrNotLeader, num)
	}
	if kvs := resp.Responses[1].GetResponseRange().Kvs; len(kvs) > 0 {
		var have Record
		_ = json.Unmarshal(kvs[0].Value, &have)
		return fmt.Errorf("%w: snapshot %d was recorded by master %s for manifest %s", ErrNumberTaken, num, have.Master, have.Manifest)
	}
	return fmt.Errorf("%w: snapshot %d: another snapshot was recorded meanwhile", ErrNumberTaken, num)
}

// Resolve settles a claim whose transaction got no answer (Claim kept its
// snapshot complete and unserved in root): once etcd answers, it keeps the
// snapshot if the group recorded it with this manifest (Hold flips to it
// when this master leads), and otherwise removes it, under root's lock.
// It does nothing if there is nothing to settle or etcd does not answer.
func (n *Node) Resolve(ctx context.Context, root *export.Root) {
	u := n.unconfirmed
	if u == nil {
		return
	}
	tctx, cancel := n.timeout(ctx)
	defer cancel()
	var have Record
	_, ok, err := getJSON(tctx, n.cli, n.k.snapshot(u.Snapshot), &have)
	if err != nil {
		return
	}
	n.unconfirmed = nil
	if ok && have.Manifest == u.Manifest {
		n.cfg.Log.Info("an unconfirmed claim held: the snapshot is recorded for this master", "snapshot", u.Snapshot)
		return
	}
	if err := removeUnserved(root, u.Snapshot); err != nil {
		n.cfg.Log.Warn("could not remove the snapshot of an unconfirmed claim", "snapshot", u.Snapshot, "err", err)
		return
	}
	n.cfg.Log.Info("removed the snapshot of a claim the group did not record", "snapshot", u.Snapshot)
}

// removeUnserved removes root's snapshot s, under its lock, if it is not
// the one served.
func removeUnserved(root *export.Root, s uint64) error {
	lock, err := root.Lock()
	if err != nil {
		return err
	}
	defer lock.Unlock()
	if cur, err := root.Current(); err != nil || cur == s {
		return err
	}
	if err := root.FS.Remove(root.ManifestPath(s)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove manifest of snapshot %d: %w", s, err)
	}
	return fsys.RemoveAll(root.FS, root.SnapshotDir(s))
}
