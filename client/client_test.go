package client_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/seqmirror/seqmirror/client"
	"github.com/seqmirror/seqmirror/internal/export"
	"github.com/seqmirror/seqmirror/internal/fsys"
	"github.com/seqmirror/seqmirror/internal/transport"
	"github.com/seqmirror/seqmirror/internal/tree"
	"github.com/seqmirror/seqmirror/manifest"
	"github.com/seqmirror/seqmirror/snapshot"
	"github.com/seqmirror/seqmirror/testutil"
)

// fixture is the tree every test root publishes as snapshot 1 (with an
// empty directory "empty" besides).
var fixture = map[string]string{
	"hello.txt":         "hello, mirror\n",
	"docs/README":       "read me first\n",
	"docs/sub/deep.txt": "deep down below\n",
	"link":              "->hello.txt",
}

// fixtureRecords is fixture's manifest, type and path, in canonical order.
var fixtureRecords = []string{"d docs", "f docs/README", "d docs/sub", "f docs/sub/deep.txt", "d empty", "f hello.txt", "l link"}

// server serves the export roots below base, locally or over rsync.
type server struct {
	name string
	base string
	addr func(rel string) string // the address of the root base/rel
}

// servers returns the transports every case runs over: a path, an rsync
// daemon whose module is base, and nginx serving base as static files;
// and the nginx.
func servers(tb testing.TB) ([]server, *testutil.Nginx) {
	tb.Helper()
	base := tb.TempDir()
	port := testutil.StartRsyncd(tb, map[string]string{"pub": base})
	ngx := testutil.StartNginx(tb, "root "+base+";")
	srvs := []server{
		{name: "local", base: base, addr: func(rel string) string { return filepath.Join(base, rel) }},
		{name: "rsync", base: base, addr: func(rel string) string { return fmt.Sprintf("rsync://127.0.0.1:%d/pub/%s", port, rel) }},
		{name: "http", base: base, addr: func(rel string) string { return ngx.URL("/" + rel) }},
	}
	return srvs, ngx
}

// env is one test's export root, the source it publishes from, and the
// root's address on its server.
type env struct {
	src  string
	root *export.Root
	addr string
}

// newEnv makes an export root below srv.base and publishes fixture into
// it as snapshot 1 (none if empty).
func (srv server) newEnv(tb testing.TB, empty bool) *env {
	tb.Helper()
	dir, err := os.MkdirTemp(srv.base, "root-")
	if err != nil {
		tb.Fatal(err)
	}
	rel := filepath.Base(dir)
	e := &env{src: tb.TempDir(), root: export.New(fsys.OS(), dir), addr: srv.addr(rel)}
	testutil.WriteTree(tb, e.src, fixture)
	if err := os.Mkdir(filepath.Join(e.src, "empty"), 0o755); err != nil {
		tb.Fatal(err)
	}
	if empty {
		if err := e.root.Init(); err != nil {
			tb.Fatal(err)
		}
		return e
	}
	if n := e.publish(tb, 3); n != 1 {
		tb.Fatalf("first publish made snapshot %d", n)
	}
	return e
}

// publish publishes the source, keeping keep snapshots, and returns the
// snapshot number.
func (e *env) publish(tb testing.TB, keep int) uint64 {
	tb.Helper()
	opt := snapshot.DefaultOptions()
	opt.Keep, opt.Backoff, opt.Workers = keep, time.Millisecond, 2
	res, err := snapshot.Publish(context.Background(), e.root, e.src, opt)
	if err != nil {
		tb.Fatalf("publish: %v", err)
	}
	return res.Snapshot
}

// snapFile is the path of rel in snapshot n on disk.
func (e *env) snapFile(n uint64, rel string) string {
	return filepath.Join(e.root.SnapshotDir(n), filepath.FromSlash(rel))
}

// open opens the root through the client, failing the test on an error.
func (e *env) open(tb testing.TB, opt client.Options) *client.Snapshot {
	tb.Helper()
	s, err := client.Open(context.Background(), e.addr, opt)
	if err != nil {
		tb.Fatalf("client.Open(%s): %v", e.addr, err)
	}
	return s
}

// wantErr fails unless err wraps every one of targets.
func wantErr(tb testing.TB, what string, err error, targets ...error) {
	tb.Helper()
	if err == nil {
		tb.Fatalf("%s: no error, want %v", what, targets)
	}
	for _, target := range targets {
		if !errors.Is(err, target) {
			tb.Fatalf("%s: %v, want an error wrapping %v", what, err, target)
		}
	}
}

// TestClient runs each case over a local path and over an rsync daemon.
func TestClient(t *testing.T) {
	cases := []struct {
		name string
		run  func(t *testing.T, srv server)
	}{
		{name: "read list stat", run: testRead},
		{name: "damaged file refused", run: testDamaged},
		{name: "forged 64-bit hash refused", run: testForged},
		{name: "path not in the manifest", run: testNotFound},
		{name: "directory and symlink", run: testNotFile},
		{name: "pruned before close", run: testPruned},
		{name: "superseded but held", run: testSuperseded},
		{name: "replaced under the same number", run: testReplaced},
		{name: "open refused", run: testOpenRefused},
		{name: "closed", run: testClosed},
		{name: "concurrent reads", run: testConcurrent},
	}
	srvs, _ := servers(t)
	for _, srv := range srvs {
		for _, tc := range cases {
			t.Run(srv.name+"/"+tc.name, func(t *testing.T) {
				t.Parallel() // own roots; the servers are shared
				tc.run(t, srv)
			})
		}
	}
}

// testRead: Open pins snapshot 1; Entries, List and Stat give the
// manifest's records; every file reads back as published; Close finds the
// snapshot still served and removes the scratch directory.
func testRead(t *testing.T, srv server) {
	e := srv.newEnv(t, false)
	scratch := t.TempDir()
	s := e.open(t, client.Options{ScratchDir: scratch})
	if s.N() != 1 || s.Addr() != e.addr {
		t.Fatalf("N %d Addr %s, want 1 and %s", s.N(), s.Addr(), e.addr)
	}
	var got []string
	for r := range s.Entries() {
		got = append(got, string(r.Type)+" "+r.Path)
	}
	if !slices.Equal(got, fixtureRecords) {
		t.Fatalf("Entries %q, want %q", got, fixtureRecords)
	}
	for _, tc := range []struct {
		dir  string
		want []string
	}{{"", []string{"docs", "empty", "hello.txt", "link"}}, {".", []string{"docs", "empty", "hello.txt", "link"}},
		{"docs", []string{"docs/README", "docs/sub"}}, {"docs/sub", []string{"docs/sub/deep.txt"}}, {"empty", nil}} {
		list, err := s.List(tc.dir)
		if err != nil {
			t.Fatalf("List(%q): %v", tc.dir, err)
		}
		var names []string
		for _, r := range list {
			names = append(names, r.Path)
		}
		if !slices.Equal(names, tc.want) {
			t.Fatalf("List(%q) = %q, want %q", tc.dir, names, tc.want)
		}
	}
	for name, content := range fixture {
		if strings.HasPrefix(content, "->") {
			continue
		}
		r, err := s.Stat(name)
		if err != nil || r.Type != manifest.File || r.Size != int64(len(content)) || r.Sum() != testutil.SumOf(content, manifest.Version2) {
			t.Fatalf("Stat(%s) = %+v, %v", name, r, err)
		}
		b, err := s.ReadFile(name)
		if err != nil || string(b) != content {
			t.Fatalf("ReadFile(%s) = %q, %v; want %q", name, b, err, content)
		}
	}
	rc, err := s.Open("docs/sub/deep.txt")
	if err != nil {
		t.Fatal(err)
	}
	if b, err := io.ReadAll(rc); err != nil || string(b) != fixture["docs/sub/deep.txt"] {
		t.Fatalf("read docs/sub/deep.txt: %q, %v", b, err)
	}
	rc.Close()
	if err := s.Close(); err != nil {
		t.Fatalf("Close of a served snapshot: %v", err)
	}
	if left, _ := os.ReadDir(scratch); len(left) != 0 {
		t.Fatalf("scratch not removed: %v", left)
	}
}

// testDamaged: a file damaged in the served snapshot is refused with
// ErrCorrupt (the transport's ErrHashMismatch wrapped), no reader and no
// bytes, however it was damaged: in place (same size and mtime), grown,
// cut short, or replaced by a symlink to a file outside the snapshot. The
// other files still read.
func testDamaged(t *testing.T, srv server) {
	outside := filepath.Join(t.TempDir(), "secret")
	testutil.Must(t, os.WriteFile(outside, []byte("not the mirror's bytes\n"), 0o644))
	damages := []struct {
		name   string
		damage func(t *testing.T, p string)
	}{
		{name: "in place", damage: func(t *testing.T, p string) { testutil.CorruptInPlace(t, p) }},
		{name: "grown", damage: func(t *testing.T, p string) {
			f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
			testutil.Must(t, err)
			_, err = f.WriteString("and more\n")
			testutil.Must(t, errors.Join(err, f.Close()))
		}},
		{name: "cut short", damage: func(t *testing.T, p string) { testutil.Must(t, os.Truncate(p, 3)) }},
		{name: "symlink", damage: func(t *testing.T, p string) {
			testutil.Must(t, os.Remove(p))
			testutil.Must(t, os.Symlink(outside, p))
		}},
	}
	for _, d := range damages {
		t.Run(d.name, func(t *testing.T) {
			e := srv.newEnv(t, false)
			s := e.open(t, client.Options{})
			d.damage(t, e.snapFile(1, "hello.txt"))
			r, err := s.Open("hello.txt")
			wantErr(t, "Open of a damaged file", err, client.ErrCorrupt, tree.ErrHashMismatch)
			if r != nil {
				t.Fatal("Open of a damaged file returned a reader")
			}
			b, err := s.ReadFile("hello.txt")
			wantErr(t, "ReadFile of a damaged file", err, client.ErrCorrupt)
			if b != nil {
				t.Fatalf("ReadFile of a damaged file returned %q", b)
			}
			if b, err := s.ReadFile("docs/README"); err != nil || string(b) != fixture["docs/README"] {
				t.Fatalf("ReadFile(docs/README) beside a damaged file: %q, %v", b, err)
			}
			testutil.Must(t, s.Close())
		})
	}
}

// testForged: a file rewritten upstream whose record was fixed up so that
// its 64-bit hash matches (manifest version 2: only the SHA-256 differs) is
// refused like any damaged file, and the other files still read.
func testForged(t *testing.T, srv server) {
	e := srv.newEnv(t, false)
	testutil.ForgeRecord(t, e.root.ManifestPath(1), e.root.SnapshotDir(1), "hello.txt", strings.ToUpper(fixture["hello.txt"]))
	s := e.open(t, client.Options{})
	defer s.Close()
	r, err := s.Open("hello.txt")
	wantErr(t, "Open of a forged file", err, client.ErrCorrupt, tree.ErrHashMismatch)
	if r != nil || !strings.Contains(err.Error(), "sha256") {
		t.Fatalf("Open of a forged file: reader %v, %v (want no reader, an error naming the sha256)", r != nil, err)
	}
	if b, err := s.ReadFile("docs/README"); err != nil || string(b) != fixture["docs/README"] {
		t.Fatalf("ReadFile(docs/README) beside a forged file: %q, %v", b, err)
	}
}

// testNotFound: a path the manifest does not list is ErrNotFound (and
// fs.ErrNotExist) even when a file is there on disk, and so is every path
// that is not clean and relative.
func testNotFound(t *testing.T, srv server) {
	e := srv.newEnv(t, false)
	if err := os.WriteFile(e.snapFile(1, "extra.txt"), []byte("planted, not in the manifest\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s := e.open(t, client.Options{})
	defer s.Close()
	for _, name := range []string{"extra.txt", "nope", "docs/nope", "", ".", "/hello.txt", "../hello.txt", "docs/../hello.txt", "docs/", "hello.txt/x"} {
		_, err := s.Stat(name)
		wantErr(t, "Stat("+name+")", err, client.ErrNotFound, fs.ErrNotExist)
		r, err := s.Open(name)
		wantErr(t, "Open("+name+")", err, client.ErrNotFound)
		if r != nil {
			t.Fatalf("Open(%q) returned a reader", name)
		}
		_, err = s.ReadFile(name)
		wantErr(t, "ReadFile("+name+")", err, client.ErrNotFound)
	}
	_, err := s.List("nope")
	wantErr(t, "List(nope)", err, client.ErrNotFound)
}

// testNotFile: directories and symlinks are not opened (ErrNotFile; a
// symlink's target is in its record, never followed); List refuses what
// is not a directory (ErrNotDir).
func testNotFile(t *testing.T, srv server) {
	e := srv.newEnv(t, false)
	s := e.open(t, client.Options{})
	defer s.Close()
	for _, name := range []string{"docs", "empty", "link"} {
		r, err := s.Open(name)
		wantErr(t, "Open("+name+")", err, client.ErrNotFile)
		if r != nil {
			t.Fatalf("Open(%q) returned a reader", name)
		}
	}
	if r, err := s.Stat("docs"); err != nil || r.Type != manifest.Dir {
		t.Fatalf("Stat(docs) = %+v, %v", r, err)
	}
	if r, err := s.Stat("link"); err != nil || r.Type != manifest.Symlink || r.Target != "hello.txt" {
		t.Fatalf("Stat(link) = %+v, %v", r, err)
	}
	if _, err := s.Open("link"); !strings.Contains(fmt.Sprint(err), `a symlink to "hello.txt"`) {
		t.Fatalf("Open(link): %v, want it to name the target", err)
	}
	for _, name := range []string{"hello.txt", "link"} {
		_, err := s.List(name)
		wantErr(t, "List("+name+")", err, client.ErrNotDir)
	}
}

// testPruned: once the pinned snapshot is pruned upstream, a read fails
// with ErrSnapshotGone, and so do Check and Close.
func testPruned(t *testing.T, srv server) {
	e := srv.newEnv(t, false)
	s := e.open(t, client.Options{})
	testutil.Touch(t, e.src, "hello.txt", "hello again, mirror\n")
	if n := e.publish(t, 1); n != 2 {
		t.Fatalf("publish made snapshot %d", n)
	}
	if _, err := os.Stat(e.root.SnapshotDir(1)); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("snapshot 1 not pruned: %v", err)
	}
	_, err := s.ReadFile("docs/README")
	wantErr(t, "ReadFile after the prune", err, client.ErrSnapshotGone)
	wantErr(t, "Check after the prune", s.Check(context.Background()), client.ErrSnapshotGone)
	wantErr(t, "Close after the prune", s.Close(), client.ErrSnapshotGone)
}

// testSuperseded: a newer snapshot served meanwhile changes nothing for a
// pinned reader (it reads snapshot 1's bytes), and Close is nil while
// snapshot 1 is still held; a new Open pins the new snapshot.
func testSuperseded(t *testing.T, srv server) {
	e := srv.newEnv(t, false)
	s := e.open(t, client.Options{})
	testutil.Touch(t, e.src, "hello.txt", "hello again, mirror\n")
	if n := e.publish(t, 3); n != 2 {
		t.Fatalf("publish made snapshot %d", n)
	}
	if b, err := s.ReadFile("hello.txt"); err != nil || string(b) != fixture["hello.txt"] {
		t.Fatalf("ReadFile of pinned snapshot 1 after 2 was published: %q, %v", b, err)
	}
	if err := s.Check(context.Background()); err != nil {
		t.Fatalf("Check of a superseded, held snapshot: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close of a superseded, held snapshot: %v", err)
	}
	s2 := e.open(t, client.Options{})
	defer s2.Close()
	if b, err := s2.ReadFile("hello.txt"); s2.N() != 2 || err != nil || string(b) != "hello again, mirror\n" {
		t.Fatalf("new Open: snapshot %d, %q, %v", s2.N(), b, err)
	}
}

// testReplaced: the root is rebuilt and serves another snapshot 1 (a
// rollback): the pinned reader gets ErrCorrupt for a file that changed,
// never the new bytes, and Check and Close say ErrSnapshotGone (the
// manifest is not the one read at open).
func testReplaced(t *testing.T, srv server) {
	e := srv.newEnv(t, false)
	s := e.open(t, client.Options{})
	if err := fsys.RemoveAll(fsys.OS(), e.root.Dir); err != nil {
		t.Fatal(err)
	}
	testutil.WriteTree(t, e.src, map[string]string{"hello.txt": "HELLO, MIRROR\n", "new.txt": "a new file\n"})
	if n := e.publish(t, 3); n != 1 {
		t.Fatalf("publish into the rebuilt root made snapshot %d", n)
	}
	b, err := s.ReadFile("hello.txt")
	wantErr(t, "ReadFile of a replaced file", err, client.ErrCorrupt)
	if b != nil {
		t.Fatalf("ReadFile of a replaced file returned %q", b)
	}
	wantErr(t, "Check of a replaced snapshot", s.Check(context.Background()), client.ErrSnapshotGone)
	wantErr(t, "Close of a replaced snapshot", s.Close(), client.ErrSnapshotGone)
}

// testOpenRefused: Open fails, with the right sentinel, on a root that
// serves nothing, a torn root (current dangling, or not a symlink), a
// corrupt manifest, and a path that does not exist.
func testOpenRefused(t *testing.T, srv server) {
	cases := []struct {
		name   string
		empty  bool
		damage func(t *testing.T, e *env)
		want   []error
		local  []error // wanted too over a path (others may say only that it is missing)
	}{
		{name: "no snapshot", empty: true, want: []error{client.ErrNoSnapshot}},
		{name: "current dangling", damage: func(t *testing.T, e *env) {
			testutil.Must(t, e.root.Flip(9))
			testutil.Must(t, e.root.WritePointer(9))
		}, want: []error{client.ErrCorrupt}},
		{name: "current not a symlink", damage: func(t *testing.T, e *env) {
			testutil.Must(t, os.Remove(e.root.Path(export.CurrentName)))
			testutil.Must(t, os.WriteFile(e.root.Path(export.CurrentName), []byte("snapshots/1\n"), 0o644))
			testutil.Must(t, os.WriteFile(e.root.PointerPath(), []byte("snapshots/1\n"), 0o644))
		}, want: []error{client.ErrCorrupt}},
		{name: "corrupt manifest", damage: func(t *testing.T, e *env) {
			testutil.CorruptInPlace(t, e.root.ManifestPath(1))
		}, want: []error{client.ErrCorrupt, manifest.ErrCorrupt}},
		{name: "no such root", damage: func(t *testing.T, e *env) {
			testutil.Must(t, fsys.RemoveAll(fsys.OS(), e.root.Dir))
		}, local: []error{client.ErrUnavailable}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := srv.newEnv(t, tc.empty)
			if tc.damage != nil {
				tc.damage(t, e)
			}
			scratch := t.TempDir()
			s, err := client.Open(context.Background(), e.addr, client.Options{ScratchDir: scratch})
			if srv.name == "local" {
				tc.want = append(tc.want, tc.local...)
			}
			wantErr(t, "Open", err, tc.want...)
			if s != nil {
				t.Fatal("Open returned a snapshot with its error")
			}
			if left, _ := os.ReadDir(scratch); len(left) != 0 {
				t.Fatalf("a failed Open left scratch behind: %v", left)
			}
		})
	}
}

// testClosed: after Close, what reaches the upstream fails with
// fs.ErrClosed, what reads the manifest in memory still works, and a
// reader opened before Close still reads.
func testClosed(t *testing.T, srv server) {
	e := srv.newEnv(t, false)
	s := e.open(t, client.Options{})
	r, err := s.Open("hello.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if b, err := io.ReadAll(r); err != nil || string(b) != fixture["hello.txt"] {
		t.Fatalf("a reader after Close: %q, %v", b, err)
	}
	_, err = s.Open("hello.txt")
	wantErr(t, "Open after Close", err, fs.ErrClosed)
	wantErr(t, "Check after Close", s.Check(context.Background()), fs.ErrClosed)
	wantErr(t, "Close again", s.Close(), fs.ErrClosed)
	if _, err := s.Stat("hello.txt"); err != nil {
		t.Fatalf("Stat after Close: %v", err)
	}
}

// testConcurrent: reads from several goroutines at once all get their
// file's bytes (the upstream is used by one at a time).
func testConcurrent(t *testing.T, srv server) {
	e := srv.newEnv(t, false)
	s := e.open(t, client.Options{})
	defer s.Close()
	var wg sync.WaitGroup
	errs := make(chan error, 6)
	for range 2 {
		for _, name := range []string{"hello.txt", "docs/README", "docs/sub/deep.txt"} {
			wg.Go(func() {
				if b, err := s.ReadFile(name); err != nil || string(b) != fixture[name] {
					errs <- fmt.Errorf("ReadFile(%s) = %q, %v", name, b, err)
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// noProber hides the upstream's Prober, as a transport without one would
// have it.
type noProber struct{ transport.Upstream }

// TestCheckWithoutProber: over an upstream that cannot stat, Check fetches
// the pinned snapshot's manifest again: nil while it is held, the same;
// ErrSnapshotGone once it is pruned or another manifest has its number.
func TestCheckWithoutProber(t *testing.T) {
	srv := server{name: "local", base: t.TempDir()}
	srv.addr = func(rel string) string { return filepath.Join(srv.base, rel) }
	cases := []struct {
		name   string
		change func(t *testing.T, e *env)
		want   error
	}{
		{name: "served", change: func(*testing.T, *env) {}},
		{name: "superseded, held", change: func(t *testing.T, e *env) {
			testutil.Touch(t, e.src, "hello.txt", "hello again, mirror\n")
			e.publish(t, 3)
		}},
		{name: "pruned", change: func(t *testing.T, e *env) {
			testutil.Touch(t, e.src, "hello.txt", "hello again, mirror\n")
			e.publish(t, 1)
		}, want: client.ErrSnapshotGone},
		{name: "another snapshot 1", change: func(t *testing.T, e *env) {
			testutil.Must(t, fsys.RemoveAll(fsys.OS(), e.root.Dir))
			testutil.WriteTree(t, e.src, map[string]string{"new.txt": "a new file\n"})
			e.publish(t, 3)
			testutil.Touch(t, e.src, "hello.txt", "hello again, mirror\n")
			e.publish(t, 3)
		}, want: client.ErrSnapshotGone},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := srv.newEnv(t, false)
			up, err := transport.Open(e.addr, fsys.OS(), transport.Options{})
			testutil.Must(t, err)
			scratch, err := os.MkdirTemp(t.TempDir(), "scratch-")
			testutil.Must(t, err)
			s, err := client.OpenUpstream(context.Background(), e.addr, noProber{up}, scratch)
			testutil.Must(t, err)
			tc.change(t, e)
			err = s.Close()
			if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("Close: %v, want %v", err, tc.want)
			}
		})
	}
}

// lyingUpstream is a broken transport: its Fetch reports success and
// leaves, at the file's path, what lie puts there.
type lyingUpstream struct {
	transport.Upstream
	lie func(p string) error
}

func (l lyingUpstream) Fetch(ctx context.Context, n uint64, files []manifest.Entry, dir string) error {
	if err := l.Upstream.Fetch(ctx, n, files, dir); err != nil {
		return err
	}
	for _, f := range files {
		if err := l.lie(filepath.Join(dir, filepath.FromSlash(f.Path))); err != nil {
			return err
		}
	}
	return nil
}

// TestLyingTransport: the client checks a fetched file itself, so a
// transport that leaves wrong bytes (or none, or a symlink) and reports
// success still gives the reader an error and no reader.
func TestLyingTransport(t *testing.T) {
	srv := server{name: "local", base: t.TempDir()}
	srv.addr = func(rel string) string { return filepath.Join(srv.base, rel) }
	outside := filepath.Join(t.TempDir(), "outside")
	testutil.Must(t, os.WriteFile(outside, []byte(fixture["hello.txt"]), 0o644))
	lies := []struct {
		name string
		lie  func(p string) error
		want []error
	}{
		{name: "same size, other bytes", lie: func(p string) error {
			return os.WriteFile(p, []byte(strings.ToUpper(fixture["hello.txt"])), 0o644)
		}, want: []error{client.ErrCorrupt, tree.ErrHashMismatch}},
		{name: "longer", lie: func(p string) error {
			return os.WriteFile(p, []byte(fixture["hello.txt"]+"more"), 0o644)
		}, want: []error{client.ErrCorrupt, tree.ErrHashMismatch}},
		{name: "shorter", lie: func(p string) error {
			return os.WriteFile(p, []byte("hel"), 0o644)
		}, want: []error{client.ErrCorrupt, tree.ErrHashMismatch}},
		{name: "nothing", lie: os.Remove, want: []error{fs.ErrNotExist}},
		{name: "a symlink to the right bytes", lie: func(p string) error {
			return errors.Join(os.Remove(p), os.Symlink(outside, p))
		}},
	}
	for _, tc := range lies {
		t.Run(tc.name, func(t *testing.T) {
			e := srv.newEnv(t, false)
			up, err := transport.Open(e.addr, fsys.OS(), transport.Options{})
			testutil.Must(t, err)
			scratch, err := os.MkdirTemp(t.TempDir(), "scratch-")
			testutil.Must(t, err)
			s, err := client.OpenUpstream(context.Background(), e.addr, lyingUpstream{up, tc.lie}, scratch)
			testutil.Must(t, err)
			defer s.Close()
			r, err := s.Open("hello.txt")
			wantErr(t, "Open through a lying transport", err, tc.want...)
			if r != nil {
				t.Fatal("Open through a lying transport returned a reader")
			}
		})
	}
}
