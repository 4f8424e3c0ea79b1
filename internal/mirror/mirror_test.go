package mirror_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/seqmirror/seqmirror/internal/export"
	"github.com/seqmirror/seqmirror/internal/fsys"
	"github.com/seqmirror/seqmirror/internal/mirror"
	"github.com/seqmirror/seqmirror/internal/transport"
	"github.com/seqmirror/seqmirror/internal/tree"
	"github.com/seqmirror/seqmirror/manifest"
	"github.com/seqmirror/seqmirror/seqfile"
	"github.com/seqmirror/seqmirror/snapshot"
	"github.com/seqmirror/seqmirror/testutil"
)

// world is a source, its publishing root and a mirror root.
type world struct {
	src string
	up  *export.Root
	mir *export.Root
}

func newWorld(tb testing.TB, files map[string]string) *world {
	tb.Helper()
	d := tb.TempDir()
	w := &world{
		src: filepath.Join(d, "src"),
		up:  export.New(fsys.OS(), filepath.Join(d, "up")),
		mir: export.New(fsys.OS(), filepath.Join(d, "mirror")),
	}
	testutil.Must(tb, os.MkdirAll(w.src, 0o755))
	testutil.WriteTree(tb, w.src, files)
	return w
}

func (w *world) publish(tb testing.TB) uint64 {
	tb.Helper()
	res, err := snapshot.Publish(context.Background(), w.up, w.src, snapshot.PublishOptions{Backoff: time.Millisecond, Workers: 2, Keep: 100, MaxDelete: 1})
	testutil.Must(tb, err)
	return res.Snapshot
}

func opts() mirror.Options {
	o := mirror.DefaultOptions()
	o.Backoff, o.Workers, o.Keep = time.Millisecond, 2, 100
	return o
}

func syncFrom(tb testing.TB, up, mir *export.Root, opt mirror.Options) (mirror.Result, error) {
	tb.Helper()
	u, err := transport.NewLocal(fsys.OS(), up.Dir)
	testutil.Must(tb, err)
	defer u.Close()
	return mirror.Sync(context.Background(), mir, u, opt)
}

func (w *world) sync(tb testing.TB, opt mirror.Options) (mirror.Result, error) {
	tb.Helper()
	return syncFrom(tb, w.up, w.mir, opt)
}

func current(tb testing.TB, r *export.Root) uint64 {
	tb.Helper()
	n, err := r.Current()
	testutil.Must(tb, err)
	return n
}

func counters(tb testing.TB, r *export.Root) seqfile.Pair {
	tb.Helper()
	p, err := seqfile.Counters(r.FS, r.SeqDir())
	testutil.Must(tb, err)
	return p
}

// requireMirrors checks that mir serves snapshot n identical to up's: same
// manifest bytes, same tree (walked), and it verifies.
func requireMirrors(tb testing.TB, up, mir *export.Root, n uint64) {
	tb.Helper()
	if got := current(tb, mir); got != n {
		tb.Fatalf("mirror serves %d, want %d", got, n)
	}
	a, err := os.ReadFile(up.ManifestPath(n))
	testutil.Must(tb, err)
	b, err := os.ReadFile(mir.ManifestPath(n))
	testutil.Must(tb, err)
	if !bytes.Equal(a, b) {
		tb.Fatalf("manifest of snapshot %d differs", n)
	}
	ctx := context.Background()
	wu, err := tree.Walk(ctx, fsys.OS(), up.SnapshotDir(n), nil)
	testutil.Must(tb, err)
	wm, err := tree.Walk(ctx, fsys.OS(), mir.SnapshotDir(n), nil)
	testutil.Must(tb, err)
	if !slices.Equal(wu, wm) {
		tb.Fatalf("snapshot %d trees differ:\n up %+v\nmir %+v", n, wu, wm)
	}
	m, err := mir.ReadManifest(n)
	testutil.Must(tb, err)
	probs, err := tree.Verify(ctx, fsys.OS(), mir.SnapshotDir(n), m, 2)
	if err != nil || len(probs) != 0 {
		tb.Fatalf("mirror snapshot %d does not verify: %v %v", n, probs, err)
	}
	if p := counters(tb, mir); !p.Idle() {
		tb.Fatalf("mirror counters %+v not idle", p)
	}
}

func baseFiles() map[string]string {
	return map[string]string{
		"README": "hello", "empty": "", "a/b/c.txt": "c", "a/b/d.txt": "d", "a/link": "->b/c.txt",
		"x/1": "1", "x/2": "2", "x/3": "3", "x/4": "4", "x/5": "5",
	}
}

func TestFirstSync(t *testing.T) {
	w := newWorld(t, baseFiles())
	testutil.GitRepo(t, filepath.Join(w.src, "repo"), 3)
	n := w.publish(t)
	res, err := w.sync(t, opts())
	testutil.Must(t, err)
	if !res.Changed || res.Snapshot != n || res.Previous != 0 || res.Linked != 0 || res.Fetched == 0 {
		t.Fatalf("first sync = %+v", res)
	}
	requireMirrors(t, w.up, w.mir, n)
	if p := counters(t, w.mir); p != (seqfile.Pair{Begin: 1, End: 1}) {
		t.Fatalf("mirror counters %+v, want 1/1", p)
	}
	testutil.GitFsck(t, filepath.Join(w.mir.SnapshotDir(n), "repo"))
	st, err := w.mir.Status()
	testutil.Must(t, err)
	if st.State != export.StateFresh || st.Snapshot != n {
		t.Fatalf("mirror status %+v", st)
	}
}

func TestIncrementalSync(t *testing.T) {
	w := newWorld(t, baseFiles())
	n1 := w.publish(t)
	_, err := w.sync(t, opts())
	testutil.Must(t, err)
	testutil.Touch(t, w.src, "a/b/c.txt", "changed")
	testutil.Touch(t, w.src, "new/file", "new")
	testutil.Must(t, os.Remove(filepath.Join(w.src, "x", "5")))
	n2 := w.publish(t)
	res, err := w.sync(t, opts())
	testutil.Must(t, err)
	if res.Snapshot != n2 || res.Previous != n1 || res.Fetched != 2 || res.Deleted != 1 {
		t.Fatalf("incremental sync = %+v, want 2 fetched, 1 deleted", res)
	}
	requireMirrors(t, w.up, w.mir, n2)
	m, err := w.mir.ReadManifest(n2)
	testutil.Must(t, err)
	linked := 0
	for _, e := range m.Entries {
		if e.Type != manifest.File {
			continue
		}
		old := filepath.Join(w.mir.SnapshotDir(n1), e.Path)
		if _, err := os.Lstat(old); err != nil {
			continue // new file
		}
		same := testutil.SameFile(t, old, filepath.Join(w.mir.SnapshotDir(n2), e.Path))
		if same == (e.Path == "a/b/c.txt") {
			t.Errorf("%s: linked to the previous mirror snapshot = %v", e.Path, same)
		}
		if same {
			linked++
		}
	}
	if linked != res.Linked || linked == 0 {
		t.Fatalf("%d files linked, result says %d", linked, res.Linked)
	}
	// The mirror never links into the upstream's tree.
	if testutil.SameFile(t, filepath.Join(w.up.SnapshotDir(n2), "README"), filepath.Join(w.mir.SnapshotDir(n2), "README")) {
		t.Fatal("mirror shares an inode with the upstream")
	}
}

func TestNoOpSyncWritesNothing(t *testing.T) {
	w := newWorld(t, baseFiles())
	n := w.publish(t)
	_, err := w.sync(t, opts())
	testutil.Must(t, err)
	watch := []string{
		filepath.Join(w.mir.SeqDir(), seqfile.Begin), filepath.Join(w.mir.SeqDir(), seqfile.End),
		w.mir.Path(export.StatusName), w.mir.ManifestPath(n), w.mir.Path(export.SnapshotsName), w.mir.Dir, w.mir.SeqDir(),
	}
	stat := func() []time.Time {
		var out []time.Time
		for _, p := range watch {
			fi, err := os.Lstat(p)
			testutil.Must(t, err)
			out = append(out, fi.ModTime())
		}
		fi, err := os.Lstat(w.mir.Path(export.CurrentName))
		testutil.Must(t, err)
		return append(out, fi.ModTime())
	}
	before := stat()
	time.Sleep(10 * time.Millisecond)
	res, err := w.sync(t, opts())
	testutil.Must(t, err)
	if res.Changed || res.Snapshot != n || res.Fetched != 0 {
		t.Fatalf("no-op sync = %+v", res)
	}
	if after := stat(); !slices.Equal(before, after) {
		t.Fatalf("no-op sync wrote: mtimes %v -> %v (%q)", before, after, watch)
	}
}

func TestRollback(t *testing.T) {
	w := newWorld(t, baseFiles())
	n1 := w.publish(t)
	testutil.Touch(t, w.src, "README", "v2")
	n2 := w.publish(t)
	_, err := w.sync(t, opts())
	testutil.Must(t, err)
	// The upstream's admin points current back at the old snapshot,
	// bumping its counters (a flip that leaves seq/end alone looks like an
	// upstream that is behind: TestBehindUpstream).
	rollBack(t, w.up, n1)
	_, err = w.sync(t, opts())
	if !errors.Is(err, mirror.ErrRollback) {
		t.Fatalf("sync to an older snapshot = %v, want ErrRollback", err)
	}
	if got := current(t, w.mir); got != n2 {
		t.Fatalf("mirror moved to %d after a refused rollback", got)
	}
	if p := counters(t, w.mir); !p.Idle() {
		t.Fatalf("refused rollback left counters %+v", p)
	}
	opt := opts()
	opt.AllowRollback = true
	res, err := w.sync(t, opt)
	testutil.Must(t, err)
	if res.Snapshot != n1 || !res.Changed {
		t.Fatalf("allowed rollback = %+v", res)
	}
	requireMirrors(t, w.up, w.mir, n1)
	if b, _ := os.ReadFile(filepath.Join(w.mir.Path(export.CurrentName), "README")); string(b) != "hello" {
		t.Fatalf("mirror README after rollback = %q", b)
	}
}

func TestMaxDelete(t *testing.T) {
	tests := []struct {
		name      string
		maxDelete float64
		force     bool
		wantErr   error
	}{
		{name: "default refuses", wantErr: mirror.ErrTooManyDeletes},
		{name: "strict refuses", maxDelete: 0.1, wantErr: mirror.ErrTooManyDeletes},
		{name: "loose accepts", maxDelete: 0.9},
		{name: "no limit", maxDelete: 1},
		{name: "force accepts", force: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t, baseFiles()) // 9 regular files
			n1 := w.publish(t)
			_, err := w.sync(t, opts())
			testutil.Must(t, err)
			for _, p := range []string{"x/1", "x/2", "x/3", "x/4", "x/5"} {
				testutil.Must(t, os.Remove(filepath.Join(w.src, p)))
			}
			n2 := w.publish(t) // deletes 5 of 9 files
			opt := opts()
			opt.MaxDelete, opt.Force = tt.maxDelete, tt.force
			_, err = w.sync(t, opt)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("sync = %v, want %v", err, tt.wantErr)
				}
				if !strings.Contains(err.Error(), "5 of 9") {
					t.Errorf("error %q does not say how many", err)
				}
				if got := current(t, w.mir); got != n1 {
					t.Fatalf("mirror serves %d after refusal, want %d", got, n1)
				}
				return
			}
			testutil.Must(t, err)
			requireMirrors(t, w.up, w.mir, n2)
		})
	}
}

func TestNoSnapshotUpstream(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, up *export.Root)
	}{
		{name: "initialised only", setup: func(t *testing.T, up *export.Root) { testutil.Must(t, up.Init()) }},
		{name: "update never finished", setup: func(t *testing.T, up *export.Root) {
			testutil.Must(t, up.Init())
			_, err := seqfile.StartUpdate(up.FS, up.SeqDir())
			testutil.Must(t, err)
		}},
		{name: "idle counters", setup: func(t *testing.T, up *export.Root) {
			testutil.Must(t, up.Init())
			b, err := seqfile.StartUpdate(up.FS, up.SeqDir())
			testutil.Must(t, err)
			testutil.Must(t, seqfile.FinishUpdate(up.FS, up.SeqDir(), b))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t, nil)
			tt.setup(t, w.up)
			_, err := w.sync(t, opts())
			if !errors.Is(err, mirror.ErrNoSnapshot) {
				t.Fatalf("sync from an upstream without a snapshot = %v, want ErrNoSnapshot", err)
			}
			if got := current(t, w.mir); got != 0 {
				t.Fatalf("mirror serves %d", got)
			}
		})
	}
}

func TestMissingUpstream(t *testing.T) {
	w := newWorld(t, nil)
	_, err := w.sync(t, opts())
	if !errors.Is(err, transport.ErrUnavailable) {
		t.Fatalf("sync from a missing upstream = %v, want ErrUnavailable", err)
	}
}

func TestHashMismatch(t *testing.T) {
	tests := []struct {
		name   string
		tamper string // content written over the upstream's copy of new/file
	}{
		{name: "same size", tamper: "NEW!"},
		{name: "shorter", tamper: "n"},
		{name: "longer", tamper: "new file, but longer than the manifest says"},
		{name: "empty", tamper: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t, baseFiles())
			n1 := w.publish(t)
			_, err := w.sync(t, opts())
			testutil.Must(t, err)
			testutil.Touch(t, w.src, "new/file", "new!")
			n2 := w.publish(t)
			p := filepath.Join(w.up.SnapshotDir(n2), "new", "file")
			fi, err := os.Stat(p)
			testutil.Must(t, err)
			testutil.Must(t, os.WriteFile(p, []byte(tt.tamper), 0o644))
			testutil.Must(t, os.Chtimes(p, fi.ModTime(), fi.ModTime()))

			_, err = w.sync(t, opts())
			if !errors.Is(err, tree.ErrHashMismatch) {
				t.Fatalf("sync of a tampered upstream = %v, want ErrHashMismatch", err)
			}
			if got := current(t, w.mir); got != n1 {
				t.Fatalf("mirror serves %d, want still %d", got, n1)
			}
			if _, err := os.Lstat(w.mir.SnapshotDir(n2)); err == nil {
				t.Fatalf("tampered snapshot %d moved into place", n2)
			}
			requireMirrorsServed(t, w.mir, n1)
			// The failed run is visible: begin > end until a run completes.
			if p := counters(t, w.mir); p.Idle() {
				t.Fatalf("counters %+v look idle after a failed update", p)
			}
			// Once the upstream is repaired, the next run completes.
			testutil.Must(t, os.WriteFile(p, []byte("new!"), 0o644))
			testutil.Must(t, os.Chtimes(p, fi.ModTime(), fi.ModTime()))
			_, err = w.sync(t, opts())
			testutil.Must(t, err)
			requireMirrors(t, w.up, w.mir, n2)
		})
	}
}

// requireMirrorsServed checks the mirror's served snapshot verifies.
func requireMirrorsServed(tb testing.TB, mir *export.Root, n uint64) {
	tb.Helper()
	m, err := mir.ReadManifest(n)
	testutil.Must(tb, err)
	probs, err := tree.Verify(context.Background(), fsys.OS(), mir.SnapshotDir(n), m, 2)
	if err != nil || len(probs) != 0 {
		tb.Fatalf("served snapshot %d: %v %v", n, probs, err)
	}
}

func TestCorruptUpstreamManifest(t *testing.T) {
	w := newWorld(t, baseFiles())
	n := w.publish(t)
	b, err := os.ReadFile(w.up.ManifestPath(n))
	testutil.Must(t, err)
	testutil.Must(t, os.WriteFile(w.up.ManifestPath(n), bytes.Replace(b, []byte("README"), []byte("../../x"), 1), 0o644))
	_, err = w.sync(t, opts())
	if !errors.Is(err, manifest.ErrUnsafePath) && !errors.Is(err, manifest.ErrCorrupt) {
		t.Fatalf("sync with a hostile manifest = %v, want ErrUnsafePath or ErrCorrupt", err)
	}
	if got := current(t, w.mir); got != 0 {
		t.Fatalf("mirror serves %d", got)
	}
	ents, _ := os.ReadDir(filepath.Dir(w.mir.Dir))
	for _, e := range ents {
		if e.Name() == "x" {
			t.Fatal("a file was written outside the mirror root")
		}
	}
}

// TestHostileManifest: a manifest with a valid checksum whose records would
// write outside the mirror is refused before anything is written, in either
// version of the format.
func TestHostileManifest(t *testing.T) {
	type hostile struct {
		name    string
		magic   string
		records string
	}
	var tests []hostile
	for _, v := range []struct{ magic, h string }{
		{manifest.Magic1, "0123456789abcdef"},
		{manifest.Magic, "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03"},
	} {
		h := v.h
		tests = append(tests,
			hostile{name: "dotdot", records: "f 0644 1 0 " + h + " ../../outside\n"},
			hostile{name: "absolute", records: "f 0644 1 0 " + h + " /tmp/outside\n"},
			hostile{name: "under symlink", records: "l 0777 3 0 - a ../\nf 0644 1 0 " + h + " a/outside\n"},
			hostile{name: "dir then symlink same name", records: "d 0755 0 0 - a\nl 0777 3 0 - a ../\nf 0644 1 0 " + h + " a/outside\n"},
		)
		for i := len(tests) - 4; i < len(tests); i++ {
			tests[i].magic = v.magic
			tests[i].name += " " + v.magic
		}
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t, baseFiles())
			n := w.publish(t)
			body := fmt.Sprintf("%s\nsnapshot %d\n%s", tt.magic, n, tt.records)
			body += fmt.Sprintf("end %d %016x\n", strings.Count(tt.records, "\n"), xxhash.Sum64String(body))
			testutil.Must(t, os.WriteFile(w.up.ManifestPath(n), []byte(body), 0o644))
			_, err := w.sync(t, opts())
			if !errors.Is(err, manifest.ErrUnsafePath) {
				t.Fatalf("sync = %v, want ErrUnsafePath", err)
			}
			for _, p := range []string{filepath.Join(filepath.Dir(w.mir.Dir), "outside"), filepath.Join(w.mir.Dir, ".work", "outside"), filepath.Join(w.mir.Dir, "outside")} {
				if _, err := os.Lstat(p); err == nil {
					t.Fatalf("%s was written", p)
				}
			}
			if got := current(t, w.mir); got != 0 {
				t.Fatalf("mirror serves %d", got)
			}
		})
	}
}

func TestTier2(t *testing.T) {
	w := newWorld(t, baseFiles())
	testutil.GitRepo(t, filepath.Join(w.src, "repo"), 3)
	tier2 := export.New(fsys.OS(), filepath.Join(t.TempDir(), "tier2"))
	n1 := w.publish(t)
	_, err := w.sync(t, opts())
	testutil.Must(t, err)
	res, err := syncFrom(t, w.mir, tier2, opts())
	testutil.Must(t, err)
	if res.Snapshot != n1 {
		t.Fatalf("tier 2 sync = %+v", res)
	}
	requireMirrors(t, w.up, tier2, n1)
	testutil.GitFsck(t, filepath.Join(tier2.SnapshotDir(n1), "repo"))

	testutil.Touch(t, w.src, "a/b/d.txt", "dd")
	n2 := w.publish(t)
	// Tier 2 polls before tier 1 has the new snapshot: nothing to do.
	if res, err := syncFrom(t, w.mir, tier2, opts()); err != nil || res.Changed {
		t.Fatalf("tier 2 sync before tier 1 = %+v, %v", res, err)
	}
	_, err = w.sync(t, opts())
	testutil.Must(t, err)
	res, err = syncFrom(t, w.mir, tier2, opts())
	testutil.Must(t, err)
	if res.Snapshot != n2 || res.Fetched != 1 {
		t.Fatalf("incremental tier 2 sync = %+v, want 1 fetched", res)
	}
	requireMirrors(t, w.up, tier2, n2)
	if !testutil.SameFile(t, filepath.Join(tier2.SnapshotDir(n1), "README"), filepath.Join(tier2.SnapshotDir(n2), "README")) {
		t.Fatal("tier 2 did not link an unchanged file")
	}
	testutil.GitFsck(t, filepath.Join(tier2.SnapshotDir(n2), "repo"))
}

func TestSyncLocked(t *testing.T) {
	w := newWorld(t, baseFiles())
	w.publish(t)
	testutil.Must(t, w.mir.Init())
	l, err := w.mir.Lock()
	testutil.Must(t, err)
	defer l.Unlock()
	if _, err := w.sync(t, opts()); !errors.Is(err, export.ErrLocked) {
		t.Fatalf("sync while locked = %v, want ErrLocked", err)
	}
}

func TestSyncPrunes(t *testing.T) {
	w := newWorld(t, baseFiles())
	opt := opts()
	opt.Keep = 2
	for i := range 4 {
		testutil.Touch(t, w.src, "README", strings.Repeat("v", i+1))
		w.publish(t)
		_, err := w.sync(t, opt)
		testutil.Must(t, err)
	}
	snaps, err := w.mir.Snapshots()
	testutil.Must(t, err)
	if !slices.Equal(snaps, []uint64{3, 4}) {
		t.Fatalf("mirror keeps %v, want [3 4]", snaps)
	}
	requireMirrors(t, w.up, w.mir, 4)
}

func TestSyncRebuildsDanglingCurrent(t *testing.T) {
	dir := t.TempDir()
	src, master, mir := filepath.Join(dir, "src"), filepath.Join(dir, "master"), filepath.Join(dir, "mirror")
	testutil.GenTree(t, src, 20, 3)
	if _, err := snapshot.Publish(context.Background(), export.New(fsys.OS(), master), src, snapshot.DefaultOptions()); err != nil {
		t.Fatal(err)
	}
	up, err := transport.NewLocal(fsys.OS(), master)
	if err != nil {
		t.Fatal(err)
	}
	root := export.New(fsys.OS(), mir)
	if _, err := mirror.Sync(context.Background(), root, up, mirror.DefaultOptions()); err != nil {
		t.Fatal(err)
	}
	// Someone deletes the served tree: a no-op poll must not call that level.
	if err := fsys.RemoveAll(fsys.OS(), root.SnapshotDir(1)); err != nil {
		t.Fatal(err)
	}
	res, err := mirror.Sync(context.Background(), root, up, mirror.DefaultOptions())
	if err != nil || !res.Changed || res.Snapshot != 1 {
		t.Fatalf("sync over a dangling current = %+v, %v; want a rebuild of snapshot 1", res, err)
	}
	m, err := root.ReadManifest(1)
	if err != nil {
		t.Fatal(err)
	}
	if probs, err := tree.Verify(context.Background(), fsys.OS(), root.SnapshotDir(1), m, 2); err != nil || len(probs) > 0 {
		t.Fatalf("rebuilt snapshot: %v %v", probs, err)
	}
}

// hookUp runs after once, right after its first Fetch.
type hookUp struct {
	*transport.Local
	after func()
	done  bool
}

func (h *hookUp) Fetch(ctx context.Context, n uint64, files []manifest.Entry, dir string) error {
	err := h.Local.Fetch(ctx, n, files, dir)
	if !h.done {
		h.done = true
		h.after()
	}
	return err
}

// The upstream publishes and prunes the snapshot being copied once its files
// are fetched: the re-read of begin sees the update, the snapshot is gone,
// so the copy is discarded before any flip to it, and the retry takes the
// newer snapshot (protocol section 4, mirror-sync steps 5 and 6).
func TestNoFlipToSnapshotPrunedDuringCopy(t *testing.T) {
	w := newWorld(t, baseFiles())
	w.publish(t)
	if _, err := w.sync(t, opts()); err != nil {
		t.Fatal(err)
	}
	testutil.WriteTree(t, w.src, map[string]string{"a.txt": "second"})
	if n := w.publish(t); n != 2 {
		t.Fatalf("published %d", n)
	}
	local, err := transport.NewLocal(fsys.OS(), w.up.Dir)
	testutil.Must(t, err)
	defer local.Close()
	up := &hookUp{Local: local, after: func() {
		testutil.WriteTree(t, w.src, map[string]string{"a.txt": "third"})
		if n := w.publish(t); n != 3 {
			t.Fatalf("published %d", n)
		}
		testutil.Must(t, os.Remove(w.up.ManifestPath(2)))
		testutil.Must(t, fsys.RemoveAll(fsys.OS(), w.up.SnapshotDir(2)))
	}}
	var flips []uint64
	opt := opts()
	opt.BeforeFlip = func(n uint64) { flips = append(flips, n) }
	res, err := mirror.Sync(context.Background(), w.mir, up, opt)
	if err != nil {
		t.Fatal(err)
	}
	if !up.done {
		t.Fatal("the upstream was never fetched from")
	}
	if len(flips) != 1 || flips[0] != 3 || res.Snapshot != 3 || res.Attempts != 2 {
		t.Fatalf("flipped to %v, result %+v; want one flip, to 3, on the second attempt", flips, res)
	}
	requireMirrors(t, w.up, w.mir, 3)
}

// recorded reads status.json as a monitor would.
func recorded(tb testing.TB, r *export.Root) export.Status {
	tb.Helper()
	b, err := os.ReadFile(r.Path(export.StatusName))
	testutil.Must(tb, err)
	var s export.Status
	testutil.Must(tb, json.Unmarshal(b, &s))
	return s
}

// A refused run leaves its reason in status.json (last_error); the next run
// that succeeds clears it, whether it changes the tree or is a no-op.
func TestLastErrorRecordedAndCleared(t *testing.T) {
	tests := []struct {
		name   string
		break_ func(t testing.TB, w *world) // makes the next sync fail
		want   error                        // how it fails
		mend   func(t testing.TB, w *world) // makes the next sync succeed
		noop   bool                         // the succeeding sync changes nothing
	}{
		{
			name:   "rollback refused, then a no-op poll",
			break_: func(t testing.TB, w *world) { rollBack(t, w.up, 2) },
			want:   mirror.ErrRollback,
			mend:   func(t testing.TB, w *world) { testutil.Must(t, w.up.Flip(3)) },
			noop:   true,
		},
		{
			name: "too many deletes, then a good snapshot",
			break_: func(t testing.TB, w *world) {
				for _, p := range []string{"x/1", "x/2", "x/3", "x/4", "x/5", "a/b/c.txt", "a/b/d.txt"} {
					testutil.Must(t, os.Remove(filepath.Join(w.src, p)))
				}
				w.publish(t)
			},
			want: mirror.ErrTooManyDeletes,
			mend: func(t testing.TB, w *world) {
				testutil.WriteTree(t, w.src, map[string]string{"x/1": "1", "x/2": "2", "x/3": "3", "x/4": "4", "x/5": "5", "a/b/c.txt": "c", "a/b/d.txt": "d"})
				w.publish(t)
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t, baseFiles())
			for i := 0; i < 3; i++ {
				testutil.Touch(t, w.src, "README", fmt.Sprint("v", i))
				w.publish(t)
			}
			_, err := w.sync(t, opts())
			testutil.Must(t, err)
			if s := recorded(t, w.mir); s.LastError != "" || s.LastErrorAt != nil {
				t.Fatalf("status.json after a good sync: %+v", s)
			}
			tt.break_(t, w)
			before := time.Now().Add(-time.Second)
			if _, err := w.sync(t, opts()); !errors.Is(err, tt.want) {
				t.Fatalf("sync = %v, want %v", err, tt.want)
			}
			s := recorded(t, w.mir)
			if s.LastErrorAt == nil || s.LastErrorAt.Before(before) || !strings.Contains(s.LastError, strings.SplitN(tt.want.Error(), ":", 2)[0]) {
				t.Fatalf("status.json after the failure: last_error %q at %v", s.LastError, s.LastErrorAt)
			}
			if live, err := w.mir.Status(); err != nil || live.LastError != s.LastError {
				t.Fatalf("live status does not show the failure: %+v, %v", live, err)
			}
			tt.mend(t, w)
			res, err := w.sync(t, opts())
			testutil.Must(t, err)
			if res.Changed == tt.noop {
				t.Fatalf("mending sync changed=%v, want %v", res.Changed, !tt.noop)
			}
			if s := recorded(t, w.mir); s.LastError != "" || s.LastErrorAt != nil {
				t.Fatalf("status.json after the mending sync still has last_error %q", s.LastError)
			}
		})
	}
}

// Options are taken as given: nonsense is refused before anything is
// written, and DefaultOptions are mirror-sync's documented defaults.
func TestOptionsRefused(t *testing.T) {
	def := mirror.DefaultOptions()
	if def.MaxDelete != 0.5 || def.Keep != 3 || def.Retries != 4 || def.Backoff != 2*time.Second || def.Rounds != 3 || def.Workers < 1 || def.Log == nil || def.Now == nil {
		t.Fatalf("DefaultOptions = %+v", def)
	}
	tests := []struct {
		name string
		set  func(o *mirror.Options)
	}{
		{name: "keep 0", set: func(o *mirror.Options) { o.Keep = 0 }},
		{name: "rounds 0", set: func(o *mirror.Options) { o.Rounds = 0 }},
		{name: "workers 0", set: func(o *mirror.Options) { o.Workers = 0 }},
		{name: "negative retries", set: func(o *mirror.Options) { o.Retries = -1 }},
		{name: "negative backoff", set: func(o *mirror.Options) { o.Backoff = -time.Second }},
		{name: "max delete over 1", set: func(o *mirror.Options) { o.MaxDelete = 1.5 }},
		{name: "max delete NaN", set: func(o *mirror.Options) { o.MaxDelete = math.NaN() }},
	}
	for _, tt := range tests {
		for _, classic := range []bool{false, true} {
			t.Run(fmt.Sprint(tt.name, " classic=", classic), func(t *testing.T) {
				w := newWorld(t, map[string]string{"a.txt": "a"})
				w.publish(t)
				opt := opts()
				tt.set(&opt)
				up, err := transport.NewLocal(fsys.OS(), w.up.Dir)
				testutil.Must(t, err)
				defer up.Close()
				sync := mirror.Sync
				if classic {
					sync = mirror.SyncClassic
				}
				if _, err := sync(context.Background(), w.mir, up, opt); !errors.Is(err, mirror.ErrOptions) {
					t.Fatalf("err = %v, want ErrOptions", err)
				}
				if _, err := os.Stat(w.mir.Dir); !errors.Is(err, fs.ErrNotExist) {
					t.Fatalf("refused options wrote %s (%v)", w.mir.Dir, err)
				}
			})
		}
	}
}

// MaxDelete 0 is taken literally: any delete is refused (unless Force).
func TestMaxDeleteZero(t *testing.T) {
	w := newWorld(t, map[string]string{"a.txt": "a", "b.txt": "b"})
	w.publish(t)
	_, err := w.sync(t, opts())
	testutil.Must(t, err)
	testutil.Must(t, os.Remove(filepath.Join(w.src, "b.txt")))
	w.publish(t)
	opt := opts()
	opt.MaxDelete = 0
	if _, err := w.sync(t, opt); !errors.Is(err, mirror.ErrTooManyDeletes) {
		t.Fatalf("err = %v, want ErrTooManyDeletes", err)
	}
	opt.Force = true
	if res, err := w.sync(t, opt); err != nil || res.Snapshot != 2 {
		t.Fatalf("forced: %+v %v", res, err)
	}
}
