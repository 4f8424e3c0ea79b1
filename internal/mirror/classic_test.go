package mirror_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/seqmirror/seqmirror/internal/export"
	"github.com/seqmirror/seqmirror/internal/fsys"
	"github.com/seqmirror/seqmirror/internal/mirror"
	"github.com/seqmirror/seqmirror/internal/transport"
	"github.com/seqmirror/seqmirror/internal/tree"
	"github.com/seqmirror/seqmirror/seqfile"
	"github.com/seqmirror/seqmirror/testutil"
)

func setSeq(tb testing.TB, dir string, begin, end uint64) {
	tb.Helper()
	if err := os.MkdirAll(filepath.Join(dir, "seq"), 0o755); err != nil {
		tb.Fatal(err)
	}
	for name, n := range map[string]uint64{seqfile.Begin: begin, seqfile.End: end} {
		if err := seqfile.Write(fsys.OS(), filepath.Join(dir, "seq", name), n); err != nil {
			tb.Fatal(err)
		}
	}
}

// movingUpstream bumps the master's begin during its first tree copies.
type movingUpstream struct {
	*transport.Local
	tb     testing.TB
	master string
	moves  int
	calls  int
}

func (m *movingUpstream) FetchTree(ctx context.Context, dir, linkDest string) error {
	m.calls++
	if m.calls <= m.moves {
		setSeq(m.tb, m.master, uint64(100+m.calls), uint64(99+m.calls))
		defer setSeq(m.tb, m.master, uint64(100+m.calls), uint64(100+m.calls))
	}
	return m.Local.FetchTree(ctx, dir, linkDest)
}

func TestSyncClassicLocal(t *testing.T) {
	tmp := t.TempDir()
	master, mir := filepath.Join(tmp, "master"), filepath.Join(tmp, "mirror")
	paths := testutil.GenTree(t, master, 25, 9)
	testutil.WriteTree(t, master, map[string]string{"l": "->d00"})
	setSeq(t, master, 1, 1)
	up, err := transport.NewLocal(fsys.OS(), master)
	if err != nil {
		t.Fatal(err)
	}
	root := export.New(fsys.OS(), mir)
	opt := mirror.DefaultOptions()
	opt.Backoff = time.Millisecond
	ctx := context.Background()

	tests := []struct {
		name    string
		change  func()
		moves   int
		want    uint64
		changed bool
		err     error
	}{
		{name: "first copy", want: 1, changed: true},
		{name: "no-op", want: 1},
		{name: "update in place", change: func() {
			setSeq(t, master, 2, 1)
			testutil.Touch(t, master, paths[0], "zero")
			setSeq(t, master, 2, 2)
		}, want: 2, changed: true},
		{name: "counters bumped, tree same", change: func() { setSeq(t, master, 3, 3) }, want: 2},
		{name: "no-op settles a killed run", change: func() {
			p, err := seqfile.Counters(fsys.OS(), filepath.Join(mir, "seq"))
			if err != nil {
				t.Fatal(err)
			}
			setSeq(t, mir, p.End+5, p.End) // as a run killed after its flip leaves it
		}, want: 2},
		{name: "begin moves mid-copy", change: func() {
			testutil.Touch(t, master, paths[1], "one")
			setSeq(t, master, 4, 4)
		}, moves: 1, want: 3, changed: true},
		{name: "busy master", change: func() { setSeq(t, master, 200, 104) }, want: 3, err: mirror.ErrUpstreamBusy},
		// The identical copy ends as every run does (export.Update.Done):
		// counters idle, the failure recorded above cleared.
		{name: "idle again, tree same, after a failure", change: func() { setSeq(t, master, 201, 201) }, want: 3},
		{name: "mass delete refused", change: func() {
			for _, p := range paths[2:] {
				os.Remove(filepath.Join(master, p))
			}
			setSeq(t, master, 300, 300)
		}, want: 3, err: mirror.ErrTooManyDeletes},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.change != nil {
				tc.change()
			}
			mu := &movingUpstream{Local: up, tb: t, master: master, moves: tc.moves}
			o := opt
			o.Retries = 2
			res, err := mirror.SyncClassic(ctx, root, mu, o)
			if !errors.Is(err, tc.err) || (tc.err == nil && err != nil) {
				t.Fatalf("err %v, want %v", err, tc.err)
			}
			if res.Snapshot != tc.want || (err == nil && res.Changed != tc.changed) {
				t.Fatalf("result %+v, want snapshot %d changed %v", res, tc.want, tc.changed)
			}
			if tc.moves > 0 && res.Attempts != tc.moves+1 {
				t.Fatalf("attempts %d, want %d", res.Attempts, tc.moves+1)
			}
			n, err := root.Current()
			if err != nil || n != tc.want {
				t.Fatalf("serves %d, %v", n, err)
			}
			m, err := root.ReadManifest(n)
			if err != nil {
				t.Fatal(err)
			}
			if probs, err := tree.Verify(ctx, fsys.OS(), root.SnapshotDir(n), m, 2); err != nil || len(probs) > 0 {
				t.Fatalf("verify: %v %v", err, probs)
			}
			if _, err := os.Stat(filepath.Join(root.SnapshotDir(n), "seq")); err == nil {
				t.Fatal("seq/ copied into the snapshot")
			}
			if tc.err != nil {
				return // begin > end until the next good run, as in Sync
			}
			st, err := root.Status()
			if err != nil || st.Begin != st.End {
				t.Fatalf("mirror counters not idle: %+v %v", st, err)
			}
			if st.LastError != "" {
				t.Fatalf("a good run left last_error %q", st.LastError)
			}
		})
	}
	// Unchanged files are hard links between snapshots.
	a, _ := os.Stat(filepath.Join(mir, "snapshots", "1", paths[5]))
	b, _ := os.Stat(filepath.Join(mir, "snapshots", "3", paths[5]))
	if a == nil || b == nil || a.Sys().(*syscall.Stat_t).Ino != b.Sys().(*syscall.Stat_t).Ino {
		t.Error("unchanged file not hard-linked across snapshots")
	}
}
