package reliab

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/seqmirror/seqmirror/client"
	"github.com/seqmirror/seqmirror/internal/cliapp"
	"github.com/seqmirror/seqmirror/internal/fsys"
	"github.com/seqmirror/seqmirror/internal/sign"
	"github.com/seqmirror/seqmirror/testutil"
)

// signedChain is a signing master, a tier 1 mirror of it and a tier 2
// mirror of tier 1, all run as processes (publish, mirror-sync): the
// master serves snapshot 3, tier 1 too, tier 2 still 2.
type signedChain struct {
	base, keys                  string
	master, tier1, tier2, clean string
}

func newSignedChain(t *testing.T) signedChain {
	t.Helper()
	base := testutil.FastDir(t)
	c := signedChain{base: base, keys: filepath.Join(base, "keys"), master: filepath.Join(base, "master"),
		tier1: filepath.Join(base, "tier1"), tier2: filepath.Join(base, "tier2"), clean: filepath.Join(base, "clean1")}
	if err := os.MkdirAll(c.keys, 0o700); err != nil {
		t.Fatal(err)
	}
	mustRun(t, "publish", "keygen", "--quiet", c.key("master"))
	mustRun(t, "publish", "keygen", "--quiet", c.key("other"))
	src := filepath.Join(base, "src")
	if err := os.MkdirAll(filepath.Join(src, "dir"), 0o755); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 3; i++ {
		writeFile(t, filepath.Join(src, "a.txt"), fmt.Sprintf("version %d\n", i))
		writeFile(t, filepath.Join(src, "dir", "b.txt"), "unchanged\n")
		mustRun(t, "publish", "--root", c.master, "--source", src, "--sign-key", c.key("master")+".key", "--quiet")
		if i == 2 {
			c.sync(t, c.master, c.tier1)
			c.sync(t, c.tier1, c.tier2)
		}
	}
	c.sync(t, c.master, c.tier1)
	cp(t, c.tier1, c.clean)
	return c
}

func (c signedChain) key(name string) string { return filepath.Join(c.keys, name) }

// sync runs a verifying mirror-sync of root from up, which must succeed.
func (c signedChain) sync(t *testing.T, up, root string, extra ...string) {
	t.Helper()
	mustRun(t, "mirror-sync", append([]string{"--upstream", up, "--root", root, "--trust-key", c.key("master") + ".pub", "--quiet"}, extra...)...)
}

// resetTier1 makes tier 1 a clean copy of its synced state again.
func (c signedChain) resetTier1(t *testing.T) {
	t.Helper()
	testutil.MakeWritable(c.tier1)
	if err := os.RemoveAll(c.tier1); err != nil {
		t.Fatal(err)
	}
	cp(t, c.clean, c.tier1)
}

// refused runs a verifying tier 2 sync from addr and checks that it exits
// with code, saying says, with nothing written outside tier 2's root and
// tier 2's served snapshot unchanged and whole.
func (c signedChain) refused(t *testing.T, addr string, code int, says string) {
	t.Helper()
	before, beforeT2 := outside(listing(t, c.base), "tier2"), readState(t, c.tier2)
	oldMan := verifyCurrent(t, c.tier2)
	_, stderr, got := run(t, "mirror-sync", "--upstream", addr, "--root", c.tier2, "--trust-key", c.key("master")+".pub")
	if got != code || !strings.Contains(stderr, says) {
		t.Fatalf("tier 2 sync exited %d, want %d saying %q:\n%s", got, code, says, stderr)
	}
	if !strings.Contains(stderr, "mirror-sync: hint: nothing was changed") {
		t.Errorf("no hint on what to do:\n%s", stderr)
	}
	t.Logf("refused: %s", strings.TrimSpace(stderr))
	if after := outside(listing(t, c.base), "tier2"); !slices.Equal(after, before) {
		t.Errorf("something was written outside tier 2's root:\n%v\nwas\n%v", after, before)
	}
	after := readState(t, c.tier2)
	if after.Cur != beforeT2.Cur || after.Seq.End != beforeT2.Seq.End {
		t.Errorf("tier 2's served snapshot/end moved from %+v to %+v", beforeT2, after)
	}
	if !sameEntries(verifyCurrent(t, c.tier2), oldMan) {
		t.Errorf("tier 2's served tree changed")
	}
}

// rewriteFile is the forging tier 1: it changes a.txt in snapshot 3 and
// recomputes every hash of the manifest (the file's and the footer's), so
// that the manifest is valid and matches the tree.
func rewriteFile(t *testing.T, root string) {
	t.Helper()
	testutil.MakeWritable(filepath.Join(root, "snapshots"))
	p := filepath.Join(root, "snapshots", "3", "a.txt")
	forged := "forged by tier 1\n"
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(p)
	writeFile(t, p, forged)
	if err := os.Chtimes(p, fi.ModTime(), fi.ModTime()); err != nil {
		t.Fatal(err)
	}
	man := filepath.Join(root, "snapshots", "3.manifest")
	recs := records(t, man)
	for i, r := range recs {
		if f := strings.Fields(r); f[0] == "f" && f[5] == "a.txt" {
			f[2], f[4] = fmt.Sprint(len(forged)), forgedHash(f[4], forged)
			recs[i] = strings.Join(f, " ")
		}
	}
	os.Remove(man)
	writeFile(t, man, string(rawManifest("snapshot 3", recs)))
}

// TestSignedHostileTier1: whatever a tier 1 forges, a verifying tier 2
// refuses it (exit 12, a hint), writes nothing outside its root and keeps
// serving its snapshot; so does a verifying client.
func TestSignedHostileTier1(t *testing.T) {
	c := newSignedChain(t)
	sig3 := filepath.Join(c.tier1, "snapshots", "3.manifest.minisig")
	tests := []struct {
		name  string
		craft func(t *testing.T)
		says  string
	}{
		{name: "rewrites a file and every hash of the manifest", craft: func(t *testing.T) { rewriteFile(t, c.tier1) },
			says: "names another manifest"},
		{name: "signs with another key", craft: func(t *testing.T) {
			s, err := sign.LoadSigner(c.key("other")+".key", nil)
			if err != nil {
				t.Fatal(err)
			}
			d, err := sign.DigestFile(fsys.OS(), filepath.Join(c.tier1, "snapshots", "3.manifest"))
			if err != nil {
				t.Fatal(err)
			}
			replaceFile(t, sig3, s.Sign(sign.Statement{Kind: sign.KindSnapshot, Snapshot: 3, Time: time.Now()}, d))
		}, says: "signature not by a trusted key"},
		{name: "truncated signature", craft: func(t *testing.T) { replaceFile(t, sig3, readFile(t, sig3)[:60]) }, says: "malformed signature"},
		{name: "garbled signature", craft: func(t *testing.T) {
			b := readFile(t, sig3)
			i := strings.IndexByte(string(b), '\n') + 30
			b[i] = map[bool]byte{true: 'B', false: 'A'}[b[i] == 'A'] // another base64 digit: it parses and does not verify
			replaceFile(t, sig3, b)
		}, says: "does not verify"},
		{name: "statement for another snapshot", craft: func(t *testing.T) {
			replaceFile(t, sig3, readFile(t, filepath.Join(c.tier1, "snapshots", "2.manifest.minisig")))
		}, says: "the signature is of snapshot 2, not 3"},
		{name: "signature removed", craft: func(t *testing.T) { os.Remove(sig3) }, says: "no signature of snapshot 3"},
		{name: "garbled timestamp", craft: func(t *testing.T) {
			p := filepath.Join(c.tier1, "seq", "timestamp.minisig")
			replaceFile(t, p, []byte(strings.Replace(string(readFile(t, p)), "seqmirror-timestamp/1", "seqmirror-timestamp/1 ", 1)))
		}, says: "timestamp from"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c.resetTier1(t)
			tt.craft(t)
			c.refused(t, c.tier1, cliapp.ExitUntrusted, tt.says)
			_, err := client.Open(context.Background(), c.tier1, client.Options{TrustKeys: []string{c.key("master") + ".pub"}, ScratchDir: c.base})
			if !errors.Is(err, client.ErrUntrusted) {
				t.Errorf("client.Open of the forged tier 1 = %v, want ErrUntrusted", err)
			}
		})
	}
	// The same forgery over HTTP (nginx serving tier 1), and the client.
	c.resetTier1(t)
	rewriteFile(t, c.tier1)
	n := testutil.StartNginx(t, testutil.NginxExportRoot(c.base))
	c.refused(t, n.URL("/tier1/"), cliapp.ExitUntrusted, "names another manifest")
	if _, err := client.Open(context.Background(), n.URL("/tier1/"), client.Options{TrustKeys: []string{c.key("master") + ".pub"}, ScratchDir: c.base}); !errors.Is(err, client.ErrUntrusted) {
		t.Errorf("client.Open over HTTP = %v, want ErrUntrusted", err)
	}
	// ... and over rsync (a daemon serving tier 1).
	port := testutil.StartRsyncd(t, map[string]string{"tier1": c.tier1})
	rs := fmt.Sprintf("rsync://127.0.0.1:%d/tier1", port)
	c.refused(t, rs, cliapp.ExitUntrusted, "names another manifest")
	if _, err := client.Open(context.Background(), rs, client.Options{TrustKeys: []string{c.key("master") + ".pub"}, ScratchDir: c.base}); !errors.Is(err, client.ErrUntrusted) {
		t.Errorf("client.Open over rsync = %v, want ErrUntrusted", err)
	}
	// An honest tier 1 again: tier 2 (over rsync) and the client take
	// snapshot 3.
	c.resetTier1(t)
	c.sync(t, rs, c.tier2)
	snap, err := client.Open(context.Background(), n.URL("/tier1/"), client.Options{TrustKeys: []string{c.key("master") + ".pub"}, ScratchDir: c.base})
	if err != nil || snap.N() != 3 || snap.State() != client.StateVerified {
		t.Fatalf("client.Open(honest tier 1) = %v; want snapshot 3, verified", err)
	}
	snap.Close()
}

// TestSignedReplay: a tier 1 that serves an older signed snapshot again
// (genuinely signed, only old) is refused by tier 2 and by a client that
// keeps a state file, unless told to roll back.
func TestSignedReplay(t *testing.T) {
	c := newSignedChain(t)
	c.sync(t, c.tier1, c.tier2)
	state := filepath.Join(c.base, "client.state")
	opt := client.Options{TrustKeys: []string{c.key("master") + ".pub"}, StateFile: state, ScratchDir: c.base}
	snap, err := client.Open(context.Background(), c.tier1, opt)
	if err != nil {
		t.Fatal(err)
	}
	snap.Close()
	// Tier 1 goes back to snapshot 2, bumping its counters as an update.
	cur := filepath.Join(c.tier1, "current")
	os.Remove(cur)
	if err := os.Symlink("snapshots/2", cur); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(c.tier1, "seq", "current"), "2\n")
	for _, f := range []string{"begin", "end"} {
		writeFile(t, filepath.Join(c.tier1, "seq", f), "99\n")
	}
	c.refused(t, c.tier1, cliapp.ExitRefused, "upstream serves an older snapshot")
	if _, err := client.Open(context.Background(), c.tier1, opt); !errors.Is(err, client.ErrUntrusted) || !strings.Contains(err.Error(), "older than snapshot 3") {
		t.Errorf("client.Open of the replay = %v, want ErrUntrusted (older than snapshot 3)", err)
	}
	opt.AllowRollback = true
	snap, err = client.Open(context.Background(), c.tier1, opt)
	if err != nil || snap.N() != 2 {
		t.Fatalf("client.Open with AllowRollback = %v", err)
	}
	snap.Close()
	// A tier 2 that lost its served snapshot (current removed) still
	// remembers the highest signed snapshot it saw.
	testutil.MakeWritable(c.tier2)
	os.Remove(filepath.Join(c.tier2, "current"))
	os.Remove(filepath.Join(c.tier2, ".upstream"))
	_, stderr, code := run(t, "mirror-sync", "--upstream", c.tier1, "--root", c.tier2, "--trust-key", c.key("master")+".pub")
	if code != cliapp.ExitUntrusted || !strings.Contains(stderr, "signed snapshot older than one already seen") {
		t.Errorf("tier 2 without current: exit %d, want %d (signed rollback):\n%s", code, cliapp.ExitUntrusted, stderr)
	}
}

// TestSignedFrozen: a master that stops signing timestamps leaves its
// mirrors, and verifying clients, frozen once the last one expires, until
// `publish resign` (the mirrors' next poll takes the new timestamp).
func TestSignedFrozen(t *testing.T) {
	c := newSignedChain(t)
	src := filepath.Join(c.base, "src")
	writeFile(t, filepath.Join(src, "a.txt"), "version 4\n")
	mustRun(t, "publish", "--root", c.master, "--source", src, "--sign-key", c.key("master")+".key", "--timestamp-validity", "2s", "--quiet")
	c.sync(t, c.master, c.tier1)
	c.sync(t, c.tier1, c.tier2)
	opt := client.Options{TrustKeys: []string{c.key("master") + ".pub"}, ScratchDir: c.base}
	time.Sleep(2500 * time.Millisecond)
	c.sync(t, c.tier1, c.tier2) // no newer timestamp: stays frozen
	for _, root := range []string{c.tier1, c.tier2} {
		if out := mustRun(t, "mirror-sync", "status", "--root", root, "--json"); !strings.Contains(out, `"state": "frozen"`) {
			t.Errorf("%s: status says %s, want frozen", root, out)
		}
	}
	snap, err := client.Open(context.Background(), c.tier2, opt)
	if err != nil || snap.State() != client.StateFrozen {
		t.Fatalf("client.Open(tier 2) = %v, state %q; want frozen", err, snap.State())
	}
	snap.Close()
	mustRun(t, "publish", "resign", "--root", c.master, "--sign-key", c.key("master")+".key", "--quiet")
	c.sync(t, c.master, c.tier1)
	c.sync(t, c.tier1, c.tier2)
	if out := mustRun(t, "mirror-sync", "status", "--root", c.tier2, "--json"); !strings.Contains(out, `"state": "fresh"`) {
		t.Errorf("tier 2 after resign: %s, want fresh", out)
	}
}

func readFile(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func replaceFile(t *testing.T, p string, b []byte) {
	t.Helper()
	os.Chmod(filepath.Dir(p), 0o755)
	os.Remove(p)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestStockMinisignSignedRoot: a master that signs with the stock
// minisign tool (`minisign -S -t STATEMENT`, an unencrypted key made by
// `minisign -G -W`), not with publish, is verified by mirror-sync and the
// client like publish's own signatures.
func TestStockMinisignSignedRoot(t *testing.T) {
	bin := testutil.RequireBinary(t, "minisign")
	base := testutil.FastDir(t)
	key, master, mir := filepath.Join(base, "key"), filepath.Join(base, "master"), filepath.Join(base, "mirror")
	minisign := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(bin, args...).CombinedOutput(); err != nil {
			t.Fatalf("minisign %v: %v\n%s", args, err, out)
		}
	}
	minisign("-G", "-W", "-p", key+".pub", "-s", key+".key")
	src := filepath.Join(base, "src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(src, "a.txt"), "a\n")
	mustRun(t, "publish", "--root", master, "--source", src, "--quiet")
	man := filepath.Join(master, "snapshots", "1.manifest")
	d, err := sign.DigestFile(fsys.OS(), man)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Second)
	snap := sign.Statement{Kind: sign.KindSnapshot, Snapshot: 1, SHA256: d.SHA256, Time: now}
	ts := sign.Statement{Kind: sign.KindTimestamp, Snapshot: 1, SHA256: d.SHA256, Time: now, Expires: now.Add(time.Hour)}
	minisign("-S", "-s", key+".key", "-m", man, "-t", snap.String())
	minisign("-S", "-s", key+".key", "-m", man, "-x", filepath.Join(master, "seq", "timestamp.minisig"), "-t", ts.String())
	mustRun(t, "mirror-sync", "--upstream", master, "--root", mir, "--trust-key", key+".pub", "--quiet")
	if out := mustRun(t, "mirror-sync", "status", "--root", mir, "--json"); !strings.Contains(out, `"signature": "verified"`) || !strings.Contains(out, `"state": "fresh"`) {
		t.Fatalf("mirror of a minisign-signed master: %s", out)
	}
	snapC, err := client.Open(context.Background(), mir, client.Options{TrustKeys: []string{key + ".pub"}, ScratchDir: base})
	if err != nil || snapC.State() != client.StateVerified {
		t.Fatalf("client.Open = %v", err)
	}
	snapC.Close()
}

// forgedHash is the content field a forger writes for content where the
// record had field old: a SHA-256 in a version 2 record (64 digits), an
// xxhash64 in a version 1 one.
func forgedHash(old, content string) string {
	if len(old) == 2*sha256.Size {
		sum := sha256.Sum256([]byte(content))
		return hex.EncodeToString(sum[:])
	}
	return fmt.Sprintf("%016x", xxhash.Sum64String(content))
}
