package cliapp_test

import (
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/seqmirror/seqmirror/internal/export"
	"github.com/seqmirror/seqmirror/testutil"
)

// deadRsync is an rsync:// address nothing listens at.
func deadRsync(tb testing.TB) string {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	testutil.Must(tb, err)
	addr := "rsync://" + l.Addr().String() + "/pub"
	l.Close()
	return addr
}

func readJSON(tb testing.TB, p string, v any) {
	tb.Helper()
	b, err := os.ReadFile(p)
	testutil.Must(tb, err)
	testutil.Must(tb, json.Unmarshal(b, v))
}

// End to end through an rsync daemon: the first upstream is down, the run
// follows the second; status.json names it; seq/checked lists both with
// their state; the next poll is a no-op.
func TestFailoverFirstUpstreamDownRsync(t *testing.T) {
	dir := t.TempDir()
	src, master, mir := filepath.Join(dir, "src"), filepath.Join(dir, "master"), filepath.Join(dir, "mirror")
	testutil.WriteTree(t, src, map[string]string{"a.txt": "a", "d/b.txt": "b"})
	if code, _, stderr := run(t, "publish", "--root", master, "--source", src, "--quiet"); code != 0 {
		t.Fatalf("publish: %d %s", code, stderr)
	}
	live := testutil.StartRsyncdServer(t, map[string]string{"pub": master}).URL("pub")
	dead := deadRsync(t)
	for i, wantChanged := range []bool{true, false} {
		code, stdout, stderr := run(t, "mirror-sync", "--upstream", dead, "--upstream", live, "--root", mir, "--retries", "0", "--json")
		if code != 0 {
			t.Fatalf("run %d: exit %d\n%s", i, code, stderr)
		}
		var res struct {
			Snapshot  uint64                  `json:"snapshot"`
			Changed   bool                    `json:"changed"`
			Upstream  string                  `json:"upstream"`
			Upstreams []export.PolledUpstream `json:"upstreams"`
		}
		testutil.Must(t, json.Unmarshal([]byte(stdout), &res))
		if res.Snapshot != 1 || res.Changed != wantChanged || res.Upstream != live || len(res.Upstreams) != 2 ||
			res.Upstreams[0].State != export.PolledUnavailable || res.Upstreams[1].State != export.PolledChosen {
			t.Fatalf("run %d: %+v", i, res)
		}
	}
	var st export.Status
	readJSON(t, filepath.Join(mir, export.StatusName), &st)
	if st.Upstream != live {
		t.Fatalf("status.json names %q, want %q", st.Upstream, live)
	}
	var poll export.Poll
	readJSON(t, filepath.Join(mir, "seq", export.CheckedName), &poll)
	if poll.Upstream != live || len(poll.Upstreams) != 2 || poll.Upstreams[0].Upstream != dead || poll.Upstreams[0].State != export.PolledUnavailable {
		t.Fatalf("seq/checked = %+v", poll)
	}
	code, stdout, _ := run(t, "mirror-sync", "status", "--root", mir)
	if code != 0 || !strings.Contains(stdout, "unavailable") || !strings.Contains(stdout, "chosen") {
		t.Fatalf("status: exit %d\n%s", code, stdout)
	}
	// All down: the documented unavailable exit code (5).
	if code, _, stderr := run(t, "mirror-sync", "--upstream", dead, "--upstream", deadRsync(t), "--root", mir, "--retries", "0"); code != 5 ||
		!strings.Contains(stderr, "none of the 2 upstreams answered") {
		t.Fatalf("all down: exit %d, want 5\n%s", code, stderr)
	}
}

// A chain master -> a -> b on one host (b pulls from a's rsync daemon):
// b's status.json carries three
// hops in order with non-decreasing since, and check prints each hop's
// lag after the previous one.
func TestLineageChain(t *testing.T) {
	dir := t.TempDir()
	src, master, a, b := filepath.Join(dir, "src"), filepath.Join(dir, "master"), filepath.Join(dir, "a"), filepath.Join(dir, "b")
	testutil.WriteTree(t, src, map[string]string{"a.txt": "a"})
	testutil.Must(t, os.MkdirAll(a, 0o755))
	aURL := testutil.StartRsyncdServer(t, map[string]string{"pub": a}).URL("pub") // b reads a's status.json over rsync
	steps := [][]string{
		{"publish", "--root", master, "--source", src, "--name", "master", "--address", "rsync://master.example/pub", "--quiet"},
		{"mirror-sync", "--upstream", master, "--root", a, "--name", "tier1", "--quiet"},
		{"mirror-sync", "--upstream", aURL, "--root", b, "--name", "tier2", "--address", "https://b.example/pub/", "--quiet"},
	}
	for round := 1; round <= 2; round++ {
		if round == 2 {
			testutil.Touch(t, src, "a.txt", "a2")
		}
		for _, s := range steps {
			if code, _, stderr := run(t, s[0], s[1:]...); code != 0 {
				t.Fatalf("%v: exit %d\n%s", s, code, stderr)
			}
		}
		var st export.Status
		readJSON(t, filepath.Join(b, export.StatusName), &st)
		want := []export.Hop{{Name: "master", Address: "rsync://master.example/pub"}, {Name: "tier1", Address: aURL}, {Name: "tier2", Address: "https://b.example/pub/"}}
		if len(st.Lineage) != 3 || st.LineageNote != "" {
			t.Fatalf("round %d: lineage %+v (%s)", round, st.Lineage, st.LineageNote)
		}
		for i, h := range st.Lineage {
			if h.Name != want[i].Name || h.Address != want[i].Address || h.Snapshot != uint64(round) || h.Since.Location() != time.UTC ||
				(i > 0 && h.Since.Before(st.Lineage[i-1].Since)) {
				t.Fatalf("round %d: hop %d = %+v, want %s at %s serving %d, since not before the previous hop's", round, i, h, want[i].Name, want[i].Address, round)
			}
		}
	}
	before, err := os.ReadFile(filepath.Join(b, export.StatusName))
	testutil.Must(t, err)
	if code, _, stderr := run(t, "mirror-sync", "--upstream", aURL, "--root", b, "--name", "tier2", "--quiet"); code != 0 {
		t.Fatalf("no-op: %d %s", code, stderr)
	}
	if after, _ := os.ReadFile(filepath.Join(b, export.StatusName)); string(after) != string(before) {
		t.Fatalf("a no-op poll rewrote status.json:\n%s\n%s", before, after)
	}

	code, stdout, _ := run(t, "mirror-sync", "check", b)
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	if code != 0 || len(lines) != 6 || lines[5] != "signature: unsigned" || !strings.HasPrefix(lines[0], "SEQMIRROR OK - serves 2") ||
		!strings.HasPrefix(lines[1], "hop 1 master rsync://master.example/pub snapshot 2 since ") || !strings.HasSuffix(lines[1], " master") ||
		!strings.HasPrefix(lines[2], "hop 2 tier1 "+aURL+" snapshot 2 since ") || !strings.Contains(lines[2], " +") ||
		!strings.HasPrefix(lines[3], "hop 3 tier2 https://b.example/pub/ snapshot 2 since ") ||
		!strings.HasPrefix(lines[4], "serving it for ") {
		t.Fatalf("check: exit %d\n%s", code, stdout)
	}
	code, stdout, _ = run(t, "mirror-sync", "check", b, "--json")
	var j struct {
		Lineage []struct {
			export.Hop
			LagSeconds *float64 `json:"lag_seconds"`
		} `json:"lineage"`
		Age *float64 `json:"lineage_age_seconds"`
	}
	testutil.Must(t, json.Unmarshal([]byte(stdout), &j))
	if code != 0 || len(j.Lineage) != 3 || j.Lineage[0].LagSeconds != nil || j.Age == nil || *j.Age < 0 {
		t.Fatalf("check --json: exit %d\n%s", code, stdout)
	}
	for i, h := range j.Lineage[1:] {
		if h.LagSeconds == nil || *h.LagSeconds != h.Since.Sub(j.Lineage[i].Since).Seconds() {
			t.Fatalf("hop %d lag %v, want its since minus the previous hop's\n%s", i+2, h.LagSeconds, stdout)
		}
	}
}

// A first upstream that accepts and never answers (a hung daemon) times
// out, bounded by --contimeout, and the second is followed.
func TestFailoverFirstUpstreamHangs(t *testing.T) {
	dir := t.TempDir()
	src, master, mir := filepath.Join(dir, "src"), filepath.Join(dir, "master"), filepath.Join(dir, "mirror")
	testutil.WriteTree(t, src, map[string]string{"a.txt": "a"})
	if code, _, stderr := run(t, "publish", "--root", master, "--source", src, "--quiet"); code != 0 {
		t.Fatalf("publish: %d %s", code, stderr)
	}
	live := testutil.StartRsyncdServer(t, map[string]string{"pub": master}).URL("pub")
	hung := "rsync://" + testutil.SilentServer(t) + "/pub"
	start := time.Now()
	code, stdout, stderr := run(t, "mirror-sync", "--upstream", hung, "--upstream", live, "--root", mir, "--contimeout", "1s")
	if code != 0 || strings.TrimSpace(stdout) != "1" || time.Since(start) > 20*time.Second {
		t.Fatalf("exit %d after %s, stdout %q\n%s", code, time.Since(start), stdout, stderr)
	}
	var poll export.Poll
	readJSON(t, filepath.Join(mir, "seq", export.CheckedName), &poll)
	if poll.Upstream != live || poll.Upstreams[0].State != export.PolledUnavailable || !strings.Contains(poll.Upstreams[0].Error, "timed out") {
		t.Fatalf("seq/checked = %+v", poll)
	}
}
