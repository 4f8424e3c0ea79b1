package mirror_test

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/seqmirror/seqmirror/testutil"
)

// An upstream that does not answer at the first poll is retried with the
// run's backoff, as docs/operating.md says (it failed at once before).
func TestFirstPollRetriedWhileUpstreamUnavailable(t *testing.T) {
	w := newWorld(t, map[string]string{"a": "1"})
	n := w.publish(t)
	away := w.up.Dir + ".away"
	testutil.Must(t, os.Rename(w.up.Dir, away)) // the upstream's filesystem is not mounted yet
	done := make(chan error, 1)
	go func() {
		time.Sleep(300 * time.Millisecond)
		done <- os.Rename(away, w.up.Dir)
	}()
	opt := opts()
	opt.Retries, opt.Backoff = 4, 100*time.Millisecond
	res, err := w.sync(t, opt)
	testutil.Must(t, <-done)
	if err != nil {
		t.Fatalf("sync: %v", err)
	}
	if res.Snapshot != n {
		t.Fatalf("serves %d, want %d", res.Snapshot, n)
	}
	requireMirrors(t, w.up, w.mir, n)
}

// A mirror prunes on every run that holds the lock, a no-op poll
// included: snapshots age past --min-age between updates.
func TestNoOpPollPrunes(t *testing.T) {
	w := newWorld(t, map[string]string{"a": "1"})
	opt := opts()
	opt.Keep, opt.MinAge = 1, time.Hour
	now := time.Now()
	opt.Now = func() time.Time { return now }
	for i := 0; i < 3; i++ {
		testutil.Must(t, os.WriteFile(w.src+"/a", []byte{byte('a' + i)}, 0o644))
		w.publish(t)
		if _, err := w.sync(t, opt); err != nil {
			t.Fatal(err)
		}
	}
	snaps, err := w.mir.Snapshots()
	testutil.Must(t, err)
	if len(snaps) != 3 {
		t.Fatalf("before aging: %v, want 3 snapshots kept by --min-age", snaps)
	}
	now = now.Add(2 * time.Hour) // the two older snapshots age past --min-age
	res, err := w.sync(t, opt)   // a no-op poll
	testutil.Must(t, err)
	if res.Changed {
		t.Fatal("the poll was not a no-op")
	}
	if snaps, _ = w.mir.Snapshots(); len(snaps) != 1 {
		t.Fatalf("after a no-op poll: %v, want only the served snapshot", snaps)
	}
	if len(res.Pruned) != 2 {
		t.Fatalf("Pruned = %v, want 2 snapshots", res.Pruned)
	}
	st, err := w.mir.Status()
	testutil.Must(t, err)
	b, err := os.ReadFile(w.mir.Path("status.json"))
	testutil.Must(t, err)
	if len(st.Snapshots) != 1 || !strings.Contains(string(b), "\"snapshots\": [\n    3\n  ]") {
		t.Fatalf("status.json not rewritten after the prune:\n%s", b)
	}
}
