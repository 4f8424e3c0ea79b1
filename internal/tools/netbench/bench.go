package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// sample is one arrival: snapshot n at a mirror of tier, d after the
// master's flip.
type sample struct {
	tier int
	d    time.Duration
}

// phase is what one phase measured.
type phase struct {
	name    string
	samples []sample
	missing int    // (snapshot, mirror) pairs that did not arrive in time
	load    string // /proc/loadavg at the start and the end
}

// results is everything the report prints.
type results struct {
	phases   []*phase
	initial  time.Duration
	failover []string // lines of the failover and quorum findings
	torn     int
	checks   int
	gone     int
	verified int
	verifyKO []string
}

// bench is one run: the network, the master's publishes and the results.
type bench struct {
	*network
	res       results
	seedCount int
}

func run(ctx context.Context, cfg config) error {
	dir, err := workDir(cfg)
	if err != nil {
		return err
	}
	if !cfg.keep {
		defer os.RemoveAll(dir)
	} else {
		defer slog.Info("work directory kept", "dir", dir)
	}
	for _, t := range []string{"publish", "mirror-sync"} {
		if _, err := os.Stat(filepath.Join(cfg.bin, t)); err != nil {
			return fmt.Errorf("no %s in -bin %s (make build): %w", t, cfg.bin, err)
		}
	}
	b := &bench{network: newNetwork(cfg, dir)}
	defer b.close()
	if err := b.setUp(ctx); err != nil {
		slog.Error("set-up failed; cleaning up", "err", err)
		return err
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for i, m := range b.mirrors {
		m.watch = newWatcher(m.root, cfg.sample)
		go m.watch.run(wctx, uint64(cfg.seed)*1000+uint64(i))
	}
	if err := b.phases(ctx); err != nil {
		slog.Error("run failed; cleaning up", "err", err)
		return err
	}
	cancel()
	b.stopAll()
	b.verifyAll(ctx)
	b.report(os.Stdout)
	if cfg.svg != "" {
		if err := writeSVG(cfg.svg, b.res.phases[0]); err != nil {
			return err
		}
	}
	return nil
}

func workDir(cfg config) (string, error) {
	if cfg.work == "" {
		return os.MkdirTemp("", "netbench-")
	}
	return cfg.work, os.MkdirAll(cfg.work, 0o755)
}

// setUp makes the tree, the secret, the master's first snapshot and its
// server, and the network's layout.
func (b *bench) setUp(ctx context.Context) error {
	if b.cfg.failover == "auto" {
		b.cfg.failover = map[bool]string{true: "on", false: "off"}[b.daemonTakesUpstreams(ctx)]
		slog.Info("failover", "second --upstream", b.cfg.failover)
	}
	if err := b.build(); err != nil {
		return err
	}
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	if err := os.WriteFile(b.secret, []byte(base64.StdEncoding.EncodeToString(key)+"\n"), 0o600); err != nil {
		return err
	}
	slog.Info("generating the tree", "files", b.cfg.files)
	if _, _, code, err := b.run(ctx, "python3", "scripts/gentree.py", b.source, strconv.Itoa(b.cfg.files), "--seed", "1"); err != nil || code != 0 {
		return fmt.Errorf("scripts/gentree.py (run from the repository's top): exit %d, %v", code, err)
	}
	if _, err := b.publish(ctx, false); err != nil {
		return err
	}
	return b.serveMaster(ctx)
}

// phases runs the measured phases in order.
func (b *bench) phases(ctx context.Context) error {
	on := daemonMode{triggers: true, interval: b.cfg.interval}
	t0 := time.Now()
	if err := b.startAll(ctx, on); err != nil {
		return err
	}
	if err := b.converge(ctx, b.mirrors, b.masterServes(), 15*time.Minute); err != nil {
		return fmt.Errorf("initial sync: %w", err)
	}
	b.res.initial = time.Since(t0)
	slog.Info("initial sync done", "mirrors", len(b.mirrors), "took", b.res.initial.Round(time.Millisecond))
	if err := b.measure(ctx, "triggers on", b.cfg.publishes, true, 2*time.Minute); err != nil {
		return err
	}
	if b.cfg.pollPublishes > 0 && !b.cfg.skip["poll"] {
		if err := b.pollPhase(ctx, on); err != nil {
			return err
		}
	}
	if !b.cfg.skip["failover"] {
		if err := b.failoverPhase(ctx, on); err != nil {
			return err
		}
	}
	if !b.cfg.skip["quorum"] {
		return b.quorumPhase(ctx)
	}
	return nil
}

// pollPhase restarts the daemons without triggers, measures, and restarts
// them with mode on.
func (b *bench) pollPhase(ctx context.Context, on daemonMode) error {
	b.stopAll()
	if err := b.startAll(ctx, daemonMode{interval: b.cfg.pollInterval}); err != nil {
		return err
	}
	hops := len(b.tiers)
	wait := time.Duration(hops)*(b.cfg.pollInterval+10*time.Second) + time.Minute
	name := fmt.Sprintf("triggers off (poll %s)", b.cfg.pollInterval)
	if err := b.measure(ctx, name, b.cfg.pollPublishes, false, wait); err != nil {
		return err
	}
	b.stopAll()
	return b.startAll(ctx, on)
}

// measure publishes count 1% changes at random 2-6 s intervals, waits up
// to wait for every mirror to serve the last, and records the arrivals.
func (b *bench) measure(ctx context.Context, name string, count int, notify bool, wait time.Duration) error {
	ph := &phase{name: name, load: loadavg()}
	slog.Info("phase", "name", name, "publishes", count)
	type pub struct {
		n  uint64
		at time.Time
	}
	var pubs []pub
	for range count {
		if err := sleep(ctx, 2*time.Second+time.Duration(b.rng.Int64N(int64(4*time.Second)))); err != nil {
			return err
		}
		at, err := b.publish(ctx, notify)
		if err != nil {
			return err
		}
		pubs = append(pubs, pub{b.masterServes(), at})
	}
	if err := b.converge(ctx, b.mirrors, pubs[len(pubs)-1].n, wait); err != nil {
		slog.Warn("not converged", "phase", name, "err", err)
	}
	for _, p := range pubs {
		for _, m := range b.mirrors {
			at, ok := m.watch.arrival(p.n)
			if !ok {
				ph.missing++
				continue
			}
			ph.samples = append(ph.samples, sample{tier: m.tier, d: at.Sub(p.at)})
		}
	}
	ph.load += " → " + loadavg()
	b.res.phases = append(b.res.phases, ph)
	return nil
}

// publish mutates 1% of the source (not for the first) and publishes it;
// it returns the master's flip time.
func (b *bench) publish(ctx context.Context, notify bool) (time.Time, error) {
	if err := b.mutate(ctx); err != nil {
		return time.Time{}, err
	}
	out, _, code, err := b.run(ctx, b.publishArgs(notify)...)
	if err != nil || code != 0 {
		return time.Time{}, fmt.Errorf("publish: exit %d, %v\n%s", code, err, out)
	}
	fi, err := os.Lstat(filepath.Join(b.master.root, "current"))
	if err != nil {
		return time.Time{}, err
	}
	return fi.ModTime(), nil
}

// mutate changes 1% of the source (gentree --mutate 1), except before the
// first publish.
func (b *bench) mutate(ctx context.Context) error {
	b.seedCount++
	if b.seedCount == 1 {
		return nil
	}
	_, _, code, err := b.run(ctx, "python3", "scripts/gentree.py", b.source, strconv.Itoa(b.cfg.files),
		"--mutate", "1", "--seed", strconv.Itoa(100+b.seedCount))
	if err != nil || code != 0 {
		return fmt.Errorf("gentree --mutate: exit %d, %v", code, err)
	}
	return nil
}

// publishArgs is the master's publish command.
func (b *bench) publishArgs(notify bool) []string {
	return append([]string{b.tool("publish"), "--root", b.master.root, "--source", b.source,
		"--quiet", "--keep", strconv.Itoa(b.cfg.keepSnaps), "--min-age", "0"}, b.notifyArgs(notify)...)
}

// notifyArgs are publish's trigger flags: every tier-1 daemon, through
// its link.
func (b *bench) notifyArgs(notify bool) []string {
	if !notify {
		return nil
	}
	args := []string{"--secret-file", b.secret}
	for _, m := range b.tiers[0] {
		args = append(args, "--notify", m.trigURL)
	}
	return args
}

// masterServes is the snapshot the master serves.
func (b *bench) masterServes() uint64 {
	t, err := os.Readlink(filepath.Join(b.master.root, "current"))
	if err != nil {
		return 0
	}
	n, _ := snapshotOf(t)
	return n
}

// converge waits until every node of nodes serves >= n.
func (b *bench) converge(ctx context.Context, nodes []*node, n uint64, wait time.Duration) error {
	deadline := time.Now().Add(wait)
	nextLog := time.Now().Add(30 * time.Second)
	for {
		var behind []string
		for _, m := range nodes {
			if m.watch == nil || m.watch.serves() < n {
				behind = append(behind, m.name)
			}
		}
		if len(behind) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d mirrors do not serve snapshot %d after %s: %s", len(behind), n, wait, strings.Join(behind, " "))
		}
		if time.Now().After(nextLog) {
			slog.Info("waiting", "snapshot", n, "behind", strings.Join(behind, " "))
			nextLog = time.Now().Add(30 * time.Second)
		}
		if err := sleep(ctx, 100*time.Millisecond); err != nil {
			return err
		}
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

// loadavg is the first three fields of /proc/loadavg.
func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

var quorumAfter = regexp.MustCompile(`quorum \d+ of \d+ after ([0-9.]+)s`)
