package reliab

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/seqmirror/seqmirror/client"
	"github.com/seqmirror/seqmirror/internal/cliapp"
	"github.com/seqmirror/seqmirror/testutil"
)

// forgeRecord is a forging tier 1 of a partial snapshot 1: it changes the
// file rel and its record in each of the manifests given (the subset
// N.manifest, and N.full too if given), every hash recomputed, so that
// each manifest is valid and matches the tree.
func forgeRecord(t *testing.T, root, rel string, mans ...string) {
	t.Helper()
	testutil.MakeWritable(filepath.Join(root, "snapshots"))
	p := filepath.Join(root, "snapshots", "1", rel)
	forged := "forged by tier 1\n"
	os.Remove(p)
	writeFile(t, p, forged)
	for _, man := range mans {
		man = filepath.Join(root, "snapshots", man)
		recs := records(t, man)
		for i, r := range recs {
			if f := strings.Fields(r); f[0] == "f" && f[5] == rel {
				f[2], f[4] = fmt.Sprint(len(forged)), forgedHash(f[4], forged)
				recs[i] = strings.Join(f, " ")
			}
		}
		replaceFile(t, man, rawManifest("snapshot 1", recs))
	}
}

// TestSignedPartialTiers: on a partial mirror the master's signature
// covers snapshots/N.full (the master's manifest, byte for byte), and the
// subset manifest must be a subset of it. A verifying partial tier 1
// takes and serves the signature, a verifying partial tier 2 of it too,
// and `mirror-sync verify --trust-key`, the stock minisign (over N.full)
// and a verifying client (by path and over HTTP) accept them. A tier 1
// that rewrites a file of its subset and the subset's record is refused
// by a fresh tier 2 (exit 7: not a subset of the signed manifest) and by
// the client; one that rewrites N.full too is refused as untrusted.
func TestSignedPartialTiers(t *testing.T) {
	bin := testutil.RequireBinary(t, "minisign")
	base := testutil.FastDir(t)
	key := filepath.Join(base, "key")
	master, tier1, tier2 := filepath.Join(base, "master"), filepath.Join(base, "tier1"), filepath.Join(base, "tier2")
	mustRun(t, "publish", "keygen", "--quiet", key)
	src := filepath.Join(base, "src")
	testutil.WriteTree(t, src, map[string]string{"a.txt": "a\n", "dir/b.txt": "b\n", "dir/c.txt": "c\n"})
	mustRun(t, "publish", "--root", master, "--source", src, "--sign-key", key+".key", "--quiet")
	trust := []string{"--trust-key", key + ".pub", "--quiet"}
	mustRun(t, "mirror-sync", append([]string{"--upstream", master, "--root", tier1, "--include", "/dir/", "--include", "/dir/**", "--exclude", "*"}, trust...)...)
	mustRun(t, "mirror-sync", append([]string{"--upstream", tier1, "--root", tier2, "--exclude", "/dir/c.txt"}, trust...)...)

	masterSig := readFile(t, filepath.Join(master, "snapshots", "1.manifest.minisig"))
	for _, root := range []string{tier1, tier2} {
		snaps := filepath.Join(root, "snapshots")
		if sig := readFile(t, filepath.Join(snaps, "1.manifest.minisig")); string(sig) != string(masterSig) {
			t.Fatalf("%s: the signature is not the master's, verbatim", root)
		}
		if string(readFile(t, filepath.Join(snaps, "1.full"))) != string(readFile(t, filepath.Join(master, "snapshots", "1.manifest"))) {
			t.Fatalf("%s: 1.full is not the master's manifest", root)
		}
		if out := mustRun(t, "mirror-sync", "verify", "--root", root, "--trust-key", key+".pub"); !strings.Contains(out, "snapshot 1 OK") {
			t.Fatalf("verify --trust-key %s: %s", root, out)
		}
		if out := mustRun(t, "mirror-sync", "status", "--root", root, "--json"); !strings.Contains(out, `"signature": "verified"`) {
			t.Fatalf("%s: %s, want verified", root, out)
		}
		// The stock minisign checks the signature over N.full, not over
		// the subset manifest.
		if out, err := exec.Command(bin, "-V", "-p", key+".pub", "-m", filepath.Join(snaps, "1.full"), "-x", filepath.Join(snaps, "1.manifest.minisig")).CombinedOutput(); err != nil {
			t.Fatalf("minisign -V over %s/1.full: %v\n%s", snaps, err, out)
		}
		if err := exec.Command(bin, "-V", "-p", key+".pub", "-m", filepath.Join(snaps, "1.manifest"), "-x", filepath.Join(snaps, "1.manifest.minisig")).Run(); err == nil {
			t.Fatalf("minisign -V accepted the subset manifest of %s", root)
		}
	}
	for rel, want := range map[string]bool{"dir/b.txt": true, "dir/c.txt": false, "a.txt": false} {
		if _, err := os.Stat(filepath.Join(tier2, "snapshots", "1", rel)); (err == nil) != want {
			t.Fatalf("tier 2 has %s: %v, want %v", rel, err == nil, want)
		}
	}
	opt := client.Options{TrustKeys: []string{key + ".pub"}, ScratchDir: base}
	n := testutil.StartNginx(t, testutil.NginxExportRoot(base))
	for _, addr := range []string{tier2, n.URL("/tier1/")} {
		snap, err := client.Open(context.Background(), addr, opt)
		if err != nil || snap.State() != client.StateVerified {
			t.Fatalf("client.Open(%s) = %v, want verified", addr, err)
		}
		snap.Close()
	}

	tests := []struct {
		name   string
		mans   []string
		code   int
		says   string
		client error
	}{
		{name: "rewrites a file and its subset record", mans: []string{"1.manifest"}, code: cliapp.ExitCorrupt, says: "not a subset of the full manifest", client: client.ErrCorrupt},
		{name: "rewrites a file, its subset record and N.full", mans: []string{"1.manifest", "1.full"}, code: cliapp.ExitUntrusted, says: "names another manifest", client: client.ErrUntrusted},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			forged := filepath.Join(base, fmt.Sprintf("forged%d", i))
			cp(t, tier1, forged)
			forgeRecord(t, forged, "dir/b.txt", tt.mans...)
			fresh := filepath.Join(base, fmt.Sprintf("fresh%d", i))
			_, stderr, code := run(t, "mirror-sync", "--upstream", forged, "--root", fresh, "--trust-key", key+".pub")
			if code != tt.code || !strings.Contains(stderr, tt.says) {
				t.Fatalf("tier 2 of the forged tier 1 exited %d, want %d saying %q:\n%s", code, tt.code, tt.says, stderr)
			}
			if _, err := os.Stat(filepath.Join(fresh, "current")); !os.IsNotExist(err) {
				t.Fatalf("the refused tier 2 serves something: %v", err)
			}
			if _, err := client.Open(context.Background(), forged, opt); !errors.Is(err, tt.client) {
				t.Fatalf("client.Open of the forged tier 1 = %v, want %v", err, tt.client)
			}
			if _, _, code := run(t, "mirror-sync", "verify", "--root", forged, "--trust-key", key+".pub"); code != tt.code {
				t.Fatalf("verify --trust-key of the forged tier 1 exited %d, want %d", code, tt.code)
			}
		})
	}
}
