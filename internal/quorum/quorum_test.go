package quorum_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/seqmirror/seqmirror/internal/export"
	"github.com/seqmirror/seqmirror/internal/filter"
	"github.com/seqmirror/seqmirror/internal/fsys"
	"github.com/seqmirror/seqmirror/internal/mirror"
	"github.com/seqmirror/seqmirror/internal/quorum"
	"github.com/seqmirror/seqmirror/internal/transport"
	"github.com/seqmirror/seqmirror/seqfile"
	"github.com/seqmirror/seqmirror/snapshot"
	"github.com/seqmirror/seqmirror/testutil"
)

// master is a source tree and the export root it is published into; its
// mirrors are roots below dir, synced from it by the real mirror code.
type master struct {
	dir, src string
	root     *export.Root
}

func newMaster(tb testing.TB, name string, files map[string]string) *master {
	tb.Helper()
	d := tb.TempDir()
	m := &master{dir: d, src: filepath.Join(d, "src"), root: export.New(fsys.OS(), filepath.Join(d, name))}
	testutil.Must(tb, os.MkdirAll(m.src, 0o755))
	testutil.WriteTree(tb, m.src, files)
	return m
}

// publish publishes the source and returns the snapshot and the identity
// of its manifest.
func (m *master) publish(tb testing.TB) (uint64, string) {
	tb.Helper()
	opt := snapshot.DefaultOptions()
	opt.Force, opt.Keep, opt.Workers = true, 10, 2
	res, err := snapshot.Publish(context.Background(), m.root, m.src, opt)
	testutil.Must(tb, err)
	id, err := export.ManifestID(m.root.FS, m.root.ManifestPath(res.Snapshot))
	testutil.Must(tb, err)
	return res.Snapshot, id
}

// mirrors returns n mirror root paths (none exists yet).
func mirrors(tb testing.TB, n int) []string {
	tb.Helper()
	d := tb.TempDir()
	out := make([]string, n)
	for i := range out {
		out[i] = filepath.Join(d, "mirror"+string(rune('a'+i)))
	}
	return out
}

// syncMirror runs mirror.Sync of dir from the root at up.
func syncMirror(tb testing.TB, up, dir string) {
	tb.Helper()
	testutil.Must(tb, syncErr(up, dir))
}

// syncErr is syncMirror for a goroutine: it returns the error. rules, if
// any, make dir a partial mirror.
func syncErr(up, dir string, rules ...string) error {
	u, err := transport.NewLocal(fsys.OS(), up)
	if err != nil {
		return err
	}
	defer u.Close()
	opt := mirror.DefaultOptions()
	opt.Backoff, opt.Workers, opt.Keep = time.Millisecond, 2, 10
	if opt.Filter, err = filter.Parse(rules); err != nil {
		return err
	}
	_, err = mirror.Sync(context.Background(), export.New(fsys.OS(), dir), u, opt)
	return err
}

func spec(tb testing.TB, k int, addrs []string, n uint64, id string, timeout time.Duration) quorum.Spec {
	return quorum.Spec{K: k, Mirrors: addrs, Target: n, ManifestID: id, Timeout: timeout,
		Interval: 20 * time.Millisecond, MaxInterval: 200 * time.Millisecond, RequestTimeout: 5 * time.Second,
		FS: fsys.OS(), ScratchDir: tb.TempDir(),
		Open: func(addr string) (transport.Upstream, error) {
			return transport.Open(addr, fsys.OS(), transport.Options{Timeout: 5 * time.Second, ConTimeout: 5 * time.Second})
		}}
}

func addrs(ms []Mirror) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.Addr)
	}
	return out
}

type Mirror = quorum.Mirror

// TestReachedWhileMirrorsSync: 3 mirrors, K=2; two of them (one served by
// nginx, checked over HTTP) are synced by the real mirror code a while
// after the wait began; the third never is.
func TestReachedWhileMirrorsSync(t *testing.T) {
	m := newMaster(t, "master", map[string]string{"a.txt": "alpha", "d/b.txt": "beta"})
	n, id := m.publish(t)
	dirs := mirrors(t, 3)
	testutil.Must(t, os.MkdirAll(dirs[1], 0o755))
	web := testutil.StartNginx(t, testutil.NginxExportRoot(dirs[1]))
	list := []string{dirs[0], web.URL("/"), dirs[2]}
	done := make(chan error, 1)
	go func() {
		time.Sleep(300 * time.Millisecond)
		done <- errors.Join(syncErr(m.root.Dir, dirs[0]), syncErr(m.root.Dir, dirs[1]))
	}()
	res, err := quorum.Wait(context.Background(), spec(t, 2, list, n, id, 30*time.Second))
	testutil.Must(t, <-done)
	if err != nil {
		t.Fatalf("Wait: %v (%+v)", err, res)
	}
	if got := addrs(res.Counted); res.Got != 2 || len(got) != 2 || got[0] != list[0] || got[1] != list[1] {
		t.Errorf("counted %v (got %d), want %v", got, res.Got, list[:2])
	}
	if len(res.Behind) != 1 || res.Behind[0].Addr != list[2] || !strings.Contains(res.Behind[0].Why, "unreachable") {
		t.Errorf("behind %+v, want %s unreachable", res.Behind, list[2])
	}
	if res.Waited < 300*time.Millisecond || res.Counted[0].After < 300*time.Millisecond {
		t.Errorf("waited %v, first counted after %v: before the mirrors were synced", res.Waited, res.Counted[0].After)
	}
}

// TestNotCounted: mirrors that must not count, each alone with K=1.
func TestNotCounted(t *testing.T) {
	files := map[string]string{"a.txt": "alpha"}
	tests := []struct {
		name  string
		setup func(t *testing.T, m *master, dir string)
		why   string
	}{
		{name: "never synced", setup: func(*testing.T, *master, string) {}, why: "unreachable"},
		{name: "behind", setup: func(t *testing.T, m *master, dir string) {
			syncMirror(t, m.root.Dir, dir) // then the master publishes again (below)
		}, why: "serves snapshot 1"},
		{name: "same number, another master's manifest", setup: func(t *testing.T, _ *master, dir string) {
			other := newMaster(t, "other", map[string]string{"a.txt": "another alpha"})
			other.publish(t)
			other.publish(t)
			syncMirror(t, other.root.Dir, dir)
		}, why: "another manifest"},
		{name: "partial mirror", setup: func(t *testing.T, m *master, dir string) {
			testutil.WriteTree(t, m.src, map[string]string{"b.txt": "bravo"})
			m.publish(t) // snapshot 2, of which the mirror keeps a subset
			testutil.Must(t, syncErr(m.root.Dir, dir, "- b.txt"))
		}, why: "is a partial mirror"},
		{name: "mid-update (begin > end)", setup: func(t *testing.T, m *master, dir string) {
			m.publish(t) // snapshot 2 first, so the mirror has it
			syncMirror(t, m.root.Dir, dir)
			r := export.New(fsys.OS(), dir)
			_, err := seqfile.StartUpdate(r.FS, r.SeqDir())
			testutil.Must(t, err)
		}, why: "is updating"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newMaster(t, "master", files)
			m.publish(t)
			dir := mirrors(t, 1)[0]
			tt.setup(t, m, dir)
			n, id := uint64(2), ""
			if cur, err := m.root.Current(); err == nil && cur == 2 {
				id, err = export.ManifestID(m.root.FS, m.root.ManifestPath(2))
				testutil.Must(t, err)
			} else {
				n, id = m.publish(t)
			}
			res, err := quorum.Wait(context.Background(), spec(t, 1, []string{dir}, n, id, 400*time.Millisecond))
			if !errors.Is(err, quorum.ErrNotReached) {
				t.Fatalf("Wait: %v, want ErrNotReached", err)
			}
			if res.Got != 0 || len(res.Behind) != 1 || !strings.Contains(res.Behind[0].Why, tt.why) {
				t.Errorf("got %d, behind %+v, want why %q", res.Got, res.Behind, tt.why)
			}
		})
	}
}

// TestTimeoutTwoOfFive: 2 of 5 mirrors synced (one checked over an rsync
// daemon), K=3: not reached, the three others listed as behind, each with
// why.
func TestTimeoutTwoOfFive(t *testing.T) {
	m := newMaster(t, "master", map[string]string{"a.txt": "alpha"})
	n, id := m.publish(t)
	dirs := mirrors(t, 5)
	syncMirror(t, m.root.Dir, dirs[1])
	syncMirror(t, m.root.Dir, dirs[3])
	dirs[3] = testutil.StartRsyncdServer(t, map[string]string{"m": dirs[3]}).URL("m")
	start := time.Now()
	res, err := quorum.Wait(context.Background(), spec(t, 3, dirs, n, id, 500*time.Millisecond))
	if !errors.Is(err, quorum.ErrNotReached) {
		t.Fatalf("Wait: %v, want ErrNotReached", err)
	}
	if el := time.Since(start); el < 500*time.Millisecond || el > 5*time.Second {
		t.Errorf("Wait took %v, want about its 500ms timeout", el)
	}
	if got := addrs(res.Counted); res.Got != 2 || len(got) != 2 || got[0] != dirs[1] || got[1] != dirs[3] {
		t.Errorf("counted %v", got)
	}
	if got := addrs(res.Behind); len(got) != 3 || got[0] != dirs[0] || got[1] != dirs[2] || got[2] != dirs[4] {
		t.Errorf("behind %v", got)
	}
	if res.Wanted != 3 || res.Deadline.Sub(res.Started) != 500*time.Millisecond {
		t.Errorf("wanted %d, deadline %v after start", res.Wanted, res.Deadline.Sub(res.Started))
	}
}

func TestInterruptedIsNotReached(t *testing.T) {
	m := newMaster(t, "master", map[string]string{"a.txt": "alpha"})
	n, id := m.publish(t)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err := quorum.Wait(ctx, spec(t, 1, mirrors(t, 2), n, id, time.Minute))
	if !errors.Is(err, quorum.ErrNotReached) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait: %v, want ErrNotReached and the context's cause", err)
	}
}

func TestBadSpec(t *testing.T) {
	tests := []struct {
		name string
		k    int
	}{
		{name: "K 0", k: 0},
		{name: "K above the mirrors", k: 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := quorum.Wait(context.Background(), spec(t, tt.k, []string{"/a", "/b"}, 1, "end 1 x", time.Second))
			if !errors.Is(err, quorum.ErrSpec) {
				t.Fatalf("Wait: %v, want ErrSpec", err)
			}
		})
	}
}
