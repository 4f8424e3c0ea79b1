package reliab

import (
	"context"
	"errors"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/seqmirror/seqmirror/internal/export"
	"github.com/seqmirror/seqmirror/internal/fsys"
	"github.com/seqmirror/seqmirror/internal/mirror"
	"github.com/seqmirror/seqmirror/internal/transport"
	"github.com/seqmirror/seqmirror/manifest"
	"github.com/seqmirror/seqmirror/snapshot"
	"github.com/seqmirror/seqmirror/testutil"
	"github.com/seqmirror/seqmirror/testutil/faultfs"
)

// errnoFor picks a plausible errno for an operation kind.
func errnoFor(op faultfs.Op) syscall.Errno {
	switch op {
	case faultfs.OpRename, faultfs.OpLink:
		return syscall.EXDEV
	case faultfs.OpSync, faultfs.OpSyncFS, faultfs.OpRead, faultfs.OpOpen:
		return syscall.EIO
	}
	return syscall.ENOSPC
}

// faultRun is one operation under test, run on a fresh root for each k.
type faultRun struct {
	name string
	ops  faultfs.Op
	// sticky: every matching op from the k-th on fails (a disk that stays
	// full), with ENOSPC.
	sticky bool
	// setup prepares a fresh root fault-free and returns its directory.
	setup func(tb testing.TB) string
	// run is the operation, on f.
	run func(f fsys.FS, root string) error
	// want is the tree the operation serves when it succeeds.
	want *manifest.Manifest
}

// sweepStats counts what a sweep saw.
type sweepStats struct {
	indexes  int // fault indexes exercised
	failed   int // runs that returned the injected error
	absorbed int // faults the code ignored by design and still succeeded
	kept     int // failed runs that left the old snapshot served
	flipped  int // failed runs whose failure came after the flip
}

// sweep runs fr once fault-free to count its operations, then once per
// operation index k with the k-th operation failing, and checks after each:
// the served snapshot is the old one or the complete new one and verifies,
// seq files parse with begin >= end, end moved only if current did, the
// error wraps the injected errno and names the operation; then a fault-free
// rerun succeeds, serves the new tree and leaves nothing behind.
func sweep(t testing.TB, fr faultRun) sweepStats {
	t.Helper()
	root := fr.setup(t)
	f := faultfs.New(fsys.OS())
	f.FailAt(0, fr.ops, nil)
	f.Trace(true)
	if err := fr.run(f, root); err != nil {
		t.Fatalf("%s without faults: %v", fr.name, err)
	}
	trace := f.Events()
	total := len(trace)
	if total == 0 {
		t.Fatalf("%s: no operations counted", fr.name)
	}
	var st sweepStats
	for k := 1; k <= total; k++ {
		errno := errnoFor(trace[k-1].Op)
		root := fr.setup(t)
		before := readState(t, root)
		oldMan := verifyCurrent(t, root)
		if fr.sticky {
			errno = syscall.ENOSPC
			f.FailFrom(k, fr.ops, errno)
		} else {
			f.FailAt(k, fr.ops, errno)
		}
		err := fr.run(f, root)
		inj := f.Injected()
		st.indexes++
		where := func() string { return fr.name + " fault " + strings.Trim(strings.Join(strs(inj), ","), " ") }
		if len(inj) == 0 && err != nil {
			// Fewer ops than in the trace run (e.g. a Link fell back) is fine,
			// but then the run must succeed.
			t.Fatalf("%s: k=%d: no fault injected, yet err = %v", fr.name, k, err)
		}
		after := readState(t, root)
		served := verifyCurrent(t, root)
		switch {
		case after.Cur == before.Cur:
			if !sameEntries(served, oldMan) {
				t.Fatalf("%s: served tree changed without a flip", where())
			}
			if after.Seq.End != before.Seq.End {
				t.Fatalf("%s: seq/end moved %d -> %d but current did not", where(), before.Seq.End, after.Seq.End)
			}
		case sameEntries(served, fr.want):
			if after.Seq.End != before.Seq.End && after.Seq.End != after.Seq.Begin {
				t.Fatalf("%s: seq/end %d is neither old end %d nor begin %d", where(), after.Seq.End, before.Seq.End, after.Seq.Begin)
			}
		default:
			t.Fatalf("%s: serves snapshot %d, neither the old %d nor the new tree", where(), after.Cur, before.Cur)
		}
		if err == nil {
			if len(inj) > 0 {
				st.absorbed++
			}
			if after.Cur == before.Cur && !sameEntries(oldMan, fr.want) {
				t.Fatalf("%s: returned nil but did not serve the new tree", where())
			}
		} else {
			st.failed++
			if !errors.Is(err, errno) {
				t.Fatalf("%s: error %q does not wrap the injected %v", where(), err, errno)
			}
			if !strings.Contains(err.Error(), "(injected)") || !namesOne(err.Error(), inj) {
				t.Fatalf("%s: error %q does not name the failed operation", where(), err)
			}
			if after.Cur == before.Cur {
				st.kept++
			} else {
				st.flipped++
			}
		}
		f.FailAt(0, fr.ops, nil)
		if err := fr.run(f, root); err != nil {
			t.Fatalf("%s: fault-free rerun: %v", where(), err)
		}
		if got := verifyCurrent(t, root); !sameEntries(got, fr.want) {
			t.Fatalf("%s: fault-free rerun does not serve the new tree", where())
		}
		checkClean(t, root)
		if t.Failed() {
			t.FailNow()
		}
	}
	t.Logf("%s: %d ops, %d fault indexes: %d failed (%d kept the old snapshot, %d after the flip), %d absorbed by design",
		fr.name, total, st.indexes, st.failed, st.kept, st.flipped, st.absorbed)
	return st
}

// namesOne reports whether msg names the path of one of the failed ops.
func namesOne(msg string, inj []faultfs.Event) bool {
	for _, e := range inj {
		if strings.Contains(msg, filepath.Base(e.Path)) {
			return true
		}
	}
	return false
}

func strs(evs []faultfs.Event) []string {
	var s []string
	for _, e := range evs {
		s = append(s, e.String())
	}
	return s
}

func publishOpts() snapshot.PublishOptions {
	opt := snapshot.DefaultOptions()
	opt.Workers, opt.Keep, opt.Backoff = 1, 3, time.Millisecond
	return opt
}

func publish(tb testing.TB, f fsys.FS, root, src string) uint64 {
	tb.Helper()
	res, err := snapshot.Publish(context.Background(), export.New(f, root), src, publishOpts())
	if err != nil {
		tb.Fatalf("publish %s to %s: %v", src, root, err)
	}
	return res.Snapshot
}

func currentManifest(tb testing.TB, root string) *manifest.Manifest {
	tb.Helper()
	m := verifyCurrent(tb, root)
	if m == nil {
		tb.Fatalf("%s serves nothing", root)
	}
	return m
}

// oneRetry is mirror-sync's defaults with one retry after a millisecond.
func oneRetry() mirror.Options {
	o := mirror.DefaultOptions()
	o.Retries, o.Backoff = 1, time.Millisecond
	return o
}

func mirrorOpts() mirror.Options {
	o := mirror.DefaultOptions()
	o.Workers, o.Keep, o.Backoff, o.Retries = 1, 3, time.Millisecond, 1
	return o
}

func syncOnce(f fsys.FS, root, upstream string) error {
	up, err := transport.NewLocal(f, upstream)
	if err != nil {
		return err
	}
	_, err = mirror.Sync(context.Background(), export.New(f, root), up, mirrorOpts())
	return err
}

func TestInjectedFaults(t *testing.T) {
	base := testutil.FastDir(t)
	v1, v2 := makeSources(t, base)
	// Two master roots, built once and only read afterwards: A serves v1,
	// B served v1 and now serves v2.
	masterA, masterB := filepath.Join(base, "masterA"), filepath.Join(base, "masterB")
	publish(t, fsys.OS(), masterA, v1)
	publish(t, fsys.OS(), masterB, v1)
	publish(t, fsys.OS(), masterB, v2)
	want1, want2 := currentManifest(t, masterA), currentManifest(t, masterB)
	n := 0
	fresh := func(tb testing.TB) string {
		n++
		return filepath.Join(base, "r", strconv.Itoa(n))
	}
	withV1 := func(tb testing.TB) string {
		r := fresh(tb)
		publish(tb, fsys.OS(), r, v1)
		return r
	}
	mirrorV1 := func(tb testing.TB) string {
		r := fresh(tb)
		if err := syncOnce(fsys.OS(), r, masterA); err != nil {
			tb.Fatal(err)
		}
		return r
	}
	pub := func(src string) func(fsys.FS, string) error {
		return func(f fsys.FS, root string) error {
			_, err := snapshot.Publish(context.Background(), export.New(f, root), src, publishOpts())
			return err
		}
	}
	syncFrom := func(up string) func(fsys.FS, string) error {
		return func(f fsys.FS, root string) error { return syncOnce(f, root, up) }
	}
	tests := []faultRun{
		{name: "first publish", ops: faultfs.Mutating, setup: fresh, run: pub(v1), want: want1},
		{name: "second publish", ops: faultfs.Mutating, setup: withV1, run: pub(v2), want: want2},
		{name: "first mirror sync", ops: faultfs.Mutating, setup: fresh, run: syncFrom(masterA), want: want1},
		{name: "second mirror sync", ops: faultfs.Mutating, setup: mirrorV1, run: syncFrom(masterB), want: want2},
		{name: "second mirror sync, read faults", ops: faultfs.Reading, setup: mirrorV1, run: syncFrom(masterB), want: want2},
		{name: "second publish, disk stays full", ops: faultfs.Mutating, sticky: true, setup: withV1, run: pub(v2), want: want2},
		{name: "second mirror sync, disk stays full", ops: faultfs.Mutating, sticky: true, setup: mirrorV1, run: syncFrom(masterB), want: want2},
		{name: "second publish, read faults", ops: faultfs.Reading, setup: withV1, run: pub(v2), want: want2},
	}
	total := 0
	for _, fr := range tests {
		t.Run(fr.name, func(t *testing.T) {
			total += sweep(t, fr).indexes
		})
	}
	t.Logf("fault indexes exercised in all: %d", total)
}
