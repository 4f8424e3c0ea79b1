// Package hacli is publish's highly available mode (--etcd, publish
// clobber) on package ha: the cliapp.Group that cmd/publish builds in
// (cliapp.WithGroup). It lives apart from cliapp so that mirror-sync's
// binary does not link etcd's client. It holds no state: each method
// joins the group (or connects as an admin) for the one run and leaves.
package hacli

import (
	"context"
	"io"
	"time"

	"github.com/seqmirror/seqmirror/internal/cliapp"
	"github.com/seqmirror/seqmirror/internal/export"
	"github.com/seqmirror/seqmirror/internal/ha"
	"github.com/seqmirror/seqmirror/internal/mirror"
	"github.com/seqmirror/seqmirror/snapshot"
	"github.com/urfave/cli/v2"
)

// Group is cliapp.Group on etcd (package ha).
type Group struct{}

// PublishApp is publish with its --etcd mode: what cmd/publish runs.
func PublishApp(stdout, stderr io.Writer) *cli.App { return cliapp.WithGroup(Group{})(stdout, stderr) }

// config is the ha.Config of plan p.
func config(p cliapp.HAPlan) ha.Config {
	return ha.Config{Endpoints: p.Endpoints, Prefix: p.Prefix, TTL: p.TTL, Name: p.Name, Address: p.Address,
		DialTimeout: min(max(p.TTL, time.Second), 5*time.Second), Log: p.Log}
}

// Lead implements cliapp.Group.
func (Group) Lead(ctx context.Context, r *export.Root, p cliapp.HAPlan, opt *snapshot.PublishOptions) (func(), error) {
	n, err := ha.Join(ctx, config(p))
	if err != nil {
		return nil, err
	}
	err = n.TryLead(ctx, p.TTL)
	if err == nil {
		err = n.Hold(ctx, r, syncFunc(p))
	}
	if err != nil {
		n.Close()
		return nil, err
	}
	opt.Claim, opt.TakeOver = n.Claim, true
	return func() { n.Close() }, nil
}

// Follow implements cliapp.Group: ha.Node.Run until ctx ends.
func (Group) Follow(ctx context.Context, r *export.Root, src string, p cliapp.HAPlan, opt snapshot.PublishOptions) error {
	n, err := ha.Join(ctx, config(p))
	if err != nil {
		return err
	}
	defer n.Close()
	roles := ha.Roles{
		Publish: func(ctx context.Context, root *export.Root, claim func(context.Context, uint64, string) error) error {
			o := opt
			o.Claim = claim
			res, err := snapshot.Publish(ctx, root, src, o)
			if err == nil && !res.Published && o.Signer != nil {
				// Unchanged: refresh the timestamp past half its validity.
				ro := snapshot.ResignOptions{Signer: o.Signer, Validity: o.Validity, LockWait: o.LockWait, Now: o.Now, IfStale: true}
				_, err = snapshot.Resign(ctx, root, ro)
			}
			return err
		},
		Sync: syncFunc(p), Interval: p.Every,
	}
	return n.Run(ctx, r, roles)
}

// syncFunc syncs a master's root from other masters (mirror.SyncFrom).
func syncFunc(p cliapp.HAPlan) ha.SyncFunc {
	return func(ctx context.Context, root *export.Root, addrs []string) error {
		opt := mirror.DefaultOptions()
		opt.Name, opt.Address, opt.Keep, opt.MinAge, opt.Log = p.Name, p.Address, p.Keep, p.MinAge, p.Round
		ups, err := p.Open(addrs, root.WorkDir())
		if err != nil {
			return err
		}
		defer func() {
			for _, up := range ups {
				up.Close()
			}
		}()
		_, err = mirror.SyncFrom(ctx, root, ups, opt)
		return err
	}
}

// Clobber implements cliapp.Group.
func (Group) Clobber(ctx context.Context, p cliapp.HAPlan, req cliapp.ClobberRequest) (cliapp.ClobberReport, error) {
	var rep cliapp.ClobberReport
	adm, err := ha.Connect(ctx, config(p))
	if err != nil {
		return rep, err
	}
	defer adm.Close()
	to, err := target(ctx, adm, req)
	if err != nil {
		return rep, err
	}
	gone, err := adm.Clobber(ctx, to, !req.Yes)
	if err != nil {
		return rep, err
	}
	rep.To, rep.Done = cliapp.ClobberState{Master: to.Name, Snapshot: to.Snapshot, Manifest: to.Manifest}, req.Yes
	for _, g := range gone {
		rep.Discarded = append(rep.Discarded, cliapp.ClobberDiscard{Snapshot: g.Snapshot, Manifest: g.Manifest, Master: g.Master, Time: g.Time})
	}
	return rep, nil
}

// target is the state of the master req names: read from its root if
// given, else from its record in etcd (it runs).
func target(ctx context.Context, adm *ha.Admin, req cliapp.ClobberRequest) (ha.Master, error) {
	if req.Root != nil {
		s, d, err := ha.Served(req.Root)
		return ha.Master{Name: req.Master, Snapshot: s, Manifest: d}, err
	}
	m, ok, err := adm.Lookup(ctx, req.Master)
	if err != nil {
		return m, err
	}
	if !ok {
		return m, cliapp.Usage("master %s is not running (no record in etcd): give --root, its export root, on its host", req.Master)
	}
	return m, nil
}
