package daemon

import (
	"fmt"
	"time"
)

// schedule decides when the daemon syncs: the poll timer, the pending
// trigger target, and the backoff while a target is not yet reached. It is
// pure (no goroutine, no clock of its own: every method is given the time)
// and not safe for concurrent use; Daemon guards it with its mutex.
type schedule struct {
	timing Timing

	served  uint64    // what the root serves, as the last sync (or start) said
	target  uint64    // pending trigger target: the highest N > served received; 0: none
	since   time.Time // when target was last raised
	tries   int       // syncs toward target that did not reach it
	next    time.Time // when the next sync is due
	running bool      // a sync is in progress
	again   bool      // target was raised while a sync ran: sync again at once

	stat Status
}

// newSchedule starts a schedule whose root serves served: the first sync is
// due at once.
func newSchedule(t Timing, served uint64, now time.Time) *schedule {
	return &schedule{timing: t, served: served, next: now, stat: Status{Served: served}}
}

// trigger records a trigger for snapshot n. It reports whether it asked
// for a sync: a trigger for n <= served, or n <= the pending target, is a
// no-op (coalesced); a higher n becomes the target. A trigger naming no
// snapshot (n = 0) asks for one sync, with no target, unless one is
// already due. A sync asked for is due at once, or right after the running
// one.
func (s *schedule) trigger(n uint64, now time.Time) bool {
	s.stat.Triggers++
	pending := s.again || (!s.running && !now.Before(s.next))
	if (n == 0 && pending) || (n != 0 && (n <= s.served || n <= s.target)) {
		s.stat.Coalesced++
		return false
	}
	if n != 0 {
		s.target, s.since, s.tries = n, now, 0
		s.stat.Target, s.stat.GaveUp = n, ""
	}
	if s.running {
		s.again = true
	} else {
		s.next = now
	}
	return true
}

// due reports whether a sync should start at now, and if not, how long to
// wait.
func (s *schedule) due(now time.Time) (bool, time.Duration) {
	if !now.Before(s.next) {
		return true, 0
	}
	return false, s.next.Sub(now)
}

// start marks a sync as running.
func (s *schedule) start(now time.Time) {
	s.running, s.again = true, false
	s.stat.LastSync = now
	s.stat.Syncs++
}

// done records the outcome of the sync started last: served is what the
// root serves after it (0 if it could not tell). It schedules the next sync:
// at once if a trigger asked for one meanwhile (the target rose, or one
// named no snapshot); with backoff while the target is not
// reached (giving up, back to polling, once it has been pursued for
// Timing.GiveUp); else one poll interval (plus jitter) from now.
func (s *schedule) done(served uint64, err error, now time.Time) {
	s.running = false
	if served != 0 {
		s.served = served
		s.stat.Served = served
	}
	s.stat.LastError = ""
	if err != nil {
		s.stat.LastError = err.Error()
	}
	if s.target != 0 && s.served >= s.target {
		s.target, s.stat.Target = 0, 0
	}
	switch {
	case s.again:
		s.next = now
	case s.target == 0:
		s.pollFrom(now)
	case now.Sub(s.since) >= s.timing.GiveUp:
		s.giveUp(err, now)
	default:
		s.tries++
		s.next = now.Add(s.timing.backoff(s.tries))
	}
}

// giveUp drops the target after Timing.GiveUp of trying and records why.
func (s *schedule) giveUp(err error, now time.Time) {
	why := fmt.Sprintf("the upstream serves no snapshot >= %d yet", s.target)
	if err != nil {
		why = err.Error()
	}
	s.stat.GaveUp = fmt.Sprintf("gave up on snapshot %d after %s (%d syncs; serving %d): %s",
		s.target, now.Sub(s.since).Round(time.Millisecond), s.tries+1, s.served, why)
	s.target, s.stat.Target = 0, 0
	s.pollFrom(now)
}

// pollFrom schedules the next poll one interval, plus jitter, after now.
func (s *schedule) pollFrom(now time.Time) {
	s.tries = 0
	s.next = now.Add(s.timing.Interval + s.timing.jitter())
}
