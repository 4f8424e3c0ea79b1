package reliab

import (
	"fmt"
	"math/rand/v2"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// crashStats tallies where the SIGKILLs landed, judged by the state left.
type crashStats struct {
	points   int // processes killed (or finished first)
	before   int // nothing visible yet: begin == end, old snapshot served
	midway   int // begin > end, old snapshot still served
	flipped  int // begin > end, new snapshot already served
	finished int // the run completed before the kill
}

// killAt starts name with args, SIGKILLs it after delay, and reaps it. It
// reports whether the process was still running when killed.
func killAt(tb testing.TB, delay time.Duration, name string, args ...string) bool {
	tb.Helper()
	cmd := exec.Command(bin(name), args...)
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
		return false
	case <-time.After(delay):
	}
	_ = cmd.Process.Kill() // SIGKILL, this process only
	err := <-done
	return err != nil
}

// timeRun runs name to completion and returns how long it took.
func timeRun(tb testing.TB, name string, args ...string) time.Duration {
	tb.Helper()
	t0 := time.Now()
	mustRun(tb, name, args...)
	return time.Since(t0)
}

// crashLoop runs iterations of: change something (prepare), start the
// command, SIGKILL it at a random point, check the root, then run the
// command to completion and check it left nothing behind. wantServed says
// what the completed run must serve.
func crashLoop(t testing.TB, iters int, root string, prepare func(), name string, args []string, wantServed func() []string) crashStats {
	t.Helper()
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 2))
	prepare()
	d := timeRun(t, name, args...)
	var st crashStats
	for i := 0; i < iters; i++ {
		prepare()
		before := readState(t, root)
		delay := time.Duration(rng.Int64N(int64(d)*11/10 + 1))
		killed := killAt(t, delay, name, args...)
		st.points++
		after := readState(t, root) // parses seq, checks begin >= end
		verifyCurrent(t, root)      // current resolves to a complete snapshot that verifies
		switch {
		case !killed:
			st.finished++
		case after.Seq.Idle() && after.Cur == before.Cur:
			st.before++
		case after.Cur == before.Cur:
			st.midway++
		default:
			st.flipped++
		}
		if after.Cur == before.Cur && after.Seq.End != before.Seq.End {
			t.Fatalf("kill %d after %v: seq/end moved %d -> %d without a flip", i, delay, before.Seq.End, after.Seq.End)
		}
		// The completed run does what the killed one would have: its
		// duration is the window for the next kill.
		d = timeRun(t, name, args...)
		checkClean(t, root)
		if got, want := listing(t, filepath.Join(root, "current")+"/"), wantServed(); !equalStrings(got, want) {
			t.Fatalf("kill %d: after a completed run the served tree differs from the source: %s", i, firstDiff(got, want))
		}
		if t.Failed() {
			t.FailNow()
		}
	}
	t.Logf("%s: %d kill points: %d before any change, %d mid-update, %d after the flip, %d runs finished first",
		name, st.points, st.before, st.midway, st.flipped, st.finished)
	return st
}

func firstDiff(got, want []string) string {
	for i := range min(len(got), len(want)) {
		if got[i] != want[i] {
			return "got " + got[i] + ", want " + want[i]
		}
	}
	return fmt.Sprintf("got %d entries, want %d", len(got), len(want))
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// treeListing lists a source tree the way it appears in a snapshot.
func treeListing(tb testing.TB, dir string) func() []string {
	return func() []string { return listing(tb, dir) }
}

func TestCrashPublish(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	src, root := filepath.Join(base, "src"), filepath.Join(base, "root")
	m := newMutator(t, src, pick(1500, 3000), 11)
	args := []string{"--root", root, "--source", src, "--keep", "3", "--min-age", "0s", "-q"}
	st := crashLoop(t, pick(20, 300), root, func() { m.mutate(t, 40) }, "publish", args, treeListing(t, src))
	if st.points-st.finished == 0 {
		t.Fatal("no run was killed while running; the kill points are useless")
	}
}

func TestCrashMirrorSync(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	src, master, root := filepath.Join(base, "src"), filepath.Join(base, "master"), filepath.Join(base, "mirror")
	m := newMutator(t, src, pick(1500, 3000), 12)
	prepare := func() {
		m.mutate(t, 40)
		mustRun(t, "publish", "--root", master, "--source", src, "--keep", "3", "--min-age", "0s", "-q")
	}
	args := []string{"--upstream", master, "--root", root, "--keep", "3", "--min-age", "0s", "-q"}
	st := crashLoop(t, pick(20, 300), root, prepare, "mirror-sync", args, treeListing(t, filepath.Join(master, "current")+"/"))
	if st.points-st.finished == 0 {
		t.Fatal("no run was killed while running; the kill points are useless")
	}
}
