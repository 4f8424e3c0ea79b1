package daemon

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// noNumber in a step is a trigger naming no snapshot (Message.Snapshot 0).
const noNumber = ^uint64(0)

var t0 = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)

func testTiming() Timing {
	return Timing{Interval: time.Minute, Jitter: 10 * time.Second, GiveUp: 10 * time.Second,
		Backoff: time.Second, MaxBackoff: 4 * time.Second, Rand: func() float64 { return 0.5 }}
}

// step is one event given to a schedule at a time offset from t0.
type step struct {
	at      time.Duration
	trigger uint64 // a trigger for this snapshot (noNumber: naming none)
	start   bool   // a sync starts
	done    bool   // the running sync ends serving served with err
	served  uint64
	err     error
	raised  bool          // trigger: want the target raised
	next    time.Duration // after done or trigger: want the next sync due at this offset (-1: do not check)
	target  uint64        // after the step: want this target
	gaveUp  string        // after the step: want Status.GaveUp to contain this ("": to be empty)
}

// The target rule and the coalescing of triggers, step by step on an
// injected clock.
func TestSchedule(t *testing.T) {
	busy := errors.New("upstream did not answer")
	tests := []struct {
		name   string
		served uint64
		steps  []step
	}{
		{name: "poll interval plus jitter when idle", served: 3, steps: []step{
			{at: 0, start: true, next: -1},
			{at: time.Second, done: true, served: 3, next: time.Second + time.Minute + 5*time.Second},
		}},
		{name: "trigger at or below served is a no-op", served: 5, steps: []step{
			{at: 0, start: true, next: -1},
			{at: 0, done: true, served: 5, next: time.Minute + 5*time.Second},
			{at: time.Second, trigger: 5, raised: false, next: time.Minute + 5*time.Second},
			{at: time.Second, trigger: 2, raised: false, next: time.Minute + 5*time.Second},
		}},
		{name: "trigger syncs at once and is reached", served: 5, steps: []step{
			{at: 0, start: true, next: -1},
			{at: 0, done: true, served: 5, next: time.Minute + 5*time.Second},
			{at: 2 * time.Second, trigger: 6, raised: true, next: 2 * time.Second, target: 6},
			{at: 2 * time.Second, start: true, next: -1, target: 6},
			{at: 3 * time.Second, done: true, served: 6, next: 3*time.Second + time.Minute + 5*time.Second},
		}},
		{name: "triggers during a sync coalesce into one sync right after it", served: 1, steps: []step{
			{at: 0, start: true, next: -1},
			{at: time.Second, trigger: 3, raised: true, next: -1, target: 3},
			{at: time.Second, trigger: 2, raised: false, next: -1, target: 3},
			{at: time.Second, trigger: 3, raised: false, next: -1, target: 3},
			{at: time.Second, trigger: 4, raised: true, next: -1, target: 4},
			{at: 2 * time.Second, done: true, served: 2, next: 2 * time.Second, target: 4},
			{at: 2 * time.Second, start: true, next: -1, target: 4},
			{at: 3 * time.Second, done: true, served: 4, next: 3*time.Second + time.Minute + 5*time.Second},
		}},
		{name: "a trigger naming no snapshot syncs once, coalesced while due", served: 5, steps: []step{
			{at: 0, start: true, next: -1},
			{at: 0, done: true, served: 5, next: time.Minute + 5*time.Second},
			{at: time.Second, trigger: noNumber, raised: true, next: time.Second},
			{at: time.Second, trigger: noNumber, raised: false, next: time.Second},
			{at: time.Second, start: true, next: -1},
			{at: 2 * time.Second, trigger: noNumber, raised: true, next: -1},
			{at: 2 * time.Second, trigger: noNumber, raised: false, next: -1},
			{at: 3 * time.Second, done: true, served: 5, next: 3 * time.Second},
			{at: 3 * time.Second, start: true, next: -1},
			{at: 4 * time.Second, done: true, served: 5, next: 4*time.Second + time.Minute + 5*time.Second},
		}},
		{name: "a target not reached is chased with backoff, then reached", served: 1, steps: []step{
			{at: 0, trigger: 2, raised: true, next: 0, target: 2},
			{at: 0, start: true, next: -1, target: 2},
			{at: 0, done: true, served: 1, next: time.Second, target: 2},
			{at: time.Second, start: true, next: -1, target: 2},
			{at: time.Second, done: true, served: 1, err: busy, next: 3 * time.Second, target: 2},
			{at: 3 * time.Second, start: true, next: -1, target: 2},
			{at: 3 * time.Second, done: true, served: 1, err: busy, next: 7 * time.Second, target: 2},
			{at: 7 * time.Second, start: true, next: -1, target: 2},
			{at: 7 * time.Second, done: true, served: 2, next: 7*time.Second + time.Minute + 5*time.Second},
		}},
		{name: "a target not reached within GiveUp falls back to polling", served: 1, steps: []step{
			{at: 0, trigger: 9, raised: true, next: 0, target: 9},
			{at: 0, start: true, next: -1, target: 9},
			{at: 0, done: true, served: 1, err: busy, next: time.Second, target: 9},
			{at: 6 * time.Second, start: true, next: -1, target: 9},
			{at: 10 * time.Second, done: true, served: 1, err: busy, next: 10*time.Second + time.Minute + 5*time.Second,
				gaveUp: "gave up on snapshot 9 after 10s (2 syncs; serving 1): upstream did not answer"},
			{at: 11 * time.Second, trigger: 9, raised: true, next: 11 * time.Second, target: 9}, // a new trigger tries again
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newSchedule(testTiming(), tc.served, t0)
			for i, st := range tc.steps {
				now := t0.Add(st.at)
				switch {
				case st.trigger != 0:
					n := st.trigger
					if n == noNumber {
						n = 0
					}
					if got := s.trigger(n, now); got != st.raised {
						t.Fatalf("step %d: trigger(%d) raised = %v, want %v", i, st.trigger, got, st.raised)
					}
				case st.start:
					if due, wait := s.due(now); !due {
						t.Fatalf("step %d: no sync due at +%s (wait %s)", i, st.at, wait)
					}
					s.start(now)
				case st.done:
					s.done(st.served, st.err, now)
				}
				if st.next >= 0 && !s.next.Equal(t0.Add(st.next)) {
					t.Fatalf("step %d: next sync at +%s, want +%s", i, s.next.Sub(t0), st.next)
				}
				if s.target != st.target || s.stat.Target != st.target {
					t.Fatalf("step %d: target %d (status %d), want %d", i, s.target, s.stat.Target, st.target)
				}
				if !strings.Contains(s.stat.GaveUp, st.gaveUp) || (st.gaveUp == "") != (s.stat.GaveUp == "") {
					t.Fatalf("step %d: GaveUp = %q, want %q", i, s.stat.GaveUp, st.gaveUp)
				}
			}
		})
	}
}

func TestBackoff(t *testing.T) {
	tm := testTiming()
	for tries, want := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 3: 4 * time.Second, 4: 4 * time.Second, 60: 4 * time.Second} {
		if got := tm.backoff(tries); got != want {
			t.Errorf("backoff(%d) = %s, want %s", tries, got, want)
		}
	}
}

func TestTimingCheck(t *testing.T) {
	tests := []struct {
		name string
		edit func(*Timing)
		ok   bool
	}{
		{"default", func(*Timing) {}, true},
		{"zero interval", func(tm *Timing) { tm.Interval = 0 }, false},
		{"negative jitter", func(tm *Timing) { tm.Jitter = -1 }, false},
		{"backoff above its max", func(tm *Timing) { tm.MaxBackoff = tm.Backoff / 2 }, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tm := DefaultTiming()
			tc.edit(&tm)
			if err := tm.check(); (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrConfig)) {
				t.Fatalf("check = %v, want ok %v", err, tc.ok)
			}
		})
	}
}
