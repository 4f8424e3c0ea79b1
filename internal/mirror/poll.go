package mirror

import (
	"context"
	"errors"
	"time"

	"github.com/seqmirror/seqmirror/internal/transport"
	"github.com/seqmirror/seqmirror/seqfile"
)

// poll is the start of a run: the upstream's seq/end, then (snapshot
// mode) the snapshot its current names. An upstream that does not answer
// (transport.ErrUnavailable) is retried with the run's backoff and retries,
// as a busy one is: a short outage of the upstream, or of the network, is
// not a failure.
func poll(ctx context.Context, up transport.Upstream, opt Options, withCurrent bool) (e1, n uint64, err error) {
	backoff := opt.Backoff
	for attempt := 0; ; attempt++ {
		e1, err = up.Seq(ctx, seqfile.End)
		if err == nil && withCurrent {
			n, _, err = up.Current(ctx)
		}
		if !errors.Is(err, transport.ErrUnavailable) || errors.Is(err, transport.ErrTimedOut) || attempt >= opt.Retries {
			return e1, n, err
		}
		opt.Log.Warn("upstream did not answer; retrying", "upstream", up.String(), "err", err, "attempt", attempt+1, "wait", backoff)
		select {
		case <-ctx.Done():
			return 0, 0, context.Cause(ctx)
		case <-time.After(backoff):
		}
		backoff *= 2
	}
}
