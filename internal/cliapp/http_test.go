package cliapp_test

import (
	"bytes"
	"encoding/json"
	"encoding/pem"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/seqmirror/seqmirror/internal/cliapp"
	"github.com/seqmirror/seqmirror/testutil"
)

// httpTiers is a master and a mirror side by side, both served by one
// nginx as static files (the exclusions an admin adds), the mirror synced
// from the master over HTTP.
type httpTiers struct {
	src, master, mirror string
	paths               []string // the source's files
	nginx               *testutil.Nginx
}

func newHTTPTiers(t *testing.T) *httpTiers {
	t.Helper()
	dir := t.TempDir()
	ts := &httpTiers{src: filepath.Join(dir, "src"), master: filepath.Join(dir, "master"), mirror: filepath.Join(dir, "mirror")}
	ts.paths = testutil.GenTree(t, ts.src, 200, 13)
	testutil.WriteTree(t, ts.src, map[string]string{"link": "->" + ts.paths[0], "odd name %?#.txt": "odd\n"})
	ts.publish(t)
	ts.nginx = testutil.StartNginx(t, testutil.NginxExportRoot(dir))
	return ts
}

func (ts *httpTiers) publish(t *testing.T) {
	t.Helper()
	if code, _, stderr := run(t, "publish", "--root", ts.master, "--source", ts.src, "--force", "--quiet"); code != 0 {
		t.Fatalf("publish: %d %s", code, stderr)
	}
}

// sync runs mirror-sync --json from the master over HTTP and decodes its
// result.
func (ts *httpTiers) sync(t *testing.T) map[string]any {
	t.Helper()
	code, stdout, stderr := run(t, "mirror-sync", "--upstream", ts.nginx.URL("/master/"), "--root", ts.mirror, "--json", "--quiet")
	var res map[string]any
	if err := json.Unmarshal([]byte(stdout), &res); code != 0 || err != nil {
		t.Fatalf("mirror-sync over HTTP: exit %d, %q, %s\n%s", code, stdout, stderr, ts.nginx.Log())
	}
	return res
}

// sameAsMaster checks that the mirror serves snapshot n with the master's
// manifest, and verifies.
func (ts *httpTiers) sameAsMaster(t *testing.T, n string) {
	t.Helper()
	mine, err := os.ReadFile(filepath.Join(ts.mirror, "snapshots", n+".manifest"))
	if err != nil {
		t.Fatal(err)
	}
	theirs, err := os.ReadFile(filepath.Join(ts.master, "snapshots", n+".manifest"))
	if err != nil || !bytes.Equal(mine, theirs) {
		t.Fatalf("the mirror's manifest %s differs from the master's (%v)", n, err)
	}
	if target, err := os.Readlink(filepath.Join(ts.mirror, "current")); err != nil || target != "snapshots/"+n {
		t.Fatalf("mirror current -> %q (%v), want snapshots/%s", target, err, n)
	}
	if code, stdout, stderr := run(t, "mirror-sync", "verify", "--root", ts.mirror); code != 0 {
		t.Fatalf("verify: %d %s %s", code, stdout, stderr)
	}
}

// mirror-sync --upstream http://... against nginx serving the master: the
// first copy, a 1% change (only the changed files fetched, the rest
// linked), then a no-op that costs two small GETs; check and status read
// both roots over HTTP.
func TestMirrorOverHTTP(t *testing.T) {
	ts := newHTTPTiers(t)
	res := ts.sync(t)
	if res["snapshot"] != 1.0 || res["fetched"].(float64) < 200 {
		t.Fatalf("first copy: %v", res)
	}
	ts.sameAsMaster(t, "1")

	testutil.Touch(t, ts.src, ts.paths[3], "changed\n")
	testutil.Touch(t, ts.src, ts.paths[4], "changed too, and longer\n")
	ts.publish(t)
	res = ts.sync(t)
	if res["snapshot"] != 2.0 || res["fetched"] != 2.0 || res["linked"].(float64) < 190 {
		t.Fatalf("1%% change: %v", res)
	}
	ts.sameAsMaster(t, "2")
	ts.repairOverHTTP(t)

	before := ts.logLines(0)
	if res = ts.sync(t); res["snapshot"] != 2.0 || res["changed"] != false {
		t.Fatalf("no-op: %v", res)
	}
	lines := ts.logLines(len(before))[len(before):]
	if len(lines) != 1 || !strings.Contains(lines[0], "GET /master/seq/end ") {
		t.Fatalf("the no-op poll made %d requests, want one: GET seq/end (the record vouches for the rest):\n%s", len(lines), strings.Join(lines, "\n"))
	}

	for _, private := range []string{"/master/.lock", "/mirror/.work/", "/master/.work"} {
		if resp, err := http.Get(ts.nginx.URL(private)); err != nil || resp.StatusCode != http.StatusNotFound {
			t.Fatalf("GET %s: %v %v, want 404", private, resp.Status, err)
		}
	}
	ts.checkOverHTTP(t)
}

// logLines returns nginx's access log lines once it has at least n and
// nothing more comes for a moment (nginx logs a request after answering
// it, so the last lines may lag the client).
func (ts *httpTiers) logLines(n int) []string {
	var lines []string
	for deadline, quiet := time.Now().Add(5*time.Second), 0; time.Now().Before(deadline) && quiet < 3; {
		got := strings.Split(strings.TrimSpace(ts.nginx.AccessLog()), "\n")
		if len(got) == len(lines) && len(got) >= n {
			quiet++
		} else {
			quiet = 0
		}
		lines = got
		time.Sleep(30 * time.Millisecond)
	}
	return lines
}

// repairOverHTTP damages a file of the mirror's served snapshot and has
// verify --repair fetch a good copy over HTTP.
func (ts *httpTiers) repairOverHTTP(t *testing.T) {
	t.Helper()
	victim := filepath.Join(ts.mirror, "current", filepath.FromSlash(ts.paths[7]))
	if err := os.Remove(victim); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(victim, []byte("bit rot"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := run(t, "mirror-sync", "verify", "--root", ts.mirror, "--repair", "--upstream", ts.nginx.URL("/master/"))
	if code != 0 || !strings.Contains(stderr, "repaired 1 path") {
		t.Fatalf("repair over HTTP: exit %d\nstdout %s\nstderr %s", code, stdout, stderr)
	}
	ts.sameAsMaster(t, "2")
}

// checkOverHTTP runs check and status --upstream against the roots over
// HTTP: fresh, then stale once the master publishes again.
func (ts *httpTiers) checkOverHTTP(t *testing.T) {
	t.Helper()
	mirrorURL, masterURL := ts.nginx.URL("/mirror/"), ts.nginx.URL("/master/")
	code, stdout, stderr := run(t, "mirror-sync", "check", mirrorURL, "--against", masterURL)
	if code != cliapp.PluginOK || !strings.HasPrefix(stdout, "SEQMIRROR OK - serves 2, fresh, lag 0 snapshots 0s | snapshot=2 ") || stderr != "" {
		t.Fatalf("check over HTTP: exit %d, %q, %q", code, stdout, stderr)
	}
	if !strings.Contains(stdout, " checked_seconds=") {
		t.Fatalf("no poll record read over HTTP: %q", stdout)
	}
	testutil.Touch(t, ts.src, ts.paths[5], "changed again\n")
	ts.publish(t)
	code, m := checkJSON(t, mirrorURL, "--against", masterURL, "--warn-lag", "1")
	if code != cliapp.PluginWarning || m["state"] != "stale" || m["lag_snapshots"] != 1.0 || m["upstream_snapshot"] != 3.0 {
		t.Fatalf("stale mirror over HTTP: exit %d, %v", code, m)
	}
	code, stdout, stderr = run(t, "mirror-sync", "status", "--root", ts.mirror, "--upstream", masterURL, "--json")
	var st map[string]any
	if err := json.Unmarshal([]byte(stdout), &st); code != 0 || err != nil || st["upstream_snapshot"] != 3.0 || st["lag_snapshots"] != 1.0 || st["state"] != "stale" {
		t.Fatalf("status --upstream over HTTP: exit %d, %q, %s", code, stdout, stderr)
	}
	if err := os.Remove(filepath.Join(ts.mirror, "snapshots", "2.manifest")); err != nil {
		t.Fatal(err)
	}
	code, stdout, _ = run(t, "mirror-sync", "check", mirrorURL)
	if code != cliapp.PluginCritical || !strings.HasPrefix(stdout, "SEQMIRROR CRITICAL - torn: current points to snapshot 2, which is not complete") {
		t.Fatalf("torn mirror over HTTP: exit %d, %q", code, stdout)
	}
}

// mirror-sync --upstream https://... trusts a server whose CA is given
// with --ca-file; without it, it refuses the certificate and the hint
// names the flag.
func TestMirrorOverHTTPSWithCAFile(t *testing.T) {
	dir := t.TempDir()
	src, master := filepath.Join(dir, "src"), filepath.Join(dir, "master")
	testutil.GenTree(t, src, 20, 3)
	if code, _, stderr := run(t, "publish", "--root", master, "--source", src, "--quiet"); code != 0 {
		t.Fatalf("publish: %d %s", code, stderr)
	}
	s := httptest.NewUnstartedServer(testutil.FileHandler(master))
	s.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake
	s.StartTLS()
	t.Cleanup(s.Close)
	ca := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	mirror := filepath.Join(dir, "mirror")
	code, _, stderr := run(t, "mirror-sync", "--upstream", s.URL+"/", "--root", mirror, "--quiet")
	if code != cliapp.ExitRefusedUp || !strings.Contains(stderr, "certificate") || !strings.Contains(stderr, "hint: ") || !strings.Contains(stderr, "--ca-file") {
		t.Fatalf("without --ca-file: exit %d, %s", code, stderr)
	}
	code, stdout, stderr := run(t, "mirror-sync", "--upstream", s.URL+"/", "--root", mirror, "--ca-file", ca)
	if code != 0 || strings.TrimSpace(stdout) != "1" {
		t.Fatalf("with --ca-file: exit %d, %q, %s", code, stdout, stderr)
	}
	if code, stdout, stderr := run(t, "mirror-sync", "verify", "--root", mirror); code != 0 {
		t.Fatalf("verify: %d %s %s", code, stdout, stderr)
	}
}
