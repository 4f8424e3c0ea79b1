package transport_test

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/seqmirror/seqmirror/internal/export"
	"github.com/seqmirror/seqmirror/internal/fsys"
	"github.com/seqmirror/seqmirror/internal/transport"
	"github.com/seqmirror/seqmirror/internal/transport/web"
	"github.com/seqmirror/seqmirror/internal/tree"
	"github.com/seqmirror/seqmirror/manifest"
	"github.com/seqmirror/seqmirror/seqfile"
	"github.com/seqmirror/seqmirror/testutil"
)

// conformanceTransports is every transport TestConformance runs, each
// reached through transport.Open: addr is the address of the export root
// at dir (below w.base), down that of a server that does not answer. A new
// transport joins with one row (and its server, if any, in newWorld).
// A web transport reads the root as a web server serves it (web: true):
// through seq/current, not the current symlink, and what the server does
// not serve as a file (a fifo) is not there (404).
var conformanceTransports = []struct {
	name string
	addr func(w *world, dir string) string
	down func(w *world) string
	web  bool
}{
	{name: "local", addr: func(_ *world, dir string) string { return dir }, down: func(w *world) string { return filepath.Join(w.base, "unmounted") }},
	{name: "rsync daemon", addr: func(w *world, dir string) string { return w.rsyncd.URL("all") + "/" + w.rel(dir) }, down: func(w *world) string { return w.deadRsyncd }},
	{name: "rsync remote shell", addr: func(_ *world, dir string) string { return "mirror@localhost:" + dir }, down: func(*world) string { return testutil.UnreachableHost + ":/srv/pub" }},
	{name: "http nginx", addr: func(w *world, dir string) string { return w.url(w.nginx.URL(""), dir) }, down: func(w *world) string { return w.deadHTTP }, web: true},
	{name: "http go file server", addr: func(w *world, dir string) string { return w.url(w.fileServer, dir) }, down: func(w *world) string { return w.deadHTTP }, web: true},
}

// confFiles is snapshot 1 of every case's root: two files share a base
// name (the rsync transport fetches those through a second, deep stage).
var confFiles = map[string]string{
	"a.txt":     "alpha\n",
	"d/b.txt":   "bravo\n",
	"d/e/c.txt": "charlie\n",
	"d2/b.txt":  "another bravo\n",
}

// confStatus is the status.json the status cases serve.
const confStatus = `{"version":1,"lineage":[{"name":"m","address":"","snapshot":1,"since":"2026-01-02T03:04:05Z"}]}` + "\n"

// conformanceCases is what every transport must do. damage changes the
// fresh root (serving snapshot 1 of confFiles) before the upstream is
// opened; run checks the behaviour.
// pointer, if set, is the same fault as a web transport sees it (in
// seq/current rather than the current symlink), applied after damage.
var conformanceCases = []struct {
	name    string
	damage  func(tb testing.TB, root string)
	pointer func(tb testing.TB, root string)
	run     func(t *testing.T, c *confCase)
}{
	// Seq reads.
	{name: "seq begin and end", run: func(t *testing.T, c *confCase) {
		for _, name := range []string{seqfile.End, seqfile.Begin} {
			if n, err := c.up.Seq(c.ctx, name); err != nil || n != 1 {
				t.Fatalf("Seq(%s) = %d, %v; want 1", name, n, err)
			}
		}
	}},
	{name: "seq missing in a root reads 0", damage: removeAll("seq/begin", "seq/end"), run: func(t *testing.T, c *confCase) {
		for _, name := range []string{seqfile.End, seqfile.Begin} {
			if n, err := c.up.Seq(c.ctx, name); err != nil || n != 0 {
				t.Fatalf("Seq(%s) = %d, %v; want 0", name, n, err)
			}
		}
	}},
	{name: "seq corrupt", damage: writeFile("seq/end", "12x\n"), run: func(t *testing.T, c *confCase) {
		_, err := c.up.Seq(c.ctx, seqfile.End)
		wantErr(t, err, seqfile.ErrCorrupt)
	}},
	{name: "seq not a regular file", damage: plant("seq/end", "fifo"), run: func(t *testing.T, c *confCase) {
		n, err := c.up.Seq(c.ctx, seqfile.End)
		if c.web { // not served: missing, 0
			if err != nil || n != 0 {
				t.Fatalf("Seq = %d, %v; want 0 (a fifo is not served)", n, err)
			}
			return
		}
		wantErr(t, err, seqfile.ErrCorrupt)
	}},
	// Current.
	{name: "current", run: func(t *testing.T, c *confCase) {
		if n, since, err := c.up.Current(c.ctx); err != nil || n != 1 || since.IsZero() {
			t.Fatalf("Current = %d, %v, %v; want 1 since a known time", n, since, err)
		}
	}},
	{name: "current none", damage: removeAll("current"), pointer: removeAll("seq/current", "seq/begin", "seq/end"), run: func(t *testing.T, c *confCase) {
		if n, _, err := c.up.Current(c.ctx); err != nil || n != 0 {
			t.Fatalf("Current = %d, %v; want 0", n, err)
		}
	}},
	{name: "current bad target", damage: symlink("current", "snapshots/01"), pointer: writeFile("seq/current", "01\n"), run: func(t *testing.T, c *confCase) {
		_, _, err := c.up.Current(c.ctx)
		wantErr(t, err, export.ErrBadCurrent)
	}},
	{name: "current not a symlink", damage: writeFile("current", "snapshots/1"), pointer: writeFile("seq/current", "snapshots/1"), run: func(t *testing.T, c *confCase) {
		_, _, err := c.up.Current(c.ctx)
		wantErr(t, err, export.ErrBadCurrent)
	}},
	// A root written before seq/current existed: readable over local and
	// rsync; a web client is told the upstream must write the pointer.
	{name: "published root without the pointer", damage: removeAll("seq/current"), run: func(t *testing.T, c *confCase) {
		n, _, err := c.up.Current(c.ctx)
		if c.web {
			wantErr(t, err, web.ErrNoPointer)
			return
		}
		if err != nil || n != 1 {
			t.Fatalf("Current = %d, %v; want 1", n, err)
		}
	}},
	// Manifest fetch.
	{name: "manifest", run: func(t *testing.T, c *confCase) {
		dst := filepath.Join(c.work, "1.manifest")
		if err := c.up.FetchManifest(c.ctx, 1, dst); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(dst)
		if err != nil {
			t.Fatal(err)
		}
		want, err := os.ReadFile(export.New(fsys.OS(), c.root).ManifestPath(1))
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("fetched manifest differs from the upstream's (%v)", err)
		}
	}},
	{name: "manifest vanished", damage: removeAll("snapshots/1.manifest"), run: func(t *testing.T, c *confCase) {
		wantErr(t, c.up.FetchManifest(c.ctx, 1, filepath.Join(c.work, "1.manifest")), transport.ErrVanished)
	}},
	{name: "manifest not a regular file", damage: plant("snapshots/1.manifest", "fifo"), run: func(t *testing.T, c *confCase) {
		wantErr(t, c.up.FetchManifest(c.ctx, 1, filepath.Join(c.work, "1.manifest")), c.unserved(manifest.ErrCorrupt))
	}},
	{name: "manifest oversized", damage: truncate("snapshots/1.manifest", transport.MaxManifestSize+1), run: func(t *testing.T, c *confCase) {
		dst := filepath.Join(c.work, "1.manifest")
		wantErr(t, c.up.FetchManifest(c.ctx, 1, dst), manifest.ErrCorrupt)
		if fi, err := os.Stat(dst); err == nil && fi.Size() > 0 {
			t.Fatalf("%d bytes of an oversized manifest written", fi.Size())
		}
	}},
	// Fetch and verify.
	{name: "fetch", run: func(t *testing.T, c *confCase) {
		if err := c.up.Fetch(c.ctx, 1, c.files(), c.dst); err != nil {
			t.Fatal(err)
		}
		c.checkFetched(t)
	}},
	{name: "fetch content differs from its record", damage: writeFile("snapshots/1/d/b.txt", "BRAVO\n"), run: func(t *testing.T, c *confCase) {
		wantErr(t, c.up.Fetch(c.ctx, 1, c.files(), c.dst), tree.ErrHashMismatch)
	}},
	{name: "fetch larger than its record", damage: writeFile("snapshots/1/d/e/c.txt", "charlie, and then some\n"), run: func(t *testing.T, c *confCase) {
		wantErr(t, c.up.Fetch(c.ctx, 1, c.files(), c.dst), tree.ErrHashMismatch)
	}},
	{name: "fetch vanished (pruned upstream)", damage: removeAll("current", "snapshots/1", "snapshots/1.manifest"), run: func(t *testing.T, c *confCase) {
		wantErr(t, c.up.Fetch(c.ctx, 1, c.files(), c.dst), transport.ErrVanished)
	}},
	// Hostile content.
	{name: "fifo where a file should be", damage: plant("snapshots/1/d/b.txt", "fifo"), run: func(t *testing.T, c *confCase) {
		wantErr(t, c.up.Fetch(c.ctx, 1, c.files(), c.dst), c.unserved(tree.ErrHashMismatch))
	}},
	{name: "symlink where a file should be", damage: symlink("snapshots/1/d/b.txt", "../a.txt"), run: func(t *testing.T, c *confCase) {
		wantErr(t, c.up.Fetch(c.ctx, 1, c.files(), c.dst), tree.ErrHashMismatch)
	}},
	// The local transport and rsync over a shell refuse it as content that
	// differs (tree.ErrHashMismatch); an rsync daemon refuses to follow the
	// symlink (a plain error, rsync's exit 23): refused, whatever the error
	// (what a failed Fetch left in its directory is the caller's to discard).
	{name: "directory symlinked outside the root", damage: symlinkOutside("snapshots/1/d/e", map[string]string{"c.txt": "s3cr3t\n"}), run: func(t *testing.T, c *confCase) {
		err := c.up.Fetch(c.ctx, 1, c.files(), c.dst)
		if err == nil || strings.Contains(err.Error(), "s3cr3t") {
			t.Fatalf("err = %v, want a refusal that does not quote what is outside", err)
		}
	}},
	{name: "record path escapes", run: func(t *testing.T, c *confCase) {
		files := append(c.files(), manifest.Entry{Path: "../escape", Type: manifest.File, Mode: 0o644})
		wantErr(t, c.up.Fetch(c.ctx, 1, files, c.dst), manifest.ErrUnsafePath)
		if _, err := os.Lstat(filepath.Join(c.work, "escape")); err == nil {
			t.Fatal("wrote outside the directory it was given")
		}
	}},
	// status.json (informational, bounded).
	{name: "status", damage: writeFile("status.json", confStatus), run: func(t *testing.T, c *confCase) {
		if b, err := c.up.FetchStatus(c.ctx); err != nil || string(b) != confStatus {
			t.Fatalf("FetchStatus = %q, %v; want %q", b, err, confStatus)
		}
	}},
	{name: "status none", run: func(t *testing.T, c *confCase) {
		if b, err := c.up.FetchStatus(c.ctx); err != nil || b != nil {
			t.Fatalf("FetchStatus = %q, %v; want nothing, no error", b, err)
		}
	}},
	{name: "status oversized", damage: writeFile("status.json", strings.Repeat(" ", transport.MaxStatusSize+1)), run: func(t *testing.T, c *confCase) {
		if b, err := c.up.FetchStatus(c.ctx); err != nil || b != nil {
			t.Fatalf("FetchStatus = %d bytes, %v; want nothing, no error", len(b), err)
		}
	}},
	{name: "status not a regular file", damage: plant("status.json", "fifo"), run: func(t *testing.T, c *confCase) {
		if b, err := c.up.FetchStatus(c.ctx); err != nil || b != nil {
			t.Fatalf("FetchStatus = %q, %v; want nothing, no error", b, err)
		}
	}},
	{name: "status symlinked outside the root", damage: symlinkOutside("status.json", map[string]string{"x": "s3cr3t"}), run: func(t *testing.T, c *confCase) {
		if b, err := c.up.FetchStatus(c.ctx); err != nil || b != nil {
			t.Fatalf("FetchStatus = %q, %v; want nothing, no error", b, err)
		}
	}},
	// Whole-snapshot fetch, for transports that have it.
	{name: "fetch snapshot whole", run: func(t *testing.T, c *confCase) {
		sf, ok := c.up.(transport.SnapshotFetcher)
		if !ok {
			return
		}
		if err := sf.FetchSnapshot(c.ctx, 1, sliceRecords(c.recs), c.dst); err != nil {
			t.Fatal(err)
		}
		c.checkFetched(t)
		c.checkMeta(t)
	}},
	// A transport that copies the tree whole refuses what the manifest does
	// not list; one that asks for each listed file (web) never sees it.
	{name: "fetch snapshot whole, an unlisted file", damage: writeFile("snapshots/1/d/extra.txt", "not in the manifest\n"), run: func(t *testing.T, c *confCase) {
		sf, ok := c.up.(transport.SnapshotFetcher)
		switch {
		case !ok:
		case c.web:
			if err := sf.FetchSnapshot(c.ctx, 1, sliceRecords(c.recs), c.dst); err != nil {
				t.Fatal(err)
			}
			c.checkFetched(t)
		default:
			wantErr(t, sf.FetchSnapshot(c.ctx, 1, sliceRecords(c.recs), c.dst), tree.ErrHashMismatch)
		}
	}},
	{name: "fetch snapshot whole, content differs from its record", damage: writeFile("snapshots/1/d/b.txt", "BRAVO\n"), run: func(t *testing.T, c *confCase) {
		if sf, ok := c.up.(transport.SnapshotFetcher); ok {
			wantErr(t, sf.FetchSnapshot(c.ctx, 1, sliceRecords(c.recs), c.dst), tree.ErrHashMismatch)
		}
	}},
}

// TestConformance runs every case against every transport, each case on a
// fresh root below one base directory that one rsync daemon serves (cases
// run in parallel: the rsync ones mostly wait for rsync).
func TestConformance(t *testing.T) {
	w := newWorld(t)
	for _, tr := range conformanceTransports {
		t.Run(tr.name, func(t *testing.T) {
			for i, tc := range conformanceCases {
				t.Run(tc.name, func(t *testing.T) {
					t.Parallel() // each case has its own root, upstream and work dir
					c := w.newCase(t, tr.name+"-"+strconv.Itoa(i))
					if tc.damage != nil {
						tc.damage(t, c.root)
					}
					if c.web = tr.web; c.web && tc.pointer != nil {
						tc.pointer(t, c.root)
					}
					c.up = w.open(t, tr.addr(w, c.root))
					tc.run(t, c)
					c.checkNothingElse(t)
				})
			}
			t.Run("unreachable", func(t *testing.T) {
				t.Parallel()
				_, err := w.open(t, tr.down(w)).Seq(context.Background(), seqfile.End)
				wantErr(t, err, transport.ErrUnavailable)
				_, err = w.open(t, tr.down(w)).FetchStatus(context.Background())
				wantErr(t, err, transport.ErrUnavailable)
			})
		})
	}
}

// world is what the cases share: the base directory of their roots and the
// servers that serve it.
type world struct {
	base       string
	opt        transport.Options
	rsyncd     *testutil.Rsyncd // module "all" is base
	deadRsyncd string           // an rsync:// address nothing listens at
	nginx      *testutil.Nginx  // serves base
	fileServer string           // http://127.0.0.1:PORT, Go's file server of base
	deadHTTP   string           // an http:// address nothing listens at
}

func newWorld(t *testing.T) *world {
	w := &world{base: t.TempDir()}
	w.opt = transport.Options{Workers: 2, ScratchDir: filepath.Join(t.TempDir(), "scratch"),
		Rsync: transport.RsyncOptions{Rsh: testutil.FakeSSH(t)}}
	w.rsyncd = testutil.StartRsyncdServer(t, map[string]string{"all": w.base})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	w.deadRsyncd = "rsync://" + l.Addr().String() + "/all"
	w.deadHTTP = "http://" + l.Addr().String() + "/all/"
	l.Close()
	w.nginx = testutil.StartNginx(t, testutil.NginxExportRoot(w.base))
	w.fileServer = testutil.StartFileServer(t, w.base)
	return w
}

// rel is dir relative to the base, slash-separated.
func (w *world) rel(dir string) string {
	r, err := filepath.Rel(w.base, dir)
	if err != nil {
		panic(err)
	}
	return filepath.ToSlash(r)
}

// url is the address of dir below server (http://HOST:PORT, which serves
// the base), each segment escaped.
func (w *world) url(server, dir string) string {
	segs := strings.Split(w.rel(dir), "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return server + "/" + strings.Join(segs, "/") + "/"
}

// open opens addr with the world's options; the upstream is closed when
// the test ends.
func (w *world) open(tb testing.TB, addr string) transport.Upstream {
	tb.Helper()
	up, err := transport.Open(addr, fsys.OS(), w.opt)
	if err != nil {
		tb.Fatalf("Open(%s): %v", addr, err)
	}
	tb.Cleanup(func() { up.Close() })
	return up
}

// confCase is one case's root, its records and where it fetches to.
type confCase struct {
	ctx  context.Context
	up   transport.Upstream
	root string           // the upstream's export root
	recs []manifest.Entry // snapshot 1's records
	work string           // holds dst and nothing else, unless a case says
	dst  string           // Fetch's directory, its directories made
	web  bool             // read as a web server serves it
}

// unserved is the error for an entry that is not a regular file upstream:
// want, but over a web server, which does not serve it, ErrVanished.
func (c *confCase) unserved(want error) error {
	if c.web {
		return transport.ErrVanished
	}
	return want
}

func (w *world) newCase(tb testing.TB, name string) *confCase {
	c := &confCase{ctx: context.Background(), root: filepath.Join(w.base, name), work: tb.TempDir()}
	c.recs = testutil.SnapshotRoot(tb, c.root, 1, confFiles)
	c.dst = filepath.Join(c.work, "dst")
	for _, e := range append([]manifest.Entry{{Path: ".", Type: manifest.Dir}}, c.recs...) {
		if e.Type == manifest.Dir {
			if err := os.MkdirAll(filepath.Join(c.dst, filepath.FromSlash(e.Path)), 0o755); err != nil {
				tb.Fatal(err)
			}
		}
	}
	return c
}

// files are the regular files' records.
func (c *confCase) files() []manifest.Entry {
	var out []manifest.Entry
	for _, e := range c.recs {
		if e.Type == manifest.File {
			out = append(out, e)
		}
	}
	return out
}

// checkFetched checks that dst holds exactly snapshot 1's records' types
// and contents.
func (c *confCase) checkFetched(t *testing.T) {
	t.Helper()
	got, err := tree.Walk(c.ctx, fsys.OS(), c.dst, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(c.recs) {
		t.Fatalf("fetched %d entries, want %d: %v", len(got), len(c.recs), got)
	}
	for i, e := range c.recs {
		if got[i].Path != e.Path || got[i].Type != e.Type {
			t.Fatalf("entry %d is %s %c, want %s %c", i, got[i].Path, got[i].Type, e.Path, e.Type)
		}
		if e.Type == manifest.File {
			if b, err := os.ReadFile(filepath.Join(c.dst, filepath.FromSlash(e.Path))); err != nil || string(b) != confFiles[e.Path] {
				t.Fatalf("%s holds %q (%v), want %q", e.Path, b, err, confFiles[e.Path])
			}
		}
	}
}

// checkMeta checks that every fetched regular file has its record's mode
// and mtime (what FetchSnapshot promises).
func (c *confCase) checkMeta(t *testing.T) {
	t.Helper()
	for _, e := range c.files() {
		fi, err := os.Lstat(filepath.Join(c.dst, filepath.FromSlash(e.Path)))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != e.Mode.Perm() || fi.ModTime().UnixNano() != e.MTime {
			t.Fatalf("%s has mode %v mtime %d, its record %v %d", e.Path, fi.Mode().Perm(), fi.ModTime().UnixNano(), e.Mode.Perm(), e.MTime)
		}
	}
}

// checkNothingElse checks that the upstream left nothing in work beside
// what the case asked for (dst, a fetched manifest): no staging directory.
func (c *confCase) checkNothingElse(t *testing.T) {
	t.Helper()
	ents, err := os.ReadDir(c.work)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if e.Name() != "dst" && e.Name() != "1.manifest" {
			t.Errorf("left %s beside the directories it was given", e.Name())
		}
	}
}

func wantErr(tb testing.TB, err, target error) {
	tb.Helper()
	if !errors.Is(err, target) {
		tb.Fatalf("err = %v, want it to wrap %v", err, target)
	}
	tb.Logf("refused: %v", err)
}

// Damages to a case's root (paths slash-separated, below the root).

func removeAll(paths ...string) func(testing.TB, string) {
	return func(tb testing.TB, root string) {
		for _, p := range paths {
			if err := os.RemoveAll(filepath.Join(root, p)); err != nil {
				tb.Fatal(err)
			}
		}
	}
}

func writeFile(p, content string) func(testing.TB, string) {
	return func(tb testing.TB, root string) {
		removeAll(p)(tb, root)
		testutil.WriteTree(tb, root, map[string]string{p: content})
	}
}

func symlink(p, target string) func(testing.TB, string) {
	return func(tb testing.TB, root string) {
		removeAll(p)(tb, root)
		if err := os.Symlink(target, filepath.Join(root, p)); err != nil {
			tb.Fatal(err)
		}
	}
}

func plant(p, kind string) func(testing.TB, string) {
	return func(tb testing.TB, root string) {
		removeAll(p)(tb, root)
		testutil.Plant(tb, filepath.Join(root, p), kind)
	}
}

func truncate(p string, size int64) func(testing.TB, string) {
	return func(tb testing.TB, root string) {
		if err := os.Truncate(filepath.Join(root, p), size); err != nil {
			tb.Fatal(err)
		}
	}
}

// symlinkOutside replaces directory p with a symlink to a directory
// outside the root holding files.
func symlinkOutside(p string, files map[string]string) func(testing.TB, string) {
	return func(tb testing.TB, root string) {
		outside := tb.TempDir()
		testutil.WriteTree(tb, outside, files)
		symlink(p, outside)(tb, root)
	}
}

// sliceRecords is transport.Records over records in memory.
type sliceRecords []manifest.Entry

func (s sliceRecords) Open() (transport.RecordIter, error) {
	return &sliceIter{SliceIterator: manifest.SliceIterator{Entries: s}}, nil
}

type sliceIter struct{ manifest.SliceIterator }

func (*sliceIter) Close() error { return nil }
