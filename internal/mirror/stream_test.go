package mirror_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/seqmirror/seqmirror/internal/export"
	"github.com/seqmirror/seqmirror/internal/fsys"
	"github.com/seqmirror/seqmirror/internal/mirror"
	"github.com/seqmirror/seqmirror/internal/transport"
	"github.com/seqmirror/seqmirror/internal/tree"
	"github.com/seqmirror/seqmirror/manifest"
	"github.com/seqmirror/seqmirror/snapshot"
	"github.com/seqmirror/seqmirror/testutil"
)

type fixture struct {
	src, up, m string
	upRoot     *export.Root
	mRoot      *export.Root
	upstream   transport.Upstream
	paths      []string
}

func newFixture(tb testing.TB, n int) *fixture {
	tb.Helper()
	dir := tb.TempDir()
	fx := &fixture{src: filepath.Join(dir, "src"), up: filepath.Join(dir, "up"), m: filepath.Join(dir, "m")}
	fx.paths = testutil.GenTree(tb, fx.src, n, 1)
	testutil.WriteTree(tb, fx.src, map[string]string{"d00/link": "->s00", "top": "->d01/s01"})
	f := fsys.OS()
	fx.upRoot, fx.mRoot = export.New(f, fx.up), export.New(f, fx.m)
	fx.publish(tb)
	up, err := transport.Open(fx.up, f, transport.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	fx.upstream = up
	fx.sync(tb, keep10())
	return fx
}

func (fx *fixture) publish(tb testing.TB) snapshot.PublishResult {
	tb.Helper()
	opt := snapshot.DefaultOptions()
	opt.Keep, opt.MaxDelete = 10, 1
	r, err := snapshot.Publish(context.Background(), fx.upRoot, fx.src, opt)
	if err != nil {
		tb.Fatal(err)
	}
	return r
}

// keep10 is the fixture's options: the defaults, keeping 10 snapshots.
func keep10() mirror.Options {
	o := mirror.DefaultOptions()
	o.Keep = 10
	return o
}

// forced is o with the delete guard off.
func forced(o mirror.Options) mirror.Options {
	o.Force = true
	return o
}

// retryFast is o with one retry after a millisecond.
func retryFast(o mirror.Options) mirror.Options {
	o.Retries, o.Backoff = 1, time.Millisecond
	return o
}

func (fx *fixture) sync(tb testing.TB, opt mirror.Options) mirror.Result {
	tb.Helper()
	r, err := mirror.Sync(context.Background(), fx.mRoot, fx.upstream, opt)
	if err != nil {
		tb.Fatal(err)
	}
	return r
}

// mutate rewrites every 100th file, deletes every 400th+1, adds a few, and
// changes a symlink and a directory's mode.
func (fx *fixture) mutate(tb testing.TB) (changed, deleted, added int) {
	tb.Helper()
	for i, p := range fx.paths {
		switch {
		case i%100 == 0:
			testutil.Touch(tb, fx.src, p, fmt.Sprintf("changed %d", i))
			changed++
		case i%400 == 1:
			if err := os.Remove(filepath.Join(fx.src, filepath.FromSlash(p))); err != nil {
				tb.Fatal(err)
			}
			deleted++
		}
	}
	for i := 0; i < max(1, len(fx.paths)/400); i++ {
		testutil.WriteTree(tb, fx.src, map[string]string{fmt.Sprintf("new/d%d/n%d", i%3, i): "new"})
		added++
	}
	os.Remove(filepath.Join(fx.src, "top"))
	testutil.WriteTree(tb, fx.src, map[string]string{"top": "->d02"})
	if err := os.Chmod(filepath.Join(fx.src, "d01"), 0o750); err != nil {
		tb.Fatal(err)
	}
	return
}

func verifyServed(tb testing.TB, root *export.Root) {
	tb.Helper()
	n, err := root.Current()
	if err != nil {
		tb.Fatal(err)
	}
	m, err := root.ReadManifest(n)
	if err != nil {
		tb.Fatal(err)
	}
	probs, err := tree.Verify(context.Background(), root.FS, root.SnapshotDir(n), m, 2)
	if err != nil {
		tb.Fatal(err)
	}
	if len(probs) > 0 {
		tb.Fatalf("snapshot %d differs from its manifest: %v", n, probs)
	}
}

func TestSyncIncremental(t *testing.T) {
	fx := newFixture(t, 2000)
	verifyServed(t, fx.mRoot)
	changed, deleted, added := fx.mutate(t)
	fx.publish(t)
	r := fx.sync(t, keep10())
	if r.Snapshot != 2 || !r.Changed {
		t.Fatalf("result %+v, want snapshot 2", r)
	}
	// Directories d00..d06 with subdirectories s00..s04 hold the generated files.
	if r.Fetched != changed+added || r.Linked != 2000-changed-deleted {
		t.Errorf("fetched %d linked %d, want %d and %d", r.Fetched, r.Linked, changed+added, 2000-changed-deleted)
	}
	if r.Deleted != deleted {
		t.Errorf("deleted %d, want %d", r.Deleted, deleted)
	}
	verifyServed(t, fx.mRoot)
	up, _ := fx.upRoot.ReadManifest(2)
	got, _ := fx.mRoot.ReadManifest(2)
	a, _ := up.Bytes()
	b, _ := got.Bytes()
	if string(a) != string(b) {
		t.Fatal("mirror's manifest differs from the upstream's")
	}
	if r2 := fx.sync(t, keep10()); r2.Changed {
		t.Fatalf("second sync changed something: %+v", r2)
	}
}

func TestSyncDeleteGuard(t *testing.T) {
	fx := newFixture(t, 200)
	for _, p := range fx.paths[:150] {
		os.Remove(filepath.Join(fx.src, filepath.FromSlash(p)))
	}
	fx.publish(t)
	_, err := mirror.Sync(context.Background(), fx.mRoot, fx.upstream, keep10())
	if !errors.Is(err, mirror.ErrTooManyDeletes) || !strings.Contains(err.Error(), "deletes 150 of 200 files") {
		t.Fatalf("got %v, want the delete guard", err)
	}
	if n, _ := fx.mRoot.Current(); n != 1 {
		t.Fatalf("serving %d after a refused sync", n)
	}
	fx.sync(t, forced(keep10()))
	verifyServed(t, fx.mRoot)
}

// A damaged served manifest is reported as such, and nothing is built.
func TestSyncServedManifestCorrupt(t *testing.T) {
	fx := newFixture(t, 100)
	fx.mutate(t)
	fx.publish(t)
	p := fx.mRoot.ManifestPath(1)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(p, 0o644)
	if err := os.WriteFile(p, []byte(strings.Replace(string(b), "d00", "d0X", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = mirror.Sync(context.Background(), fx.mRoot, fx.upstream, retryFast(keep10()))
	if !errors.Is(err, manifest.ErrCorrupt) && !errors.Is(err, manifest.ErrUnsafePath) || !strings.Contains(err.Error(), "served snapshot: manifest ") {
		t.Fatalf("got %v, want a served-manifest error", err)
	}
}

// A damaged upstream manifest is refused before anything is built, even when
// the damage is only in its last line.
func TestSyncUpstreamManifestCorrupt(t *testing.T) {
	fx := newFixture(t, 100)
	fx.mutate(t)
	fx.publish(t)
	p := fx.upRoot.ManifestPath(2)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(p, 0o644)
	b[len(b)-2] ^= 1 // checksum digit
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = mirror.Sync(context.Background(), fx.mRoot, fx.upstream, keep10())
	if !errors.Is(err, manifest.ErrCorrupt) || !strings.Contains(err.Error(), "manifest of snapshot 2: ") {
		t.Fatalf("got %v, want an upstream-manifest error", err)
	}
	if ents, _ := os.ReadDir(fx.mRoot.WorkDir()); len(ents) > 1 {
		t.Fatalf("work dir holds %v after a refused manifest", ents)
	}
}

// BenchmarkSyncIncremental measures a mirror sync of a ~1% change: the diff,
// the link farm of unchanged files and the fetch of changed ones.
func BenchmarkSyncIncremental(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("files=%d", n), func(b *testing.B) {
			fx := newFixture(b, n)
			fx.mutate(b)
			fx.publish(b)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				resetTo(b, fx.mRoot, 1)
				b.StartTimer()
				if r := fx.sync(b, keep10()); r.Snapshot != 2 {
					b.Fatalf("synced to %d", r.Snapshot)
				}
			}
		})
	}
}

// resetTo makes root serve snapshot n again and drops newer snapshots.
func resetTo(tb testing.TB, root *export.Root, n uint64) {
	tb.Helper()
	snaps, err := root.Snapshots()
	if err != nil {
		tb.Fatal(err)
	}
	for _, s := range snaps {
		if s > n {
			if err := fsys.RemoveAll(root.FS, root.SnapshotDir(s)); err != nil {
				tb.Fatal(err)
			}
			os.Remove(root.ManifestPath(s))
		}
	}
	if err := root.Flip(n); err != nil {
		tb.Fatal(err)
	}
}

// Fetches go to the upstream in chunks while the diff streams; the result
// is the same tree.
func TestSyncChunkedFetch(t *testing.T) {
	fx := newFixture(t, 300)
	verifyServed(t, fx.mRoot)
	changed, _, added := fx.mutate(t)
	fx.publish(t)
	if r := fx.sync(t, keep10().WithLimits(7, 0)); r.Fetched != changed+added {
		t.Fatalf("fetched %d, want %d", r.Fetched, changed+added)
	}
	verifyServed(t, fx.mRoot)
}

// Pass 2 builds the same tree, with the same counts, whether pass 1 kept
// the whole plan, kept the fetch list only, or kept nothing.
func TestSyncPlanModes(t *testing.T) {
	tests := []struct {
		name             string
		fetchChunk, cap_ int // 0: default
	}{
		{name: "whole plan"},
		{name: "links streamed", cap_: 10},
		{name: "fetch streamed", fetchChunk: 2},
		{name: "both streamed", fetchChunk: 2, cap_: 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fx := newFixture(t, 400)
			files := len(fx.paths)
			changed, deleted, added := fx.mutate(t)
			fx.publish(t)
			r := fx.sync(t, forced(keep10()).WithLimits(tt.fetchChunk, tt.cap_))
			if r.Fetched != changed+added {
				t.Errorf("fetched %d, want %d", r.Fetched, changed+added)
			}
			if want := files - changed - deleted; r.Linked != want {
				t.Errorf("linked %d, want %d", r.Linked, want)
			}
			if r.Deleted < deleted {
				t.Errorf("deleted %d, want at least the %d files removed", r.Deleted, deleted)
			}
			verifyServed(t, fx.mRoot)
		})
	}
}
