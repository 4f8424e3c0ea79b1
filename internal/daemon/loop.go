package daemon

import (
	"context"
	"errors"
	"time"

	"github.com/seqmirror/seqmirror/internal/trigger"
)

// Status is what a daemon serves and pursues.
type Status struct {
	Served    uint64    `json:"served"`               // the snapshot the root serves, as last known
	Target    uint64    `json:"target,omitempty"`     // the triggered snapshot pursued; 0: none
	LastSync  time.Time `json:"last_sync"`            // when the last sync started
	LastError string    `json:"last_error,omitempty"` // the last sync's error
	GaveUp    string    `json:"gave_up,omitempty"`    // why the last target was given up, until the next trigger
	Syncs     int       `json:"syncs"`
	Triggers  int       `json:"triggers"`  // received
	Coalesced int       `json:"coalesced"` // of which no-ops
}

// loop runs one sync at a time, when the schedule says, until ctx is done.
func (d *Daemon) loop(ctx context.Context) {
	for ctx.Err() == nil {
		d.mu.Lock()
		now := d.cfg.Now()
		due, wait := d.sched.due(now)
		if due {
			d.sched.start(now)
		}
		d.mu.Unlock()
		if !due {
			d.sleep(ctx, wait)
			continue
		}
		d.syncOnce(ctx)
	}
}

// sleep waits for wait, a raised target or the end of ctx.
func (d *Daemon) sleep(ctx context.Context, wait time.Duration) {
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-d.wake:
	case <-t.C:
	}
}

// syncOnce runs one sync, records its outcome in the schedule and, after a
// flip, forwards the new snapshot downstream.
func (d *Daemon) syncOnce(ctx context.Context) {
	var forwarded uint64 // the snapshot already forwarded from the sync
	d.mu.Lock()
	target := d.sched.target
	d.mu.Unlock()
	served, changed, err := d.cfg.Sync(ctx, target, func(n uint64) {
		if n != 0 && ctx.Err() == nil {
			forwarded = n
			d.forward(ctx, n)
		}
	})
	d.mu.Lock()
	gaveUp := d.sched.stat.GaveUp
	d.sched.done(served, err, d.cfg.Now())
	st := d.sched.stat
	d.mu.Unlock()
	switch {
	case err != nil && ctx.Err() != nil:
		d.log.Info("sync stopped", "serving", st.Served, "err", err)
	case err != nil:
		d.log.Error("sync failed", "serving", st.Served, "target", st.Target, "err", err)
	case changed:
		d.log.Debug("flipped", "snapshot", served)
	}
	if st.GaveUp != "" && st.GaveUp != gaveUp {
		d.log.Error("trigger target not reached; polling again", "why", st.GaveUp)
		d.recordGaveUp(ctx, st.GaveUp)
	}
	if changed && served != 0 && served != forwarded && ctx.Err() == nil { // a stop cancels forwards anyway
		d.forward(ctx, served)
	}
	d.watch.ask(changed)
}

// forward sends a trigger for snapshot n to every downstream, in parallel,
// without waiting: a failure is logged, never fatal (the downstream's poll
// catches up).
func (d *Daemon) forward(ctx context.Context, n uint64) {
	s := d.settings.Load()
	if s.Secret == nil {
		return
	}
	send := d.cfg.Forward
	if send == nil {
		send = d.send
	}
	for _, url := range s.Downstream {
		d.forwards.Add(1)
		go func() {
			defer d.forwards.Done()
			fctx, cancel := context.WithTimeout(ctx, forwardTimeout)
			defer cancel()
			if err := send(fctx, url, s.Secret, n); err != nil {
				d.log.Warn("forward failed; the downstream's poll will catch up", "downstream", url, "snapshot", n, "err", err)
				return
			}
			d.log.Debug("forwarded", "downstream", url, "snapshot", n)
		}()
	}
}

// send is the default ForwardFunc: trigger.Send, from this daemon's name.
func (d *Daemon) send(ctx context.Context, url string, secret []byte, n uint64) error {
	return trigger.Send(ctx, d.client, url, secret, trigger.Message{Snapshot: n, Origin: d.cfg.Name})
}

// recordGaveUp notes in status.json why a triggered snapshot is not served
// (as a failed run's last_error, which the next successful sync clears), so
// that monitors and the status page see it, not only the log. It takes the
// run lock for the write, waiting a little for a cron run that holds it;
// a write it cannot make is logged.
func (d *Daemon) recordGaveUp(ctx context.Context, why string) {
	l, err := d.root.LockWait(ctx, 5*time.Second)
	if err == nil {
		err = d.root.RecordFailure("", errors.New(why), d.cfg.Now())
		if uerr := l.Unlock(); err == nil {
			err = uerr
		}
	}
	if err != nil {
		d.log.Warn("could not record the give-up in status.json", "err", err)
	}
}
