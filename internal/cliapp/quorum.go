package cliapp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/seqmirror/seqmirror/internal/export"
	"github.com/seqmirror/seqmirror/internal/quorum"
	"github.com/seqmirror/seqmirror/internal/transport"
	"github.com/urfave/cli/v2"
)

// The flags of publish's quorum wait (docs/operating.md, "Quorum publish").
var (
	quorumFlag = &cli.IntFlag{Name: "quorum", DefaultText: "none: no wait", Usage: "after the flip, wait until `K` of the --mirror addresses serve the snapshot " +
		"(idle, current >= N, the master's manifest of N); exit 11 if they do not within --quorum-timeout: the snapshot stays published (0: no wait)"}
	mirrorFlag = &cli.StringSliceFlag{Name: "mirror", Usage: "a mirror `ADDR` that counts for --quorum (repeatable): " +
		"any address mirror-sync takes as --upstream (path, rsync://, host::module, http(s)://)"}
	quorumTimeoutFlag = &cli.DurationFlag{Name: "quorum-timeout", Value: quorum.DefaultTimeout, Usage: "give up waiting for the --quorum after `D`"}
)

// maxQuorumRequest bounds each check of one mirror.
const maxQuorumRequest = 10 * time.Second

// quorumPlan is what the quorum flags ask for: wait for k of mirrors
// (k == 0: no wait).
type quorumPlan struct {
	k       int
	mirrors []string
	timeout time.Duration
}

// quorumFlags reads and checks the quorum flags; a bad one is a usage
// error, before anything is published.
func quorumFlags(e *env) (quorumPlan, error) {
	c := e.c
	p := quorumPlan{k: c.Int("quorum"), mirrors: c.StringSlice("mirror"), timeout: c.Duration("quorum-timeout")}
	switch {
	case p.k < 0:
		return p, Usage("--quorum must be at least 1 (or 0: no wait), got %d", p.k)
	case p.k > len(p.mirrors):
		return p, Usage("--quorum %d needs at least %d --mirror addresses, got %d", p.k, p.k, len(p.mirrors))
	case p.timeout <= 0:
		return p, Usage("--quorum-timeout must be positive, got %s", p.timeout)
	}
	for i, addr := range p.mirrors {
		if slices.Contains(p.mirrors[:i], addr) {
			return p, Usage("--mirror %s is given twice (each mirror counts once)", addr)
		}
		up, err := openMirror(e, addr, time.Second) // no I/O: checks the address
		if err != nil {
			return p, Usage("--mirror %s: %v", addr, err)
		}
		up.Close()
	}
	return p, nil
}

// openMirror opens a mirror for one check, bounded by timeout.
func openMirror(e *env, addr string, timeout time.Duration) (transport.Upstream, error) {
	opt := transport.Options{Timeout: timeout, ConTimeout: timeout, HTTP: transport.HTTPOptions{CAFile: e.c.String("ca-file")}}
	return transport.Open(addr, e.fs, opt)
}

// publishQuorum runs after the flip and the triggers (--notify): it waits for
// the quorum of plan for snapshot n of r, records the outcome in
// status.json and prints the result. The snapshot stays published
// whatever happens: a quorum not reached is an error naming it.
func publishQuorum(e *env, r *export.Root, res publishOutput, plan quorumPlan, log *slog.Logger) error {
	c := e.c
	if !c.Bool("json") {
		if err := printResult(e, res.Snapshot, res); err != nil { // N first: the flip is done
			return err
		}
	}
	id, err := export.ManifestID(r.FS, r.ManifestPath(res.Snapshot))
	if err != nil {
		return fmt.Errorf("snapshot %d is published, but its manifest cannot be compared with the mirrors': %w", res.Snapshot, err)
	}
	req := min(maxQuorumRequest, plan.timeout)
	spec := quorum.Spec{K: plan.k, Mirrors: plan.mirrors, Target: res.Snapshot, ManifestID: id, Timeout: plan.timeout,
		RequestTimeout: req, FS: e.fs, Now: e.now, Log: log,
		Open: func(addr string) (transport.Upstream, error) { return openMirror(e, addr, req) }}
	q, werr := quorum.Wait(c.Context, spec)
	rec := quorumRecord(q, werr == nil, e.now())
	recordQuorum(c, r, rec, log)
	if err := printQuorum(e, res, rec, werr == nil); err != nil {
		return err
	}
	if werr != nil {
		for _, m := range rec.Behind {
			fmt.Fprintf(c.App.ErrWriter, "%s: mirror %s is behind: %s\n", c.App.Name, m.Mirror, m.Why)
		}
		return fmt.Errorf("snapshot %d is published; only %d of %d mirrors have it (%d wanted): %w", res.Snapshot, q.Got, len(plan.mirrors), plan.k, werr)
	}
	return nil
}

// quorumRecord is the status.json record of the wait q (Wanted 0: the
// wait did not start).
func quorumRecord(q quorum.Result, reached bool, at time.Time) export.Quorum {
	rec := export.Quorum{Snapshot: q.Target, Wanted: q.Wanted, Got: q.Got, Reached: reached,
		Counted: []export.QuorumMirror{}, Behind: []export.QuorumMirror{},
		Started: q.Started.UTC(), Deadline: q.Deadline.UTC(), At: at.UTC(), Seconds: q.Waited.Seconds()}
	for _, m := range q.Counted {
		after := m.After.Seconds()
		rec.Counted = append(rec.Counted, export.QuorumMirror{Mirror: m.Addr, Snapshot: m.Snapshot, After: &after})
	}
	for _, m := range q.Behind {
		rec.Behind = append(rec.Behind, export.QuorumMirror{Mirror: m.Addr, Snapshot: m.Snapshot, Why: m.Why})
	}
	return rec
}

// recordQuorum notes rec in status.json under the root's lock (waiting
// --wait for it); a failure is logged: the outcome is printed anyway.
func recordQuorum(c *cli.Context, r *export.Root, rec export.Quorum, log *slog.Logger) {
	ctx := context.WithoutCancel(c.Context) // an interrupted wait is recorded too
	lock, err := r.LockWait(ctx, c.Duration("wait"))
	if err == nil {
		err = r.RecordQuorum(rec)
		lock.Unlock()
	}
	if err != nil {
		log.Error("could not record the quorum outcome in status.json", "err", err)
	}
}

// printQuorum prints the outcome on stdout: with --json one object, the
// publish result with its "quorum"; otherwise, if it was reached and not
// --quiet, one line after N.
func printQuorum(e *env, res publishOutput, rec export.Quorum, reached bool) error {
	if e.c.Bool("json") {
		noteTransfer(e.c, res) // for --metrics-file
		return e.printJSON(struct {
			publishOutput
			Quorum export.Quorum `json:"quorum"`
		}{res, rec})
	}
	if !reached || e.c.Bool("quiet") {
		return nil
	}
	names := make([]string, len(rec.Counted))
	for i, m := range rec.Counted {
		names[i] = m.Mirror
	}
	_, err := fmt.Fprintf(e.out, "quorum %d of %d after %.1fs: %s\n", rec.Got, rec.Got+len(rec.Behind), rec.Seconds, strings.Join(names, " "))
	return err
}

// quorumHint is the hint of a quorum not reached.
func quorumHint(err error) string {
	if !errors.Is(err, quorum.ErrNotReached) {
		return ""
	}
	return "nothing is undone: the snapshot stays served, and the late mirrors get it on their next poll or trigger; " +
		"`publish status --root ...` shows this wait's record, `mirror-sync check ADDR` a mirror; run publish again to wait again " +
		"(an unchanged source publishes nothing, it only waits)"
}
