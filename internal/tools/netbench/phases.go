package main

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"
)

// failoverPhase SIGKILLs the first tier-1 daemon, publishes, and waits for
// the other mirrors (its subtree failing over, within one poll interval
// plus its jitter and 30 s); then restarts it and measures its catch-up.
func (b *bench) failoverPhase(ctx context.Context, on daemonMode) error {
	victim := b.tiers[0][0]
	sub := subtree(victim)
	slog.Info("failover: SIGKILL", "daemon", victim.name, "below it", len(sub))
	victim.proc.kill()
	at, err := b.publish(ctx, true)
	if err != nil {
		return err
	}
	n := b.masterServes()
	live := slices.DeleteFunc(slices.Clone(b.mirrors), func(m *node) bool { return m == victim })
	wait := b.cfg.interval + 10*time.Second + 30*time.Second
	err = b.converge(ctx, live, n, wait)
	b.note("failover: %s SIGKILLed, snapshot %d published; its %d mirrors below (second --upstream: %s): %s",
		victim.name, n, len(sub), b.cfg.failover, arrivals(sub, n, at, err))
	others := slices.DeleteFunc(slices.Clone(live), func(m *node) bool { return slices.Contains(sub, m) })
	b.note("failover: the other %d mirrors: %s", len(others), arrivals(others, n, at, nil))
	t0 := time.Now()
	if err := b.startDaemon(ctx, victim, on); err != nil {
		return fmt.Errorf("restart %s: %w", victim.name, err)
	}
	err = b.converge(ctx, append([]*node{victim}, sub...), n, 2*time.Minute)
	subNote := "had all failed over before"
	if err != nil || !allBefore(sub, n, t0) {
		subNote = arrivals(sub, n, t0, err)
	}
	b.note("restart: %s restarted, served snapshot %d %s after its start (catch-up); the mirrors below it: %s",
		victim.name, n, since(victim, n, t0), subNote)
	return nil
}

// subtree is every mirror below m.
func subtree(m *node) []*node {
	var out []*node
	for _, c := range m.children {
		out = append(append(out, c), subtree(c)...)
	}
	return out
}

// arrivals sums up when nodes served n, counted from t0.
func arrivals(nodes []*node, n uint64, t0 time.Time, err error) string {
	var worst time.Duration
	got := 0
	for _, m := range nodes {
		if at, ok := m.watch.arrival(n); ok {
			got++
			worst = max(worst, at.Sub(t0))
		}
	}
	s := fmt.Sprintf("%d of %d served it, the last %s after", got, len(nodes), worst.Round(time.Millisecond))
	if err != nil {
		s += " (" + err.Error() + ")"
	}
	return s
}

// allBefore reports whether every node served n before t0.
func allBefore(nodes []*node, n uint64, t0 time.Time) bool {
	for _, m := range nodes {
		if at, ok := m.watch.arrival(n); !ok || !at.Before(t0) {
			return false
		}
	}
	return true
}

// since is how long after t0 m served n, or "never".
func since(m *node, n uint64, t0 time.Time) string {
	if at, ok := m.watch.arrival(n); ok {
		return at.Sub(t0).Round(time.Millisecond).String()
	}
	return "never"
}

// note records one finding line for the report.
func (b *bench) note(format string, args ...any) {
	line := fmt.Sprintf(format, args...)
	slog.Info(line)
	b.res.failover = append(b.res.failover, line)
}

// quorumPhase publishes with --quorum K (K = every tier-1 mirror) and
// reports the wait; then stops two tier-1 daemons and reports publish's
// exit code (11: quorum not reached).
func (b *bench) quorumPhase(ctx context.Context) error {
	k := len(b.tiers[0])
	out, d, code, err := b.quorumPublish(ctx, k, time.Minute)
	if err != nil {
		return err
	}
	wait := "?"
	if m := quorumAfter.FindStringSubmatch(out); m != nil {
		wait = m[1] + " s"
	}
	b.note("quorum: publish --quorum %d over the %d tier-1 mirrors: exit %d, quorum wait %s (publish took %s in all)",
		k, k, code, wait, d.Round(time.Millisecond))
	stopped := b.tiers[0][:min(2, k)]
	for _, m := range stopped {
		m.proc.stop()
	}
	out, d, code, err = b.quorumPublish(ctx, k, 5*time.Second)
	if err != nil {
		return err
	}
	b.note("quorum: with %d of %d tier-1 daemons stopped, publish --quorum %d --quorum-timeout 5s: exit %d (11 wanted) after %s; stderr: %s",
		len(stopped), k, k, code, d.Round(time.Millisecond), firstLine(out, "behind"))
	return nil
}

// quorumPublish runs publish --quorum k over the tier-1 daemons (direct
// addresses) after a 1% change.
func (b *bench) quorumPublish(ctx context.Context, k int, timeout time.Duration) (string, time.Duration, int, error) {
	if err := b.mutate(ctx); err != nil {
		return "", 0, 0, err
	}
	args := slices.DeleteFunc(b.publishArgs(true), func(s string) bool { return s == "--quiet" })
	args = append(args, "--quorum", strconv.Itoa(k), "--quorum-timeout", timeout.String())
	for _, m := range b.tiers[0] {
		args = append(args, "--mirror", "http://"+m.addr()+"/")
	}
	return b.run(ctx, args...)
}

// firstLine is the first line of out that holds word, or out's first line.
func firstLine(out, word string) string {
	lines := strings.Split(strings.TrimSpace(out), "\n")
	for _, l := range lines {
		if strings.Contains(l, word) {
			return strings.TrimSpace(l)
		}
	}
	return strings.TrimSpace(lines[0])
}

// verifyAll runs mirror-sync verify on every mirror's root (the daemons
// stopped) and collects the reader's counts.
func (b *bench) verifyAll(ctx context.Context) {
	slog.Info("verifying every root")
	for _, m := range b.mirrors {
		checks, gone, torn := m.watch.counts()
		b.res.checks += checks
		b.res.gone += gone
		b.res.torn += len(torn)
		for _, t := range torn {
			slog.Error("torn", "mirror", m.name, "what", t)
		}
		out, _, code, err := b.run(ctx, b.tool("mirror-sync"), "verify", "--root", m.root)
		if err != nil || code != 0 {
			b.res.verifyKO = append(b.res.verifyKO, fmt.Sprintf("%s: exit %d %v %s", m.name, code, err, firstLine(out, "")))
			continue
		}
		b.res.verified++
	}
}
