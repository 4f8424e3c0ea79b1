package export

import (
	"errors"
	"testing"
)

func TestClassifyState(t *testing.T) {
	down := errors.New("connection refused")
	cases := []struct {
		name    string
		obs     Observed
		state   string
		problem string
	}{
		{name: "fresh", obs: Observed{Snapshot: 3, Begin: 2, End: 2, Complete: true}, state: StateFresh},
		{name: "level with the upstream", obs: Observed{Snapshot: 3, Complete: true, Upstream: 3}, state: StateFresh},
		{name: "stale", obs: Observed{Snapshot: 3, Complete: true, Upstream: 4}, state: StateStale},
		{name: "updating before stale", obs: Observed{Snapshot: 3, Begin: 5, End: 4, Complete: true, Upstream: 4}, state: StateUpdating},
		{name: "empty", obs: Observed{Begin: 1, End: 0}, state: StateEmpty},
		{name: "torn: incomplete", obs: Observed{Snapshot: 3}, state: StateTorn, problem: "current points to snapshot 3, which is not complete"},
		{name: "torn: corrupt", obs: Observed{Corrupt: ErrBadCurrent, Snapshot: 3, Complete: true}, state: StateTorn, problem: ErrBadCurrent.Error()},
		{name: "unreachable first", obs: Observed{Unreachable: down, Corrupt: ErrBadCurrent}, state: StateUnreachable, problem: down.Error()},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if state, problem := ClassifyState(tc.obs); state != tc.state || problem != tc.problem {
				t.Errorf("got %q %q, want %q %q", state, problem, tc.state, tc.problem)
			}
		})
	}
}
