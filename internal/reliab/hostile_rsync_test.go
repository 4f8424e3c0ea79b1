package reliab

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/seqmirror/seqmirror/internal/cliapp"
	"github.com/seqmirror/seqmirror/internal/export"
	"github.com/seqmirror/seqmirror/internal/fsys"
	"github.com/seqmirror/seqmirror/internal/mirror"
	"github.com/seqmirror/seqmirror/internal/transport"
	"github.com/seqmirror/seqmirror/internal/tree"
	"github.com/seqmirror/seqmirror/manifest"
	"github.com/seqmirror/seqmirror/seqfile"
	"github.com/seqmirror/seqmirror/testutil"
)

// rsyncHostileCase is an upstream crafted against the rsync transport (the
// types rsync itself handles: specials, sizes, symlinks) and how the
// mirror must refuse it.
type rsyncHostileCase struct {
	name  string
	craft func(h hostileUp)
	free  int64  // if > 0, the mirror's disk reports only this much free
	want  error  // nil: no sentinel (exit says what)
	exit  int    // exit code
	says  string // the error names what was wrong
}

// plantAt returns a craft that replaces rel in the upstream by kind
// (testutil.Plant).
func plantAt(rel, kind string) func(h hostileUp) {
	return func(h hostileUp) { testutil.Plant(h.tb, filepath.Join(h.dir, filepath.FromSlash(rel)), kind) }
}

// sizeAt returns a craft that makes rel a sparse file of size bytes.
func sizeAt(rel string, size int64) func(h hostileUp) {
	return func(h hostileUp) {
		p := filepath.Join(h.dir, filepath.FromSlash(rel))
		os.Chmod(filepath.Dir(p), 0o755)
		os.Chmod(p, 0o644)
		if err := os.Truncate(p, size); err != nil {
			h.tb.Fatal(err)
		}
	}
}

func rsyncHostileCases() []rsyncHostileCase {
	return []rsyncHostileCase{
		{name: "fifo where a file is", craft: plantAt(addedFile, "fifo"), want: tree.ErrHashMismatch, exit: cliapp.ExitCorrupt, says: "a fifo upstream"},
		{name: "block device where a file is", craft: plantAt(addedFile, "blockdev"), want: tree.ErrHashMismatch, exit: cliapp.ExitCorrupt, says: "a block device upstream"},
		{name: "symlink where a file is", craft: plantAt(addedFile, "symlink"), want: tree.ErrHashMismatch, exit: cliapp.ExitCorrupt, says: "a symlink upstream"},
		{name: "file larger than its record", craft: sizeAt(addedFile, 1<<20), want: tree.ErrHashMismatch, exit: cliapp.ExitCorrupt, says: "1048576 bytes upstream"},
		{name: "fifo manifest", craft: plantAt("snapshots/2.manifest", "fifo"), want: manifest.ErrCorrupt, exit: cliapp.ExitCorrupt, says: "a fifo upstream"},
		{name: "device manifest", craft: plantAt("snapshots/2.manifest", "chardev"), want: manifest.ErrCorrupt, exit: cliapp.ExitCorrupt, says: "a character device upstream"},
		{name: "sparse manifest larger than the disk", craft: sizeAt("snapshots/2.manifest", 200<<20), free: 64 << 20,
			exit: cliapp.ExitFailure, says: "209715200 bytes upstream"},
		{name: "manifest over the 4 GiB cap", craft: sizeAt("snapshots/2.manifest", int64(transport.MaxManifestSize)+1),
			want: manifest.ErrCorrupt, exit: cliapp.ExitCorrupt, says: "4294967297 bytes upstream"},
		{name: "sparse 1 GiB seq end", craft: sizeAt("seq/end", 1<<30), want: seqfile.ErrCorrupt, exit: cliapp.ExitCorrupt, says: "1073741824 bytes upstream"},
		{name: "fifo seq end", craft: plantAt("seq/end", "fifo"), want: seqfile.ErrCorrupt, exit: cliapp.ExitCorrupt, says: "a fifo upstream"},
		{name: "seq end symlink to a secret", craft: func(h hostileUp) {
			p := filepath.Join(h.dir, "seq", "end")
			os.Remove(p)
			if err := os.Symlink(filepath.Join(h.sentinel, "secret"), p); err != nil {
				h.tb.Fatal(err)
			}
		}, want: seqfile.ErrCorrupt, exit: cliapp.ExitCorrupt, says: "a symlink upstream"},
	}
}

// TestHostileUpstreamRsyncTypes serves rsyncHostileCases through an rsync
// daemon to a mirror serving snapshot 1: each is refused for the right
// reason, the error says what was wrong (never "no such file"), nothing in
// ROOT/.work is a device, a special file or setuid (the next run empties
// it), and the served snapshot is unchanged and verifies.
func TestHostileUpstreamRsyncTypes(t *testing.T) {
	testutil.RequireBinary(t, "rsync")
	base := testutil.FastDir(t)
	fx := newHostileFixture(t, base)
	cases := rsyncHostileCases()
	caseDir := func(i int) string { return filepath.Join(base, "rcase", fmt.Sprint(i)) }
	modules := map[string]string{}
	for i := range cases {
		modules[fmt.Sprint("c", i)] = filepath.Join(caseDir(i), "up")
	}
	d := testutil.StartRsyncdServer(t, modules)
	for i, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			dir := caseDir(i)
			up, root, sentinel := filepath.Join(dir, "up"), filepath.Join(dir, "mirror"), filepath.Join(dir, "sentinel")
			if err := os.MkdirAll(sentinel, 0o755); err != nil {
				t.Fatal(err)
			}
			writeFile(t, filepath.Join(sentinel, "secret"), "root:do not quote\n")
			cp(t, fx.good, up)
			cp(t, fx.goodMirror, root)
			tt.craft(hostileUp{tb: t, dir: up, sentinel: sentinel})
			before, oldMan := readState(t, root), verifyCurrent(t, root)
			var f fsys.FS = fsys.OS()
			if tt.free > 0 {
				f = testutil.NewSmallDisk(tt.free)
			}
			err := syncThrough(f, d.URL(fmt.Sprint("c", i)), root)
			if err == nil || (tt.want != nil && !errors.Is(err, tt.want)) {
				t.Fatalf("Sync err = %v, want it to wrap %v", err, tt.want)
			}
			t.Logf("refused: %v", err)
			if code := cliapp.ExitCode(err); code != tt.exit {
				t.Errorf("exit code %d, want %d", code, tt.exit)
			}
			msg := err.Error()
			if !strings.Contains(msg, tt.says) || strings.Contains(strings.ToLower(msg), "no such file") || strings.Contains(msg, "do not quote") {
				t.Errorf("error does not say %q (or misleads, or quotes the upstream): %v", tt.says, err)
			}
			noSpecials(t, filepath.Join(root, export.WorkName))
			after := readState(t, root)
			if after.Cur != before.Cur || after.Seq.End != before.Seq.End || !sameEntries(verifyCurrent(t, root), oldMan) {
				t.Errorf("served snapshot changed: %+v, was %+v", after, before)
			}
			if t.Failed() {
				t.Logf("rsyncd log:\n%s", d.Log())
			}
		})
	}
}

// noSpecials checks that nothing below dir is a device, fifo or socket or
// has a setuid, setgid or sticky bit.
func noSpecials(tb testing.TB, dir string) {
	tb.Helper()
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && (fi.Mode()&(os.ModeDevice|os.ModeNamedPipe|os.ModeSocket|os.ModeSetuid|os.ModeSetgid|os.ModeSticky) != 0) {
			tb.Errorf("%s is %v", p, fi.Mode())
		}
		return nil
	})
}

// syncThrough runs one mirror.Sync of root from the rsync address addr, its
// scratch in ROOT/.work as mirror-sync's.
func syncThrough(f fsys.FS, addr, root string) error {
	r := export.New(f, root)
	u, err := transport.Open(addr, f, transport.Options{ScratchDir: r.WorkDir()})
	if err != nil {
		return err
	}
	defer u.Close()
	_, err = mirror.Sync(context.Background(), r, u, oneRetry())
	return err
}

// A mirror-sync killed while it polls an rsync upstream leaves nothing in
// $TMPDIR: its scratch is in ROOT/.work, which the next run empties.
func TestKilledRsyncRunLeavesNoTemp(t *testing.T) {
	testutil.RequireBinary(t, "rsync")
	tmpdir, base := t.TempDir(), t.TempDir()
	master, root := filepath.Join(base, "master"), filepath.Join(base, "mirror")
	v1, _ := makeSources(t, filepath.Join(base, "src"))
	publish(t, fsys.OS(), master, v1)
	silent := testutil.SilentServer(t)
	cmd := exec.Command(bin("mirror-sync"), "--upstream", "rsync://"+silent+"/m", "--root", root, "--quiet",
		"--contimeout", "60s", "--timeout", "3s")
	cmd.Env = append(os.Environ(), "TMPDIR="+tmpdir)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second) // polling the silent server
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	ents, err := os.ReadDir(tmpdir)
	if err != nil {
		t.Fatal(err)
	}
	if got := names(ents); slices.ContainsFunc(got, func(n string) bool { return strings.HasPrefix(n, "seqmirror-rsync-") }) {
		t.Errorf("the killed run left %v in $TMPDIR", got)
	}
	cmd = exec.Command(bin("mirror-sync"), "--upstream", serveRoot(t, master), "--root", root, "--quiet")
	cmd.Env = append(os.Environ(), "TMPDIR="+tmpdir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("next run: %v\n%s", err, out)
	}
	checkClean(t, root)
	verifyCurrent(t, root)
}
