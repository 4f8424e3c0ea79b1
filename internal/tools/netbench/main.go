// Command netbench is `make bench-network`: one master and a tree of real
// `mirror-sync daemon` processes on 127.0.0.1 (by default 50 in 3 tiers:
// 5 tier-1 pulling from the master, 3 tier-2 under each tier-1, 2 tier-3
// under each tier-2), every link between tiers through Shopify's toxiproxy
// (in-process, github.com/Shopify/toxiproxy/v2) with WAN-like latency and a
// bandwidth limit. It measures how long a publish takes to reach every
// mirror, with triggers and with polling only, and then failover, catch-up
// after a restart and quorum publish, and prints one Markdown table.
//
//	netbench [-bin bin] [-files 10000] [-tier1 5] [-fanout 3,2] [-publishes 20]
//	         [-poll-publishes 3] [-svg FILE] [-keep]
//
// The set-up: scripts/gentree.py makes -files files in SOURCE; `publish`
// makes the master's root, served by `publish serve`; each mirror is
// `mirror-sync daemon --upstream URL [--upstream URL2] --root ROOT --listen
// 127.0.0.1:PORT --secret-file F --downstream URL...` with its own root.
// A mirror's --upstream is a toxiproxy in front of its parent's HTTP port;
// the triggers (publish --notify, a daemon's --downstream) go through a
// proxy in front of the child's port, with the same latency and no
// bandwidth limit. With failover, a tier-2 or tier-3 mirror gets a second
// --upstream: a sibling of its parent, through a proxy of its own.
//
// Arrival times are exact, not polled: the flip of a root is the mtime of
// its `current` symlink (status.json's `updated`), all on this machine's
// clock. A watcher per root lstats `current` every 20 ms; the arrival of
// snapshot N at a mirror is its first flip to a snapshot >= N, minus the
// master's flip to N. After each flip it seen, a reader opens the mirror's
// root with the client package (snapshot pinned, manifest validated) and
// reads -sample random files, each checked against the manifest: any
// failure counts as torn. At the end every root is checked whole with
// `mirror-sync verify`.
//
// Phases: (1) triggers on, -publishes publishes of a 1% change (gentree
// --mutate 1) at random 2-6 s intervals; (2) the same with triggers off,
// the daemons polling every -poll-interval (60 s, the cron habit) with
// their default jitter: -poll-publishes publishes, since a polled snapshot
// takes minutes to reach tier 3; (3) one tier-1 daemon SIGKILLed, one
// publish: its subtree must fail over (within one poll interval); then it
// restarts and catches up; (4) publish --quorum 5 over the tier-1 mirrors:
// the wait; then with two tier-1 daemons stopped: the exit code (11).
//
// Every process runs in its own process group and is killed at the end;
// the work directory is removed unless -keep.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// config is the command line.
type config struct {
	bin           string
	files         int
	tier1         int
	fanout        []int
	publishes     int
	pollPublishes int
	pollInterval  time.Duration
	interval      time.Duration
	latency       [2]time.Duration // min, max one-way latency per link
	jitter        time.Duration
	rateKBs       int64
	sample        int
	workers       int
	keepSnaps     int
	svg           string
	work          string
	rootCmd       string // run with each root's path before it is used (-root-cmd)
	keep          bool
	verbose       bool // the daemons log each sync's phases (logs/NAME.log in the work directory; with -keep)
	failover      string
	skip          map[string]bool
	seed          int64
}

func parseFlags() (config, error) {
	var c config
	var fan, lat, skip string
	flag.StringVar(&c.bin, "bin", "bin", "directory with the publish and mirror-sync binaries (make build)")
	flag.IntVar(&c.files, "files", 10000, "files in the generated tree")
	flag.IntVar(&c.tier1, "tier1", 5, "tier-1 mirrors")
	flag.StringVar(&fan, "fanout", "3,2", "children per mirror of each further tier, comma-separated")
	flag.IntVar(&c.publishes, "publishes", 20, "publishes with triggers on")
	flag.IntVar(&c.pollPublishes, "poll-publishes", 3, "publishes with triggers off (each takes minutes to reach tier 3); 0: skip the phase")
	flag.DurationVar(&c.pollInterval, "poll-interval", time.Minute, "the daemons' --interval with triggers off")
	flag.DurationVar(&c.interval, "interval", time.Minute, "the daemons' --interval with triggers on (the fallback poll; also bounds failover)")
	flag.StringVar(&lat, "latency", "20ms,80ms", "one-way latency of a link: MIN,MAX (each link draws one)")
	flag.DurationVar(&c.jitter, "jitter", 5*time.Millisecond, "latency jitter of each link")
	flag.Int64Var(&c.rateKBs, "rate", 12500, "bandwidth of each link in KB/s (12500: 100 Mbit/s)")
	flag.IntVar(&c.workers, "workers", 0, "the daemons' --workers (parallel fetches over a link with latency; 0: their default)")
	flag.IntVar(&c.keepSnaps, "keep-snapshots", 3, "--keep of publish and the daemons (each prunes after it notifies or forwards, before its next sync; a large value keeps pruning out of the measurement)")
	flag.IntVar(&c.sample, "sample", 8, "files each reader reads and checks after each flip")
	flag.StringVar(&c.svg, "svg", "", "write an SVG plot of the arrival times per tier to FILE")
	flag.StringVar(&c.work, "work", "", "work directory (default: a new one under $TMPDIR, removed at the end)")
	flag.StringVar(&c.rootCmd, "root-cmd", "", "run `CMD ROOT` for each root (the master's and every mirror's) before it is used, e.g. to mount a filesystem of its own there (scripts/bench-network.sh, NETBENCH_FS=btrfs-each)")
	flag.BoolVar(&c.keep, "keep", false, "keep the work directory")
	flag.BoolVar(&c.verbose, "v", false, "run the daemons with -v: each sync's phases in the work directory's logs/NAME.log (see -keep)")
	flag.StringVar(&c.failover, "failover", "auto", "give tier-2/3 daemons a second --upstream: on, off, auto (on if the daemon's --upstream is repeatable)")
	flag.StringVar(&skip, "skip", "", "phases to leave out, comma-separated: poll, failover, quorum")
	flag.Int64Var(&c.seed, "seed", 1, "random seed (latencies, intervals, samples)")
	flag.Parse()
	var err error
	if c.fanout, err = ints(fan); err != nil {
		return c, fmt.Errorf("-fanout: %w", err)
	}
	if c.latency, err = durPair(lat); err != nil {
		return c, fmt.Errorf("-latency: %w", err)
	}
	c.skip = map[string]bool{}
	for _, s := range strings.Split(skip, ",") {
		if s != "" {
			c.skip[s] = true
		}
	}
	if c.tier1 < 1 || c.files < 10 || c.publishes < 1 {
		return c, fmt.Errorf("-tier1 >= 1, -files >= 10 and -publishes >= 1 are needed")
	}
	return c, nil
}

func ints(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		if f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%q is not a positive number", f)
		}
		out = append(out, n)
	}
	return out, nil
}

func durPair(s string) ([2]time.Duration, error) {
	var p [2]time.Duration
	a, b, ok := strings.Cut(s, ",")
	if !ok {
		b = a
	}
	var err error
	if p[0], err = time.ParseDuration(a); err != nil {
		return p, err
	}
	if p[1], err = time.ParseDuration(b); err != nil {
		return p, err
	}
	if p[1] < p[0] {
		return p, fmt.Errorf("MAX %s < MIN %s", p[1], p[0])
	}
	return p, nil
}

func main() {
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo})))
	cfg, err := parseFlags()
	if err != nil {
		fmt.Fprintln(os.Stderr, "netbench:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	start := time.Now()
	if err := run(ctx, cfg); err != nil {
		fmt.Fprintf(os.Stderr, "netbench: %v (after %s)\n", err, time.Since(start).Round(time.Second))
		os.Exit(1)
	}
	slog.Info("done", "took", time.Since(start).Round(time.Second))
}
