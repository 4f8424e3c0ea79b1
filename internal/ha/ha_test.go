package ha_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/seqmirror/seqmirror/internal/fsys"
	"github.com/seqmirror/seqmirror/internal/ha"
	"github.com/seqmirror/seqmirror/testutil"
)

// testTTL is the lease of the test nodes.
const testTTL = 2 * time.Second

// join joins master name (reached at /srv/NAME, or addr[0]) to the
// group at endpoints.
func join(t *testing.T, endpoints, name string, addr ...string) *ha.Node {
	t.Helper()
	address := "/srv/" + name
	if len(addr) > 0 {
		address = addr[0]
	}
	n, err := ha.Join(context.Background(), ha.Config{Endpoints: strings.Split(endpoints, ","), Prefix: "/t/",
		TTL: testTTL, Name: name, Address: address, DialTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// manifestFile writes a stand-in manifest (Claim hashes its bytes).
func manifestFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "m")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestClaimCAS: only the leader claims; a number maps to one manifest;
// a claim at or below the head is refused unless it is the recorded
// manifest; a leader whose lease expired cannot claim.
func TestClaimCAS(t *testing.T) {
	e := testutil.StartEtcd(t)
	ctx := context.Background()
	a, b := join(t, e.ClientURL, "a"), join(t, e.ClientURL, "b")
	m1, m2 := manifestFile(t, "one\n"), manifestFile(t, "two\n")
	if err := b.Claim(ctx, 1, m1); !errors.Is(err, ha.ErrNotLeader) {
		t.Fatalf("claim before the election: %v, want ErrNotLeader", err)
	}
	if err := a.TryLead(ctx, time.Second); err != nil {
		t.Fatal(err)
	}
	if err := b.TryLead(ctx, time.Second); !errors.Is(err, ha.ErrNotLeader) {
		t.Fatalf("second leader: %v, want ErrNotLeader", err)
	}
	tests := []struct {
		name     string
		n        uint64
		manifest string
		want     error
	}{
		{name: "first", n: 1, manifest: m1},
		{name: "same again", n: 1, manifest: m1},
		{name: "other manifest, same number", n: 1, manifest: m2, want: ha.ErrNumberTaken},
		{name: "next, with a gap", n: 3, manifest: m2},
		{name: "below the head", n: 2, manifest: m2, want: ha.ErrNumberTaken},
	}
	for _, tt := range tests {
		if err := a.Claim(ctx, tt.n, tt.manifest); !errors.Is(err, tt.want) || (tt.want == nil && err != nil) {
			t.Errorf("%s: claim %d: %v, want %v", tt.name, tt.n, err, tt.want)
		}
	}
	head, ok, err := b.Head(ctx)
	if err != nil || !ok || head.Snapshot != 3 || head.Master != "a" {
		t.Fatalf("head %+v %v %v, want 3 by a", head, ok, err)
	}
	// a's lease ends (as if it hung past the TTL): b leads, a's claim fails.
	adm, err := ha.Connect(ctx, ha.Config{Endpoints: []string{e.ClientURL}, Prefix: "/t/"})
	if err != nil {
		t.Fatal(err)
	}
	defer adm.Close()
	revokeLeases(t, e.ClientURL)
	select {
	case <-a.Lost():
	case <-time.After(5 * time.Second):
		t.Fatal("a's session not lost after its lease was revoked")
	}
	if err := a.Claim(ctx, 4, m1); !errors.Is(err, ha.ErrNotLeader) {
		t.Fatalf("claim after the lease expired: %v, want ErrNotLeader", err)
	}
	recs, err := adm.Records(ctx)
	if err != nil || len(recs) != 2 || recs[0].Snapshot != 1 || recs[1].Snapshot != 3 {
		t.Fatalf("records %+v %v, want 1 and 3", recs, err)
	}
}

// revokeLeases revokes every lease of the etcd at url (etcdctl is not
// packaged with etcd-server: through the v3 JSON gateway).
func revokeLeases(t *testing.T, url string) {
	t.Helper()
	for _, id := range testutil.EtcdLeases(t, url) {
		testutil.EtcdRevoke(t, url, id)
	}
}

// TestClobber: a dry run lists what it would discard and changes
// nothing; the real one leaves the chosen master's snapshot as the head.
func TestClobber(t *testing.T) {
	e := testutil.StartEtcd(t)
	ctx := context.Background()
	a := join(t, e.ClientURL, "a")
	if err := a.TryLead(ctx, time.Second); err != nil {
		t.Fatal(err)
	}
	ms := []string{manifestFile(t, "1\n"), manifestFile(t, "2\n"), manifestFile(t, "3\n")}
	for i, m := range ms {
		if err := a.Claim(ctx, uint64(i+1), m); err != nil {
			t.Fatal(err)
		}
	}
	d1, _ := ha.Digest(fsys.OS(), ms[0])
	adm, err := ha.Connect(ctx, ha.Config{Endpoints: []string{e.ClientURL}, Prefix: "/t/"})
	if err != nil {
		t.Fatal(err)
	}
	defer adm.Close()
	to := ha.Master{Name: "b", Snapshot: 1, Manifest: d1}
	for _, dry := range []bool{true, false} {
		gone, err := adm.Clobber(ctx, to, dry)
		if err != nil || len(gone) != 2 || gone[0].Snapshot != 2 || gone[1].Snapshot != 3 {
			t.Fatalf("dry %v: discards %+v %v, want 2 and 3", dry, gone, err)
		}
		recs, _ := adm.Records(ctx)
		if want := map[bool]int{true: 3, false: 1}[dry]; len(recs) != want {
			t.Fatalf("dry %v: %d records left, want %d", dry, len(recs), want)
		}
	}
	head, _, _ := a.Head(ctx)
	if head.Snapshot != 1 || head.Master != "b" {
		t.Fatalf("head after clobber %+v", head)
	}
	if err := a.Claim(ctx, 2, ms[2]); err != nil {
		t.Fatalf("claim 2 after clobber: %v", err)
	}
}
