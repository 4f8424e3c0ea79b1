package statuspage

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/seqmirror/seqmirror/internal/export"
	"github.com/seqmirror/seqmirror/internal/transport"
)

// maxStatusJSON bounds the status.json Probe reads.
const maxStatusJSON = 1 << 20

// ProbeArgs is what Probe compares a downstream with.
type ProbeArgs struct {
	Name, URL string // the downstream, as the page shows it
	Ours      uint64 // the snapshot this server serves
	// Self is this server's own root (e.g. transport.NewLocal of it), from
	// which the lag in time is read: since when it has served a snapshot
	// the downstream lacks (transport.NewerSince). Nil: no lag in time.
	Self transport.Prober
	Now  time.Time
}

// Probe reads the downstream at up (opened by the caller, over any
// transport) the way a monitoring check does: seq/end, seq/begin and
// current; then whether that snapshot is complete, and status.json (its
// last_error and its lineage). It returns the downstream's row and its
// lineage (nil if its status.json has none). A downstream that cannot be
// read is unreachable, with LastSeen zero and no snapshot: Merge keeps
// what was seen of it before.
func Probe(ctx context.Context, up transport.Upstream, a ProbeArgs) (Downstream, []Hop) {
	d := Downstream{Name: a.Name, URL: a.URL}
	o := transport.Observe(ctx, up)
	var lineage []Hop
	if p, ok := up.(transport.Prober); ok && o.Unreachable == nil && o.Corrupt == nil && o.Snapshot > 0 {
		lineage = readFiles(ctx, p, &o, &d)
	} else {
		o.Complete = true // nothing more to tell without a Prober
	}
	var problem string
	d.State, problem, d.LagSnapshots = ClassifyDownstream(o, a.Ours)
	if problem != "" {
		d.Error = problem
	}
	if o.Unreachable != nil {
		return d, nil
	}
	d.Snapshot, d.LastSeen = o.Snapshot, a.Now
	if d.LagSnapshots > 0 && a.Self != nil {
		if since, err := transport.NewerSince(ctx, a.Self, o.Snapshot, a.Ours); err == nil && !since.IsZero() {
			d.Lag = max(0, a.Now.Sub(since))
		}
	}
	return d, lineage
}

// readFiles checks that the snapshot served is complete and reads
// status.json's last_error and lineage.
func readFiles(ctx context.Context, p transport.Prober, o *export.Observed, d *Downstream) []Hop {
	dir, man := export.CurrentTarget(o.Snapshot), transport.ManifestName(o.Snapshot)
	infos, err := p.Stat(ctx, []string{dir, man})
	if err != nil {
		o.Unreachable = fmt.Errorf("stat snapshot %d: %w", o.Snapshot, err)
		return nil
	}
	o.Complete = infos[dir].Dir && infos[man].Regular
	files, err := p.ReadSmall(ctx, []string{export.StatusName}, maxStatusJSON)
	if err != nil {
		o.Unreachable = fmt.Errorf("read %s: %w", export.StatusName, err)
		return nil
	}
	f, ok := files[export.StatusName]
	if !ok {
		return nil
	}
	var st struct {
		LastError string `json:"last_error"`
	}
	if json.Unmarshal(f.Data, &st) != nil {
		return nil
	}
	d.Error = st.LastError
	hops, err := export.DecodeLineage(f.Data) // refuses what cannot be shown or written back
	if err != nil {
		return nil
	}
	return hops
}

// Merge is the row to show after a probe: cur, but when cur found the
// mirror unreachable, with the snapshot and the last-seen time of prev
// (what was last seen of it).
func Merge(prev, cur Downstream) Downstream {
	if cur.State == export.StateUnreachable && cur.LastSeen.IsZero() {
		cur.Snapshot, cur.LastSeen = prev.Snapshot, prev.LastSeen
	}
	return cur
}

// AddArrival records in history that the last hop of lineage (a mirror
// at tier len(lineage)-1) started serving the lineage's snapshot at its
// since; the master's flip is the first hop's since. A lineage of the
// master alone, or with a since unknown, adds nothing; an arrival already
// recorded (same mirror, same snapshot) is not added again. It keeps the
// keep newest snapshots, newest first; history is updated in place.
func AddArrival(history []Propagation, lineage []Hop, keep int) []Propagation {
	if len(lineage) < 2 || lineage[0].Since.IsZero() || lineage[len(lineage)-1].Since.IsZero() {
		return history
	}
	last := lineage[len(lineage)-1]
	i := slices.IndexFunc(history, func(p Propagation) bool { return p.Snapshot == last.Snapshot })
	if i < 0 {
		history = append(history, Propagation{Snapshot: last.Snapshot, Flipped: lineage[0].Since})
		i = len(history) - 1
	}
	p := &history[i]
	if !slices.ContainsFunc(p.Arrivals, func(a Arrival) bool { return a.Mirror == last.Name }) {
		p.Arrivals = append(p.Arrivals, Arrival{Mirror: last.Name, Tier: len(lineage) - 1, At: last.Since})
	}
	slices.SortFunc(history, func(a, b Propagation) int { return cmp.Compare(b.Snapshot, a.Snapshot) })
	if len(history) > keep {
		history = history[:keep]
	}
	return history
}
