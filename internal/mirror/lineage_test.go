package mirror_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/seqmirror/seqmirror/internal/export"
	"github.com/seqmirror/seqmirror/internal/fsys"
	"github.com/seqmirror/seqmirror/internal/mirror"
	"github.com/seqmirror/seqmirror/internal/transport"
	"github.com/seqmirror/seqmirror/testutil"
)

// hopJSON is one hop of a status.json lineage.
func hopJSON(name string, n uint64) string {
	return fmt.Sprintf(`{"name":%q,"address":"","snapshot":%d,"since":"2026-01-02T03:04:05Z"}`, name, n)
}

func lineageJSON(hops ...string) string { return `{"lineage":[` + strings.Join(hops, ",") + `]}` }

// Whatever the upstream's status.json holds, the sync succeeds; the
// lineage is the upstream's plus this mirror when it is valid and about
// the snapshot installed, else it starts at the mirror with a note.
func TestLineageFromHostileUpstream(t *testing.T) {
	many := make([]string, export.MaxHops+1)
	for i := range many {
		many[i] = hopJSON(fmt.Sprint("h", i), 1)
	}
	tests := []struct {
		name  string
		plant func(t *testing.T, up string)
		hops  int  // the mirror's lineage length (1: starts at the mirror, with a note)
		about bool // status.json holds a lineage of the snapshot installed (a read ahead is taken)
	}{
		{name: "valid", plant: write(lineageJSON(hopJSON("m", 1))), hops: 2, about: true},
		{name: "none", plant: func(*testing.T, string) {}, hops: 1},
		{name: "not JSON", plant: write("{garbage"), hops: 1},
		{name: "lineage not a list", plant: write(`{"lineage":5}`), hops: 1},
		{name: "too many hops", plant: write(lineageJSON(many...)), hops: 1},
		{name: "control character in a name", plant: write(lineageJSON(hopJSON("m\u001b[31m", 1))), hops: 1},
		// encoding/json reads invalid UTF-8 as U+FFFD: kept, made valid.
		{name: "invalid UTF-8 in a name", plant: write("{\"lineage\":[{\"name\":\"\xff\",\"snapshot\":1,\"since\":\"2026-01-02T03:04:05Z\"}]}"), hops: 2, about: true},
		{name: "hops about different snapshots", plant: write(lineageJSON(hopJSON("m", 7), hopJSON("x", 1))), hops: 1},
		{name: "about another snapshot", plant: write(lineageJSON(hopJSON("m", 7))), hops: 1},
		{name: "since beyond year 9999 in UTC", plant: write(`{"lineage":[{"name":"m","snapshot":1,"since":"9999-12-31T23:59:59-01:00"}]}`), hops: 1},
		{name: "no since", plant: write(`{"lineage":[{"name":"m","snapshot":1}]}`), hops: 1},
		{name: "a loop through this mirror", plant: write(lineageJSON(hopJSON("m", 1), hopJSON("self", 1))), hops: 1, about: true},
		{name: "over 1 MiB", plant: write(lineageJSON(hopJSON("m", 1)) + strings.Repeat(" ", transport.MaxStatusSize)), hops: 1},
		{name: "a fifo", plant: func(t *testing.T, up string) { testutil.Plant(t, filepath.Join(up, export.StatusName), "fifo") }, hops: 1},
		{name: "a symlink out of the root", plant: func(t *testing.T, up string) {
			out := filepath.Join(t.TempDir(), "status.json")
			testutil.Must(t, os.WriteFile(out, []byte(lineageJSON(hopJSON("m", 1))), 0o644))
			testutil.Must(t, os.Symlink(out, filepath.Join(up, export.StatusName)))
		}, hops: 1},
	}
	for _, tt := range tests {
		for _, overlap := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/overlapping=%v", tt.name, overlap), func(t *testing.T) {
				lineageFrom(t, tt.plant, tt.hops, overlap, overlap && !tt.about)
			})
		}
	}
}

// overlapping is an upstream whose reads overlap (as HTTP's): the sync
// reads status.json as it starts copying.
type overlapping struct{ *counting }

func (overlapping) OverlappingReads() bool { return true }

// lineageFrom syncs a mirror from an upstream plant made and checks the
// lineage has hops hops. status.json is read once — or twice with
// overlap, read ahead and found without the lineage of the snapshot
// installed (again: the read ahead is not taken).
func lineageFrom(t *testing.T, plant func(*testing.T, string), hops int, overlap, again bool) {
	d := t.TempDir()
	up := root(t, d, "up", treeA1)
	plant(t, up)
	mir := export.New(fsys.OS(), filepath.Join(d, "mirror"))
	opt := opts()
	opt.Name, opt.Address = "self", "rsync://self/pub"
	c := &counting{Upstream: openLocals(t, []string{up})[0]}
	var u transport.Upstream = c
	reads := 1
	if overlap {
		u = overlapping{c}
	}
	if again {
		reads = 2
	}
	res, err := mirror.SyncFrom(context.Background(), mir, []transport.Upstream{u}, opt)
	if err != nil || !res.Changed || c.status != reads {
		t.Fatalf("sync = %+v, %v; status.json read %d times, want %d", res, err, c.status, reads)
	}
	st := readStatus(t, mir)
	last := st.Lineage[len(st.Lineage)-1]
	if len(st.Lineage) != hops || last.Name != "self" || last.Address != "rsync://self/pub" || last.Snapshot != 1 || last.Since.IsZero() {
		t.Fatalf("lineage %+v (note %q), want %d hops ending with this mirror", st.Lineage, st.LineageNote, hops)
	}
	if (hops == 1) != (st.LineageNote != "") {
		t.Fatalf("lineage %+v, note %q: want a note exactly when it starts here", st.Lineage, st.LineageNote)
	}
	if hops == 2 && st.Lineage[0].Address != up {
		t.Fatalf("the upstream's hop has address %q, want the one synced from (%s)", st.Lineage[0].Address, up)
	}
	t.Logf("note: %s", st.LineageNote)
}

func write(content string) func(*testing.T, string) {
	return func(t *testing.T, up string) {
		testutil.Must(t, os.WriteFile(filepath.Join(up, export.StatusName), []byte(content), 0o644))
	}
}

// The lineage survives the runs that rewrite status.json without
// installing (a failure, its clearing) while the snapshot is served.
func TestLineageKeptAcrossRewrites(t *testing.T) {
	d := t.TempDir()
	up := root(t, d, "up", treeA1)
	write(lineageJSON(hopJSON("m", 1)))(t, up)
	mir := export.New(fsys.OS(), filepath.Join(d, "mirror"))
	_, err := syncUps(t, mir, []string{up}, opts())
	testutil.Must(t, err)
	testutil.Must(t, os.RemoveAll(up))
	if _, err := syncUps(t, mir, []string{up}, opts()); err == nil {
		t.Fatal("sync from a missing upstream succeeded")
	}
	if st := readStatus(t, mir); st.LastError == "" || len(st.Lineage) != 2 {
		t.Fatalf("after a failure: %+v", st)
	}
	root(t, d, "up", treeA1)
	_, err = syncUps(t, mir, []string{up}, opts())
	testutil.Must(t, err)
	if st := readStatus(t, mir); st.LastError != "" || len(st.Lineage) != 2 {
		t.Fatalf("after the failure was cleared: %+v", st)
	}
	if st, err := mir.Status(); err != nil || len(st.Lineage) != 2 {
		t.Fatalf("live status: %+v %v", st, err)
	}
}

// A run after a trigger's snapshot (Options.Target) stops once it serves
// it, without polling the upstream once more; without a target, or short
// of it, the run polls again after each flip (to follow a newer one).
func TestTargetStopsFollowing(t *testing.T) {
	for _, tt := range []struct {
		name   string
		target uint64
		seq    int // the upstream's seq file reads: end, begin after the copy, end again to poll once more
	}{
		{name: "no target", target: 0, seq: 3},
		{name: "target reached", target: 2, seq: 2},
		{name: "target passed", target: 1, seq: 2},
		{name: "target beyond", target: 3, seq: 3},
	} {
		t.Run(tt.name, func(t *testing.T) {
			d := t.TempDir()
			up := root(t, d, "up", treeA1, treeA2)
			mir := export.New(fsys.OS(), filepath.Join(d, "mirror"))
			opt := opts()
			opt.Target = tt.target
			c := &counting{Upstream: openLocals(t, []string{up})[0]}
			res, err := mirror.SyncFrom(context.Background(), mir, []transport.Upstream{c}, opt)
			if err != nil || !res.Changed || res.Snapshot != 2 {
				t.Fatalf("sync = %+v, %v; want snapshot 2 served", res, err)
			}
			if c.seq != tt.seq {
				t.Fatalf("seq files read %d times, want %d", c.seq, tt.seq)
			}
		})
	}
}
