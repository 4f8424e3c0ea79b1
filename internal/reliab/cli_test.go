package reliab

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/seqmirror/seqmirror/internal/cliapp"
	"github.com/seqmirror/seqmirror/testutil"
)

func TestCLIMaxDelete(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	src, master, template := filepath.Join(base, "src"), filepath.Join(base, "master"), filepath.Join(base, "template")
	paths := testutil.GenTree(t, src, 20, 3)
	mustRun(t, "publish", "--root", master, "--source", src, "-q")
	mustRun(t, "mirror-sync", "--upstream", master, "--root", template, "-q")
	for _, p := range paths[:15] { // 15 of 20 files: 75%
		if err := os.Remove(filepath.Join(src, p)); err != nil {
			t.Fatal(err)
		}
	}
	mustRun(t, "publish", "--root", master, "--source", src, "-q", "--max-delete", "100")
	tests := []struct {
		name     string
		args     []string
		wantExit int
		wantErr  string // in stderr
	}{
		{name: "default 50% refuses 75%", wantExit: cliapp.ExitRefused, wantErr: "--force"},
		{name: "max-delete 70 refuses 75%", args: []string{"--max-delete", "70"}, wantExit: cliapp.ExitRefused, wantErr: "deletes 15 of 20 files"},
		{name: "max-delete 0 refuses any delete", args: []string{"--max-delete", "0"}, wantExit: cliapp.ExitRefused, wantErr: "deletes"},
		{name: "max-delete 80 accepts 75%", args: []string{"--max-delete", "80"}, wantExit: cliapp.ExitOK},
		{name: "max-delete 100 accepts", args: []string{"--max-delete", "100"}, wantExit: cliapp.ExitOK},
		{name: "force overrides", args: []string{"--force"}, wantExit: cliapp.ExitOK},
		{name: "force overrides max-delete 0", args: []string{"--force", "--max-delete", "0"}, wantExit: cliapp.ExitOK},
		{name: "bad percentage", args: []string{"--max-delete", "101"}, wantExit: cliapp.ExitUsage, wantErr: "--max-delete"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := filepath.Join(base, fmt.Sprint("m", i))
			cp(t, template, root)
			before := readState(t, root)
			args := append([]string{"--upstream", master, "--root", root, "-q"}, tt.args...)
			_, stderr, code := run(t, "mirror-sync", args...)
			if code != tt.wantExit {
				t.Fatalf("exit %d, want %d; stderr:\n%s", code, tt.wantExit, stderr)
			}
			if !strings.Contains(stderr, tt.wantErr) {
				t.Errorf("stderr %q does not mention %q", stderr, tt.wantErr)
			}
			after := readState(t, root)
			verifyCurrent(t, root)
			if tt.wantExit != cliapp.ExitOK {
				// begin may be ahead: the run bumped it before it saw the
				// manifest; the next run settles it.
				if after.Cur != before.Cur || after.Seq.End != before.Seq.End {
					t.Errorf("refused run changed what the root serves: %+v -> %+v", before, after)
				}
				return
			}
			if after.Cur != 2 {
				t.Errorf("accepted run serves %d, want 2", after.Cur)
			}
			checkClean(t, root)
		})
	}
}

// frozenHolder starts name with args, waits until it visibly holds root's
// lock (its seq/begin is ahead of seq/end) and stops it with SIGSTOP. It
// returns the stopped process, or nil if the run finished first.
func frozenHolder(tb testing.TB, root, name string, args ...string) *frozen {
	tb.Helper()
	start := readState(tb, root)
	cmd := exec.Command(bin(name), args...)
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	for {
		select {
		case <-done:
			return nil
		default:
		}
		// Only the lock holder writes seq/begin; a bump means it holds the lock.
		if b, err := os.ReadFile(filepath.Join(root, "seq", "begin")); err == nil && strings.TrimSpace(string(b)) != fmt.Sprint(start.Seq.Begin) {
			if err := cmd.Process.Signal(syscall.SIGSTOP); err != nil {
				tb.Fatal(err)
			}
			fr := &frozen{cmd: cmd, done: done}
			tb.Cleanup(fr.kill)
			return fr
		}
		time.Sleep(200 * time.Microsecond)
	}
}

// frozen is a stopped process; only the goroutine frozenHolder started
// waits for it.
type frozen struct {
	cmd  *exec.Cmd
	done chan struct{}
}

// kill SIGKILLs the process and waits until it is gone.
func (f *frozen) kill() { f.cmd.Process.Kill(); <-f.done }

func TestLockContention(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	src, master, mirrorRoot := filepath.Join(base, "src"), filepath.Join(base, "master"), filepath.Join(base, "mirror")
	m := newMutator(t, src, 1500, 5)
	pubArgs := []string{"--root", master, "--source", src, "-q", "--min-age", "0s"}
	syncArgs := []string{"--upstream", master, "--root", mirrorRoot, "-q", "--min-age", "0s"}
	mustRun(t, "publish", pubArgs...)
	mustRun(t, "mirror-sync", syncArgs...)
	tests := []struct {
		name    string
		root    string
		bin     string
		args    []string
		prepare func()
	}{
		{name: "two publish", root: master, bin: "publish", args: pubArgs, prepare: func() { m.mutate(t, 400) }},
		{name: "two mirror-sync", root: mirrorRoot, bin: "mirror-sync", args: syncArgs, prepare: func() {
			m.mutate(t, 400)
			mustRun(t, "publish", pubArgs...)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var holder *frozen
			for try := 0; holder == nil; try++ {
				if try == 20 {
					t.Fatal("20 runs finished before they could be seen holding the lock")
				}
				tt.prepare()
				holder = frozenHolder(t, tt.root, tt.bin, tt.args...)
			}
			// Under -q (cron) a held lock is silent: another run does the work.
			_, stderr, code := run(t, tt.bin, tt.args...)
			if code != cliapp.ExitLocked || stderr != "" {
				t.Fatalf("second %s -q while the first holds the lock: exit %d, stderr %q; want exit %d and nothing", tt.bin, code, stderr, cliapp.ExitLocked)
			}
			loud := slices.DeleteFunc(slices.Clone(tt.args), func(a string) bool { return a == "-q" })
			if _, stderr, code := run(t, tt.bin, loud...); code != cliapp.ExitLocked || !strings.Contains(stderr, "locked") {
				t.Fatalf("second %s while the first holds the lock: exit %d, stderr %q; want exit %d and \"locked\"", tt.bin, code, stderr, cliapp.ExitLocked)
			}
			// SIGKILL the frozen holder: the kernel drops its flock.
			holder.kill()
			verifyCurrent(t, tt.root)
			if _, stderr, code := run(t, tt.bin, tt.args...); code != 0 {
				t.Fatalf("run after the holder was SIGKILLed: exit %d\n%s", code, stderr)
			}
			checkClean(t, tt.root)
		})
	}
}

// TestReadersNeverBlock reads the mirror's current tree in a loop while
// mirror-sync runs repeatedly; every read must succeed.
func TestReadersNeverBlock(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	src, master, root := filepath.Join(base, "src"), filepath.Join(base, "master"), filepath.Join(base, "mirror")
	m := newMutator(t, src, 500, 9)
	pubArgs := []string{"--root", master, "--source", src, "-q", "--keep", "20"}
	syncArgs := []string{"--upstream", master, "--root", root, "-q", "--keep", "20"}
	mustRun(t, "publish", pubArgs...)
	mustRun(t, "mirror-sync", syncArgs...)
	var stop atomic.Bool
	var reads, files atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for r := 0; r < 2; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				n, err := readTree(root)
				if err != nil {
					errs <- err
					return
				}
				reads.Add(1)
				files.Add(int64(n))
			}
		}()
	}
	syncs := pick(8, 60)
	for i := 0; i < syncs; i++ {
		m.mutate(t, 50)
		mustRun(t, "publish", pubArgs...)
		mustRun(t, "mirror-sync", syncArgs...)
	}
	stop.Store(true)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if reads.Load() == 0 {
		t.Fatal("readers completed no read")
	}
	t.Logf("%d syncs; readers completed %d whole-tree reads (%d files), 0 errors", syncs, reads.Load(), files.Load())
}

// readTree resolves root/current once and reads every file of that snapshot.
func readTree(root string) (int, error) {
	target, err := os.Readlink(filepath.Join(root, "current"))
	if err != nil {
		return 0, err
	}
	dir := filepath.Join(root, target)
	n := 0
	err = filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if fi.Mode().IsRegular() {
			n++
			_, err = os.ReadFile(p)
		}
		return err
	})
	return n, err
}
