package reliab

import (
	"context"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/seqmirror/seqmirror/internal/cow"
	"github.com/seqmirror/seqmirror/internal/export"
	"github.com/seqmirror/seqmirror/internal/fsys"
	"github.com/seqmirror/seqmirror/snapshot"
	"github.com/seqmirror/seqmirror/testutil"
	"github.com/seqmirror/seqmirror/testutil/faultfs"
)

// The copy-on-write path's variants of the crash, signal and fault
// sweeps, on a btrfs the test mounts (testutil.MountLoop): the sources are
// subvolumes, so publish snapshots them, and mirror-sync clones the
// master's snapshots (a mirror on the master's btrfs) or snapshots its
// served subvolume (on a btrfs of its own). Short versions run in `make test`; SEQMIRROR_LONG=1
// (make crash, make soak) runs them long.

// cowMount is a loop-mounted btrfs for one test.
func cowMount(tb testing.TB) string {
	tb.Helper()
	return testutil.MountLoop(tb, "btrfs", 4<<30)
}

// subvolumeSource makes dir a new btrfs subvolume and returns it.
func subvolumeSource(tb testing.TB, dir string) string {
	tb.Helper()
	testutil.Must(tb, cow.CreateSubvolume(dir))
	return dir
}

// subvolumeCopy makes a subvolume to beside from with from's content.
func subvolumeCopy(tb testing.TB, from, to string) string {
	tb.Helper()
	subvolumeSource(tb, to)
	if out, err := exec.Command("cp", "-a", from+"/.", to).CombinedOutput(); err != nil {
		tb.Fatalf("cp -a %s/. %s: %v\n%s", from, to, err, out)
	}
	return to
}

// checkSubvolumes checks that the only subvolumes below root are its
// retained complete snapshots, all read-only: no work tree or pruned
// snapshot was left behind.
func checkSubvolumes(tb testing.TB, mnt, root string) {
	tb.Helper()
	r := export.New(fsys.OS(), root)
	snaps, err := r.Snapshots()
	testutil.Must(tb, err)
	want := map[string]bool{}
	for _, n := range snaps {
		want[filepath.Join(filepath.Base(root), export.SnapshotsName, strconv.FormatUint(n, 10))] = true
	}
	for _, line := range strings.Split(testutil.Btrfs(tb, "subvolume", "list", mnt), "\n") {
		_, p, ok := strings.Cut(line, " path ")
		if !ok || !strings.HasPrefix(p, filepath.Base(root)+"/") {
			continue
		}
		if !want[p] {
			tb.Fatalf("%s: subvolume %s left behind (snapshots %v)", root, p, snaps)
		}
		if ro, err := cow.ReadOnly(filepath.Join(mnt, p)); err != nil || !ro {
			tb.Fatalf("%s: snapshot %s is not read-only (%v)", root, p, err)
		}
		delete(want, p)
	}
	for p := range want {
		if filepath.Base(filepath.Dir(p)) == export.SnapshotsName {
			tb.Fatalf("%s: snapshot %s is not a subvolume", root, p)
		}
	}
}

// TestCrashCoW is TestCrashPublish and TestCrashMirrorSync on btrfs.
func TestCrashCoW(t *testing.T) {
	t.Parallel()
	mnt := cowMount(t)
	src := subvolumeSource(t, filepath.Join(mnt, "src"))
	master := filepath.Join(mnt, "master")
	m := newMutator(t, src, pick(1500, 3000), 31)
	pubArgs := []string{"--root", master, "--source", src, "--keep", "3", "--min-age", "0s", "-q"}
	st := crashLoop(t, pick(10, 150), master, func() { m.mutate(t, 40) }, "publish", pubArgs, treeListing(t, src))
	checkSubvolumes(t, mnt, master)
	prepare := func() { m.mutate(t, 40); mustRun(t, "publish", pubArgs...) }
	for _, mir := range mirrorRoots(t, mnt) {
		mirArgs := []string{"--upstream", master, "--root", mir, "--keep", "3", "--min-age", "0s", "-q"}
		st2 := crashLoop(t, pick(10, 150), mir, prepare, "mirror-sync", mirArgs, treeListing(t, filepath.Join(master, "current")+"/"))
		checkSubvolumes(t, filepath.Dir(mir), mir)
		if st.points-st.finished == 0 || st2.points-st2.finished == 0 {
			t.Fatal("no run was killed while running; the kill points are useless")
		}
	}
}

// mirrorRoots are the two mirror roots of the crash sweeps: one on the
// master's btrfs (mirror-sync clones the master's snapshots) and one on a
// btrfs of its own (it snapshots its served snapshot and applies the
// difference).
func mirrorRoots(tb testing.TB, mnt string) []string {
	return []string{filepath.Join(mnt, "mirror"), filepath.Join(cowMount(tb), "mirror")}
}

// TestCrashSignalCoW is TestCrashSignalPublish and TestCrashSignalMirrorSync
// on btrfs.
func TestCrashSignalCoW(t *testing.T) {
	t.Parallel()
	mnt := cowMount(t)
	src := subvolumeSource(t, filepath.Join(mnt, "src"))
	master := filepath.Join(mnt, "master")
	m := newMutator(t, src, pick(1000, 3000), 32)
	pubArgs := []string{"--root", master, "--source", src, "--keep", "3", "--min-age", "0s", "-q"}
	st := signalLoop(t, pick(6, 150), master, func() { m.mutate(t, 40) }, "publish", pubArgs, treeListing(t, src))
	checkSubvolumes(t, mnt, master)
	prepare := func() { m.mutate(t, 40); mustRun(t, "publish", pubArgs...) }
	for _, mir := range mirrorRoots(t, mnt) {
		mirArgs := []string{"--upstream", master, "--root", mir, "--keep", "3", "--min-age", "0s", "-q"}
		st2 := signalLoop(t, pick(6, 150), mir, prepare, "mirror-sync", mirArgs, treeListing(t, filepath.Join(master, "current")+"/"))
		checkSubvolumes(t, filepath.Dir(mir), mir)
		requireInterrupted(t, signalStats{interrupted: st.interrupted + st2.interrupted})
	}
}

// TestInjectedFaultsCoW is TestInjectedFaults' second publish and second
// mirror sync on btrfs, each operation of the filesystem failing in turn
// (the ioctls themselves are not wrapped: a refused one takes the hard
// links, as TestPublishCoWFallback shows). The long run adds the read
// faults and the disk that stays full.
func TestInjectedFaultsCoW(t *testing.T) {
	mnt := cowMount(t)
	p1, p2 := makeSources(t, t.TempDir())
	v1 := subvolumeCopy(t, p1, filepath.Join(mnt, "v1"))
	v2 := subvolumeCopy(t, p2, filepath.Join(mnt, "v2"))
	masterA, masterB := filepath.Join(mnt, "masterA"), filepath.Join(mnt, "masterB")
	publish(t, fsys.OS(), masterA, v1)
	publish(t, fsys.OS(), masterB, v1)
	publish(t, fsys.OS(), masterB, v2)
	want2 := currentManifest(t, masterB)
	n := 0
	fresh := func(tb testing.TB) string {
		n++
		return filepath.Join(mnt, "r"+strconv.Itoa(n))
	}
	withV1 := func(tb testing.TB) string {
		r := fresh(tb)
		publish(tb, fsys.OS(), r, v1)
		return r
	}
	mirrorV1 := func(tb testing.TB) string {
		r := fresh(tb)
		testutil.Must(tb, syncOnce(fsys.OS(), r, masterA))
		return r
	}
	var cowRuns atomic.Int64
	pub := func(f fsys.FS, root string) error {
		res, err := snapshot.Publish(context.Background(), export.New(f, root), v2, publishOpts())
		if err == nil && res.CoW {
			cowRuns.Add(1)
		}
		return err
	}
	sync := func(f fsys.FS, root string) error { return syncOnce(f, root, masterB) }
	tests := []faultRun{
		{name: "second publish", ops: faultfs.Mutating, setup: withV1, run: pub, want: want2},
		{name: "second mirror sync", ops: faultfs.Mutating, setup: mirrorV1, run: sync, want: want2},
	}
	if long() {
		tests = append(tests,
			faultRun{name: "second publish, read faults", ops: faultfs.Reading, setup: withV1, run: pub, want: want2},
			faultRun{name: "second mirror sync, read faults", ops: faultfs.Reading, setup: mirrorV1, run: sync, want: want2},
			faultRun{name: "second publish, disk stays full", ops: faultfs.Mutating, sticky: true, setup: withV1, run: pub, want: want2},
			faultRun{name: "second mirror sync, disk stays full", ops: faultfs.Mutating, sticky: true, setup: mirrorV1, run: sync, want: want2},
		)
	}
	for _, fr := range tests {
		t.Run(fr.name, func(t *testing.T) {
			sweep(t, fr)
		})
	}
	if sub, err := cow.IsSubvolume(filepath.Join(masterB, export.SnapshotsName, "2")); err != nil || !sub || cowRuns.Load() == 0 {
		t.Fatalf("the master's snapshots are not subvolumes (%v), or no publish took the copy-on-write path (%d): the sweep missed it", err, cowRuns.Load())
	}
}

// TestCoWOverTransports: mirror-sync onto btrfs from an rsync daemon and
// from nginx takes the copy-on-write path as from a local path (rsync's
// staging directory is inside the work subvolume: a rename out of a
// sibling would cross devices), and each snapshot it makes verifies, lists
// as the master's (modes, mtimes, sizes, no staging leftovers) and is a
// read-only subvolume.
func TestCoWOverTransports(t *testing.T) {
	t.Parallel()
	mnt := cowMount(t)
	src := subvolumeSource(t, filepath.Join(mnt, "src"))
	master := filepath.Join(mnt, "master")
	m := newMutator(t, src, 400, 33)
	pubArgs := []string{"--root", master, "--source", src, "-q"}
	mustRun(t, "publish", pubArgs...)
	n := testutil.StartNginx(t, testutil.NginxExportRoot(mnt))
	for _, tc := range []struct{ name, upstream string }{
		{"rsync", serveRoot(t, master)},
		{"http", n.URL("/master/")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mir := filepath.Join(mnt, "mirror-"+tc.name)
			for step := range 3 {
				if step > 0 {
					m.mutate(t, 8)
					mustRun(t, "publish", pubArgs...)
				}
				_, logs, code := run(t, "mirror-sync", "--upstream", tc.upstream, "--root", mir, "-v")
				if code != 0 {
					t.Fatalf("step %d: exit %d\n%s", step, code, logs)
				}
				if step > 0 && !strings.Contains(logs, "syncing copy-on-write") {
					t.Fatalf("step %d did not take the copy-on-write path:\n%s", step, logs)
				}
				mustRun(t, "mirror-sync", "verify", "--root", mir)
				if a, b := strings.Join(listing(t, filepath.Join(master, "current")+"/"), "\n"), strings.Join(listing(t, filepath.Join(mir, "current")+"/"), "\n"); a != b {
					t.Fatalf("step %d: the mirror serves\n%s\nthe master\n%s", step, b, a)
				}
			}
			checkSubvolumes(t, mnt, mir)
		})
	}
}
