package cliapp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/seqmirror/seqmirror/internal/export"
	"github.com/seqmirror/seqmirror/internal/ha"
	"github.com/seqmirror/seqmirror/internal/mirror"
	"github.com/seqmirror/seqmirror/snapshot"
	"github.com/urfave/cli/v2"
)

// The flags of highly available masters (docs/operating.md section 19).
var (
	etcdFlag = &cli.StringSliceFlag{Name: "etcd", Usage: "publish as one master of a highly available group whose leader etcd elects: etcd client `URL`s (comma-separated or repeated); " +
		"needs --name (unique in the group) and --address (where the other masters reach this root)"}
	etcdPrefixFlag   = &cli.StringFlag{Name: "etcd-prefix", Value: ha.DefaultPrefix, Usage: "keep the group's keys under `PREFIX` in etcd (one prefix per published tree)"}
	etcdLeaseTTLFlag = &cli.DurationFlag{Name: "etcd-lease-ttl", Value: 10 * time.Second, Usage: "the leader's lease: a master that lost etcd for `D` (whole seconds) is replaced"}
	followFlag       = &cli.BoolFlag{Name: "follow", Usage: "with --etcd: run until stopped, mirroring the leader while another master leads and publishing every --follow-interval while this one does"}
	followEveryFlag  = &cli.DurationFlag{Name: "follow-interval", Value: 10 * time.Second, Usage: "with --follow: publish (leader) or poll the leader (follower) every `D`"}
	toMasterFlag     = &cli.StringFlag{Name: "to-master", Usage: "force the group's record to the snapshot master `NAME` serves"}
	yesDiscardFlag   = &cli.BoolFlag{Name: "yes-discard", Usage: "really discard the records clobber lists (without it, it only lists them and exits 2)"}
)

// haPlan is what the --etcd flags ask for (on false: publish alone).
type haPlan struct {
	on, follow bool
	cfg        ha.Config
	every      time.Duration
	round      *slog.Logger // --follow: the log of each round's publish or sync
}

// minLevel is a slog handler that passes records of at least min.
type minLevel struct {
	slog.Handler
	min slog.Level
}

func (m *minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= m.min && m.Handler.Enabled(ctx, l)
}

// haFlags reads and checks the --etcd flags of publish.
func haFlags(c *cli.Context) (haPlan, error) {
	p := haPlan{on: c.IsSet("etcd"), follow: c.Bool("follow"), every: c.Duration("follow-interval")}
	if !p.on {
		for _, f := range []string{"follow", "follow-interval", "etcd-prefix", "etcd-lease-ttl"} {
			if c.IsSet(f) {
				return p, Usage("--%s needs --etcd: the etcd group of the masters", f)
			}
		}
		return p, nil
	}
	cfg, err := etcdConfig(c)
	if err != nil {
		return p, err
	}
	ttl := c.Duration("etcd-lease-ttl")
	switch {
	case ttl < time.Second || ttl%time.Second != 0:
		return p, Usage("--etcd-lease-ttl must be whole seconds, at least 1s, got %s", ttl)
	case !c.IsSet("name"):
		return p, Usage("--etcd needs --name: this master's name, unique in the group")
	case c.String("address") == "":
		return p, Usage("--etcd needs --address: where the other masters reach this root (they sync from the leader)")
	case p.every <= 0:
		return p, Usage("--follow-interval must be positive, got %s", p.every)
	case p.follow && (c.IsSet("quorum") || c.IsSet("notify")):
		return p, Usage("--follow publishes from a loop: --notify and --quorum are for one-off runs (mirrors of a group poll every master)")
	}
	cfg.TTL, cfg.Name, cfg.Address = ttl, c.String("name"), c.String("address")
	cfg.DialTimeout = min(ttl, 5*time.Second)
	p.cfg = cfg
	return p, nil
}

// etcdConfig reads --etcd and --etcd-prefix.
func etcdConfig(c *cli.Context) (ha.Config, error) {
	var eps []string
	for _, s := range c.StringSlice("etcd") {
		for _, ep := range strings.Split(s, ",") {
			if ep = strings.TrimSpace(ep); ep != "" {
				eps = append(eps, ep)
			}
		}
	}
	if len(eps) == 0 {
		return ha.Config{}, Usage("--etcd needs at least one etcd client URL (http://host:2379)")
	}
	prefix := c.String("etcd-prefix")
	if !strings.HasPrefix(prefix, "/") || !strings.HasSuffix(prefix, "/") {
		return ha.Config{}, Usage("--etcd-prefix must start and end with a slash, got %q", prefix)
	}
	return ha.Config{Endpoints: eps, Prefix: prefix, Log: newLogger(c)}, nil
}

// haLead makes a one-off publish the group's leader, holding its newest
// snapshot, and sets opt to claim in etcd before the flip. The caller
// calls resign when the run is over (a no-op without --etcd).
func haLead(e *env, r *export.Root, p haPlan, opt *snapshot.PublishOptions) (resign func(), _ error) {
	if !p.on {
		return func() {}, nil
	}
	ctx := e.c.Context
	n, err := ha.Join(ctx, p.cfg)
	if err != nil {
		return nil, err
	}
	err = n.TryLead(ctx, p.cfg.TTL)
	if err == nil {
		err = n.Hold(ctx, r, haSync(e, p))
	}
	if err != nil {
		n.Close()
		return nil, err
	}
	opt.Claim, opt.TakeOver = n.Claim, true
	return func() { n.Close() }, nil
}

// haFollow is publish --etcd --follow: it stays in the group until a
// signal (ha.Node.Run) and exits 0.
func haFollow(e *env, r *export.Root, src string, p haPlan, opt snapshot.PublishOptions) error {
	ctx, c := e.c.Context, e.c
	n, err := ha.Join(ctx, p.cfg)
	if err != nil {
		return err
	}
	defer n.Close()
	opt.Served, opt.TakeOver = nil, true
	// Each round's own lines say mostly "nothing to do": warnings and
	// errors only (all with --verbose); the group's log says what changed.
	p.round = opt.Log
	if !c.Bool("verbose") {
		p.round = slog.New(&minLevel{Handler: opt.Log.Handler(), min: slog.LevelWarn})
	}
	opt.Log = p.round
	roles := ha.Roles{
		Publish: func(ctx context.Context, root *export.Root, claim func(context.Context, uint64, string) error) error {
			o := opt
			o.Claim = claim
			_, err := snapshot.Publish(ctx, root, src, o)
			return err
		},
		Sync: haSync(e, p), Interval: p.every,
	}
	return n.Run(ctx, r, roles)
}

// haSync syncs a master's root from other masters (mirror.SyncFrom).
func haSync(e *env, p haPlan) ha.SyncFunc {
	return func(ctx context.Context, root *export.Root, addrs []string) error {
		opt := mirror.DefaultOptions()
		opt.Name, opt.Address, opt.Log = p.cfg.Name, p.cfg.Address, p.cfg.Log
		if p.round != nil {
			opt.Log = p.round
		}
		opt.Keep, opt.MinAge, _ = e.keep()
		ups, err := openUpstreams(e, addrs, root.WorkDir())
		if err != nil {
			return err
		}
		defer closeAll(ups)
		_, err = mirror.SyncFrom(ctx, root, ups, opt)
		return err
	}
}

// clobberCommand is publish clobber.
func clobberCommand() *cli.Command {
	return &cli.Command{
		Name:  "clobber",
		Usage: "after a disaster, force the etcd group's record to the snapshot one master serves, discarding the records above it",
		UsageText: "publish clobber --etcd URL... [--etcd-prefix P] --to-master NAME [--root ROOT] [--yes-discard] [--json]\n" +
			"Without --yes-discard it lists what it would discard, changes nothing and exits 2. --root reads the snapshot\n" +
			"from that master's root (on its host) when the master is not running.",
		Flags:  []cli.Flag{etcdFlag, etcdPrefixFlag, toMasterFlag, rootFlag, yesDiscardFlag, jsonFlag, quietFlag, verboseFlag},
		Action: clobberAction,
	}
}

func clobberAction(c *cli.Context) error {
	e, err := newEnv(c)
	if err != nil {
		return err
	}
	name := c.String("to-master")
	if name == "" {
		return Usage("--to-master is required: the master whose snapshot the group keeps")
	}
	cfg, err := etcdConfig(c)
	if err != nil {
		return err
	}
	adm, err := ha.Connect(c.Context, cfg)
	if err != nil {
		return err
	}
	defer adm.Close()
	to, err := clobberTarget(e, adm, name)
	if err != nil {
		return err
	}
	yes := c.Bool("yes-discard")
	gone, err := adm.Clobber(c.Context, to, !yes)
	if err != nil {
		return err
	}
	return clobberReport(e, to, gone, yes)
}

// clobberTarget is the state of master name: from --root if given, else
// from its record in etcd (it runs).
func clobberTarget(e *env, adm *ha.Admin, name string) (ha.Master, error) {
	if e.c.IsSet("root") {
		r, err := e.existingRoot()
		if err != nil {
			return ha.Master{}, err
		}
		s, d, err := ha.Served(r)
		return ha.Master{Name: name, Snapshot: s, Manifest: d}, err
	}
	m, ok, err := adm.Lookup(e.c.Context, name)
	if err != nil {
		return m, err
	}
	if !ok {
		return m, Usage("master %s is not running (no record in etcd): give --root, its export root, on its host", name)
	}
	return m, nil
}

// errClobberUnconfirmed: clobber without --yes-discard (a usage error).
var errClobberUnconfirmed = errors.New("nothing was changed: pass --yes-discard to discard these records")

func clobberReport(e *env, to ha.Master, gone []ha.Record, done bool) error {
	if e.c.Bool("json") {
		if gone == nil {
			gone = []ha.Record{}
		}
		if err := e.printJSON(map[string]any{"to": to, "discarded": gone, "done": done}); err != nil {
			return err
		}
	} else if done || !e.c.Bool("quiet") {
		verb := "would discard"
		if done {
			verb = "discarded"
		}
		what := "would be forced"
		if done {
			what = "forced"
		}
		fmt.Fprintf(e.out, "group record %s to snapshot %d of master %s (%s)\n", what, to.Snapshot, to.Name, to.Manifest)
		for _, r := range gone {
			fmt.Fprintf(e.out, "%s snapshot %d: manifest %s, claimed by %s at %s\n", verb, r.Snapshot, r.Manifest, r.Master, r.Time.Format(time.RFC3339))
		}
	}
	if !done {
		return usageError{fmt.Errorf("clobber: %d records would be discarded; %w", len(gone), errClobberUnconfirmed)}
	}
	return nil
}

// haHint says what to do about a refusal of a master of a group.
func haHint(err error) string {
	switch {
	case errors.Is(err, ha.ErrNotLeader):
		return "nothing was published; another master leads (or this one lost its lease): run masters with --follow, or let the leader publish"
	case errors.Is(err, ha.ErrNumberTaken):
		return "nothing was published; another master recorded that snapshot number: sync this root from the leader (publish --follow does) and publish again"
	case errors.Is(err, ha.ErrBehind):
		return "nothing was published; start the master that holds the group's newest snapshot, or, after a disaster, `publish clobber --etcd ... --to-master NAME` (it lists what it discards)"
	}
	return ""
}
