package daemon

import (
	"fmt"
	"math/rand/v2"
	"time"
)

// Timing is when a daemon syncs besides its triggers.
type Timing struct {
	// Interval is the poll interval, the fallback when no trigger comes.
	Interval time.Duration
	// Jitter: each poll waits Interval plus a random share of Jitter, so
	// that mirrors started together do not poll together.
	Jitter time.Duration
	// GiveUp bounds how long the daemon keeps syncing toward a triggered
	// snapshot it does not reach; then it records why and polls again.
	GiveUp time.Duration
	// Backoff is the first wait between syncs toward a target not reached,
	// doubled after each, at most MaxBackoff.
	Backoff, MaxBackoff time.Duration
	// ProbeTimeout bounds a round of the status page's probes of the
	// downstream mirrors (0: 5 s); ProbeAgain is when a second round
	// follows the one after a flip (0: 2 s), to see the downstreams that
	// the forwarded trigger brought level.
	ProbeTimeout, ProbeAgain time.Duration
	// Rand returns a number in [0, 1) for the jitter; nil: math/rand/v2.
	Rand func() float64
}

// DefaultTiming is the daemon's timing unless told otherwise.
func DefaultTiming() Timing {
	t := Timing{Interval: time.Minute, Jitter: 10 * time.Second, GiveUp: 10 * time.Minute,
		Backoff: 250 * time.Millisecond, MaxBackoff: 30 * time.Second}
	t.probeDefaults()
	return t
}

// probeDefaults fills in the probe timing left zero.
func (t *Timing) probeDefaults() {
	if t.ProbeTimeout == 0 {
		t.ProbeTimeout = 5 * time.Second
	}
	if t.ProbeAgain == 0 {
		t.ProbeAgain = 2 * time.Second
	}
}

// check refuses a timing that makes no sense.
func (t Timing) check() error {
	switch {
	case t.Interval <= 0:
		return fmt.Errorf("%w: the poll interval must be positive, got %s", ErrConfig, t.Interval)
	case t.Jitter < 0 || t.GiveUp < 0 || t.Backoff <= 0 || t.MaxBackoff < t.Backoff:
		return fmt.Errorf("%w: jitter %s, give-up %s, backoff %s..%s", ErrConfig, t.Jitter, t.GiveUp, t.Backoff, t.MaxBackoff)
	case t.ProbeTimeout < 0 || t.ProbeAgain < 0:
		return fmt.Errorf("%w: probe timeout %s, probe again %s", ErrConfig, t.ProbeTimeout, t.ProbeAgain)
	}
	return nil
}

// jitter is a random wait in [0, Jitter).
func (t Timing) jitter() time.Duration {
	if t.Jitter <= 0 {
		return 0
	}
	r := t.Rand
	if r == nil {
		r = rand.Float64
	}
	return time.Duration(r() * float64(t.Jitter))
}

// backoff is the wait after the tries-th sync (from 1) that did not reach
// the target.
func (t Timing) backoff(tries int) time.Duration {
	d := t.Backoff
	for i := 1; i < tries && d < t.MaxBackoff; i++ {
		d *= 2
	}
	return min(d, t.MaxBackoff)
}
