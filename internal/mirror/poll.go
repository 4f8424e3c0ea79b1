package mirror

import (
	"context"
	"errors"
	"time"

	"github.com/seqmirror/seqmirror/internal/retry"
	"github.com/seqmirror/seqmirror/internal/transport"
	"github.com/seqmirror/seqmirror/seqfile"
)

// poll is the start of a run: the upstream's seq/end, then (snapshot
// mode) the snapshot its current names. An upstream that does not answer
// (transport.ErrUnavailable) is retried with the run's backoff and retries,
// as a busy one is: a short outage of the upstream, or of the network, is
// not a failure. When the retries are spent, the last error is returned.
//
// level, when not nil, may vouch for the snapshot the upstream serves at
// seq/end e1 (the record of the last sync or check says so); then current
// is not read and the poll is the one small request of seq/end. An upstream
// that has flipped current but not yet bumped seq/end is mid-update: the
// next poll sees the update complete.
func poll(ctx context.Context, up transport.Upstream, opt Options, withCurrent bool, level func(e1 uint64) (uint64, bool)) (e1, n uint64, err error) {
	policy := retry.Policy{Retries: opt.Retries, Backoff: opt.Backoff,
		Retryable: func(err error) (string, bool) {
			return err.Error(), errors.Is(err, transport.ErrUnavailable) && !errors.Is(err, transport.ErrTimedOut)
		},
		OnRetry: func(why string, attempt int, wait time.Duration) {
			opt.Log.Warn("upstream did not answer; retrying", "upstream", up.String(), "err", why, "attempt", attempt, "wait", wait)
		},
	}
	err = retry.Do(ctx, policy, func(int) error {
		var err error
		e1, n = 0, 0
		if e1, err = up.Seq(ctx, seqfile.End); err != nil || !withCurrent {
			return err
		}
		if level != nil {
			if known, ok := level(e1); ok {
				n = known
				return nil
			}
		}
		n, _, err = up.Current(ctx)
		return err
	})
	var ex *retry.Exhausted
	if errors.As(err, &ex) {
		err = ex.Err
	}
	return e1, n, err
}
