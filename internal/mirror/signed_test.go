package mirror_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/seqmirror/seqmirror/internal/export"
	"github.com/seqmirror/seqmirror/internal/fsys"
	"github.com/seqmirror/seqmirror/internal/mirror"
	"github.com/seqmirror/seqmirror/internal/sign"
	"github.com/seqmirror/seqmirror/internal/transport"
	"github.com/seqmirror/seqmirror/snapshot"
	"github.com/seqmirror/seqmirror/testutil"
)

// countingProber is counting that also reads small files (the signature
// files), counted.
type countingProber struct {
	counting
	p     transport.Prober
	small int
}

func (c *countingProber) Stat(ctx context.Context, names []string) (map[string]transport.PathInfo, error) {
	c.small++
	return c.p.Stat(ctx, names)
}

func (c *countingProber) ReadSmall(ctx context.Context, names []string, max int64) (map[string]transport.SmallFile, error) {
	c.small++
	return c.p.ReadSmall(ctx, names, max)
}

func newCountingProber(tb testing.TB, addr string) *countingProber {
	u := openLocals(tb, []string{addr})[0]
	return &countingProber{counting: counting{Upstream: u}, p: u.(transport.Prober)}
}

// signedMaster publishes src into d/master, signed, at now; it returns
// the root and the trusted keys.
func signedMaster(tb testing.TB, d string, now time.Time) (string, *sign.Signer, *sign.Trust) {
	tb.Helper()
	prefix := filepath.Join(d, "master")
	_, err := sign.WriteKeyPair(prefix, nil, sign.DefaultKDF)
	testutil.Must(tb, err)
	s, err := sign.LoadSigner(prefix+".key", nil)
	testutil.Must(tb, err)
	tr, err := sign.LoadTrust([]string{prefix + ".pub"})
	testutil.Must(tb, err)
	src := filepath.Join(d, "src")
	testutil.WriteTree(tb, src, map[string]string{"a.txt": "a\n", "dir/b.txt": "b\n"})
	up := filepath.Join(d, "up")
	opt := snapshot.DefaultOptions()
	opt.Signer, opt.Now = s, func() time.Time { return now }
	_, err = snapshot.Publish(context.Background(), export.New(fsys.OS(), up), src, opt)
	testutil.Must(tb, err)
	return up, s, tr
}

// The no-op poll of a verifying mirror stays one request (seq/end) while
// its timestamp is less than half its validity old; past that, one more
// (the timestamp), which it installs only if newer; then one again.
func TestSignedNoopRequests(t *testing.T) {
	d := t.TempDir()
	t0 := time.Now()
	up, s, tr := signedMaster(t, d, t0)
	mir := export.New(fsys.OS(), filepath.Join(d, "mirror"))
	at := func(now time.Time) mirror.Options {
		o := opts()
		o.Trust, o.Now = tr, func() time.Time { return now }
		return o
	}
	res, err := mirror.Sync(context.Background(), mir, newCountingProber(t, up), at(t0))
	testutil.Must(t, err)
	if !res.Changed || !mir.Complete(1) {
		t.Fatalf("first sync: %+v", res)
	}
	held, _ := mir.ReadTimestamp()
	poll := func(now time.Time) *countingProber {
		t.Helper()
		c := newCountingProber(t, up)
		res, err := mirror.Sync(context.Background(), mir, c, at(now))
		testutil.Must(t, err)
		if res.Changed {
			t.Fatalf("no-op poll changed: %+v", res)
		}
		return c
	}
	if c := poll(t0.Add(time.Hour)); c.total() != 1 || c.small != 0 {
		t.Fatalf("fresh timestamp: requests %+v small %d, want seq/end only", c.counting, c.small)
	}
	late := t0.Add(sign.DefaultValidity/2 + time.Hour)
	if c := poll(late); c.total() != 1 || c.small != 1 {
		t.Fatalf("stale timestamp: requests %+v small %d, want seq/end and the timestamp", c.counting, c.small)
	}
	if now, _ := mir.ReadTimestamp(); string(now) != string(held) {
		t.Fatal("the same timestamp was installed again")
	}
	_, err = snapshot.Resign(context.Background(), export.New(fsys.OS(), up), snapshot.ResignOptions{Signer: s, Validity: sign.DefaultValidity, Now: func() time.Time { return late }})
	testutil.Must(t, err)
	poll(late)
	st, err := sign.PeekStatement(must(mir.ReadTimestamp()))
	if err != nil || !st.Time.Equal(late.UTC().Truncate(time.Second)) {
		t.Fatalf("after the master resigned: held timestamp %+v, %v; want the new one", st, err)
	}
	if c := poll(late.Add(time.Minute)); c.total() != 1 || c.small != 0 {
		t.Fatalf("after the refresh: requests %+v small %d, want seq/end only", c.counting, c.small)
	}
	if s, _ := mir.Status(); s.Signature != export.SignVerified {
		t.Errorf("status signature %q, want verified", s.Signature)
	}
}

// An older timestamp from upstream (a tier serving a stale one) never
// replaces a newer one; a forged one is refused with the sign errors.
func TestSignedTimestampNotTurnedBack(t *testing.T) {
	d := t.TempDir()
	t0 := time.Now()
	up, s, tr := signedMaster(t, d, t0)
	mir := export.New(fsys.OS(), filepath.Join(d, "mirror"))
	o := opts()
	o.Trust = tr
	_, err := mirror.Sync(context.Background(), mir, newCountingProber(t, up), o)
	testutil.Must(t, err)
	// The mirror holds a newer timestamp than its upstream's, and it is
	// past half its validity: the poll asks, and keeps its own.
	d2, err := sign.DigestFile(fsys.OS(), mir.ManifestPath(1))
	testutil.Must(t, err)
	newer := s.SignTimestamp(1, d2, t0.Add(time.Hour), time.Hour)
	testutil.Must(t, mir.WriteTimestamp(newer))
	// (as if from another upstream: the record, whose note says when the
	// held timestamp is due, goes with it)
	testutil.Must(t, os.Remove(mir.Path(export.UpstreamStateName)))
	o.Now = func() time.Time { return t0.Add(100 * time.Minute) }
	_, err = mirror.Sync(context.Background(), mir, newCountingProber(t, up), o)
	testutil.Must(t, err)
	if got := must(mir.ReadTimestamp()); string(got) != string(newer) {
		t.Fatal("an older upstream timestamp replaced the newer one held")
	}
	// A garbled newer one upstream: refused, the held one kept.
	upRoot := export.New(fsys.OS(), up)
	forged := []byte(string(s.SignTimestamp(1, d2, t0.Add(2*time.Hour), time.Hour)))
	forged[len(forged)-5] ^= 1
	testutil.Must(t, os.WriteFile(upRoot.TimestampPath(), forged, 0o644))
	_, err = mirror.Sync(context.Background(), mir, newCountingProber(t, up), o)
	if !errors.Is(err, sign.ErrUntrusted) && !errors.Is(err, sign.ErrMalformed) {
		t.Fatalf("garbled upstream timestamp: %v, want a sign error", err)
	}
	if got := must(mir.ReadTimestamp()); string(got) != string(newer) {
		t.Fatal("a refused timestamp was installed")
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
