package statuspage

import (
	"slices"
	"time"

	"github.com/seqmirror/seqmirror/internal/export"
)

// DefaultRefresh is how often the page reloads itself when Page.Refresh
// is zero.
const DefaultRefresh = 30 * time.Second

// MaxPlotted is how many snapshots the plot shows at most: the newest.
const MaxPlotted = 30

// Page is everything the status page shows.
type Page struct {
	Server      Server
	Lineage     []Hop         // master first, this server last
	Downstreams []Downstream  // in the order to show
	History     []Propagation // recent snapshots, any order
	Now         time.Time     // when the page was made (ages are measured to it)
	Refresh     time.Duration // the page's reload period; 0: DefaultRefresh
}

// Server is the server whose page it is.
type Server struct {
	Name     string
	Root     string
	Snapshot uint64    // the snapshot served
	State    string    // export.State* of its root
	Updated  time.Time // when current last flipped; zero if unknown
}

// Hop is one hop of a lineage (status.json's "lineage": name, address,
// snapshot, since).
type Hop = export.Hop

// Downstream is a mirror that follows this server, as last seen.
type Downstream struct {
	Name         string
	URL          string
	State        string        // ClassifyDownstream's word: export.State* or export.StateUnreachable
	Snapshot     uint64        // what it served when last seen (0: nothing, or not reached)
	LagSnapshots uint64        // how many snapshots behind this server it was
	Lag          time.Duration // how long it had lacked a snapshot this server serves
	LastSeen     time.Time     // when it last answered; zero: never
	Error        string        // why it is torn or unreachable, or its status.json's last_error
}

// Propagation is how one snapshot spread: when the master flipped to it
// and when each mirror did.
type Propagation struct {
	Snapshot uint64
	Flipped  time.Time // the master's flip: the first hop's since in the lineage
	Arrivals []Arrival
}

// Arrival is when one mirror started serving a snapshot.
type Arrival struct {
	Mirror string
	Tier   int // 1: pulls from the master, 2: from a tier 1, ...
	At     time.Time
}

// Delay is how long after the master's flip the arrival came (negative if
// the clocks disagree).
func (p Propagation) Delay(a Arrival) time.Duration { return a.At.Sub(p.Flipped) }

// HopLag is one hop of a lineage with its lag.
type HopLag struct {
	Hop
	// Lag is this hop's since minus the previous hop's (0 for the master):
	// how long the snapshot took over the link into this hop.
	Lag time.Duration
}

// HopLags computes the lag of each hop of lineage (master first) and the
// age of the last hop's snapshot at now (zero if lineage is empty or the
// last since is unknown). A hop whose since, or whose previous hop's, is
// unknown (zero) has lag 0.
func HopLags(lineage []Hop, now time.Time) (hops []HopLag, age time.Duration) {
	hops = make([]HopLag, len(lineage))
	for i, h := range lineage {
		hops[i].Hop = h
		if i > 0 && !h.Since.IsZero() && !lineage[i-1].Since.IsZero() {
			hops[i].Lag = h.Since.Sub(lineage[i-1].Since)
		}
	}
	if n := len(lineage); n > 0 && !lineage[n-1].Since.IsZero() {
		age = now.Sub(lineage[n-1].Since)
	}
	return hops, age
}

// Total is the time from the master's flip to the last hop's (the sum of
// the hop lags), zero if either is unknown.
func Total(lineage []Hop) time.Duration {
	if len(lineage) < 2 || lineage[0].Since.IsZero() || lineage[len(lineage)-1].Since.IsZero() {
		return 0
	}
	return lineage[len(lineage)-1].Since.Sub(lineage[0].Since)
}

// ClassifyDownstream is a downstream's state from what was read of it
// (export.ClassifyState), with this server's snapshot as its upstream's:
// a downstream behind it is stale. It returns the state, the problem
// (torn or unreachable: why) and how many snapshots behind it is.
func ClassifyDownstream(o export.Observed, ours uint64) (state, problem string, behind uint64) {
	o.Upstream = max(o.Upstream, ours)
	state, problem = export.ClassifyState(o)
	if o.Unreachable == nil && o.Corrupt == nil && o.Snapshot > 0 && o.Upstream > o.Snapshot {
		behind = o.Upstream - o.Snapshot
	}
	return state, problem, behind
}

// knownStates are the states with a CSS class of their own.
var knownStates = []string{export.StateFresh, export.StateUpdating, export.StateStale,
	export.StateTorn, export.StateUnreachable, export.StateEmpty}

// stateClass is the CSS class of a state: state-NAME for a known one,
// state-unknown for anything else (a hostile status.json).
func stateClass(state string) string {
	if slices.Contains(knownStates, state) {
		return "state-" + state
	}
	return "state-unknown"
}
