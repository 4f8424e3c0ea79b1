package faultfs

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/seqmirror/seqmirror/internal/export"
	"github.com/seqmirror/seqmirror/internal/fsys"
	"github.com/seqmirror/seqmirror/internal/tree"
	"github.com/seqmirror/seqmirror/seqfile"
)

// StopRun is a writer run (publish, mirror-sync) to stop at many points, as
// a signal would, by cancelling its context.
type StopRun struct {
	// Setup prepares a fresh world, fault-free, and returns the export root
	// the run writes.
	Setup func(tb testing.TB) string
	// Run is the run, on f (an FS over the OS filesystem), writing root.
	Run func(ctx context.Context, f fsys.FS, root string) error
	// Points is the most stop points to try (spread evenly over the run's
	// operations); 0 tries every operation.
	Points int
	// Tail is how many of the run's last operations are each tried too:
	// the commit steps (renames, the flip of current) and what follows
	// them are there.
	Tail int
}

// StopStats counts what a StopSweep saw.
type StopStats struct {
	Points  int // stop points tried
	Stopped int // runs that returned the cancellation
	Done    int // runs that completed (stopped after their commit)
}

// StopSweep runs sr once to count its operations, then, for each stop
// point k, on a fresh world, again with its context cancelled just before
// its k-th operation (of any kind), and checks with CheckStopped what it
// left; then it runs sr once more, unstopped, which must complete and
// leave a snapshot that verifies and an empty .work.
func StopSweep(tb testing.TB, sr StopRun) StopStats {
	tb.Helper()
	f := New(fsys.OS())
	f.FailAt(0, All, nil)
	if err := sr.Run(context.Background(), f, sr.Setup(tb)); err != nil {
		tb.Fatalf("unstopped run: %v", err)
	}
	n := f.Count()
	step := 1
	if sr.Points > 0 && n > sr.Points {
		step = n / sr.Points
	}
	var st StopStats
	for k := 1; k <= n; k++ {
		if (k-1)%step != 0 && k <= n-sr.Tail {
			continue
		}
		root := sr.Setup(tb)
		before := ReadServed(tb, root)
		ctx, cancel := context.WithCancel(context.Background())
		f.CallAt(k, All, cancel)
		err := sr.Run(ctx, f, root)
		cancel()
		st.Points++
		if err == nil {
			st.Done++
		} else {
			st.Stopped++
		}
		CheckStopped(tb, root, before, err)
		if err := sr.Run(context.Background(), fsys.OS(), root); err != nil {
			tb.Fatalf("stop at operation %d of %d: the next run failed: %v", k, n, err)
		}
		VerifyServed(tb, root)
		if ents, err := os.ReadDir(filepath.Join(root, export.WorkName)); err != nil || len(ents) > 0 {
			tb.Fatalf("stop at operation %d of %d: .work not empty after the next run: %d entries, %v", k, n, len(ents), err)
		}
		if tb.Failed() {
			tb.Fatalf("stop at operation %d of %d (err %v)", k, n, err)
		}
	}
	return st
}

// Served is what an export root serves: current's snapshot and the counters.
type Served struct {
	Cur uint64
	Seq seqfile.Pair
}

// ReadServed reads root's current and seq/ (both must parse).
func ReadServed(tb testing.TB, root string) Served {
	tb.Helper()
	r := export.New(fsys.OS(), root)
	cur, err := r.Current()
	if err != nil {
		tb.Fatalf("%s: current: %v", root, err)
	}
	p, err := seqfile.Counters(r.FS, r.SeqDir())
	if err != nil {
		tb.Fatalf("%s: seq: %v", root, err)
	}
	return Served{Cur: cur, Seq: p}
}

// CheckStopped checks what a run whose context was cancelled left in root,
// given what root served before it and the run's error: either the run
// failed with the cancellation and current, seq/end and status.json's
// snapshot are as before, or it succeeded; either way the served snapshot
// verifies.
func CheckStopped(tb testing.TB, root string, before Served, err error) {
	tb.Helper()
	after := ReadServed(tb, root)
	VerifyServed(tb, root)
	if err == nil {
		return
	}
	if !errors.Is(err, context.Canceled) {
		tb.Errorf("stopped run failed with %v, want an error wrapping context.Canceled", err)
	}
	if after.Cur != before.Cur || after.Seq.End != before.Seq.End {
		tb.Errorf("stopped run (%v) changed what is served: current %d -> %d, seq/end %d -> %d",
			err, before.Cur, after.Cur, before.Seq.End, after.Seq.End)
	}
	// status.json is what monitoring reads: it must describe the snapshot
	// still served and say the run failed.
	b, rerr := os.ReadFile(filepath.Join(root, export.StatusName))
	var rec export.Status
	switch {
	case rerr != nil:
		tb.Errorf("stopped run: no status.json recording the failure: %v", rerr)
	case json.Unmarshal(b, &rec) != nil:
		tb.Errorf("stopped run: status.json does not parse: %q", b)
	case rec.Snapshot != before.Cur || rec.LastError == "":
		tb.Errorf("stopped run: status.json records snapshot %d (state %s, last error %q), served is %d",
			rec.Snapshot, rec.State, rec.LastError, before.Cur)
	}
}

// VerifyServed checks that root's current snapshot (if any) verifies
// against its manifest.
func VerifyServed(tb testing.TB, root string) {
	tb.Helper()
	r := export.New(fsys.OS(), root)
	cur, err := r.Current()
	if err != nil || cur == 0 {
		if err != nil {
			tb.Fatalf("%s: current: %v", root, err)
		}
		return
	}
	m, err := r.ReadManifest(cur)
	if err != nil {
		tb.Fatalf("%s: manifest of served snapshot %d: %v", root, cur, err)
	}
	probs, err := tree.Verify(context.Background(), fsys.OS(), r.SnapshotDir(cur), m, 2)
	if err != nil {
		tb.Fatalf("%s: verify snapshot %d: %v", root, cur, err)
	}
	if len(probs) > 0 {
		tb.Fatalf("%s: served snapshot %d does not verify: %d problems, first %v", root, cur, len(probs), probs[0])
	}
}
