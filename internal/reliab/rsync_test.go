package reliab

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/seqmirror/seqmirror/internal/export"
	"github.com/seqmirror/seqmirror/internal/fsys"
	"github.com/seqmirror/seqmirror/internal/mirror"
	"github.com/seqmirror/seqmirror/internal/transport"
	"github.com/seqmirror/seqmirror/testutil"
)

// serveRoot serves the export root at root through a real rsync daemon
// configured with the module section `publish rsyncd-conf` prints (no
// chroot, as the current user), and returns its rsync:// address.
func serveRoot(tb testing.TB, root string) string {
	tb.Helper()
	testutil.RequireBinary(tb, "rsync")
	conf := mustRun(tb, "publish", "rsyncd-conf", "--root", root, "--module", "mod", "--no-chroot",
		"--user", strconv.Itoa(os.Getuid()), "--group", strconv.Itoa(os.Getgid()))
	return testutil.StartRsyncdConfig(tb, conf).URL("mod")
}

// TestCoherenceTortureRsync is TestCoherenceTorture with the master served
// by an rsync daemon and mirror-sync pulling from rsync://127.0.0.1:PORT/mod.
func TestCoherenceTortureRsync(t *testing.T) {
	testutil.RequireBinary(t, "rsync")
	dur := time.Duration(pick(12, 300)) * time.Second
	mirror := filepath.Join(t.TempDir(), "mirror")
	var url string
	setup := func(master string) { url = serveRoot(t, master) }
	var syncs, busy atomic.Int64
	loop := mirrorSyncLoop(t, func(string) string { return url }, mirror, &syncs, &busy)
	res := torture(t, dur, pick(300, 600), setup, loop, currentReader(mirror))
	t.Logf("seqmirror over rsync: %d mirror-sync runs from %s (%d gave up busy)", syncs.Load(), url, busy.Load())
	checkTortureMirror(t, "seqmirror over rsync", res, mirror)
}

// TestHostileUpstreamRsync serves some of TestHostileUpstream's crafted
// upstreams through an rsync daemon: the rsync transport must refuse them as
// the local one does.
func TestHostileUpstreamRsync(t *testing.T) {
	testutil.RequireBinary(t, "rsync")
	base := testutil.FastDir(t)
	fx := newHostileFixture(t, base)
	byName := hostileCasesByName()
	tests := []struct {
		name string // a case of hostileCases
	}{
		{name: "content does not match hash"},
		{name: forgedCase},
		{name: "dotdot path"},
		{name: "wrong manifest checksum"},
		{name: "truncated manifest"},
		{name: "garbage seq end"},
		{name: rollbackCase},
	}
	// One daemon serves every case's upstream (crafted later) as module cI.
	caseDir := func(i int) string { return filepath.Join(base, "case", fmt.Sprint(i)) }
	modules := map[string]string{}
	for i := range tests {
		modules[fmt.Sprint("c", i)] = filepath.Join(caseDir(i), "up")
	}
	d := testutil.StartRsyncdServer(t, modules)
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hc, ok := byName[tt.name]
			if !ok {
				t.Fatalf("no hostile case %q", tt.name)
			}
			if hc.fs != nil {
				t.Fatalf("case %q needs a local filesystem", tt.name)
			}
			fx.run(t, caseDir(i), hc, func(f fsys.FS, _, root string) error {
				u, err := transport.Open(d.URL(fmt.Sprint("c", i)), f, transport.Options{})
				if err != nil {
					return err
				}
				defer u.Close()
				_, err = mirror.Sync(context.Background(), export.New(f, root), u, mirrorOpts())
				return err
			})
			if t.Failed() {
				t.Logf("rsyncd log:\n%s", d.Log())
			}
		})
	}
}
