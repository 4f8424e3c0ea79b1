package cliapp_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/seqmirror/seqmirror/internal/cliapp"
	"github.com/seqmirror/seqmirror/testutil"
)

// tiers is a master and a tier-1 mirror, both served by one rsync daemon.
type tiers struct {
	src, master, tier1 string
	d                  *testutil.Rsyncd
}

func newTiers(t *testing.T) *tiers {
	t.Helper()
	dir := t.TempDir()
	ts := &tiers{src: filepath.Join(dir, "src"), master: filepath.Join(dir, "master"), tier1: filepath.Join(dir, "tier1")}
	testutil.WriteTree(t, ts.src, map[string]string{"a.txt": "a", "b/c.txt": "c"})
	ts.publish(t)
	ts.d = testutil.StartRsyncdServer(t, map[string]string{"master": ts.master, "tier1": ts.tier1})
	ts.sync(t)
	return ts
}

func (ts *tiers) publish(t *testing.T) {
	t.Helper()
	if code, _, stderr := run(t, "publish", "--root", ts.master, "--source", ts.src, "--force", "--quiet"); code != 0 {
		t.Fatalf("publish: %d %s", code, stderr)
	}
}

func (ts *tiers) sync(t *testing.T, args ...string) {
	t.Helper()
	if code, _, stderr := run(t, "mirror-sync", append([]string{"--upstream", ts.d.URL("master"), "--root", ts.tier1, "--quiet"}, args...)...); code != 0 {
		t.Fatalf("mirror-sync: %d %s", code, stderr)
	}
}

// ageManifest sets the mtime of root's manifest of snapshot n to age ago.
func ageManifest(t *testing.T, root string, n string, age time.Duration) {
	t.Helper()
	at := time.Now().Add(-age)
	if err := os.Chtimes(filepath.Join(root, "snapshots", n+".manifest"), at, at); err != nil {
		t.Fatal(err)
	}
}

// checkJSON runs check --json and decodes its object.
func checkJSON(t *testing.T, args ...string) (int, map[string]any) {
	t.Helper()
	code, stdout, stderr := run(t, "mirror-sync", append([]string{"check", "--json"}, args...)...)
	var m map[string]any
	if err := json.Unmarshal([]byte(stdout), &m); err != nil || stderr != "" {
		t.Fatalf("check %q: exit %d, stdout %q, stderr %q", args, code, stdout, stderr)
	}
	return code, m
}

// check over rsync reads everything a client needs through the daemon:
// a fresh tier, a stale one against its upstream, a torn one, and an
// unreachable one.
func TestCheckOverRsync(t *testing.T) {
	ts := newTiers(t)
	code, stdout, stderr := run(t, "mirror-sync", "check", ts.d.URL("tier1"), "--against", ts.d.URL("master"))
	if code != cliapp.PluginOK || !strings.HasPrefix(stdout, "SEQMIRROR OK - serves 1, fresh, lag 0 snapshots 0s | snapshot=1 ") || stderr != "" {
		t.Fatalf("fresh tier 1: exit %d, %q, %q", code, stdout, stderr)
	}
	if !strings.Contains(stdout, " checked_seconds=") {
		t.Fatalf("no poll record read over rsync: %q", stdout)
	}

	ts.publish(t)
	code, m := checkJSON(t, ts.d.URL("tier1"), "--against", ts.d.URL("master"), "--warn-lag", "1")
	if code != cliapp.PluginWarning || m["state"] != "stale" || m["lag_snapshots"] != 1.0 || m["upstream_snapshot"] != 2.0 {
		t.Fatalf("stale tier 1: exit %d, %v", code, m)
	}

	if err := os.Rename(filepath.Join(ts.tier1, "snapshots", "1.manifest"), filepath.Join(ts.tier1, "1.manifest")); err != nil {
		t.Fatal(err)
	}
	code, stdout, _ = run(t, "mirror-sync", "check", ts.d.URL("tier1"))
	if code != cliapp.PluginCritical || !strings.HasPrefix(stdout, "SEQMIRROR CRITICAL - torn: current points to snapshot 1, which is not complete") {
		t.Fatalf("torn tier 1 over rsync: exit %d, %q", code, stdout)
	}

	code, stdout, _ = run(t, "mirror-sync", "check", ts.d.URL("nosuchmodule"))
	if code != cliapp.PluginCritical || !strings.HasPrefix(stdout, "SEQMIRROR CRITICAL - "+ts.d.URL("nosuchmodule")+" unreachable: ") || strings.Count(stdout, "\n") != 1 {
		t.Fatalf("unknown module: exit %d, %q", code, stdout)
	}
	ts.d.Stop()
	code, stdout, _ = run(t, "mirror-sync", "check", ts.d.URL("tier1"))
	if code != cliapp.PluginCritical || !strings.Contains(stdout, "unreachable") {
		t.Fatalf("stopped daemon: exit %d, %q", code, stdout)
	}
}

// The lag is how long the mirror has lacked a snapshot its upstream
// serves, not the age of the upstream's newest snapshot: the mirror serves
// 1; the upstream made 2 (since pruned) 40 s ago, 3 23 s ago and 4 just
// now: the oldest it still holds newer than 1 is 3.
func TestLagSinceFirstMissingSnapshot(t *testing.T) {
	ts := newTiers(t)
	for i := 0; i < 3; i++ {
		ts.publish(t)
	}
	ageManifest(t, ts.master, "2", 40*time.Second)
	ageManifest(t, ts.master, "3", 23*time.Second)
	for _, p := range []string{"2.manifest", "2"} {
		if err := os.RemoveAll(filepath.Join(ts.master, "snapshots", p)); err != nil {
			t.Fatal(err)
		}
	}
	for _, up := range []string{ts.master, ts.d.URL("master")} {
		code, stdout, stderr := run(t, "mirror-sync", "status", "--root", ts.tier1, "--upstream", up, "--json")
		var st struct {
			LagSnapshots uint64  `json:"lag_snapshots"`
			LagSeconds   float64 `json:"lag_seconds"`
			State        string  `json:"state"`
		}
		if err := json.Unmarshal([]byte(stdout), &st); code != 0 || err != nil {
			t.Fatalf("status --upstream %s: exit %d %v %s", up, code, err, stderr)
		}
		if st.State != "stale" || st.LagSnapshots != 3 || st.LagSeconds < 20 || st.LagSeconds > 35 {
			t.Fatalf("status --upstream %s: %+v, want 3 snapshots and ~23 s", up, st)
		}
		_, m := checkJSON(t, ts.tier1, "--against", up)
		if lag := m["lag_seconds"].(float64); lag < 20 || lag > 35 {
			t.Fatalf("check --against %s: lag %v s, want ~23", up, lag)
		}
	}
}

// A mirror stamps a snapshot's manifest when it installs it (rsync -t
// would keep the upstream's mtime): --min-age counts from when the mirror
// stopped serving the old snapshot, and a lower tier's lag from when this
// tier started serving the new one.
func TestMirrorStampsManifest(t *testing.T) {
	ts := newTiers(t)
	ts.publish(t)
	ageManifest(t, ts.master, "2", 2*time.Hour)
	ts.sync(t, "--keep", "1", "--min-age", "1h")
	if _, err := os.Stat(filepath.Join(ts.tier1, "snapshots", "1")); err != nil {
		t.Fatalf("tier 1 pruned the snapshot it served a moment ago despite --min-age 1h: %v", err)
	}
	fi, err := os.Stat(filepath.Join(ts.tier1, "snapshots", "2.manifest"))
	if err != nil {
		t.Fatal(err)
	}
	if age := time.Since(fi.ModTime()); age > time.Minute {
		t.Fatalf("tier 1's manifest of snapshot 2 is %s old: the master's mtime, not when tier 1 installed it", age)
	}
}
