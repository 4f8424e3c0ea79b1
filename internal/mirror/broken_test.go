package mirror_test

import (
	"errors"
	"os"
	"testing"
	"time"

	"github.com/seqmirror/seqmirror/internal/mirror"
	"github.com/seqmirror/seqmirror/internal/transport"
	"github.com/seqmirror/seqmirror/testutil"
)

// An idle upstream whose current names a snapshot it does not have (its
// manifest or a file of it is missing) is broken: the mirror says so at
// once instead of retrying as if the upstream were busy, and changes nothing.
func TestUpstreamMissingServedSnapshotIsBroken(t *testing.T) {
	for _, tc := range []struct {
		name    string
		corrupt func(w *world, n uint64)
	}{
		{"manifest missing", func(w *world, n uint64) { testutil.Must(t, os.Remove(w.up.ManifestPath(n))) }},
		{"file missing", func(w *world, n uint64) {
			testutil.Must(t, os.Chmod(w.up.SnapshotDir(n), 0o755))
			testutil.Must(t, os.Remove(w.up.SnapshotDir(n)+"/b"))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t, map[string]string{"a": "1", "b": "2"})
			n1 := w.publish(t)
			if _, err := w.sync(t, opts()); err != nil {
				t.Fatal(err)
			}
			testutil.Must(t, os.WriteFile(w.src+"/b", []byte("changed"), 0o644))
			n2 := w.publish(t)
			tc.corrupt(w, n2)
			before := counters(t, w.mir)
			opt := opts()
			opt.Retries, opt.Backoff = 5, 100*time.Millisecond // the old code waited 3.1 s, then said "kept changing"
			t0 := time.Now()
			_, err := w.sync(t, opt)
			if !errors.Is(err, mirror.ErrUpstreamBroken) {
				t.Fatalf("err = %v, want ErrUpstreamBroken", err)
			}
			if errors.Is(err, mirror.ErrUpstreamBusy) || errors.Is(err, transport.ErrVanished) {
				t.Fatalf("err = %v: a broken upstream is not a busy one", err)
			}
			if d := time.Since(t0); d > 2*time.Second {
				t.Errorf("took %v: a broken upstream must be reported without the retries", d)
			}
			if got := current(t, w.mir); got != n1 {
				t.Fatalf("mirror serves %d, want %d still", got, n1)
			}
			if p := counters(t, w.mir); p.End != before.End {
				t.Fatalf("seq/end moved %d -> %d", before.End, p.End)
			}
		})
	}
}
