package cliapp

import (
	"fmt"
	"slices"

	"github.com/seqmirror/seqmirror/internal/export"
	"github.com/seqmirror/seqmirror/internal/tree"
	"github.com/urfave/cli/v2"
)

// verifyFlags are the flags both tools' verify take; each adds where
// --repair gets its good copies from.
func verifyFlags(repairUsage string, from cli.Flag) []cli.Flag {
	return []cli.Flag{rootFlag,
		&cli.Uint64Flag{Name: "snapshot", Usage: "verify snapshot `N`", DefaultText: "the served one"},
		&cli.BoolFlag{Name: "all", Usage: "verify every complete snapshot in ROOT (the served one first)"},
		&cli.BoolFlag{Name: "repair", Usage: repairUsage},
		from, workersFlag, jsonFlag, trustKeyFlag}
}

// repairSource opens where --repair fetches good copies from; close
// releases it.
type repairSource func(e *env, r *export.Root) (src export.RepairSource, close func(), err error)

// snapshotReport is one snapshot's verify outcome (--json).
type snapshotReport struct {
	Snapshot uint64                `json:"snapshot"`
	OK       bool                  `json:"ok"`
	Problems []tree.Problem        `json:"problems"`
	More     int                   `json:"more_problems,omitempty"` // differences beyond Problems, not listed
	Repaired []export.RepairedPath `json:"repaired,omitempty"`
	Failed   []export.RepairedPath `json:"repair_failed,omitempty"`
}

// verifyAction is verify of both tools: it checks the snapshots chosen by
// --snapshot or --all (default: the served one) and, with --repair,
// repairs each that differs (export.Repair, under the root's lock) and
// checks it again. Exit 3 if any difference is left.
func verifyAction(c *cli.Context, needRepair string, open repairSource) error {
	e, err := newEnv(c)
	if err != nil {
		return err
	}
	w, err := e.workers()
	if err != nil {
		return err
	}
	if c.Bool("all") && c.IsSet("snapshot") {
		return Usage("--all and --snapshot exclude each other")
	}
	if c.IsSet("snapshot") && c.Uint64("snapshot") == 0 {
		return Usage("--snapshot must be a snapshot number, 1 or more")
	}
	repair := c.Bool("repair")
	if repair && needRepair != "" {
		return Usage("%s", needRepair)
	}
	r, err := e.existingRoot()
	if err != nil {
		return err
	}
	if repair {
		lock, err := r.Lock()
		if err != nil {
			return err
		}
		defer lock.Unlock()
	}
	nums, err := toVerify(c, r)
	if err != nil {
		return err
	}
	if err := verifySignatures(c, r, nums); err != nil {
		return err
	}
	v := verifier{e: e, r: r, workers: w, open: open}
	defer v.close()
	var reps []snapshotReport
	for _, n := range nums {
		rep, err := v.check(n, repair)
		if err != nil {
			return err
		}
		reps = append(reps, rep)
	}
	return reportAll(e, reps, c.Bool("all"))
}

// toVerify lists the snapshots to verify: --snapshot N, every complete
// one (--all, the served one first, then newest first), or the served one.
func toVerify(c *cli.Context, r *export.Root) ([]uint64, error) {
	if c.IsSet("snapshot") {
		return []uint64{c.Uint64("snapshot")}, nil
	}
	cur, err := r.Current()
	if err != nil {
		return nil, err
	}
	if !c.Bool("all") {
		if cur == 0 {
			return nil, fmt.Errorf("%s serves no snapshot yet: nothing to verify", r.Dir)
		}
		return []uint64{cur}, nil
	}
	snaps, err := r.Snapshots()
	if err != nil {
		return nil, err
	}
	if len(snaps) == 0 {
		return nil, fmt.Errorf("%s has no complete snapshot: nothing to verify", r.Dir)
	}
	slices.Reverse(snaps)
	if i := slices.Index(snaps, cur); i > 0 {
		snaps = append(append([]uint64{cur}, snaps[:i]...), snaps[i+1:]...)
	}
	return snaps, nil
}

// verifier checks and repairs the snapshots of one root.
type verifier struct {
	e       *env
	r       *export.Root
	workers int
	open    repairSource
	src     export.RepairSource
	closer  func()
}

// check verifies snapshot n and, if asked and needed, repairs it and
// verifies it again.
func (v *verifier) check(n uint64, repair bool) (snapshotReport, error) {
	res, err := v.verify(n)
	if err != nil || !repair || len(res.Problems) == 0 {
		return report(n, res), err
	}
	if v.src == nil {
		if v.src, v.closer, err = v.open(v.e, v.r); err != nil {
			return snapshotReport{}, err
		}
	}
	fixed, err := export.RepairVerified(v.e.c.Context, v.r, n, res, v.src)
	v.printRepair(n, fixed)
	if err != nil {
		return snapshotReport{}, fmt.Errorf("repair snapshot %d: %w", n, err)
	}
	if res, err = v.verify(n); err != nil {
		return snapshotReport{}, err
	}
	rep := report(n, res)
	rep.Repaired, rep.Failed = fixed.Repaired, fixed.Failed
	return rep, nil
}

// report is the report of snapshot n verified as res.
func report(n uint64, res tree.Verification) snapshotReport {
	return snapshotReport{Snapshot: n, OK: len(res.Problems) == 0, Problems: res.Problems, More: res.More}
}

// verify checks snapshot n against its manifest, streamed: its memory
// does not grow with the number of records (tree.VerifyStream); for a
// partial snapshot, first its manifest against its full manifest
// (export.Root.CheckPartial).
func (v *verifier) verify(n uint64) (tree.Verification, error) {
	if err := v.r.CheckPartial(n); err != nil {
		return tree.Verification{}, err
	}
	ms, err := v.r.OpenManifest(n)
	if err != nil {
		return tree.Verification{}, err
	}
	defer ms.Close()
	res, err := tree.VerifyStream(v.e.c.Context, v.r.FS, v.r.SnapshotDir(n), ms, tree.VerifyOptions{Workers: v.workers})
	if err == nil {
		err = ms.Finish()
	}
	return res, err
}

// printRepair tells on stderr what a repair of snapshot n did.
func (v *verifier) printRepair(n uint64, res export.RepairResult) {
	w, name := v.e.c.App.ErrWriter, v.e.c.App.Name
	here := 0
	for _, p := range res.Repaired {
		if p.Snapshot == n {
			here++
		}
	}
	if len(res.Repaired) > 0 {
		others := ""
		if k := len(res.Repaired) - here; k > 0 {
			others = fmt.Sprintf(", and %s in other snapshots that shared the damaged files", count(k, "copy", "copies"))
		}
		fmt.Fprintf(w, "%s: repaired %s in snapshot %d%s\n", name, count(here, "path", "paths"), n, others)
	}
	for _, f := range res.Failed {
		fmt.Fprintf(w, "%s: snapshot %d: cannot repair %s: %s\n", name, f.Snapshot, f.Path, f.Reason)
	}
	if len(res.Failed) > 0 {
		fmt.Fprintf(w, "%s: hint: %s\n", name, repairHints[name])
	}
}

// repairHints say what to do about what verify --repair could not repair.
var repairHints = map[string]string{
	"publish":     "`publish --force` makes a new snapshot from the source as it is now, copying every file that differs from its record",
	"mirror-sync": "the upstream's snapshot has no good copy; have the upstream repaired or republished and sync, or sync into a fresh root",
}

func (v *verifier) close() {
	if v.closer != nil {
		v.closer()
	}
}

// reportAll prints the reports: the differences, one a line, and
// "snapshot N OK" for each good snapshot (--json: one object, the report
// itself, or with --all {"ok", "snapshots"}). Exit 3 if any differs.
func reportAll(e *env, reps []snapshotReport, all bool) error {
	bad := false
	for i := range reps {
		if reps[i].Problems == nil {
			reps[i].Problems = []tree.Problem{}
		}
		bad = bad || !reps[i].OK
	}
	var err error
	switch {
	case e.c.Bool("json") && all:
		err = e.printJSON(map[string]any{"ok": !bad, "snapshots": reps})
	case e.c.Bool("json"):
		err = e.printJSON(reps[0])
	default:
		for _, rep := range reps {
			for _, p := range rep.Problems {
				fmt.Fprintln(e.out, snapshotPrefix(rep.Snapshot, all)+p.String())
			}
			if rep.More > 0 {
				fmt.Fprintf(e.out, "%s... and %d more\n", snapshotPrefix(rep.Snapshot, all), rep.More)
			}
			if rep.OK {
				fmt.Fprintf(e.out, "snapshot %d OK\n", rep.Snapshot)
			}
		}
	}
	if err != nil {
		return err
	}
	for _, rep := range reps {
		if !rep.OK {
			fmt.Fprintf(e.c.App.ErrWriter, "%s: snapshot %d: %s from the manifest\n", e.c.App.Name, rep.Snapshot, count(len(rep.Problems)+rep.More, "path differs", "paths differ"))
		}
	}
	if bad {
		return errVerify
	}
	return nil
}

// snapshotPrefix names the snapshot of a difference when several are
// verified.
func snapshotPrefix(n uint64, all bool) string {
	if !all {
		return ""
	}
	return fmt.Sprintf("snapshot %d: ", n)
}

// count is "1 path", "2 paths".
func count(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}
