package export_test

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/seqmirror/seqmirror/internal/export"
	"github.com/seqmirror/seqmirror/internal/fsys"
	"github.com/seqmirror/seqmirror/manifest"
	"github.com/seqmirror/seqmirror/seqfile"
)

// lockHelperEnv makes the test binary a lock holder: it takes the lock of
// the root named in the variable, says "locked" and sleeps until killed.
const lockHelperEnv = "SEQMIRROR_TEST_LOCK_HELPER"

func TestMain(m *testing.M) {
	if dir := os.Getenv(lockHelperEnv); dir != "" {
		if _, err := export.New(fsys.OS(), dir).Lock(); err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		fmt.Println("locked")
		time.Sleep(2 * time.Minute) // killed by the test long before
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// newRoot returns an initialised root in a temp dir.
func newRoot(tb testing.TB) *export.Root {
	tb.Helper()
	r := export.New(fsys.OS(), filepath.Join(tb.TempDir(), "root"))
	if err := r.Init(); err != nil {
		tb.Fatal(err)
	}
	return r
}

// addSnapshot makes a complete snapshot n (a directory with one file and a
// valid manifest) whose manifest mtime is mtime (if not zero).
func addSnapshot(tb testing.TB, r *export.Root, n uint64, mtime time.Time) {
	tb.Helper()
	if err := os.MkdirAll(r.SnapshotDir(n), 0o755); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(r.SnapshotDir(n), "f"), []byte(fmt.Sprint(n)), 0o644); err != nil {
		tb.Fatal(err)
	}
	addManifest(tb, r, n)
	if !mtime.IsZero() {
		if err := os.Chtimes(r.ManifestPath(n), mtime, mtime); err != nil {
			tb.Fatal(err)
		}
	}
}

func addManifest(tb testing.TB, r *export.Root, n uint64) {
	tb.Helper()
	b, err := (&manifest.Manifest{Snapshot: n}).Bytes()
	if err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(r.ManifestPath(n), b, 0o644); err != nil {
		tb.Fatal(err)
	}
}

func flip(tb testing.TB, r *export.Root, n uint64) {
	tb.Helper()
	if err := r.Flip(n); err != nil {
		tb.Fatal(err)
	}
}

func setSeq(tb testing.TB, r *export.Root, begin, end uint64) {
	tb.Helper()
	if err := seqfile.Write(r.FS, filepath.Join(r.SeqDir(), seqfile.Begin), begin); err != nil {
		tb.Fatal(err)
	}
	if err := seqfile.Write(r.FS, filepath.Join(r.SeqDir(), seqfile.End), end); err != nil {
		tb.Fatal(err)
	}
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

func TestLockExclusive(t *testing.T) {
	r := newRoot(t)
	l1, err := r.Lock()
	if err != nil {
		t.Fatal(err)
	}
	// A second Lock, even from this process, is refused at once.
	if _, err := export.New(fsys.OS(), r.Dir).Lock(); !errors.Is(err, export.ErrLocked) {
		t.Fatalf("second Lock = %v, want ErrLocked", err)
	}
	if err := l1.Unlock(); err != nil {
		t.Fatal(err)
	}
	l2, err := r.Lock()
	if err != nil {
		t.Fatalf("Lock after Unlock: %v", err)
	}
	l2.Unlock()
}

// The daemon lock is one per root and independent of the run lock: a
// daemon holding it does not stop its own runs (or cron's) from locking.
func TestDaemonLock(t *testing.T) {
	r := newRoot(t)
	d1, err := r.DaemonLock()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := export.New(fsys.OS(), r.Dir).DaemonLock(); !errors.Is(err, export.ErrLocked) || !strings.Contains(err.Error(), "another daemon") {
		t.Fatalf("second DaemonLock = %v, want ErrLocked naming a daemon", err)
	}
	l, err := r.Lock()
	if err != nil {
		t.Fatalf("run Lock while a daemon holds its lock: %v", err)
	}
	l.Unlock()
	if err := d1.Unlock(); err != nil {
		t.Fatal(err)
	}
	d2, err := r.DaemonLock()
	if err != nil {
		t.Fatalf("DaemonLock after Unlock: %v", err)
	}
	d2.Unlock()
}

// TestLockFreeAfterUnlockWhileForking: other goroutines fork and exec
// children all along; a child shares the lock's open file until its exec,
// so an Unlock that only closed it would leave the next Lock in this
// process refused now and then (a flaky test once showed it).
func TestLockFreeAfterUnlockWhileForking(t *testing.T) {
	r := newRoot(t)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				exec.Command("true").Run()
			}
		}()
	}
	defer func() { close(stop); wg.Wait() }()
	for i := range 2000 {
		l, err := r.Lock()
		if err != nil {
			t.Fatalf("Lock %d after Unlock: %v", i, err)
		}
		if err := l.Unlock(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestLockCreatesRoot(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "new", "root")
	l, err := export.New(fsys.OS(), dir).Lock()
	if err != nil {
		t.Fatal(err)
	}
	defer l.Unlock()
	if !exists(filepath.Join(dir, export.LockName)) {
		t.Fatal("lock file not created")
	}
}

// TestLockReleasedWhenHolderKilled: a run killed with SIGKILL leaves no stale
// lock, because the kernel drops an flock with the process.
func TestLockReleasedWhenHolderKilled(t *testing.T) {
	r := newRoot(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), lockHelperEnv+"="+r.Dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || line != "locked\n" {
		t.Fatalf("helper said %q, %v", line, err)
	}
	if _, err := r.Lock(); !errors.Is(err, export.ErrLocked) {
		t.Fatalf("Lock while another process holds it = %v, want ErrLocked", err)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	l, err := r.Lock()
	if err != nil {
		t.Fatalf("Lock after the holder was killed: %v", err)
	}
	l.Unlock()
}

func TestParseCurrent(t *testing.T) {
	tests := []struct {
		name   string
		target string
		want   uint64
		ok     bool
	}{
		{name: "one", target: "snapshots/1", want: 1, ok: true},
		{name: "large", target: "snapshots/18446744073709551615", want: 1<<64 - 1, ok: true},
		{name: "zero", target: "snapshots/0"},
		{name: "leading zero", target: "snapshots/01"},
		{name: "overflow", target: "snapshots/18446744073709551616"},
		{name: "absolute", target: "/root/snapshots/1"},
		{name: "dot slash", target: "./snapshots/1"},
		{name: "trailing slash", target: "snapshots/1/"},
		{name: "sign", target: "snapshots/+1"},
		{name: "no number", target: "snapshots/"},
		{name: "other dir", target: "snapshot/1"},
		{name: "escape", target: "snapshots/../1"},
		{name: "manifest", target: "snapshots/1.manifest"},
		{name: "empty", target: ""},
		{name: "secret-looking", target: "/SECRET:20228"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := export.ParseCurrent(tt.target)
			if tt.ok {
				if err != nil || n != tt.want {
					t.Fatalf("ParseCurrent(%q) = %d, %v; want %d", tt.target, n, err, tt.want)
				}
				if got := export.CurrentTarget(n); got != tt.target {
					t.Fatalf("CurrentTarget(%d) = %q", n, got)
				}
				return
			}
			if !errors.Is(err, export.ErrBadCurrent) {
				t.Fatalf("ParseCurrent(%q) = %d, %v; want ErrBadCurrent", tt.target, n, err)
			}
			// An upstream's target is not quoted (status.json is public).
			if strings.Contains(err.Error(), "SECRET") {
				t.Fatalf("ParseCurrent(%q) error quotes the target: %v", tt.target, err)
			}
		})
	}
}

func FuzzParseCurrent(f *testing.F) {
	for _, s := range []string{"snapshots/1", "snapshots/42", "snapshots/0", "snapshots/01", "snapshots/", "x", "snapshots/1/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, target string) {
		n, err := export.ParseCurrent(target)
		if err != nil {
			if !errors.Is(err, export.ErrBadCurrent) {
				t.Fatalf("error does not wrap ErrBadCurrent: %v", err)
			}
			return
		}
		if n == 0 || export.CurrentTarget(n) != target {
			t.Fatalf("ParseCurrent(%q) = %d, which formats as %q", target, n, export.CurrentTarget(n))
		}
	})
}

func TestCurrent(t *testing.T) {
	tests := []struct {
		name    string
		setup   func(t *testing.T, r *export.Root)
		want    uint64
		wantErr error
	}{
		{name: "none", setup: func(*testing.T, *export.Root) {}, want: 0},
		{name: "flipped", setup: func(t *testing.T, r *export.Root) { flip(t, r, 7) }, want: 7},
		{name: "flipped twice", setup: func(t *testing.T, r *export.Root) { flip(t, r, 7); flip(t, r, 9) }, want: 9},
		{name: "bad target", setup: func(t *testing.T, r *export.Root) {
			if err := os.Symlink("/etc", r.Path(export.CurrentName)); err != nil {
				t.Fatal(err)
			}
		}, wantErr: export.ErrBadCurrent},
		{name: "regular file", setup: func(t *testing.T, r *export.Root) {
			if err := os.WriteFile(r.Path(export.CurrentName), []byte("snapshots/1"), 0o644); err != nil {
				t.Fatal(err)
			}
		}, wantErr: export.ErrBadCurrent},
		{name: "directory", setup: func(t *testing.T, r *export.Root) {
			if err := os.Mkdir(r.Path(export.CurrentName), 0o755); err != nil {
				t.Fatal(err)
			}
		}, wantErr: export.ErrBadCurrent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRoot(t)
			tt.setup(t, r)
			n, err := r.Current()
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Current = %d, %v; want error wrapping %v", n, err, tt.wantErr)
				}
				return
			}
			if err != nil || n != tt.want {
				t.Fatalf("Current = %d, %v; want %d", n, err, tt.want)
			}
			if n > 0 {
				// Flip leaves a relative symlink and no temp file.
				if tgt, _ := os.Readlink(r.Path(export.CurrentName)); tgt != export.CurrentTarget(n) {
					t.Fatalf("current -> %q", tgt)
				}
				ents, _ := os.ReadDir(r.Dir)
				for _, e := range ents {
					if strings.Contains(e.Name(), fsys.TempMarker) {
						t.Fatalf("Flip left %s", e.Name())
					}
				}
			}
		})
	}
}

func TestSnapshotsAndHighestNumber(t *testing.T) {
	r := newRoot(t)
	addSnapshot(t, r, 3, time.Time{})
	addSnapshot(t, r, 10, time.Time{})
	addSnapshot(t, r, 2, time.Time{})
	addManifest(t, r, 12)                                        // orphan manifest: not complete, but its number is used
	os.Mkdir(r.SnapshotDir(11), 0o755)                           // orphan dir
	os.Mkdir(r.Path(export.SnapshotsName, "015"), 0o755)         // not canonical: ignored
	os.WriteFile(r.Path(export.SnapshotsName, "20"), nil, 0o644) // a file named like a snapshot: ignored
	snaps, err := r.Snapshots()
	if err != nil || !slices.Equal(snaps, []uint64{2, 3, 10}) {
		t.Fatalf("Snapshots = %v, %v; want [2 3 10]", snaps, err)
	}
	hi, err := r.HighestNumber()
	if err != nil || hi != 12 {
		t.Fatalf("HighestNumber = %d, %v; want 12", hi, err)
	}
	flip(t, r, 30) // current counts too, even dangling
	if hi, err := r.HighestNumber(); err != nil || hi != 30 {
		t.Fatalf("HighestNumber = %d, %v; want 30", hi, err)
	}
}

func TestReadManifest(t *testing.T) {
	r := newRoot(t)
	addSnapshot(t, r, 4, time.Time{})
	if m, err := r.ReadManifest(4); err != nil || m.Snapshot != 4 {
		t.Fatalf("ReadManifest(4) = %v, %v", m, err)
	}
	// A manifest that records another snapshot number is corrupt.
	b, _ := (&manifest.Manifest{Snapshot: 5}).Bytes()
	os.WriteFile(r.ManifestPath(4), b, 0o644)
	if _, err := r.ReadManifest(4); !errors.Is(err, manifest.ErrCorrupt) {
		t.Fatalf("ReadManifest with wrong number = %v, want ErrCorrupt", err)
	}
	os.WriteFile(r.ManifestPath(4), b[:len(b)-3], 0o644)
	if _, err := r.ReadManifest(4); !errors.Is(err, manifest.ErrCorrupt) {
		t.Fatalf("ReadManifest truncated = %v, want ErrCorrupt", err)
	}
}

func TestCleanup(t *testing.T) {
	tests := []struct {
		name string
		cur  uint64
		// extra setup after snapshots 1 and 2 exist
		setup     func(t *testing.T, r *export.Root)
		gone      []string // relative to root
		kept      []string
		wantSnaps []uint64
	}{
		{
			name: "work dir and temps",
			cur:  2,
			setup: func(t *testing.T, r *export.Root) {
				os.MkdirAll(r.Path(export.WorkName, "3", "deep"), 0o755)
				os.WriteFile(r.Path(export.WorkName, "3", "deep", "f"), nil, 0o444)
				os.Chmod(r.Path(export.WorkName, "3", "deep"), 0o555)
				os.WriteFile(r.Path(".current"+fsys.TempMarker+"123"), nil, 0o644)
				os.WriteFile(r.Path(export.SeqName, ".begin"+fsys.TempMarker+"9"), nil, 0o644)
				os.WriteFile(r.Path(export.SnapshotsName, ".3.manifest"+fsys.TempMarker+"1"), nil, 0o644)
				os.WriteFile(r.Path(".status.json"+fsys.TempMarker+"5"), nil, 0o644)
			},
			gone:      []string{".work/3", ".current.tmp-123", "seq/.begin.tmp-9", "snapshots/.3.manifest.tmp-1", ".status.json.tmp-5"},
			kept:      []string{".work", "current", "snapshots/1", "snapshots/1.manifest", "snapshots/2", "snapshots/2.manifest"},
			wantSnaps: []uint64{1, 2},
		},
		{
			name: "orphans",
			cur:  2,
			setup: func(t *testing.T, r *export.Root) {
				addManifest(t, r, 3)                 // crash after the manifest, before the rename
				os.MkdirAll(r.SnapshotDir(4), 0o755) // prune crashed after removing the manifest
				os.WriteFile(filepath.Join(r.SnapshotDir(4), "x"), nil, 0o644)
			},
			gone:      []string{"snapshots/3.manifest", "snapshots/4"},
			kept:      []string{"snapshots/1", "snapshots/2", "snapshots/2.manifest"},
			wantSnaps: []uint64{1, 2},
		},
		{
			name: "served half snapshot is kept",
			cur:  5,
			setup: func(t *testing.T, r *export.Root) {
				os.MkdirAll(r.SnapshotDir(5), 0o755) // served, manifest lost
				addManifest(t, r, 6)
			},
			gone:      []string{"snapshots/6.manifest"},
			kept:      []string{"snapshots/5", "snapshots/1", "snapshots/2"},
			wantSnaps: []uint64{1, 2},
		},
		{
			name: "served manifest without dir is kept",
			cur:  7,
			setup: func(t *testing.T, r *export.Root) {
				addManifest(t, r, 7)
			},
			kept:      []string{"snapshots/7.manifest"},
			wantSnaps: []uint64{1, 2},
		},
		{
			name: "foreign names are left alone",
			cur:  1,
			setup: func(t *testing.T, r *export.Root) {
				os.WriteFile(r.Path(export.SnapshotsName, "README"), nil, 0o644)
				os.Mkdir(r.Path(export.SnapshotsName, "07"), 0o755)
				os.WriteFile(r.Path("notes.tmp"), nil, 0o644)
			},
			kept:      []string{"snapshots/README", "snapshots/07", "notes.tmp", "snapshots/2"},
			wantSnaps: []uint64{1, 2},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRoot(t)
			addSnapshot(t, r, 1, time.Time{})
			addSnapshot(t, r, 2, time.Time{})
			flip(t, r, tt.cur)
			tt.setup(t, r)
			if err := r.Cleanup(); err != nil {
				t.Fatalf("Cleanup: %v", err)
			}
			for _, p := range tt.gone {
				if exists(r.Path(p)) {
					t.Errorf("%s still exists", p)
				}
			}
			for _, p := range tt.kept {
				if !exists(r.Path(p)) {
					t.Errorf("%s was removed", p)
				}
			}
			if fi, err := os.Stat(r.WorkDir()); err != nil || !fi.IsDir() {
				t.Errorf(".work not recreated: %v", err)
			}
			if ents, _ := os.ReadDir(r.WorkDir()); len(ents) != 0 {
				t.Errorf(".work not empty: %v", ents)
			}
			snaps, err := r.Snapshots()
			if err != nil || !slices.Equal(snaps, tt.wantSnaps) {
				t.Errorf("Snapshots after Cleanup = %v, %v; want %v", snaps, err, tt.wantSnaps)
			}
			if n, err := r.Current(); err != nil || n != tt.cur {
				t.Errorf("Current after Cleanup = %d, %v; want %d", n, err, tt.cur)
			}
		})
	}
}

func TestPrune(t *testing.T) {
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	hour := time.Hour
	tests := []struct {
		name    string
		snaps   []uint64 // snapshot i's manifest is written at base + i hours
		cur     uint64
		keep    int
		minAge  time.Duration
		now     time.Time
		deleted []uint64
		wantErr bool
	}{
		{name: "keep newest", snaps: []uint64{1, 2, 3, 4, 5, 6}, cur: 6, keep: 3, now: base.Add(100 * hour), deleted: []uint64{1, 2, 3}},
		{name: "keep one", snaps: []uint64{1, 2, 3}, cur: 3, keep: 1, now: base.Add(100 * hour), deleted: []uint64{1, 2}},
		{name: "nothing to prune", snaps: []uint64{1, 2}, cur: 2, keep: 3, now: base.Add(100 * hour)},
		{name: "exactly keep", snaps: []uint64{4, 5, 6}, cur: 6, keep: 3, now: base.Add(100 * hour)},
		{name: "gaps in numbers", snaps: []uint64{2, 5, 9, 10}, cur: 10, keep: 2, now: base.Add(100 * hour), deleted: []uint64{2, 5}},
		{name: "never current or newer", snaps: []uint64{1, 2, 3, 4, 5, 6}, cur: 3, keep: 1, now: base.Add(100 * hour), deleted: []uint64{1, 2}},
		{name: "current oldest", snaps: []uint64{1, 2, 3}, cur: 1, keep: 1, now: base.Add(100 * hour)},
		{name: "no current", snaps: []uint64{1, 2, 3}, keep: 1, now: base.Add(100 * hour)},
		// Snapshot n was superseded when n+1's manifest was written (base+(n+1)h).
		// At base+6.5h with min-age 2h: 1, 2, 3 superseded at 2h, 3h, 4h are old
		// enough; 4 superseded at 5h is not.
		{name: "min age", snaps: []uint64{1, 2, 3, 4, 5, 6}, cur: 6, keep: 1, minAge: 2 * hour, now: base.Add(6*hour + 30*time.Minute), deleted: []uint64{1, 2, 3}},
		{name: "min age boundary", snaps: []uint64{1, 2, 3}, cur: 3, keep: 1, minAge: 2 * hour, now: base.Add(4 * hour), deleted: []uint64{1}},
		{name: "min age keeps all", snaps: []uint64{1, 2, 3}, cur: 3, keep: 1, minAge: 24 * hour, now: base.Add(4 * hour)},
		{name: "now before manifests", snaps: []uint64{1, 2, 3}, cur: 3, keep: 1, minAge: time.Nanosecond, now: base},
		{name: "keep zero refused", snaps: []uint64{1, 2}, cur: 2, keep: 0, now: base.Add(100 * hour), wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRoot(t)
			for _, n := range tt.snaps {
				addSnapshot(t, r, n, base.Add(time.Duration(n)*hour))
			}
			if tt.cur > 0 {
				flip(t, r, tt.cur)
			}
			deleted, err := r.Prune(tt.keep, tt.minAge, tt.now)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("Prune(keep=%d) = %v, nil; want an error", tt.keep, deleted)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(deleted, tt.deleted) {
				t.Fatalf("Prune deleted %v, want %v", deleted, tt.deleted)
			}
			var want []uint64
			for _, n := range tt.snaps {
				if !slices.Contains(tt.deleted, n) {
					want = append(want, n)
				}
			}
			if got, _ := r.Snapshots(); !slices.Equal(got, want) {
				t.Fatalf("left %v, want %v", got, want)
			}
			for _, n := range tt.deleted {
				if exists(r.SnapshotDir(n)) || exists(r.ManifestPath(n)) {
					t.Fatalf("snapshot %d only half deleted", n)
				}
			}
			if tt.cur > 0 && !slices.Contains(want, tt.cur) {
				t.Fatalf("served snapshot %d pruned", tt.cur)
			}
		})
	}
}

func TestStatus(t *testing.T) {
	tests := []struct {
		name     string
		setup    func(t *testing.T, r *export.Root)
		snapshot uint64
		state    string
		begin    uint64
		end      uint64
		problem  bool
	}{
		{name: "empty", setup: func(*testing.T, *export.Root) {}, state: export.StateEmpty},
		{name: "empty with counters", setup: func(t *testing.T, r *export.Root) { setSeq(t, r, 1, 0) }, state: export.StateEmpty, begin: 1},
		{name: "fresh", setup: func(t *testing.T, r *export.Root) {
			addSnapshot(t, r, 1, time.Time{})
			flip(t, r, 1)
			setSeq(t, r, 1, 1)
		}, snapshot: 1, state: export.StateFresh, begin: 1, end: 1},
		{name: "updating", setup: func(t *testing.T, r *export.Root) {
			addSnapshot(t, r, 1, time.Time{})
			flip(t, r, 1)
			setSeq(t, r, 2, 1)
		}, snapshot: 1, state: export.StateUpdating, begin: 2, end: 1},
		{name: "torn dangling", setup: func(t *testing.T, r *export.Root) {
			addSnapshot(t, r, 1, time.Time{})
			flip(t, r, 9)
			setSeq(t, r, 1, 1)
		}, snapshot: 9, state: export.StateTorn, begin: 1, end: 1, problem: true},
		{name: "torn half snapshot", setup: func(t *testing.T, r *export.Root) {
			os.Mkdir(r.SnapshotDir(1), 0o755)
			flip(t, r, 1)
		}, snapshot: 1, state: export.StateTorn, problem: true},
		{name: "torn bad target", setup: func(t *testing.T, r *export.Root) {
			os.Symlink("elsewhere", r.Path(export.CurrentName))
		}, state: export.StateTorn, problem: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRoot(t)
			tt.setup(t, r)
			s, err := r.Status()
			if err != nil {
				t.Fatal(err)
			}
			if s.State != tt.state || s.Snapshot != tt.snapshot || s.Begin != tt.begin || s.End != tt.end {
				t.Fatalf("Status = state %q snapshot %d begin %d end %d; want %q %d %d %d",
					s.State, s.Snapshot, s.Begin, s.End, tt.state, tt.snapshot, tt.begin, tt.end)
			}
			if (s.Problem != "") != tt.problem {
				t.Fatalf("Problem = %q, want problem: %v", s.Problem, tt.problem)
			}
			if s.Snapshots == nil || s.Root != r.Dir || s.Version != 1 {
				t.Fatalf("Status = %+v", s)
			}
		})
	}
}

func TestStatusErrors(t *testing.T) {
	if _, err := export.New(fsys.OS(), filepath.Join(t.TempDir(), "nope")).Status(); !errors.Is(err, export.ErrNotRoot) {
		t.Fatalf("Status of a missing dir = %v, want ErrNotRoot", err)
	}
	if _, err := export.New(fsys.OS(), t.TempDir()).Status(); !errors.Is(err, export.ErrNotRoot) {
		t.Fatalf("Status of a dir without snapshots/ = %v, want ErrNotRoot", err)
	}
	r := newRoot(t)
	os.WriteFile(filepath.Join(r.SeqDir(), seqfile.End), []byte("1x\n"), 0o644)
	if _, err := r.Status(); !errors.Is(err, seqfile.ErrCorrupt) {
		t.Fatalf("Status with a corrupt seq file = %v, want seqfile.ErrCorrupt", err)
	}
}

func TestCompareUpstream(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name    string
		state   string
		local   uint64
		up      uint64
		upTime  time.Time
		want    string
		lag     uint64
		lagSecs float64
	}{
		{name: "level", state: export.StateFresh, local: 5, up: 5, upTime: now.Add(-time.Hour), want: export.StateFresh},
		{name: "behind", state: export.StateFresh, local: 5, up: 7, upTime: now.Add(-90 * time.Second), want: export.StateStale, lag: 2, lagSecs: 90},
		{name: "behind, time unknown", state: export.StateFresh, local: 5, up: 6, want: export.StateStale, lag: 1},
		{name: "ahead of upstream", state: export.StateFresh, local: 7, up: 5, upTime: now.Add(-time.Hour), want: export.StateFresh},
		{name: "upstream clock ahead", state: export.StateFresh, local: 1, up: 2, upTime: now.Add(time.Hour), want: export.StateStale, lag: 1},
		{name: "updating stays updating", state: export.StateUpdating, local: 5, up: 7, upTime: now, want: export.StateUpdating, lag: 2},
		{name: "torn stays torn", state: export.StateTorn, local: 5, up: 7, upTime: now, want: export.StateTorn, lag: 2},
		{name: "empty stays empty", state: export.StateEmpty, local: 0, up: 3, upTime: now, want: export.StateEmpty, lag: 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := export.Status{State: tt.state, Snapshot: tt.local}
			s.CompareUpstream("up", tt.up, tt.upTime, now)
			if s.State != tt.want || s.Upstream != "up" {
				t.Fatalf("state %q upstream %q, want %q", s.State, s.Upstream, tt.want)
			}
			if s.UpstreamSnapshot == nil || *s.UpstreamSnapshot != tt.up {
				t.Fatalf("UpstreamSnapshot = %v, want %d", s.UpstreamSnapshot, tt.up)
			}
			if s.LagSnapshots == nil || *s.LagSnapshots != tt.lag {
				t.Fatalf("LagSnapshots = %v, want %d", s.LagSnapshots, tt.lag)
			}
			if s.LagSeconds == nil || *s.LagSeconds != tt.lagSecs {
				t.Fatalf("LagSeconds = %v, want %v", s.LagSeconds, tt.lagSecs)
			}
		})
	}
}

func TestStatusJSON(t *testing.T) {
	r := newRoot(t)
	addSnapshot(t, r, 1, time.Time{})
	addSnapshot(t, r, 2, time.Time{})
	flip(t, r, 2)
	setSeq(t, r, 2, 2)
	s, err := r.Status()
	if err != nil {
		t.Fatal(err)
	}
	keys := func(s export.Status) map[string]any {
		b, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	m := keys(s)
	for _, k := range []string{"snapshot", "begin", "end", "state", "snapshots", "root", "version"} {
		if _, ok := m[k]; !ok {
			t.Errorf("status JSON lacks %q: %v", k, m)
		}
	}
	for _, k := range []string{"upstream_snapshot", "lag_snapshots"} {
		if _, ok := m[k]; ok {
			t.Errorf("status JSON has %q without an upstream", k)
		}
	}
	if m["snapshot"] != 2.0 || m["state"] != export.StateFresh || m["begin"] != 2.0 || m["end"] != 2.0 {
		t.Errorf("status JSON values: %v", m)
	}
	s.CompareUpstream("/up", 5, time.Time{}, time.Now())
	m = keys(s)
	if m["upstream_snapshot"] != 5.0 || m["lag_snapshots"] != 3.0 || m["state"] != export.StateStale {
		t.Errorf("status JSON with upstream: %v", m)
	}
	// WriteStatus writes the same JSON durably to ROOT/status.json.
	if err := r.WriteStatus(s); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(r.Path(export.StatusName))
	if err != nil {
		t.Fatal(err)
	}
	var back export.Status
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back.State != export.StateStale || back.Snapshot != 2 || *back.LagSnapshots != 3 || !slices.Equal(back.Snapshots, []uint64{1, 2}) {
		t.Fatalf("status.json = %s", b)
	}
}

func TestExists(t *testing.T) {
	r := newRoot(t)
	if err := r.Exists(); err != nil {
		t.Fatalf("Exists on an initialised root: %v", err)
	}
	if err := r.Init(); err != nil {
		t.Fatalf("Init is not idempotent: %v", err)
	}
	f := filepath.Join(t.TempDir(), "file")
	os.WriteFile(f, nil, 0o644)
	for _, dir := range []string{filepath.Join(t.TempDir(), "missing"), t.TempDir(), f} {
		if err := export.New(fsys.OS(), dir).Exists(); !errors.Is(err, export.ErrNotRoot) {
			t.Errorf("Exists(%s) = %v, want ErrNotRoot", dir, err)
		}
	}
}
