package cliapp

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/seqmirror/seqmirror/internal/export"
	"github.com/seqmirror/seqmirror/internal/transport"
	"github.com/seqmirror/seqmirror/internal/transport/rsync"
)

// printStatusRest prints the fields of s that printStatus does not, so
// that the text form shows everything the JSON has.
func printStatusRest(w io.Writer, s export.Status) {
	if s.LastError != "" {
		fmt.Fprintf(w, "last error %s\n", s.LastError)
	}
	if s.LastErrorAt != nil {
		fmt.Fprintf(w, "failed at  %s\n", s.LastErrorAt.Format(time.RFC3339))
	}
	if s.Checked != nil {
		fmt.Fprintf(w, "checked    %s: upstream served %d\n", s.Checked.Format(time.RFC3339), *s.CheckedUpstream)
	}
	if s.BehindSince != nil {
		fmt.Fprintf(w, "behind     since %s\n", s.BehindSince.Format(time.RFC3339))
	}
	if q := s.Quorum; q != nil {
		outcome := "reached"
		if !q.Reached {
			outcome = "NOT reached"
		}
		fmt.Fprintf(w, "quorum     %s for snapshot %d at %s: %d of %d mirrors, %d wanted\n", outcome, q.Snapshot, q.At.Format(time.RFC3339), q.Got, q.Got+len(q.Behind), q.Wanted)
		for _, m := range q.Behind {
			fmt.Fprintf(w, "late       %s: %s\n", m.Mirror, m.Why)
		}
	}
	for i, p := range s.CheckedUpstreams {
		fmt.Fprintf(w, "upstream %d %s: %s", i+1, p.Upstream, p.State)
		if p.Snapshot > 0 {
			fmt.Fprintf(w, ", serves %d", p.Snapshot)
		}
		if p.Error != "" {
			fmt.Fprintf(w, " (%s)", clean(p.Error))
		}
		fmt.Fprintln(w)
	}
	if s.Partial != nil {
		fmt.Fprintf(w, "partial    filter %s\n", clean(s.Partial.Filter))
	}
	for i, h := range s.Lineage {
		fmt.Fprintf(w, "hop %d      %s %s since %s\n", i+1, clean(h.Name), clean(h.Address), h.Since.Format(time.RFC3339Nano))
	}
	if s.LineageNote != "" {
		fmt.Fprintf(w, "lineage    %s\n", clean(s.LineageNote))
	}
	if s.Signature != "" {
		fmt.Fprintf(w, "signature  %s\n", s.Signature)
	}
	if s.TimestampExpires != nil {
		fmt.Fprintf(w, "timestamp  expires %s\n", s.TimestampExpires.Format(time.RFC3339))
	}
}

// localRoot refuses a --root that is an rsync address (a usage error),
// unless a local directory of that name exists.
func localRoot(dir string) error {
	if !rsync.IsAddress(dir) {
		return nil
	}
	if fi, err := os.Stat(dir); err == nil && fi.IsDir() {
		return nil
	}
	return Usage("--root is a local directory, not an rsync address (%s); to look at a remote root use --upstream ADDR, or `mirror-sync check ADDR` (a local name with a colon: write ./NAME)", dir)
}

// upstreamSince reads what up serves and since when it has served a
// snapshot newer than mine (transport.NewerSince; the time its current
// was flipped if up cannot tell).
func upstreamSince(ctx context.Context, up transport.Upstream, mine uint64) (uint64, time.Time, error) {
	n, flipped, err := up.Current(ctx)
	if err != nil {
		return 0, time.Time{}, err
	}
	p, ok := up.(transport.Prober)
	if !ok || n <= mine {
		return n, flipped, nil
	}
	since, err := transport.NewerSince(ctx, p, mine, n)
	if err != nil {
		return 0, time.Time{}, err
	}
	if since.IsZero() {
		since = flipped
	}
	return n, since, nil
}
