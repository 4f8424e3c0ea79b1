package export

import "fmt"

// StateUnreachable is the state of a root that could not be read at all
// (a status page's or a monitoring check's word; a root never records it).
const StateUnreachable = "unreachable"

// Observed is what a reader found at an export root, local or remote: the
// input of ClassifyState.
type Observed struct {
	// Unreachable is why the root could not be read at all (connection
	// refused, timeout, no such root); nil if it answered.
	Unreachable error
	// Corrupt is why current (or seq/current) or the seq files did not
	// read as numbers; nil if they did.
	Corrupt    error
	Snapshot   uint64 // what current names; 0: nothing served
	Begin, End uint64 // seq/begin and seq/end
	// Complete: snapshots/N/ and snapshots/N.manifest of the Snapshot
	// served are there.
	Complete bool
	// Upstream is what the root's upstream serves, if compared (0: not
	// compared): a root behind it is stale.
	Upstream uint64
	// Frozen is why the newest timestamp the root holds has expired (nil
	// if none expired, or the root holds none).
	Frozen error
}

// ClassifyState applies docs/protocol.md section 6 (docs/clients.md's
// table): the first rule that matches of unreachable, torn, empty,
// updating, frozen, stale, fresh. problem says why a root is torn,
// unreachable or frozen.
func ClassifyState(o Observed) (state, problem string) {
	switch {
	case o.Unreachable != nil:
		return StateUnreachable, o.Unreachable.Error()
	case o.Corrupt != nil:
		return StateTorn, o.Corrupt.Error()
	case o.Snapshot == 0:
		return StateEmpty, ""
	case !o.Complete:
		return StateTorn, fmt.Sprintf("current points to snapshot %d, which is not complete", o.Snapshot)
	case o.Begin != o.End:
		return StateUpdating, ""
	case o.Frozen != nil:
		return StateFrozen, o.Frozen.Error()
	case o.Upstream > o.Snapshot:
		return StateStale, ""
	}
	return StateFresh, ""
}
