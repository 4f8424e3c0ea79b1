package export_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/seqmirror/seqmirror/internal/export"
	"github.com/seqmirror/seqmirror/internal/fsys"
	"github.com/seqmirror/seqmirror/internal/sign"
	"github.com/seqmirror/seqmirror/testutil"
)

// Signature files live and die with their snapshot: Cleanup removes one
// whose snapshot is not complete (a crash between the signature and the
// manifest), Prune removes a pruned snapshot's; the served one's stays.
func TestSignatureFilesFollowSnapshots(t *testing.T) {
	dir := t.TempDir()
	r := export.New(fsys.OS(), dir)
	for n := uint64(1); n <= 3; n++ {
		testutil.SnapshotRoot(t, dir, n, map[string]string{"a": "a"})
		testutil.Must(t, os.WriteFile(r.SignaturePath(n), []byte("sig\n"), 0o644))
	}
	testutil.Must(t, os.WriteFile(r.SignaturePath(7), []byte("orphan\n"), 0o644))
	testutil.Must(t, r.Cleanup())
	if _, err := os.Stat(r.SignaturePath(7)); !os.IsNotExist(err) {
		t.Errorf("orphan signature kept: %v", err)
	}
	if snaps, _ := r.Snapshots(); len(snaps) != 3 {
		t.Fatalf("a signature file counted as a snapshot: %v", snaps)
	}
	pruned, err := r.Prune(1, 0, time.Now())
	testutil.Must(t, err)
	if len(pruned) != 2 {
		t.Fatalf("pruned %v", pruned)
	}
	for n, want := range map[uint64]bool{1: false, 2: false, 3: true} {
		if _, err := os.Stat(r.SignaturePath(n)); (err == nil) != want {
			t.Errorf("signature of snapshot %d: %v, want present %v", n, err, want)
		}
	}
}

// Install writes the signature before the manifest and the timestamp
// after the flip; Status reads the timestamp's expiry and says frozen
// once it has passed.
func TestInstallSignedAndFrozen(t *testing.T) {
	dir := t.TempDir()
	now := time.Date(2026, 11, 28, 13, 0, 0, 0, time.UTC)
	r := export.New(fsys.OS(), dir)
	r.Now = func() time.Time { return now }
	u, err := r.Begin(context.Background(), export.UpdateOptions{Keep: 3})
	testutil.Must(t, err)
	work, err := u.Work(1)
	testutil.Must(t, err)
	testutil.WriteTree(t, work, map[string]string{"a": "a"})
	man := filepath.Join(r.WorkDir(), "1.manifest")
	testutil.Must(t, os.WriteFile(man, []byte("not checked here\n"), 0o644))
	expires := now.Add(time.Hour)
	ts := testSigner(t).SignTimestamp(1, sign.Digest{}, now, time.Hour)
	testutil.Must(t, u.Install(context.Background(), export.Built{N: 1, Tree: work, Manifest: man, Signature: []byte("sig\n"), Timestamp: ts}))
	_, err = u.Done(nil)
	testutil.Must(t, err)
	if b, err := os.ReadFile(r.SignaturePath(1)); err != nil || string(b) != "sig\n" {
		t.Fatalf("signature: %q, %v", b, err)
	}
	if b, err := r.ReadTimestamp(); err != nil || string(b) != string(ts) {
		t.Fatalf("timestamp: %q, %v", b, err)
	}
	_, perr := sign.PeekStatement(ts)
	st, err := r.Status()
	testutil.Must(t, err)
	if perr != nil || st.State != export.StateFresh || st.TimestampExpires == nil || !st.TimestampExpires.Equal(expires) {
		t.Fatalf("status %s, expires %v (%v); want fresh until %s", st.State, st.TimestampExpires, perr, expires)
	}
	now = expires
	if st, _ := r.Status(); st.State != export.StateFrozen || st.Problem == "" {
		t.Fatalf("after expiry: %s %q, want frozen", st.State, st.Problem)
	}
}

func testSigner(tb testing.TB) *sign.Signer {
	tb.Helper()
	prefix := filepath.Join(tb.TempDir(), "k")
	_, err := sign.WriteKeyPair(prefix, nil, sign.DefaultKDF)
	testutil.Must(tb, err)
	s, err := sign.LoadSigner(prefix+".key", nil)
	testutil.Must(tb, err)
	return s
}
