package ha

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// A Node is one master in its group: a connection to etcd, a lease kept
// alive while the process runs, and a place in the election.
type Node struct {
	cfg  Config
	k    keys
	cli  *clientv3.Client
	sess *concurrency.Session
	elec *concurrency.Election
	// leading: this node won the election on sess (Campaign, TryLead).
	leading bool
	// unconfirmed is the claim whose transaction got no answer (Resolve).
	unconfirmed *Record
}

// Join connects to etcd and takes a lease for the master cfg names: it
// does not campaign yet.
func Join(ctx context.Context, cfg Config) (*Node, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	cli, err := dial(ctx, &cfg)
	if err != nil {
		return nil, err
	}
	n := &Node{cfg: cfg, k: keys(cfg.Prefix), cli: cli}
	if err := n.renew(ctx); err != nil {
		cli.Close()
		return nil, err
	}
	return n, nil
}

// renew starts a new session (lease) and election after the last one
// was lost.
func (n *Node) renew(ctx context.Context) error {
	sess, err := newSession(ctx, n.cli, n.cfg.TTL, n.cfg.DialTimeout)
	if err != nil {
		return err
	}
	n.sess, n.elec, n.leading = sess, concurrency.NewElection(sess, n.k.election()), false
	return nil
}

// Close resigns if this node leads, revokes its lease (its master record
// and election key go at once, not after the TTL) and disconnects.
func (n *Node) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), n.cfg.DialTimeout)
	defer cancel()
	n.resign(ctx)
	_ = n.sess.Close()
	return n.cli.Close()
}

// Name is the master's name in the group.
func (n *Node) Name() string { return n.cfg.Name }

// Lost is closed when this node's lease is lost (expired, revoked, or not
// kept alive for its TTL): it no longer leads, and Run starts anew.
func (n *Node) Lost() <-chan struct{} { return n.sess.Done() }

// Leading reports whether this node won the election on its current lease
// (a claim still checks that the lease is alive).
func (n *Node) Leading() bool { return n.leading }

func (n *Node) self() Master { return Master{Name: n.cfg.Name, Address: n.cfg.Address} }

// timeout bounds one etcd request.
func (n *Node) timeout(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, n.cfg.DialTimeout)
}

// Announce writes this master's record (Prefix/masters/NAME) under its
// lease: its address and the snapshot it serves (0 and "" for none).
func (n *Node) Announce(ctx context.Context, served uint64, manifest string) error {
	m := n.self()
	m.Snapshot, m.Manifest = served, manifest
	ctx, cancel := n.timeout(ctx)
	defer cancel()
	if _, err := n.cli.Put(ctx, n.k.master(n.cfg.Name), mustJSON(m), clientv3.WithLease(n.sess.Lease())); err != nil {
		return fmt.Errorf("announce master %s in etcd: %w", n.cfg.Name, err)
	}
	return nil
}

// Campaign waits until this node leads the group (or ctx ends).
func (n *Node) Campaign(ctx context.Context) error {
	if err := n.campaign(ctx); err != nil {
		return err
	}
	n.leading = true
	return nil
}

// campaign is Campaign without the bookkeeping.
func (n *Node) campaign(ctx context.Context) error { return campaignOn(ctx, n.elec, n.self()) }

// campaignOn campaigns in elec as m (Run does in a goroutine of its own,
// on the election of the term it started).
func campaignOn(ctx context.Context, elec *concurrency.Election, m Master) error {
	if err := elec.Campaign(ctx, mustJSON(m)); err != nil {
		return fmt.Errorf("campaign for leadership: %w", err)
	}
	return nil
}

// resign gives up leadership (best effort: the lease ends it anyway).
func (n *Node) resign(ctx context.Context) {
	if !n.leading {
		return
	}
	ctx, cancel := n.timeout(ctx)
	defer cancel()
	if err := n.elec.Resign(ctx); err != nil {
		n.cfg.Log.Warn("could not resign in etcd; the lease ends the leadership", "err", err)
	}
	n.leading = false
}

// TryLead makes this node the leader for a one-off publish: if another
// master leads it fails at once with ErrNotLeader; otherwise it campaigns
// for at most wait (a leader whose lease is expiring may still be there).
func (n *Node) TryLead(ctx context.Context, wait time.Duration) error {
	if l, ok, err := n.Leader(ctx); err != nil {
		return err
	} else if ok && l.Name != n.cfg.Name {
		return fmt.Errorf("%w: master %s (%s) leads", ErrNotLeader, l.Name, l.Address)
	}
	wctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	if err := n.Campaign(wctx); err != nil {
		if ctx.Err() != nil {
			return err
		}
		return fmt.Errorf("%w: not elected within %s: %w", ErrNotLeader, wait, err)
	}
	return nil
}

// Leader returns the master that leads the group (ok false: none).
func (n *Node) Leader(ctx context.Context) (m Master, ok bool, err error) {
	ctx, cancel := n.timeout(ctx)
	defer cancel()
	resp, err := n.elec.Leader(ctx)
	if errors.Is(err, concurrency.ErrElectionNoLeader) {
		return m, false, nil
	}
	if err != nil {
		return m, false, fmt.Errorf("read the group's leader from etcd: %w", err)
	}
	if err := json.Unmarshal(resp.Kvs[0].Value, &m); err != nil {
		return m, false, fmt.Errorf("the group's leader key %s: %w", resp.Kvs[0].Key, err)
	}
	return m, true, nil
}

// Masters returns the records of the masters alive now (their leases).
func (n *Node) Masters(ctx context.Context) ([]Master, error) {
	ctx, cancel := n.timeout(ctx)
	defer cancel()
	return masters(ctx, n.cli, n.k)
}

func masters(ctx context.Context, kv clientv3.KV, k keys) ([]Master, error) {
	resp, err := kv.Get(ctx, k.masters(), clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("read the masters from etcd: %w", err)
	}
	ms := make([]Master, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		var m Master
		if err := json.Unmarshal(kv.Value, &m); err != nil {
			return nil, fmt.Errorf("etcd key %s: %w", kv.Key, err)
		}
		ms = append(ms, m)
	}
	return ms, nil
}

// Head returns the group's highest recorded snapshot (ok false: none yet).
func (n *Node) Head(ctx context.Context) (r Record, ok bool, err error) {
	ctx, cancel := n.timeout(ctx)
	defer cancel()
	_, ok, err = getJSON(ctx, n.cli, n.k.head(), &r)
	return r, ok, err
}
