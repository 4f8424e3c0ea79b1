package ha_test

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/seqmirror/seqmirror/internal/export"
	"github.com/seqmirror/seqmirror/internal/fsys"
	"github.com/seqmirror/seqmirror/internal/ha"
	"github.com/seqmirror/seqmirror/internal/mirror"
	"github.com/seqmirror/seqmirror/internal/transport"
	"github.com/seqmirror/seqmirror/snapshot"
	"github.com/seqmirror/seqmirror/testutil"
)

// syncLocal is the CLI's sync for roots on this disk (mirror.SyncFrom).
func syncLocal(ctx context.Context, root *export.Root, addrs []string) error {
	var ups []transport.Upstream
	for _, a := range addrs {
		up, err := transport.Open(a, root.FS, transport.Options{})
		if err != nil {
			return err
		}
		defer up.Close()
		ups = append(ups, up)
	}
	opt := mirror.DefaultOptions()
	opt.Retries = 0
	_, err := mirror.SyncFrom(ctx, root, ups, opt)
	return err
}

// publish publishes src into root as node n's leader (Claim before the
// flip); stop, if set, cancels the run after the claim and before the
// flip (a crash there).
func publish(t *testing.T, n *ha.Node, root *export.Root, src string, stop bool) error {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	opt := snapshot.DefaultOptions()
	opt.Claim, opt.TakeOver = n.Claim, true
	if stop {
		opt.BeforeFlip = func(uint64) { cancel() }
	}
	_, err := snapshot.Publish(ctx, root, src, opt)
	return err
}

// TestHold: a new leader serves the group's head before it publishes:
// it flips to the head it recorded and did not flip (a crash between its
// claim and its flip), syncs it from a live master that announces it, or
// refuses with ErrBehind when no live master has it.
func TestHold(t *testing.T) {
	e := testutil.StartEtcd(t)
	ctx := context.Background()
	tmp := t.TempDir()
	src := filepath.Join(tmp, "src")
	testutil.WriteTree(t, src, map[string]string{"a.txt": "one\n"})
	rootA, rootB, rootC := export.New(fsys.OS(), filepath.Join(tmp, "a")), export.New(fsys.OS(), filepath.Join(tmp, "b")), export.New(fsys.OS(), filepath.Join(tmp, "c"))
	a := join(t, e.ClientURL, "a", rootA.Dir)
	testutil.Must(t, a.TryLead(ctx, testTTL))
	testutil.Must(t, publish(t, a, rootA, src, false))

	// Snapshot 2 recorded, then the run stops before its flip.
	testutil.WriteTree(t, src, map[string]string{"a.txt": "two\n"})
	if err := publish(t, a, rootA, src, true); err == nil {
		t.Fatal("the stopped publish succeeded")
	}
	if n, _ := rootA.Current(); n != 1 || !rootA.Complete(2) {
		t.Fatalf("a serves %d (complete 2: %v), want 1 with 2 complete", n, rootA.Complete(2))
	}
	if h, _, _ := a.Head(ctx); h.Snapshot != 2 {
		t.Fatalf("head %d, want 2", h.Snapshot)
	}
	tests := []struct {
		name  string
		node  *ha.Node
		root  *export.Root
		setup func()
		want  error
	}{
		{name: "flip to the recorded snapshot left unflipped", node: a, root: rootA},
		{name: "sync from the live master", node: join(t, e.ClientURL, "b"), root: rootB, setup: func() {
			s, d, err := ha.Served(rootA)
			testutil.Must(t, err)
			testutil.Must(t, a.Announce(ctx, s, d))
		}},
		{name: "no live master has it", node: join(t, e.ClientURL, "c"), root: rootC, setup: func() { a.Close() }, want: ha.ErrBehind},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.setup != nil {
				tt.setup()
			}
			err := tt.node.Hold(ctx, tt.root, syncLocal)
			if !errors.Is(err, tt.want) || (tt.want == nil && err != nil) {
				t.Fatalf("Hold: %v, want %v", err, tt.want)
			}
			if n, _ := tt.root.Current(); tt.want == nil && n != 2 {
				t.Fatalf("serves %d after Hold, want 2", n)
			}
		})
	}
}

// TestRefusedClaimServesNothing: a publish whose claim fails (here: its
// master does not lead) does not flip, and the snapshot it built is gone.
func TestRefusedClaimServesNothing(t *testing.T) {
	e := testutil.StartEtcd(t)
	tmp := t.TempDir()
	src := filepath.Join(tmp, "src")
	testutil.WriteTree(t, src, map[string]string{"a.txt": "one\n"})
	root := export.New(fsys.OS(), filepath.Join(tmp, "b"))
	b := join(t, e.ClientURL, "b")
	testutil.Must(t, b.TryLead(context.Background(), testTTL))
	testutil.Must(t, publish(t, b, root, src, false))
	b2 := join(t, e.ClientURL, "b2")
	testutil.WriteTree(t, src, map[string]string{"a.txt": "two\n"})
	err := publish(t, b2, root, src, false)
	if !errors.Is(err, ha.ErrNotLeader) {
		t.Fatalf("publish by a master that does not lead: %v, want ErrNotLeader", err)
	}
	if n, _ := root.Current(); n != 1 {
		t.Errorf("serves %d, want 1", n)
	}
	if snaps, _ := root.Snapshots(); len(snaps) != 1 {
		t.Errorf("complete snapshots %v, want only 1", snaps)
	}
}

// TestRun: two masters in Run; the first leads and publishes, the other
// follows it; when the leader stops (Close resigns), the other leads and
// publishes the next change.
func TestRun(t *testing.T) {
	e := testutil.StartEtcd(t)
	tmp := t.TempDir()
	src := filepath.Join(tmp, "src")
	testutil.WriteTree(t, src, map[string]string{"a.txt": "one\n"})
	roots := []*export.Root{export.New(fsys.OS(), filepath.Join(tmp, "a")), export.New(fsys.OS(), filepath.Join(tmp, "b"))}
	roles := ha.Roles{Sync: syncLocal, Interval: 50 * time.Millisecond,
		Publish: func(ctx context.Context, root *export.Root, claim func(context.Context, uint64, string) error) error {
			opt := snapshot.DefaultOptions()
			opt.Claim, opt.TakeOver, opt.Retries = claim, true, 0
			_, err := snapshot.Publish(ctx, root, src, opt)
			return err
		}}
	stops := make([]context.CancelFunc, 2)
	var wg sync.WaitGroup
	for i, name := range []string{"a", "b"} {
		n := join(t, e.ClientURL, name, roots[i].Dir)
		ctx, cancel := context.WithCancel(context.Background())
		stops[i] = cancel
		wg.Add(1)
		go func() { defer wg.Done(); _ = n.Run(ctx, roots[i], roles); n.Close() }()
		if i == 0 {
			waitFor(t, func() bool { n, _ := roots[0].Current(); return n == 1 })
		}
	}
	defer func() { stops[1](); wg.Wait() }()
	waitFor(t, func() bool { n, _ := roots[1].Current(); return n == 1 }) // b follows a
	stops[0]()
	testutil.WriteTree(t, src, map[string]string{"a.txt": "two\n"})
	waitFor(t, func() bool { n, _ := roots[1].Current(); return n == 2 }) // b leads
	if n, _ := roots[0].Current(); n != 1 {
		t.Errorf("a, stopped, serves %d", n)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 15s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestResolve: a snapshot kept after a claim that got no answer stays if
// the group recorded it with its manifest, and is removed otherwise.
func TestResolve(t *testing.T) {
	e := testutil.StartEtcd(t)
	ctx := context.Background()
	tmp := t.TempDir()
	src := filepath.Join(tmp, "src")
	testutil.WriteTree(t, src, map[string]string{"a.txt": "one\n"})
	root := export.New(fsys.OS(), filepath.Join(tmp, "a"))
	a := join(t, e.ClientURL, "a", root.Dir)
	testutil.Must(t, a.TryLead(ctx, testTTL))
	testutil.Must(t, publish(t, a, root, src, false))
	testutil.WriteTree(t, src, map[string]string{"a.txt": "two\n"})
	if err := publish(t, a, root, src, true); err == nil { // recorded, not flipped
		t.Fatal("the stopped publish succeeded")
	}
	d, err := ha.Digest(root.FS, root.ManifestPath(2))
	testutil.Must(t, err)
	tests := []struct {
		name     string
		manifest string
		kept     bool
	}{
		{name: "recorded with this manifest", manifest: d, kept: true},
		{name: "recorded with another manifest", manifest: "sha256:other", kept: false},
	}
	for _, tt := range tests {
		a.SetUnconfirmed(ha.Record{Snapshot: 2, Manifest: tt.manifest})
		a.Resolve(ctx, root)
		if root.Complete(2) != tt.kept {
			t.Errorf("%s: snapshot 2 complete %v, want %v", tt.name, root.Complete(2), tt.kept)
		}
	}
	if n, _ := root.Current(); n != 1 {
		t.Errorf("serves %d, want 1", n)
	}
}
