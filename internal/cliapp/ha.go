package cliapp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/seqmirror/seqmirror/internal/export"
	"github.com/seqmirror/seqmirror/internal/ha/haerr"
	"github.com/seqmirror/seqmirror/internal/transport"
	"github.com/seqmirror/seqmirror/snapshot"
	"github.com/urfave/cli/v2"
)

// The flags of highly available masters (docs/operating.md section 19).
var (
	etcdFlag = &cli.StringSliceFlag{Name: "etcd", Usage: "publish as one master of a highly available group whose leader etcd elects: etcd client `URL`s (comma-separated or repeated); " +
		"needs --name (unique in the group) and --address (where the other masters reach this root)"}
	etcdPrefixFlag   = &cli.StringFlag{Name: "etcd-prefix", Value: haerr.DefaultPrefix, Usage: "keep the group's keys under `PREFIX` in etcd (one prefix per published tree)"}
	etcdLeaseTTLFlag = &cli.DurationFlag{Name: "etcd-lease-ttl", Value: 10 * time.Second, Usage: "the leader's lease: a master that lost etcd for `D` (whole seconds) is replaced"}
	followFlag       = &cli.BoolFlag{Name: "follow", Usage: "with --etcd: run until stopped, mirroring the leader while another master leads and publishing every --follow-interval while this one does"}
	followEveryFlag  = &cli.DurationFlag{Name: "follow-interval", Value: 10 * time.Second, Usage: "with --follow: publish (leader) or poll the leader (follower) every `D`"}
	toMasterFlag     = &cli.StringFlag{Name: "to-master", Usage: "force the group's record to the snapshot master `NAME` serves"}
	yesDiscardFlag   = &cli.BoolFlag{Name: "yes-discard", Usage: "really discard the records clobber lists (without it, it only lists them and exits 2)"}
)

// Group is publish's highly available mode (--etcd), on etcd: package
// hacli implements it with package ha, and cmd/publish builds it in
// (WithGroup). It is kept out of this package so that mirror-sync's binary
// does not link etcd's client, whose init would add milliseconds to every
// no-op poll.
type Group interface {
	// Lead makes a one-off publish the group's leader, holding its newest
	// snapshot, and sets opt to record the snapshot in etcd before the
	// flip; resign ends the leadership once the run is over.
	Lead(ctx context.Context, r *export.Root, p HAPlan, opt *snapshot.PublishOptions) (resign func(), _ error)
	// Follow is --follow: it stays in the group until ctx ends.
	Follow(ctx context.Context, r *export.Root, src string, p HAPlan, opt snapshot.PublishOptions) error
	// Clobber forces the group's record to a master's state (or, unless
	// req.Yes, only says what that would discard).
	Clobber(ctx context.Context, p HAPlan, req ClobberRequest) (ClobberReport, error)
}

// HAPlan is what the --etcd flags ask for, with what a Group needs of the
// command.
type HAPlan struct {
	On, Follow bool
	Endpoints  []string
	Prefix     string
	TTL        time.Duration
	// Name and Address are this master's (--name, --address).
	Name, Address string
	Every         time.Duration // --follow-interval
	Log           *slog.Logger  // the command's
	// Round, with --follow, is the log of each round's publish or sync:
	// warnings and errors only unless --verbose.
	Round *slog.Logger
	// Keep and MinAge are the pruning rule of a sync from another master.
	Keep   int
	MinAge time.Duration
	// Open opens upstreams as mirror-sync does (its transports and their
	// flags); close them with the function it returns.
	Open func(addrs []string, scratch string) ([]transport.Upstream, error)
}

// ClobberRequest is what publish clobber asks for.
type ClobberRequest struct {
	Master string       // --to-master
	Root   *export.Root // --root: the master's state read there (nil: from etcd)
	Yes    bool         // --yes-discard
}

// ClobberReport is what a clobber did (or, without Yes, would do).
type ClobberReport struct {
	To        ClobberState     `json:"to"`
	Discarded []ClobberDiscard `json:"discarded"`
	Done      bool             `json:"done"`
}

// ClobberState is the master state the group's record is forced to.
type ClobberState struct {
	Master   string `json:"master"`
	Snapshot uint64 `json:"snapshot"`
	Manifest string `json:"manifest"`
}

// ClobberDiscard is one record a clobber discards.
type ClobberDiscard struct {
	Snapshot uint64    `json:"snapshot"`
	Manifest string    `json:"manifest"`
	Master   string    `json:"master"`
	Time     time.Time `json:"time"`
}

// groupKey is where WithGroup keeps the Group (cli.App.Metadata).
const groupKey = "seqmirror/cliapp.Group"

// WithGroup builds publish (PublishApp) with g as its --etcd mode.
func WithGroup(g Group) func(stdout, stderr io.Writer) *cli.App {
	return func(stdout, stderr io.Writer) *cli.App {
		app := PublishApp(stdout, stderr)
		if app.Metadata == nil {
			app.Metadata = map[string]any{}
		}
		app.Metadata[groupKey] = g
		return app
	}
}

// groupOf returns c's app's Group. An app without one (publish, which
// does not link etcd's client) hands the whole command line to GroupTool
// (handOff) and does not return unless that fails.
func groupOf(c *cli.Context) (Group, error) {
	if g, ok := c.App.Metadata[groupKey].(Group); ok && g != nil {
		return g, nil
	}
	return nil, handOff()
}

// GroupTool is the program with publish's --etcd mode linked in
// (cmd/publish-etcd), installed beside publish.
const GroupTool = "publish-etcd"

// handOff runs GroupTool in place of this process (execve: the same
// arguments, environment, descriptors, process ID and so signals): from
// the directory of this executable, else from PATH.
func handOff() error {
	path := ""
	if self, err := os.Executable(); err == nil {
		if p := filepath.Join(filepath.Dir(self), GroupTool); isExecutable(p) {
			path = p
		}
	}
	if path == "" {
		p, err := exec.LookPath(GroupTool)
		if err != nil {
			return Usage("--etcd runs in %s, which is neither beside this program nor in PATH: install it (make install does)", GroupTool)
		}
		path = p
	}
	err := syscall.Exec(path, append([]string{GroupTool}, os.Args[1:]...), os.Environ())
	return fmt.Errorf("run %s: %w", path, err)
}

// isExecutable reports whether p is a regular file someone may execute.
func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}

// haFlags reads and checks the --etcd flags of publish.
func haFlags(e *env, r *export.Root) (HAPlan, error) {
	c, set := e.c, setFlags(e.c)
	p := HAPlan{On: set["etcd"], Follow: c.Bool("follow"), Every: c.Duration("follow-interval"), TTL: c.Duration("etcd-lease-ttl")}
	if !p.On {
		for _, f := range []string{"follow", "follow-interval", "etcd-prefix", "etcd-lease-ttl"} {
			if set[f] {
				return p, Usage("--%s needs --etcd: the etcd group of the masters", f)
			}
		}
		return p, nil
	}
	if err := etcdFlags(e, r, &p); err != nil {
		return p, err
	}
	switch {
	case p.TTL < time.Second || p.TTL%time.Second != 0:
		return p, Usage("--etcd-lease-ttl must be whole seconds, at least 1s, got %s", p.TTL)
	case !c.IsSet("name"):
		return p, Usage("--etcd needs --name: this master's name, unique in the group")
	case c.String("address") == "":
		return p, Usage("--etcd needs --address: where the other masters reach this root (they sync from the leader)")
	case p.Every <= 0:
		return p, Usage("--follow-interval must be positive, got %s", p.Every)
	case p.Follow && (c.IsSet("quorum") || c.IsSet("notify")):
		return p, Usage("--follow publishes from a loop: --notify and --quorum are for one-off runs (mirrors of a group poll every master)")
	}
	p.Name, p.Address = c.String("name"), c.String("address")
	p.Round = p.Log
	if p.Follow && !c.Bool("verbose") {
		p.Round = slog.New(&minLevel{Handler: p.Log.Handler(), min: slog.LevelWarn})
	}
	return p, nil
}

// etcdFlags reads --etcd and --etcd-prefix, and what a Group needs of the
// command (its log, pruning rule, transports).
func etcdFlags(e *env, r *export.Root, p *HAPlan) error {
	c := e.c
	for _, s := range c.StringSlice("etcd") {
		for _, ep := range strings.Split(s, ",") {
			if ep = strings.TrimSpace(ep); ep != "" {
				p.Endpoints = append(p.Endpoints, ep)
			}
		}
	}
	if len(p.Endpoints) == 0 {
		return Usage("--etcd needs at least one etcd client URL (http://host:2379)")
	}
	p.Prefix = c.String("etcd-prefix")
	if !strings.HasPrefix(p.Prefix, "/") || !strings.HasSuffix(p.Prefix, "/") {
		return Usage("--etcd-prefix must start and end with a slash, got %q", p.Prefix)
	}
	p.Log = newLogger(c)
	if r != nil {
		var err error
		if p.Keep, p.MinAge, err = e.keep(); err != nil {
			return err
		}
	}
	p.Open = func(addrs []string, scratch string) ([]transport.Upstream, error) {
		return openUpstreams(e, addrs, scratch)
	}
	return nil
}

// minLevel is a slog handler that passes records of at least min.
type minLevel struct {
	slog.Handler
	min slog.Level
}

func (m *minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= m.min && m.Handler.Enabled(ctx, l)
}

// haStart starts publish's --etcd mode: with --follow it runs it to the
// end (followed), otherwise it makes this run the leader (haLead).
func haStart(e *env, r *export.Root, src string, p HAPlan, opt *snapshot.PublishOptions) (resign func(), followed bool, _ error) {
	if !p.On {
		return func() {}, false, nil
	}
	g, err := groupOf(e.c)
	if err != nil {
		return nil, false, err
	}
	if p.Follow {
		o := *opt
		o.Served, o.TakeOver, o.Log = nil, true, p.Round
		return nil, true, g.Follow(e.c.Context, r, src, p, o)
	}
	resign, err = g.Lead(e.c.Context, r, p, opt)
	return resign, false, err
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
	req := ClobberRequest{Master: c.String("to-master"), Yes: c.Bool("yes-discard")}
	if req.Master == "" {
		return Usage("--to-master is required: the master whose snapshot the group keeps")
	}
	var p HAPlan
	if err := etcdFlags(e, nil, &p); err != nil {
		return err
	}
	if c.IsSet("root") {
		if req.Root, err = e.existingRoot(); err != nil {
			return err
		}
	}
	g, err := groupOf(c)
	if err != nil {
		return err
	}
	rep, err := g.Clobber(c.Context, p, req)
	if err != nil {
		return err
	}
	return clobberReport(e, rep)
}

// errClobberUnconfirmed: clobber without --yes-discard (a usage error).
var errClobberUnconfirmed = errors.New("nothing was changed: pass --yes-discard to discard these records")

func clobberReport(e *env, rep ClobberReport) error {
	if e.c.Bool("json") {
		if rep.Discarded == nil {
			rep.Discarded = []ClobberDiscard{}
		}
		if err := e.printJSON(rep); err != nil {
			return err
		}
	} else if rep.Done || !e.c.Bool("quiet") {
		what, verb := "would be forced", "would discard"
		if rep.Done {
			what, verb = "forced", "discarded"
		}
		fmt.Fprintf(e.out, "group record %s to snapshot %d of master %s (%s)\n", what, rep.To.Snapshot, rep.To.Master, rep.To.Manifest)
		for _, r := range rep.Discarded {
			fmt.Fprintf(e.out, "%s snapshot %d: manifest %s, claimed by %s at %s\n", verb, r.Snapshot, r.Manifest, r.Master, r.Time.Format(time.RFC3339))
		}
	}
	if !rep.Done {
		return usageError{fmt.Errorf("clobber: %d records would be discarded; %w", len(rep.Discarded), errClobberUnconfirmed)}
	}
	return nil
}

// haHint says what to do about a refusal of a master of a group.
func haHint(err error) string {
	switch {
	case errors.Is(err, haerr.ErrNotLeader):
		return "nothing was published; another master leads (or this one lost its lease): run masters with --follow, or let the leader publish"
	case errors.Is(err, haerr.ErrNumberTaken):
		return "nothing was published; another master recorded that snapshot number: sync this root from the leader (publish --follow does) and publish again"
	case errors.Is(err, haerr.ErrBehind):
		return "nothing was published; start the master that holds the group's newest snapshot, or, after a disaster, `publish clobber --etcd ... --to-master NAME` (it lists what it discards)"
	}
	return ""
}
