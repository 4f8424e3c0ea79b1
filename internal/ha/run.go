package ha

import (
	"context"
	"errors"
	"time"

	"github.com/seqmirror/seqmirror/internal/export"
)

// Roles are what Run does as leader and as follower.
type Roles struct {
	// Publish is one publish run of root from the master's source, with
	// claim as its export.UpdateOptions.Claim (the CLI runs
	// snapshot.Publish, taking over the root a follower mirrored into).
	Publish func(ctx context.Context, root *export.Root, claim func(context.Context, uint64, string) error) error
	// Sync is one mirror run of root (Hold and following the leader).
	Sync SyncFunc
	// Interval is how often the leader publishes (nothing, if the source
	// did not change) and a follower polls the leader; a follower also
	// syncs as soon as the group's head changes.
	Interval time.Duration
}

// errLost ends a term: the lease is gone or leadership cannot be shown.
var errLost = errors.New("lost the lease")

// Run keeps this master in its group until ctx ends: it campaigns, and
// while another master leads it keeps root a mirror of the leader's; once
// it leads it holds the group's head snapshot (Hold) and publishes every
// Interval. When its lease is lost it starts over with a new one. A
// leader that cannot hold the head resigns, so that another master (the
// one that has it) can lead. Errors of single runs are logged, not
// returned: Run returns when ctx ends.
func (n *Node) Run(ctx context.Context, root *export.Root, r Roles) error {
	for {
		err := n.term(ctx, root, r)
		if ctx.Err() != nil {
			return nil
		}
		n.cfg.Log.Warn("leaving the group's election; joining again with a new lease", "err", err)
		n.resign(ctx)
		_ = n.sess.Close()
		for {
			if err := n.renew(ctx); err == nil {
				break
			} else if ctx.Err() != nil {
				return nil
			} else {
				n.cfg.Log.Warn("cannot take a new lease; trying again", "err", err, "after", r.Interval)
			}
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(r.Interval):
			}
		}
	}
}

// term is Run on one lease.
func (n *Node) term(ctx context.Context, root *export.Root, r Roles) error {
	tctx, cancel := context.WithCancel(ctx)
	defer cancel()
	won := make(chan error, 1)
	elec, self := n.elec, n.self() // this term's: renew replaces n.elec
	go func() { won <- campaignOn(tctx, elec, self) }()
	watch := n.cli.Watch(tctx, n.k.head())
	tick := time.NewTicker(r.Interval)
	defer tick.Stop()
	held := false
	for {
		if err := n.step(ctx, root, r, &held); err != nil {
			return err
		}
		if !n.leading && held { // Hold failed: resigned; campaign again
			held = false
			go func() {
				select {
				case <-time.After(r.Interval):
					won <- campaignOn(tctx, elec, self)
				case <-tctx.Done():
				}
			}()
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-n.sess.Done():
			return errLost
		case err := <-won:
			if err != nil {
				return err
			}
			n.leading, held = true, false
			n.cfg.Log.Info("leading the masters' group", "master", n.cfg.Name)
		case <-tick.C:
		case _, ok := <-watch:
			if !ok {
				watch = nil
			}
		}
	}
}

// step is one round: publish as leader, sync as follower, then announce
// what root serves. held says the leader holds the head (Hold passed); a
// leader that cannot resigns and sets held (term campaigns again).
func (n *Node) step(ctx context.Context, root *export.Root, r Roles, held *bool) error {
	n.Resolve(ctx, root)
	if n.leading {
		if err := n.lead(ctx, root, r, held); err != nil {
			return err
		}
	} else {
		n.follow(ctx, root, r)
	}
	if s, d, err := Served(root); err == nil {
		if err := n.Announce(ctx, s, d); err != nil {
			n.cfg.Log.Warn("could not announce this master", "err", err)
		}
	}
	return nil
}

// lead is a leader's round.
func (n *Node) lead(ctx context.Context, root *export.Root, r Roles, held *bool) error {
	if !*held {
		if err := n.Hold(ctx, root, r.Sync); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			n.cfg.Log.Error("leader cannot publish; resigning so that another master can lead", "err", err)
			n.resign(ctx)
			*held = true // term campaigns again
			return nil
		}
		*held = true
	}
	err := r.Publish(ctx, root, n.Claim)
	switch {
	case err == nil, ctx.Err() != nil:
	case errors.Is(err, ErrNotLeader):
		n.cfg.Log.Error("lost leadership; the snapshot was not served", "err", err)
		return errLost
	case errors.Is(err, ErrNumberTaken):
		n.cfg.Log.Error("the group recorded the number meanwhile; the snapshot was not served", "err", err)
		*held = false
	default:
		n.cfg.Log.Error("publish failed", "err", err)
	}
	return nil
}

// follow is a follower's round: sync root from the leader.
func (n *Node) follow(ctx context.Context, root *export.Root, r Roles) {
	l, ok, err := n.Leader(ctx)
	if err != nil {
		n.cfg.Log.Warn("cannot read the group's leader", "err", err)
		return
	}
	if !ok || l.Name == n.cfg.Name || l.Address == "" {
		return
	}
	before, _ := root.Current()
	if err := r.Sync(ctx, root, []string{l.Address}); err != nil && ctx.Err() == nil {
		n.cfg.Log.Warn("could not sync from the leader", "leader", l.Name, "address", l.Address, "err", err)
	}
	if now, err := root.Current(); err == nil && now != before {
		n.cfg.Log.Info("following the leader: now serving its snapshot", "snapshot", now, "leader", l.Name)
	}
}
