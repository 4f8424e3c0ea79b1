package snapshot_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/seqmirror/seqmirror/internal/export"
	"github.com/seqmirror/seqmirror/internal/fsys"
	"github.com/seqmirror/seqmirror/internal/tree"
	"github.com/seqmirror/seqmirror/manifest"
	"github.com/seqmirror/seqmirror/seqfile"
	"github.com/seqmirror/seqmirror/snapshot"
	"github.com/seqmirror/seqmirror/testutil"
)

// richTree writes a source with every kind of entry publish supports and
// returns its directory.
func richTree(tb testing.TB) string {
	tb.Helper()
	src := filepath.Join(tb.TempDir(), "src")
	testutil.WriteTree(tb, src, map[string]string{
		"README":                  "hello",
		"empty":                   "",
		"bin/tool":                "#!/bin/sh\necho hi\n",
		"ro.txt":                  "read only",
		"dir/sub/deep.txt":        "deep",
		"dir/up":                  "->../README",
		"link":                    "->README",
		"dangling":                "->nowhere/x",
		"abs":                     "->/etc/passwd",
		"name with space %\t.txt": "odd name",
	})
	testutil.Must(tb, os.Mkdir(filepath.Join(src, "emptydir"), 0o755))
	testutil.Must(tb, os.Chmod(filepath.Join(src, "bin/tool"), 0o755))
	testutil.Must(tb, os.Chmod(filepath.Join(src, "ro.txt"), 0o444))
	testutil.Must(tb, os.Chmod(filepath.Join(src, "dir/sub"), 0o750))
	testutil.GitRepo(tb, filepath.Join(src, "repo"), 4)
	// Distinct, old mtimes so that the mtime comparison means something.
	old := time.Date(2020, 1, 2, 3, 4, 5, 6789, time.UTC)
	testutil.Must(tb, os.Chtimes(filepath.Join(src, "README"), old, old))
	testutil.Must(tb, os.Chtimes(filepath.Join(src, "dir"), old, old))
	return src
}

func newRoot(tb testing.TB) *export.Root {
	tb.Helper()
	return export.New(fsys.OS(), filepath.Join(tb.TempDir(), "root"))
}

func fastOpts() snapshot.PublishOptions {
	opt := snapshot.DefaultOptions()
	opt.Backoff, opt.Workers, opt.Keep = time.Millisecond, 2, 100
	return opt
}

func publish(tb testing.TB, r *export.Root, src string, opt snapshot.PublishOptions) snapshot.PublishResult {
	tb.Helper()
	res, err := snapshot.Publish(context.Background(), r, src, opt)
	if err != nil {
		tb.Fatalf("Publish: %v", err)
	}
	return res
}

func walk(tb testing.TB, dir string) []manifest.Entry {
	tb.Helper()
	es, err := tree.Walk(context.Background(), fsys.OS(), dir, nil)
	if err != nil {
		tb.Fatalf("Walk %s: %v", dir, err)
	}
	return es
}

// requireSameTree checks that two trees hold the same paths with the same
// type, mode, size, mtime, symlink target and file content.
func requireSameTree(tb testing.TB, want, got string, skip func(string) bool) {
	tb.Helper()
	w, g := walk(tb, want), walk(tb, got)
	if skip != nil {
		w = slices.DeleteFunc(w, func(e manifest.Entry) bool { return skip(e.Path) })
	}
	if len(w) != len(g) {
		tb.Fatalf("%s has %d entries, %s has %d", want, len(w), got, len(g))
	}
	for i := range w {
		if w[i] != g[i] {
			tb.Fatalf("entry %d differs:\n want %+v\n  got %+v", i, w[i], g[i])
		}
		if w[i].Type == manifest.File {
			a, err1 := os.ReadFile(filepath.Join(want, w[i].Path))
			b, err2 := os.ReadFile(filepath.Join(got, g[i].Path))
			if err1 != nil || err2 != nil || !bytes.Equal(a, b) {
				tb.Fatalf("%s: content differs (%v, %v)", w[i].Path, err1, err2)
			}
		}
	}
}

func counters(tb testing.TB, r *export.Root) seqfile.Pair {
	tb.Helper()
	p, err := seqfile.Counters(r.FS, r.SeqDir())
	testutil.Must(tb, err)
	return p
}

func mtimes(tb testing.TB, paths ...string) []time.Time {
	tb.Helper()
	var out []time.Time
	for _, p := range paths {
		fi, err := os.Stat(p)
		testutil.Must(tb, err)
		out = append(out, fi.ModTime())
	}
	return out
}

func readManifest(tb testing.TB, r *export.Root, n uint64) *manifest.Manifest {
	tb.Helper()
	m, err := r.ReadManifest(n)
	testutil.Must(tb, err)
	return m
}

func TestPublishFirst(t *testing.T) {
	src := richTree(t)
	r := newRoot(t)
	res := publish(t, r, src, fastOpts())
	if !res.Published || res.Snapshot != 1 {
		t.Fatalf("first publish = %+v, want snapshot 1 published", res)
	}
	if n, err := r.Current(); err != nil || n != 1 {
		t.Fatalf("Current = %d, %v", n, err)
	}
	if p := counters(t, r); p != (seqfile.Pair{Begin: 1, End: 1}) {
		t.Fatalf("counters = %+v, want 1/1", p)
	}
	snap := r.SnapshotDir(1)
	requireSameTree(t, src, snap, nil)
	// The manifest lists exactly the tree, with the content hash of each file.
	m := readManifest(t, r, 1)
	srcEntries := walk(t, src)
	if len(m.Entries) != len(srcEntries) {
		t.Fatalf("manifest has %d records, source %d entries", len(m.Entries), len(srcEntries))
	}
	files := 0
	for i, e := range m.Entries {
		want := srcEntries[i]
		if e.Type == manifest.File {
			files++
			data, err := os.ReadFile(filepath.Join(src, e.Path))
			testutil.Must(t, err)
			want.SetSum(testutil.SumOf(string(data), manifest.Version2))
			if testutil.SameFile(t, filepath.Join(src, e.Path), filepath.Join(snap, e.Path)) {
				t.Fatalf("%s: snapshot shares the source's inode; source edits would change it", e.Path)
			}
		}
		if e != want {
			t.Fatalf("record %d = %+v, want %+v", i, e, want)
		}
	}
	if res.Copied != files || res.Linked != 0 {
		t.Fatalf("copied %d linked %d, want %d and 0", res.Copied, res.Linked, files)
	}
	probs, err := tree.Verify(context.Background(), r.FS, snap, m, 2)
	if err != nil || len(probs) != 0 {
		t.Fatalf("Verify = %v, %v", probs, err)
	}
	testutil.GitFsck(t, filepath.Join(snap, "repo"))
	// status.json describes the new state; no work is left behind.
	st, err := os.ReadFile(r.Path(export.StatusName))
	if err != nil || !strings.Contains(string(st), `"state": "fresh"`) {
		t.Fatalf("status.json = %s, %v", st, err)
	}
	if ents, _ := os.ReadDir(r.WorkDir()); len(ents) != 0 {
		t.Fatalf(".work holds %v", ents)
	}
}

func TestPublishUnchanged(t *testing.T) {
	src := richTree(t)
	r := newRoot(t)
	publish(t, r, src, fastOpts())
	seqPaths := []string{filepath.Join(r.SeqDir(), seqfile.Begin), filepath.Join(r.SeqDir(), seqfile.End), r.Path(export.StatusName), r.ManifestPath(1)}
	before := mtimes(t, seqPaths...)
	time.Sleep(10 * time.Millisecond) // a rewrite would get a later mtime
	res := publish(t, r, src, fastOpts())
	if res.Published || res.Snapshot != 1 {
		t.Fatalf("unchanged publish = %+v, want not published, snapshot 1", res)
	}
	if snaps, _ := r.Snapshots(); !slices.Equal(snaps, []uint64{1}) {
		t.Fatalf("snapshots = %v", snaps)
	}
	if p := counters(t, r); p != (seqfile.Pair{Begin: 1, End: 1}) {
		t.Fatalf("counters = %+v, want 1/1", p)
	}
	if after := mtimes(t, seqPaths...); !slices.Equal(before, after) {
		t.Fatalf("no-op publish rewrote seq/status/manifest: %v -> %v", before, after)
	}
}

func TestPublishOneChange(t *testing.T) {
	src := richTree(t)
	r := newRoot(t)
	publish(t, r, src, fastOpts())
	const changed = "dir/sub/deep.txt"
	testutil.Touch(t, src, changed, "deeper")
	res := publish(t, r, src, fastOpts())
	if !res.Published || res.Snapshot != 2 || res.Copied != 1 {
		t.Fatalf("publish after one change = %+v, want snapshot 2 with 1 copy", res)
	}
	if p := counters(t, r); p != (seqfile.Pair{Begin: 2, End: 2}) {
		t.Fatalf("counters = %+v, want 2/2", p)
	}
	requireSameTree(t, src, r.SnapshotDir(2), nil)
	m := readManifest(t, r, 2)
	files := 0
	for _, e := range m.Entries {
		if e.Type != manifest.File {
			continue
		}
		files++
		linked := testutil.SameFile(t, filepath.Join(r.SnapshotDir(1), e.Path), filepath.Join(r.SnapshotDir(2), e.Path))
		if linked == (e.Path == changed) {
			t.Errorf("%s: hard-linked to snapshot 1 = %v", e.Path, linked)
		}
	}
	if res.Linked != files-1 {
		t.Fatalf("linked %d, want %d", res.Linked, files-1)
	}
	// The old snapshot is untouched.
	if b, _ := os.ReadFile(filepath.Join(r.SnapshotDir(1), changed)); string(b) != "deep" {
		t.Fatalf("snapshot 1 changed: %q", b)
	}
	if probs, err := tree.Verify(context.Background(), r.FS, r.SnapshotDir(1), readManifest(t, r, 1), 2); err != nil || len(probs) != 0 {
		t.Fatalf("Verify snapshot 1 = %v, %v", probs, err)
	}
}

func TestPublishDetectsMetadataChanges(t *testing.T) {
	tests := []struct {
		name   string
		change func(t *testing.T, src string)
	}{
		{name: "chmod", change: func(t *testing.T, src string) { testutil.Must(t, os.Chmod(filepath.Join(src, "README"), 0o600)) }},
		{name: "mtime", change: func(t *testing.T, src string) {
			tm := time.Date(2021, 1, 1, 0, 0, 0, 1, time.UTC)
			testutil.Must(t, os.Chtimes(filepath.Join(src, "README"), tm, tm))
		}},
		{name: "retarget symlink", change: func(t *testing.T, src string) {
			testutil.Must(t, os.Remove(filepath.Join(src, "link")))
			testutil.Must(t, os.Symlink("empty", filepath.Join(src, "link")))
		}},
		{name: "remove file", change: func(t *testing.T, src string) { testutil.Must(t, os.Remove(filepath.Join(src, "empty"))) }},
		{name: "add empty dir", change: func(t *testing.T, src string) { testutil.Must(t, os.Mkdir(filepath.Join(src, "dir", "new"), 0o755)) }},
		{name: "file becomes dir", change: func(t *testing.T, src string) {
			testutil.Must(t, os.Remove(filepath.Join(src, "empty")))
			testutil.Must(t, os.Mkdir(filepath.Join(src, "empty"), 0o755))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := richTree(t)
			r := newRoot(t)
			publish(t, r, src, fastOpts())
			tt.change(t, src)
			res := publish(t, r, src, fastOpts())
			if !res.Published || res.Snapshot != 2 {
				t.Fatalf("publish after %s = %+v, want snapshot 2", tt.name, res)
			}
			requireSameTree(t, src, r.SnapshotDir(2), nil)
		})
	}
}

// TestPublishForce: the quick check misses a same-size, same-mtime edit;
// --force republishes, re-hashing, and copies exactly that file.
func TestPublishForce(t *testing.T) {
	src := richTree(t)
	r := newRoot(t)
	publish(t, r, src, fastOpts())
	p := filepath.Join(src, "README")
	fi, err := os.Stat(p)
	testutil.Must(t, err)
	testutil.Must(t, os.WriteFile(p, []byte("HELLO"), 0o644))
	testutil.Must(t, os.Chtimes(p, fi.ModTime(), fi.ModTime()))

	if res := publish(t, r, src, fastOpts()); res.Published {
		t.Fatalf("quick check saw a same-size same-mtime edit: %+v", res)
	}
	opt := fastOpts()
	opt.Force = true
	res := publish(t, r, src, opt)
	if !res.Published || res.Snapshot != 2 || res.Copied != 1 {
		t.Fatalf("forced publish = %+v, want snapshot 2 with 1 copy", res)
	}
	if b, _ := os.ReadFile(filepath.Join(r.SnapshotDir(2), "README")); string(b) != "HELLO" {
		t.Fatalf("snapshot 2 README = %q", b)
	}
	if testutil.SameFile(t, filepath.Join(r.SnapshotDir(1), "README"), filepath.Join(r.SnapshotDir(2), "README")) {
		t.Fatal("edited file hard-linked from the old snapshot")
	}
	if !testutil.SameFile(t, filepath.Join(r.SnapshotDir(1), "dir/sub/deep.txt"), filepath.Join(r.SnapshotDir(2), "dir/sub/deep.txt")) {
		t.Fatal("unchanged file not hard-linked under --force")
	}
	m := readManifest(t, r, 2)
	i := slices.IndexFunc(m.Entries, func(e manifest.Entry) bool { return e.Path == "README" })
	if m.Entries[i].Sum() != testutil.SumOf("HELLO", manifest.Version2) {
		t.Fatalf("manifest digest %s is not the new content's", m.Entries[i].Digest)
	}
	// Force with nothing changed at all still makes a new snapshot.
	res = publish(t, r, src, opt)
	if !res.Published || res.Snapshot != 3 || res.Copied != 0 {
		t.Fatalf("forced no-change publish = %+v, want snapshot 3, nothing copied", res)
	}
	requireSameTree(t, src, r.SnapshotDir(3), nil)
}

func TestPublishUnsupportedType(t *testing.T) {
	tests := []struct {
		name string
		make func(t *testing.T, p string)
	}{
		{name: "fifo", make: func(t *testing.T, p string) { testutil.Must(t, syscall.Mkfifo(p, 0o644)) }},
		{name: "socket", make: func(t *testing.T, p string) {
			l, err := net.Listen("unix", p)
			testutil.Must(t, err)
			t.Cleanup(func() { l.Close() })
		}},
	}
	for _, tt := range tests {
		for _, existing := range []bool{false, true} {
			name := tt.name
			if existing {
				name += " after a snapshot"
			}
			t.Run(name, func(t *testing.T) {
				src := filepath.Join(t.TempDir(), "s")
				testutil.WriteTree(t, src, map[string]string{"a": "a", "d/b": "b"})
				r := newRoot(t)
				var want uint64
				if existing {
					want = publish(t, r, src, fastOpts()).Snapshot
				}
				before := counters(t, r)
				tt.make(t, filepath.Join(src, "d", "special"))
				_, err := snapshot.Publish(context.Background(), r, src, fastOpts())
				if !errors.Is(err, tree.ErrUnsupportedType) {
					t.Fatalf("Publish = %v, want ErrUnsupportedType", err)
				}
				if !strings.Contains(err.Error(), "special") {
					t.Errorf("error %q does not name the file", err)
				}
				if n, _ := r.Current(); n != want {
					t.Fatalf("current = %d, want %d", n, want)
				}
				if hi, _ := r.HighestNumber(); hi != want {
					t.Fatalf("a snapshot %d was made", hi)
				}
				if p := counters(t, r); p != before {
					t.Fatalf("counters moved %+v -> %+v", before, p)
				}
			})
		}
	}
}

// countingHandler counts log records at warn level.
type countingHandler struct {
	slog.Handler
	warns *int
}

func (h countingHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h countingHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level == slog.LevelWarn {
		*h.warns++
	}
	return nil
}

func TestPublishSourceBusy(t *testing.T) {
	src := filepath.Join(t.TempDir(), "s")
	testutil.WriteTree(t, src, map[string]string{"a": "a", "seq/begin": "2\n", "seq/end": "1\n"})
	r := newRoot(t)
	warns := 0
	opt := fastOpts()
	opt.Retries = 2
	opt.Log = slog.New(countingHandler{slog.DiscardHandler, &warns})
	start := time.Now()
	_, err := snapshot.Publish(context.Background(), r, src, opt)
	if !errors.Is(err, snapshot.ErrSourceChanging) {
		t.Fatalf("Publish = %v, want ErrSourceChanging", err)
	}
	if warns != 2 {
		t.Fatalf("%d retries logged, want 2", warns)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("took %v with a 1ms backoff", d)
	}
	if n, _ := r.Current(); n != 0 {
		t.Fatalf("published snapshot %d", n)
	}
	if snaps, _ := r.Snapshots(); len(snaps) != 0 {
		t.Fatalf("snapshots %v", snaps)
	}
}

// Options are taken as given: DefaultOptions holds the defaults, values
// that mean nothing are refused before anything is written, and 0 retries
// is one attempt.
func TestPublishOptions(t *testing.T) {
	if d := snapshot.DefaultOptions(); d.Keep != 3 || d.Retries != 3 || d.Backoff != time.Second ||
		d.Workers != tree.Workers() || d.MaxDelete != 0.5 || d.Log == nil || d.Now == nil {
		t.Fatalf("DefaultOptions() = %+v", d)
	}
	tests := []struct {
		name string
		set  func(o *snapshot.PublishOptions)
	}{
		{name: "keep 0", set: func(o *snapshot.PublishOptions) { o.Keep = 0 }},
		{name: "negative retries", set: func(o *snapshot.PublishOptions) { o.Retries = -1 }},
		{name: "negative backoff", set: func(o *snapshot.PublishOptions) { o.Backoff = -time.Second }},
		{name: "no workers", set: func(o *snapshot.PublishOptions) { o.Workers = 0 }},
		{name: "max delete above 1", set: func(o *snapshot.PublishOptions) { o.MaxDelete = 1.5 }},
		{name: "max delete NaN", set: func(o *snapshot.PublishOptions) { o.MaxDelete = math.NaN() }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := filepath.Join(t.TempDir(), "s")
			testutil.WriteTree(t, src, map[string]string{"a": "a"})
			r := newRoot(t)
			opt := fastOpts()
			tt.set(&opt)
			if _, err := snapshot.Publish(context.Background(), r, src, opt); !errors.Is(err, snapshot.ErrBadOptions) {
				t.Fatalf("Publish = %v, want ErrBadOptions", err)
			}
			if _, err := os.Lstat(r.Dir); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("refused options wrote the root: %v", err)
			}
		})
	}
	t.Run("no retries", func(t *testing.T) {
		src := filepath.Join(t.TempDir(), "s")
		testutil.WriteTree(t, src, map[string]string{"a": "a", "seq/begin": "2\n", "seq/end": "1\n"})
		warns := 0
		opt := fastOpts()
		opt.Retries = 0
		opt.Log = slog.New(countingHandler{slog.DiscardHandler, &warns})
		_, err := snapshot.Publish(context.Background(), newRoot(t), src, opt)
		if !errors.Is(err, snapshot.ErrSourceChanging) || !strings.Contains(err.Error(), "gave up after 1 attempts") || warns != 0 {
			t.Fatalf("Publish = %v after %d retries, want ErrSourceChanging after one attempt", err, warns)
		}
	})
}

func TestPublishSourceCounters(t *testing.T) {
	src := filepath.Join(t.TempDir(), "s")
	testutil.WriteTree(t, src, map[string]string{"a": "a", "seq/begin": "5\n", "seq/end": "5\n"})
	r := newRoot(t)
	if res := publish(t, r, src, fastOpts()); !res.Published {
		t.Fatalf("idle source not published: %+v", res)
	}
	if _, err := os.Lstat(filepath.Join(r.SnapshotDir(1), "seq")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("source seq/ copied into the snapshot: %v", err)
	}
	requireSameTree(t, src, r.SnapshotDir(1), func(p string) bool { return p == "seq" || strings.HasPrefix(p, "seq/") })
	// The writer bumps its counters without changing anything else: no new
	// snapshot.
	testutil.Touch(t, src, "seq/begin", "6\n")
	testutil.Touch(t, src, "seq/end", "6\n")
	if res := publish(t, r, src, fastOpts()); res.Published {
		t.Fatalf("counter-only change published: %+v", res)
	}
	// Corrupt counters are an error, not "no counters".
	testutil.Touch(t, src, "seq/end", "six\n")
	if _, err := snapshot.Publish(context.Background(), r, src, fastOpts()); !errors.Is(err, seqfile.ErrCorrupt) {
		t.Fatalf("Publish with corrupt source counters = %v, want seqfile.ErrCorrupt", err)
	}
}

func TestPublishMissingSource(t *testing.T) {
	r := newRoot(t)
	warns := 0
	opt := fastOpts()
	opt.Log = slog.New(countingHandler{slog.DiscardHandler, &warns})
	_, err := snapshot.Publish(context.Background(), r, filepath.Join(t.TempDir(), "nope"), opt)
	if !errors.Is(err, fs.ErrNotExist) || errors.Is(err, snapshot.ErrSourceChanging) || warns != 0 {
		t.Fatalf("Publish of a missing source = %v after %d retries; want an immediate not-exist error", err, warns)
	}
}

func TestPublishPrunes(t *testing.T) {
	src := filepath.Join(t.TempDir(), "s")
	testutil.WriteTree(t, src, map[string]string{"a": "0", "b": "b"})
	r := newRoot(t)
	opt := fastOpts()
	opt.Keep = 2
	var pruned []uint64
	for i := range 4 {
		testutil.Touch(t, src, "a", strings.Repeat("x", i+1))
		res := publish(t, r, src, opt)
		pruned = append(pruned, res.Pruned...)
	}
	if snaps, _ := r.Snapshots(); !slices.Equal(snaps, []uint64{3, 4}) || !slices.Equal(pruned, []uint64{1, 2}) {
		t.Fatalf("snapshots %v pruned %v; want [3 4] and [1 2]", snaps, pruned)
	}
	requireSameTree(t, src, r.SnapshotDir(4), nil)
}

func TestPublishLocked(t *testing.T) {
	src := filepath.Join(t.TempDir(), "s")
	testutil.WriteTree(t, src, map[string]string{"a": "a"})
	r := newRoot(t)
	testutil.Must(t, r.Init())
	l, err := r.Lock()
	testutil.Must(t, err)
	defer l.Unlock()
	if _, err := snapshot.Publish(context.Background(), r, src, fastOpts()); !errors.Is(err, export.ErrLocked) {
		t.Fatalf("Publish while locked = %v, want ErrLocked", err)
	}
}

func TestVerify(t *testing.T) {
	tests := []struct {
		name   string
		tamper func(t *testing.T, snap string)
		path   string
		reason string // regexp
		exact  bool   // the only problem
	}{
		{name: "same-size edit", tamper: func(t *testing.T, snap string) {
			p := filepath.Join(snap, "README")
			fi, _ := os.Stat(p)
			testutil.Must(t, os.WriteFile(p, []byte("jello"), 0o644))
			testutil.Must(t, os.Chtimes(p, fi.ModTime(), fi.ModTime()))
		}, path: "README", reason: `^content hash sha256:[0-9a-f]{64}, manifest says sha256:[0-9a-f]{64}$`, exact: true},
		{name: "append", tamper: func(t *testing.T, snap string) {
			testutil.Must(t, os.WriteFile(filepath.Join(snap, "dir/sub/deep.txt"), []byte("deeper"), 0o644))
		}, path: "dir/sub/deep.txt", reason: `^size 6, manifest says 4$`, exact: true},
		{name: "touch", tamper: func(t *testing.T, snap string) {
			tm := time.Unix(1, 0)
			testutil.Must(t, os.Chtimes(filepath.Join(snap, "README"), tm, tm))
		}, path: "README", reason: `^mtime 1000000000, manifest says \d+$`, exact: true},
		{name: "extra file", tamper: func(t *testing.T, snap string) {
			testutil.Must(t, os.WriteFile(filepath.Join(snap, "dir", "extra"), nil, 0o644))
		}, path: "dir/extra", reason: `^not in manifest$`, exact: true},
		{name: "missing file", tamper: func(t *testing.T, snap string) {
			testutil.Must(t, os.Remove(filepath.Join(snap, "dir/sub/deep.txt")))
		}, path: "dir/sub/deep.txt", reason: `^missing$`, exact: true},
		{name: "chmod", tamper: func(t *testing.T, snap string) {
			testutil.Must(t, os.Chmod(filepath.Join(snap, "ro.txt"), 0o644))
		}, path: "ro.txt", reason: `^mode 0644, manifest says 0444$`, exact: true},
		{name: "chmod dir", tamper: func(t *testing.T, snap string) {
			testutil.Must(t, os.Chmod(filepath.Join(snap, "dir/sub"), 0o777))
		}, path: "dir/sub", reason: `^mode 0777, manifest says 0750$`, exact: true},
		{name: "symlink retargeted", tamper: func(t *testing.T, snap string) {
			testutil.Must(t, os.Remove(filepath.Join(snap, "link")))
			testutil.Must(t, os.Symlink("empty", filepath.Join(snap, "link")))
		}, path: "link", reason: `^symlink target "empty", manifest says "README"$`, exact: true},
		{name: "file replaced by dir", tamper: func(t *testing.T, snap string) {
			testutil.Must(t, os.Remove(filepath.Join(snap, "empty")))
			testutil.Must(t, os.Mkdir(filepath.Join(snap, "empty"), 0o755))
		}, path: "empty", reason: `^is type d, manifest says f$`, exact: true},
		{name: "fifo added", tamper: func(t *testing.T, snap string) {
			testutil.Must(t, syscall.Mkfifo(filepath.Join(snap, "zz-fifo"), 0o644))
		}, path: ".", reason: `unsupported file type`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := richTree(t)
			r := newRoot(t)
			publish(t, r, src, fastOpts())
			snap := r.SnapshotDir(1)
			m := readManifest(t, r, 1)
			tt.tamper(t, snap)
			probs, err := tree.Verify(context.Background(), r.FS, snap, m, 2)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			re := regexp.MustCompile(tt.reason)
			found := slices.ContainsFunc(probs, func(p tree.Problem) bool { return p.Path == tt.path && re.MatchString(p.Reason) })
			if !found || (tt.exact && len(probs) != 1) {
				t.Fatalf("Verify problems = %v; want %s: /%s/ (only: %v)", probs, tt.path, tt.reason, tt.exact)
			}
		})
	}
}

// TestVerifySorted: problems come back in canonical path order.
func TestVerifySorted(t *testing.T) {
	src := richTree(t)
	r := newRoot(t)
	publish(t, r, src, fastOpts())
	snap := r.SnapshotDir(1)
	for _, p := range []string{"zz", "a-b", "dir/x", "dir-x", "0"} {
		testutil.Must(t, os.WriteFile(filepath.Join(snap, p), nil, 0o644))
	}
	probs, err := tree.Verify(context.Background(), r.FS, snap, readManifest(t, r, 1), 2)
	testutil.Must(t, err)
	var got []string
	for _, p := range probs {
		got = append(got, p.Path)
	}
	if want := []string{"0", "a-b", "dir/x", "dir-x", "zz"}; !slices.Equal(got, want) {
		t.Fatalf("problem paths %q, want %q", got, want)
	}
}

func TestWalkCanonical(t *testing.T) {
	src := filepath.Join(t.TempDir(), "s")
	testutil.WriteTree(t, src, map[string]string{"a/b": "", "a-b": "", "a.b/c": "", "a/c/d": "", "A": "", "\xff": ""})
	es := walk(t, src)
	var paths []string
	for _, e := range es {
		paths = append(paths, e.Path)
	}
	if !slices.IsSortedFunc(paths, manifest.Compare) {
		t.Fatalf("Walk order %q is not canonical", paths)
	}
	want := []string{"A", "a", "a/b", "a/c", "a/c/d", "a-b", "a.b", "a.b/c", "\xff"}
	if !slices.Equal(paths, want) {
		t.Fatalf("Walk = %q, want %q", paths, want)
	}
	// And a manifest of it is valid.
	if _, err := (&manifest.Manifest{Snapshot: 1, Version: manifest.Version1, Entries: es}).Bytes(); err != nil {
		t.Fatalf("manifest of a walk: %v", err)
	}
}

// A publish that fails after taking the lock notes why in status.json
// (last_error); the next publish that succeeds, a no-op one included,
// clears it, and a no-op publish with nothing to clear writes nothing.
func TestPublishRecordsLastError(t *testing.T) {
	src := richTree(t)
	r := newRoot(t)
	publish(t, r, src, fastOpts())
	lastError := func() string {
		t.Helper()
		s, err := r.Status()
		if err != nil {
			t.Fatal(err)
		}
		return s.LastError
	}
	if e := lastError(); e != "" {
		t.Fatalf("last_error after a good publish: %q", e)
	}
	if _, err := snapshot.Publish(context.Background(), r, filepath.Join(src, "no-such-dir"), fastOpts()); err == nil {
		t.Fatal("publish of a missing source succeeded")
	}
	if e := lastError(); !strings.Contains(e, "no-such-dir") {
		t.Fatalf("last_error after a failed publish: %q", e)
	}
	if res := publish(t, r, src, fastOpts()); res.Published {
		t.Fatalf("unchanged source published: %+v", res)
	}
	if e := lastError(); e != "" {
		t.Fatalf("last_error after a good no-op publish: %q", e)
	}
}

// TestPublishCorruptServedManifest: publish reads the served snapshot's
// manifest to pair the source with it; a manifest that does not check out
// stops publish before anything is written, whether or not the source
// changed.
func TestPublishCorruptServedManifest(t *testing.T) {
	// other is a valid manifest of another snapshot (2), from a second root.
	src0 := richTree(t)
	r0 := newRoot(t)
	publish(t, r0, src0, fastOpts())
	testutil.Touch(t, src0, "README", "changed")
	publish(t, r0, src0, fastOpts())
	other, err := os.ReadFile(r0.ManifestPath(2))
	testutil.Must(t, err)
	tests := []struct {
		name   string
		mangle func([]byte) []byte
	}{
		{"truncated", func(b []byte) []byte { return b[:len(b)*2/3] }},
		{"no footer", func(b []byte) []byte { return b[:bytes.LastIndex(b, []byte("end "))] }},
		{"flipped byte", func(b []byte) []byte { b[digestAfter(b, len(b)/2)] ^= 1; return b }},
		{"another snapshot's", func([]byte) []byte { return other }},
	}
	for _, tc := range tests {
		for _, changed := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/source changed=%v", tc.name, changed), func(t *testing.T) {
				src := richTree(t)
				r := newRoot(t)
				publish(t, r, src, fastOpts())
				b, err := os.ReadFile(r.ManifestPath(1))
				testutil.Must(t, err)
				testutil.Must(t, os.WriteFile(r.ManifestPath(1), tc.mangle(b), 0o644))
				if changed {
					testutil.Touch(t, src, "dir/sub/deep.txt", "deeper")
				}
				_, err = snapshot.Publish(context.Background(), r, src, fastOpts())
				// ErrServedManifest is what the CLI's hint (run publish verify) is keyed by.
				if !errors.Is(err, manifest.ErrCorrupt) || !errors.Is(err, snapshot.ErrServedManifest) {
					t.Fatalf("Publish = %v, want manifest.ErrCorrupt and ErrServedManifest (the advice to run publish verify)", err)
				}
				if p := counters(t, r); p != (seqfile.Pair{Begin: 1, End: 1}) {
					t.Fatalf("counters = %+v, want 1/1 (nothing started)", p)
				}
				if snaps, _ := r.Snapshots(); !slices.Equal(snaps, []uint64{1}) {
					t.Fatalf("snapshots = %v, want [1]", snaps)
				}
			})
		}
	}
}

// digestAfter is the offset of the first digit of the first file record's
// content field (a SHA-256 in hex) at or after offset from in manifest b: a
// byte there flipped is caught by the footer's checksum (or the field's
// syntax), whatever the records around it.
func digestAfter(b []byte, from int) int {
	loc := regexp.MustCompile(`\nf [0-7]{4} [0-9]+ -?[0-9]+ [0-9a-f]{64} `).FindIndex(b[from:])
	if loc == nil {
		panic("no file record after the middle")
	}
	return from + loc[1] - 65
}
