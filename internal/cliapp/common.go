package cliapp

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/seqmirror/seqmirror/internal/export"
	"github.com/seqmirror/seqmirror/internal/fsys"
	"github.com/urfave/cli/v2"
)

var (
	rootFlag    = &cli.StringFlag{Name: "root", Usage: "export root `DIR` (holds current, snapshots/, seq/)"}
	jsonFlag    = &cli.BoolFlag{Name: "json", Usage: "print one JSON object on stdout"}
	quietFlag   = &cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "log only errors (for cron)"}
	verboseFlag = &cli.BoolFlag{Name: "verbose", Aliases: []string{"v"}, Usage: "log debug detail"}
	keepFlag    = &cli.IntFlag{Name: "keep", Value: 3, Usage: "keep the newest `K` snapshots (at least 1)"}
	minAgeFlag  = &cli.StringFlag{Name: "min-age", Value: "1h", DefaultText: "1h", Usage: "never prune a snapshot superseded less than `D` ago (e.g. 30m, 12h, 7d), so slow readers finish"}
	nameFlag    = &cli.StringFlag{Name: "name", DefaultText: "HOST:ROOT, this host's name and the root's absolute path", Usage: "this server's `NAME` in the lineage its status.json records (docs/protocol.md section 9) and in the triggers it sends"}
	addressFlag = &cli.StringFlag{Name: "address", Usage: "where this server's mirrors reach it (`URL`: http(s)://, rsync://, host::module), for the lineage its status.json records"}
	workersFlag = &cli.IntFlag{Name: "workers", DefaultText: "number of CPUs, at least 8", Usage: "run `N` parallel copy/hash/link workers"}
)

// env is what every action needs.
type env struct {
	c   *cli.Context
	fs  fsys.FS
	out io.Writer
	now func() time.Time // the app's clock (appOptions)
}

// newEnv starts an action: it refuses stray arguments (a usage error).
func newEnv(c *cli.Context) (*env, error) {
	if err := noArgs(c); err != nil {
		return nil, err
	}
	return envFor(c), nil
}

// envFor is the env of the action c runs, with its app's options.
func envFor(c *cli.Context) *env {
	return &env{c: c, fs: fsys.OS(), out: c.App.Writer, now: optionsOf(c).now}
}

func noArgs(c *cli.Context) error {
	if c.NArg() > 0 {
		return Usage("unexpected argument %q (flags go before nothing else; see --help)", c.Args().First())
	}
	return nil
}

// openRoot starts an action that only reads an existing root and has no
// flags to check first.
func openRoot(c *cli.Context) (*env, *export.Root, error) {
	e, err := newEnv(c)
	if err != nil {
		return nil, nil, err
	}
	r, err := e.existingRoot()
	return e, r, err
}

// root returns the --root, checking it is set.
func (e *env) root() (*export.Root, error) {
	dir := e.c.String("root")
	if dir == "" {
		return nil, Usage("--root is required: the export root directory")
	}
	if err := localRoot(dir); err != nil {
		return nil, err
	}
	return export.New(e.fs, dir), nil
}

// existingRoot is root() for commands that only read.
func (e *env) existingRoot() (*export.Root, error) {
	r, err := e.root()
	if err != nil {
		return nil, err
	}
	if err := r.Exists(); err != nil {
		return nil, fmt.Errorf("%w (create it with publish or mirror-sync first)", err)
	}
	return r, nil
}

func (e *env) keep() (int, time.Duration, error) {
	k := e.c.Int("keep")
	if k < 1 {
		return 0, 0, Usage("--keep must be at least 1 (the served snapshot is always kept), got %d", k)
	}
	age, err := minAge(e.c)
	if err != nil {
		return 0, 0, err
	}
	return k, age, nil
}

func (e *env) workers() (int, error) {
	w := e.c.Int("workers")
	if w < 0 || w > 256 {
		return 0, Usage("--workers must be between 1 and 256, got %d", w)
	}
	return w, nil
}

func (e *env) printJSON(v any) error {
	enc := json.NewEncoder(e.out)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func printStatus(w io.Writer, s export.Status) {
	fmt.Fprintf(w, "root       %s\n", s.Root)
	fmt.Fprintf(w, "state      %s\n", s.State)
	fmt.Fprintf(w, "snapshot   %d\n", s.Snapshot)
	fmt.Fprintf(w, "seq        begin %d, end %d\n", s.Begin, s.End)
	nums := make([]string, len(s.Snapshots))
	for i, n := range s.Snapshots {
		nums[i] = fmt.Sprint(n)
	}
	fmt.Fprintf(w, "snapshots  %s\n", strings.Join(nums, " "))
	if s.Updated != nil {
		fmt.Fprintf(w, "updated    %s\n", s.Updated.Format(time.RFC3339))
	}
	if s.UpstreamSnapshot != nil {
		fmt.Fprintf(w, "upstream   %s serves %d (%s)\n", s.Upstream, *s.UpstreamSnapshot, lagText(s))
	} else if s.Upstream != "" {
		fmt.Fprintf(w, "upstream   %s\n", s.Upstream)
	}
	if s.UpstreamEnd != nil && s.ClassicEnd != nil {
		fmt.Fprintf(w, "upstream   %s at seq/end %d (the served snapshot was copied at %d)\n", s.Upstream, *s.UpstreamEnd, *s.ClassicEnd)
	}
	if s.Problem != "" {
		fmt.Fprintf(w, "problem    %s\n", s.Problem)
	}
	printStatusRest(w, s)
}

// maxRetries bounds --retries: the wait doubles after each attempt, so 30
// retries already span years.
const maxRetries = 30

// retryCount reads --retries: the attempts after the first, as given.
func retryCount(c *cli.Context) (int, error) {
	n := c.Int("retries")
	if n < 0 || n > maxRetries {
		return 0, Usage("--retries must be between 0 and %d, got %d", maxRetries, n)
	}
	return n, nil
}

// hopFlags reads --name and --address: the hop of the server of root in
// the lineage. The default name is HOST:ROOT (the host name and the
// root's absolute path): unique per root, so that the lineage's loop
// check by name does not cut a chain of roots on one host.
func hopFlags(c *cli.Context, root *export.Root) (name, addr string, err error) {
	name, addr = c.String("name"), c.String("address")
	if !commandLineFlags(c)["name"] && c.String("name") == "" {
		host, _ := os.Hostname()
		dir, aerr := filepath.Abs(root.Dir)
		if aerr != nil {
			dir = root.Dir
		}
		name = host + ":" + dir
		if len(name) > export.MaxHopName {
			name = strings.ToValidUTF8(name[:export.MaxHopName], "")
		}
	}
	if err := export.CheckHopText(name, addr); err != nil {
		return "", "", Usage("--name and --address: %v", err)
	}
	return name, addr, nil
}
