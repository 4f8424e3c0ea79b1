package mirror_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/seqmirror/seqmirror/internal/export"
	"github.com/seqmirror/seqmirror/internal/filter"
	"github.com/seqmirror/seqmirror/internal/fsys"
	"github.com/seqmirror/seqmirror/internal/mirror"
	"github.com/seqmirror/seqmirror/internal/transport"
	"github.com/seqmirror/seqmirror/testutil"
)

// partialFiles is a master's tree: two repositories and a top file.
var partialFiles = map[string]string{
	"README":                   "read me\n",
	"scm/a.git/HEAD":           "ref: refs/heads/main\n",
	"scm/a.git/objects/pack/p": "pack a",
	"scm/b.git/HEAD":           "ref: refs/heads/b\n",
	"scm/b.git/objects/x":      "object b",
	"iso/big.iso":              "an image",
}

func mustFilter(tb testing.TB, rules ...string) *filter.Filter {
	tb.Helper()
	f, err := filter.Parse(rules)
	testutil.Must(tb, err)
	return f
}

// onlyA and aAndB are the filters the tests narrow and widen between.
var (
	onlyA = []string{"+ /scm/", "+ /scm/a.git/", "+ /scm/a.git/**", "- *"}
	aAndB = []string{"+ /scm/", "+ /scm/a.git/", "+ /scm/a.git/**", "+ /scm/b.git/", "+ /scm/b.git/**", "- *"}
)

// files lists the regular files of r's served snapshot.
func files(tb testing.TB, r *export.Root) string {
	tb.Helper()
	n := current(tb, r)
	var out []string
	dir := r.SnapshotDir(n)
	testutil.Must(tb, filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, filepath.ToSlash(rel))
		}
		return err
	}))
	return strings.Join(out, " ")
}

// checkPartial checks r's served snapshot: its full manifest is the
// master's manifest byte for byte, its manifest exactly what its filter
// chain keeps of it, and its tree exactly its manifest.
func checkPartial(tb testing.TB, r, master *export.Root, want filter.Chain) {
	tb.Helper()
	n := current(tb, r)
	full, err := os.ReadFile(r.FullPath(n))
	testutil.Must(tb, err)
	orig, err := os.ReadFile(master.ManifestPath(n))
	testutil.Must(tb, err)
	if fi, err := os.Stat(r.FullPath(n)); err != nil || fi.Mode().Perm() != 0o644 {
		tb.Fatalf("%s: %v, want mode 0644 (served to every user, as the manifest)", r.FullPath(n), err)
	}
	if !bytes.Equal(full, orig) {
		tb.Fatalf("%s is not the master's manifest byte for byte", r.FullPath(n))
	}
	c, ok, err := r.SnapshotFilter(n)
	if err != nil || !ok || !c.Equal(want) {
		tb.Fatalf("filter of snapshot %d: %v %v %v, want %v", n, c.Rules(), ok, err, want.Rules())
	}
	sub, err := os.ReadFile(r.ManifestPath(n))
	testutil.Must(tb, err)
	if err := filter.CheckExact(bytes.NewReader(full), bytes.NewReader(sub), c); err != nil {
		tb.Fatalf("CheckExact: %v", err)
	}
	verifyServed(tb, r)
}

func TestPartialMirrorConverges(t *testing.T) {
	w := newWorld(t, partialFiles)
	n := w.publish(t)
	opt := opts()
	opt.Filter = mustFilter(t, onlyA...)
	res, err := w.sync(t, opt)
	testutil.Must(t, err)
	if got, want := files(t, w.mir), "scm/a.git/HEAD scm/a.git/objects/pack/p"; got != want || res.Fetched != 2 {
		t.Fatalf("first sync: files %q fetched %d, want %q and 2", got, res.Fetched, want)
	}
	checkPartial(t, w.mir, w.up, filter.Of(opt.Filter))
	st, err := w.mir.Status()
	testutil.Must(t, err)
	if st.Partial == nil || st.Partial.Filter != opt.Filter.String() {
		t.Fatalf("status partial %+v, want the filter %q", st.Partial, opt.Filter)
	}

	// The same filter: a no-op, on the record.
	if res, err = w.sync(t, opt); err != nil || res.Changed {
		t.Fatalf("no-op poll: %+v %v", res, err)
	}

	// Widen: only b.git's two files are fetched, the rest linked; the
	// upstream still serves n.
	opt.Filter = mustFilter(t, aAndB...)
	res, err = w.sync(t, opt)
	testutil.Must(t, err)
	if !res.Changed || res.Snapshot != n || res.Fetched != 2 || res.Linked != 2 {
		t.Fatalf("widen: %+v, want snapshot %d again with 2 fetched and 2 linked", res, n)
	}
	if got, want := files(t, w.mir), "scm/a.git/HEAD scm/a.git/objects/pack/p scm/b.git/HEAD scm/b.git/objects/x"; got != want {
		t.Fatalf("widen: files %q, want %q", got, want)
	}
	checkPartial(t, w.mir, w.up, filter.Of(opt.Filter))
	if _, err := os.Stat(w.mir.Path(export.ReplacingName)); !os.IsNotExist(err) {
		t.Fatalf("%s left behind: %v", export.ReplacingName, err)
	}

	// Narrow (past the delete guard: it is the filter's doing): nothing fetched.
	opt.Filter = mustFilter(t, onlyA...)
	opt.MaxDelete = 0
	res, err = w.sync(t, opt)
	testutil.Must(t, err)
	if !res.Changed || res.Fetched != 0 || res.Deleted == 0 {
		t.Fatalf("narrow: %+v, want a new copy of the snapshot, nothing fetched", res)
	}
	if got, want := files(t, w.mir), "scm/a.git/HEAD scm/a.git/objects/pack/p"; got != want {
		t.Fatalf("narrow: files %q, want %q", got, want)
	}
	checkPartial(t, w.mir, w.up, filter.Of(opt.Filter))

	// No filter at all: the whole snapshot, and no partial files left.
	opt.Filter = nil
	res, err = w.sync(t, opt)
	testutil.Must(t, err)
	if res.Fetched != 4 {
		t.Fatalf("whole again: %+v, want the 4 files left out fetched", res)
	}
	for _, p := range []string{w.mir.FullPath(n), w.mir.FilterPath(n)} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Fatalf("%s still there on a whole mirror: %v", p, err)
		}
	}
	if res, err = w.sync(t, opt); err != nil || res.Changed {
		t.Fatalf("no-op poll of the whole mirror: %+v %v", res, err)
	}
}

func TestPartialMirrorNextSnapshot(t *testing.T) {
	w := newWorld(t, partialFiles)
	w.publish(t)
	opt := opts()
	opt.Filter = mustFilter(t, onlyA...)
	_, err := w.sync(t, opt)
	testutil.Must(t, err)
	testutil.WriteTree(t, w.src, map[string]string{"scm/a.git/HEAD": "ref: refs/heads/next\n", "scm/b.git/HEAD": "changed\n", "README": "new\n"})
	n := w.publish(t)
	res, err := w.sync(t, opt)
	testutil.Must(t, err)
	if res.Snapshot != n || res.Fetched != 1 {
		t.Fatalf("next snapshot: %+v, want %d with only a.git/HEAD fetched", res, n)
	}
	checkPartial(t, w.mir, w.up, filter.Of(opt.Filter))
}

// tier2 syncs mir from the tier-1 mirror up.
func tier2(tb testing.TB, up, mir *export.Root, opt mirror.Options) (mirror.Result, error) {
	tb.Helper()
	u, err := transport.NewLocal(fsys.OS(), up.Dir)
	testutil.Must(tb, err)
	defer u.Close()
	return mirror.Sync(context.Background(), mir, u, opt)
}

func TestPartialTwoTiers(t *testing.T) {
	w := newWorld(t, partialFiles)
	w.publish(t)
	opt1 := opts()
	opt1.Filter = mustFilter(t, aAndB...)
	_, err := w.sync(t, opt1)
	testutil.Must(t, err)

	// Tier 2 narrows further: its chain is tier 1's filter then its own.
	t2 := export.New(fsys.OS(), filepath.Join(t.TempDir(), "t2"))
	opt2 := opts()
	opt2.Filter = mustFilter(t, "- /scm/b.git/")
	res, err := tier2(t, w.mir, t2, opt2)
	testutil.Must(t, err)
	if got, want := files(t, t2), "scm/a.git/HEAD scm/a.git/objects/pack/p"; got != want {
		t.Fatalf("tier 2: files %q, want %q", got, want)
	}
	chain := filter.Of(opt1.Filter, opt2.Filter)
	checkPartial(t, t2, w.up, chain)
	// Its own filter wants README, iso/ and iso/big.iso, which tier 1 leaves out.
	if res.Filter != chain.String() || res.Missing != 3 {
		t.Fatalf("tier 2 result %+v, want the chain %q and 3 missing", res, chain)
	}

	// A tier 3 with no filter of its own is still partial: tier 2's chain.
	t3 := export.New(fsys.OS(), filepath.Join(t.TempDir(), "t3"))
	_, err = tier2(t, t2, t3, opts())
	testutil.Must(t, err)
	checkPartial(t, t3, w.up, chain)

	// Tier 1 narrows to a only: tier 2 follows, fetching nothing, and its
	// no-op poll afterwards is one on the record.
	opt1.Filter = mustFilter(t, onlyA...)
	opt1.MaxDelete = 1
	_, err = w.sync(t, opt1)
	testutil.Must(t, err)
	res, err = tier2(t, w.mir, t2, opt2)
	testutil.Must(t, err)
	if !res.Changed || res.Fetched != 0 {
		t.Fatalf("tier 2 after tier 1 narrowed: %+v, want a new copy with nothing fetched", res)
	}
	checkPartial(t, t2, w.up, filter.Of(opt1.Filter, opt2.Filter))
	if res, err = tier2(t, w.mir, t2, opt2); err != nil || res.Changed {
		t.Fatalf("tier 2 no-op: %+v %v", res, err)
	}
}

// A downstream cannot widen: what its filter wants beyond its upstream's
// is reported, not fetched, and not an error.
func TestPartialRefusesToWiden(t *testing.T) {
	w := newWorld(t, partialFiles)
	w.publish(t)
	opt1 := opts()
	opt1.Filter = mustFilter(t, onlyA...)
	_, err := w.sync(t, opt1)
	testutil.Must(t, err)
	t2 := export.New(fsys.OS(), filepath.Join(t.TempDir(), "t2"))
	opt2 := opts()
	opt2.Filter = mustFilter(t, "- *.iso")
	res, err := tier2(t, w.mir, t2, opt2)
	testutil.Must(t, err)
	if got, want := files(t, t2), "scm/a.git/HEAD scm/a.git/objects/pack/p"; got != want {
		t.Fatalf("tier 2: files %q, want %q (never more than its upstream)", got, want)
	}
	// README, iso/, scm/b.git, its HEAD, objects/ and x: wanted, not carried.
	if res.Missing != 6 {
		t.Fatalf("tier 2 result %+v, want 6 missing", res)
	}
	checkPartial(t, t2, w.up, filter.Of(opt1.Filter, opt2.Filter))
}

// A replace cut short (ROOT/.replacing left, the tree not what its
// manifest says): the next run links nothing from it and builds it again.
func TestPartialReplaceCutShort(t *testing.T) {
	w := newWorld(t, partialFiles)
	n := w.publish(t)
	opt := opts()
	opt.Filter = mustFilter(t, onlyA...)
	_, err := w.sync(t, opt)
	testutil.Must(t, err)
	testutil.Must(t, os.WriteFile(w.mir.Path(export.ReplacingName), []byte(fmt.Sprint(n)), 0o644))
	testutil.Must(t, os.Remove(filepath.Join(w.mir.SnapshotDir(n), "scm/a.git/HEAD")))
	res, err := w.sync(t, opt)
	testutil.Must(t, err)
	if !res.Changed || res.Snapshot != n || res.Fetched != 2 || res.Linked != 0 {
		t.Fatalf("after a cut-short replace: %+v, want snapshot %d built again, both files fetched, none linked", res, n)
	}
	checkPartial(t, w.mir, w.up, filter.Of(opt.Filter))
	if w.mir.Replacing() != 0 {
		t.Fatalf("%s still there", export.ReplacingName)
	}
	if res, err = w.sync(t, opt); err != nil || res.Changed {
		t.Fatalf("no-op after: %+v %v", res, err)
	}
}

// Several partial upstreams (failover) are told apart by the master's
// snapshot they hold (their full manifests), not by their subsets: two
// tier-1 mirrors with other filters are level, and the tier 2 follows the
// one serving the newest snapshot, with that one's subset.
func TestPartialFailover(t *testing.T) {
	w := newWorld(t, partialFiles)
	w.publish(t)
	t1b := export.New(fsys.OS(), filepath.Join(t.TempDir(), "t1b"))
	optA, optB := opts(), opts()
	optA.Filter, optB.Filter = mustFilter(t, onlyA...), mustFilter(t, aAndB...)
	_, err := w.sync(t, optA)
	testutil.Must(t, err)
	_, err = syncFrom(t, w.up, t1b, optB)
	testutil.Must(t, err)

	t2 := export.New(fsys.OS(), filepath.Join(t.TempDir(), "t2"))
	both := func() (mirror.Result, error) {
		var ups []transport.Upstream
		for _, r := range []*export.Root{w.mir, t1b} {
			u, err := transport.NewLocal(fsys.OS(), r.Dir)
			testutil.Must(t, err)
			defer u.Close()
			ups = append(ups, u)
		}
		return mirror.SyncFrom(context.Background(), t2, ups, opts())
	}
	res, err := both()
	testutil.Must(t, err)
	if res.Upstream != w.mir.Dir || files(t, t2) != "scm/a.git/HEAD scm/a.git/objects/pack/p" {
		t.Fatalf("first sync: %+v, files %q; want the first upstream's subset", res, files(t, t2))
	}
	for _, p := range res.Upstreams {
		if p.State == export.PolledDiverged {
			t.Fatalf("a partial upstream of the same snapshot is diverged: %+v", res.Upstreams)
		}
	}
	if res, err = both(); err != nil || res.Changed {
		t.Fatalf("no-op with two partial upstreams: %+v %v", res, err)
	}

	// Only t1b gets the next snapshot: the tier 2 follows it, its subset.
	testutil.WriteTree(t, w.src, map[string]string{"scm/b.git/HEAD": "changed\n"})
	n := w.publish(t)
	_, err = syncFrom(t, w.up, t1b, optB)
	testutil.Must(t, err)
	res, err = both()
	testutil.Must(t, err)
	if res.Snapshot != n || res.Upstream != t1b.Dir {
		t.Fatalf("after t1b moved on: %+v, want snapshot %d from %s", res, n, t1b.Dir)
	}
	checkPartial(t, t2, w.up, filter.Of(optB.Filter))
}
