package rsync_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
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

// served returns the mode of rel in the snapshot dir serves.
func servedMode(tb testing.TB, dir, rel string) fs.FileMode {
	tb.Helper()
	fi, err := os.Lstat(filepath.Join(dir, "current", filepath.FromSlash(rel)))
	if err != nil {
		tb.Fatal(err)
	}
	return fi.Mode()
}

// workEmpty checks that ROOT/.work holds nothing (or does not exist).
func workEmpty(tb testing.TB, root string) {
	tb.Helper()
	ents, err := os.ReadDir(filepath.Join(root, export.WorkName))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		tb.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if len(names) > 0 {
		tb.Errorf("%s/.work holds %v after the run", root, names)
	}
}

// A setuid file upstream is served without its setuid bit, by a first copy
// (FetchSnapshot) and by classic mode (FetchTree), and verifies.
func TestSetuidNotServed(t *testing.T) {
	tmp := t.TempDir()
	src, master, classic := filepath.Join(tmp, "src"), filepath.Join(tmp, "master"), filepath.Join(tmp, "classic")
	testutil.WriteTree(t, src, map[string]string{"bin/tool": "#!/bin/sh\n", "dir/f": "x"})
	testutil.Must(t, os.Chmod(filepath.Join(src, "bin/tool"), 0o755))
	publish(t, master, src, 3)
	// Planted behind the manifest's back (publish never records it).
	testutil.Must(t, syscall.Chmod(filepath.Join(master, "snapshots/1/bin/tool"), 0o4755))
	testutil.Must(t, syscall.Chmod(filepath.Join(master, "snapshots/1/dir"), 0o2755))
	testutil.WriteTree(t, classic, map[string]string{"bin/tool": "#!/bin/sh\n", "dir/f": "x"})
	testutil.Must(t, syscall.Chmod(filepath.Join(classic, "bin/tool"), 0o4755))
	testutil.Must(t, syscall.Chmod(filepath.Join(classic, "dir"), 0o3777))
	writeSeq(t, classic, "begin", 1)
	writeSeq(t, classic, "end", 1)
	d := testutil.StartRsyncdServer(t, map[string]string{"master": master, "classic": classic})
	for _, tc := range []struct {
		name string
		args []string
	}{
		{name: "first copy", args: []string{"--upstream", d.URL("master")}},
		{name: "classic", args: []string{"--classic", "--upstream", d.URL("classic")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mir := filepath.Join(t.TempDir(), "mirror")
			code, out, errs := runMirror(t, append(tc.args, "--root", mir, "--quiet")...)
			if code != 0 {
				t.Fatalf("exit %d\n%s%s", code, out, errs)
			}
			for _, p := range []string{"bin/tool", "dir"} {
				if m := servedMode(t, mir, p); m&(fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky) != 0 {
					t.Errorf("%s served with mode %v", p, m)
				}
			}
			verifyServed(t, mir)
			if code, out, errs := runMirror(t, "verify", "--root", mir); code != 0 {
				t.Fatalf("mirror-sync verify: exit %d\n%s%s", code, out, errs)
			}
		})
	}
}

// A device or special file in a classic upstream is refused, and nothing
// of the copy stays in ROOT/.work.
func TestClassicRefusesSpecialFiles(t *testing.T) {
	for _, kind := range []string{"fifo", "blockdev", "chardev"} {
		t.Run(kind, func(t *testing.T) {
			tmp := t.TempDir()
			classic, mir := filepath.Join(tmp, "classic"), filepath.Join(tmp, "mirror")
			testutil.WriteTree(t, classic, map[string]string{"a/f": "x", "b": "y"})
			testutil.Plant(t, filepath.Join(classic, "a", "planted"), kind)
			writeSeq(t, classic, "begin", 1)
			writeSeq(t, classic, "end", 1)
			d := testutil.StartRsyncdServer(t, map[string]string{"classic": classic})
			code, out, errs := runMirror(t, "--classic", "--upstream", d.URL("classic"), "--root", mir, "--quiet", "--retries", "0")
			if code == 0 {
				t.Fatalf("a %s upstream was accepted:\n%s%s", kind, out, errs)
			}
			want := map[string]string{"fifo": "a fifo", "blockdev": "a block device", "chardev": "a character device"}[kind]
			if !strings.Contains(errs, `"a/planted"`) || !strings.Contains(errs, want) {
				t.Errorf("error does not say that a/planted is %s:\n%s", want, errs)
			}
			workEmpty(t, mir)
			if n, _ := export.New(fsys.OS(), mir).Current(); n != 0 {
				t.Errorf("serves %d", n)
			}
		})
	}
}

// A manifest larger than the mirror can hold is refused before a byte of
// it is copied.
func TestManifestSizeCheckedFirst(t *testing.T) {
	tmp := t.TempDir()
	src, master := filepath.Join(tmp, "src"), filepath.Join(tmp, "master")
	testutil.GenTree(t, src, 3, 9)
	publish(t, master, src, 3)
	// 200 MB of sparse garbage: the mirror's disk has 64 MiB free.
	testutil.Must(t, os.Truncate(filepath.Join(master, "snapshots", "1.manifest"), 200<<20))
	port := testutil.StartRsyncd(t, map[string]string{"master": master})
	up, err := transport.Open(fmt.Sprintf("rsync://127.0.0.1:%d/master", port), testutil.NewSmallDisk(64<<20), transport.Options{})
	testutil.Must(t, err)
	defer up.Close()
	dst := filepath.Join(t.TempDir(), "1.manifest")
	err = up.FetchManifest(context.Background(), 1, dst)
	if err == nil || !strings.Contains(err.Error(), "209715200 bytes upstream") || !strings.Contains(err.Error(), "free") {
		t.Fatalf("FetchManifest of a manifest twice the free space: %v", err)
	}
	if fi, err := os.Lstat(dst); err == nil {
		t.Fatalf("%d bytes of it were copied", fi.Size())
	}
	if code := cliapp.ExitCode(err); code != cliapp.ExitFailure {
		t.Errorf("exit code %d, want %d (not corrupt: the mirror lacks room)", code, cliapp.ExitFailure)
	}
	// Over the 4 GiB cap it is corrupt, whatever the free space.
	testutil.Must(t, os.Truncate(filepath.Join(master, "snapshots", "1.manifest"), int64(transport.MaxManifestSize)+1))
	err = up.FetchManifest(context.Background(), 1, dst)
	if !errors.Is(err, manifest.ErrCorrupt) || !strings.Contains(err.Error(), "4294967297 bytes upstream") {
		t.Fatalf("FetchManifest of a manifest over the cap: %v", err)
	}
}

// A missing seq/ or seq/end of an export root reads as 0 (protocol section
// 2), as over the local transport; a tree that is not an export root (no
// snapshots/) is still an error.
func TestMissingSeqReadsZero(t *testing.T) {
	tests := []struct {
		name       string
		remove     []string
		end, begin uint64
		wantErr    bool
	}{
		{name: "no seq/end", remove: []string{"seq/end"}, end: 0, begin: 1},
		{name: "no seq/", remove: []string{"seq"}, end: 0, begin: 0},
		{name: "not a root", remove: []string{"seq", "snapshots", "current"}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tmp := t.TempDir()
			src, master := filepath.Join(tmp, "src"), filepath.Join(tmp, "master")
			testutil.GenTree(t, src, 2, 10)
			publish(t, master, src, 3)
			for _, p := range tt.remove {
				os.Chmod(filepath.Join(master, p), 0o755)
				testutil.Must(t, os.RemoveAll(filepath.Join(master, p)))
			}
			port := testutil.StartRsyncd(t, map[string]string{"master": master})
			for _, up := range []string{master, fmt.Sprintf("rsync://127.0.0.1:%d/master", port)} {
				u, err := transport.Open(up, fsys.OS(), transport.Options{})
				testutil.Must(t, err)
				defer u.Close()
				for name, want := range map[string]uint64{seqfile.End: tt.end, seqfile.Begin: tt.begin} {
					n, err := u.Seq(context.Background(), name)
					if tt.wantErr != (err != nil) || n != want {
						t.Errorf("%s: Seq(%s) = %d, %v; want %d (error: %v)", up, name, n, err, want, tt.wantErr)
					}
				}
			}
		})
	}
}

// What a hostile upstream puts where a file, the manifest or seq/end should
// be is named in the error, on a first copy and on an update.
func TestHostileEntriesNamed(t *testing.T) {
	tests := []struct {
		name  string
		path  string // below the master root
		plant func(t *testing.T, p string)
		want  error
		says  string
		first string // what a first copy says, if not says
	}{
		{name: "fifo file", path: "snapshots/2/new.txt", plant: plant("fifo"), want: tree.ErrHashMismatch, says: "a fifo upstream"},
		{name: "device file", path: "snapshots/2/new.txt", plant: plant("blockdev"), want: tree.ErrHashMismatch, says: "a block device upstream"},
		{name: "symlink file", path: "snapshots/2/new.txt", plant: plant("symlink"), want: tree.ErrHashMismatch, says: "a symlink upstream", first: "got a symlink"},
		{name: "oversized file", path: "snapshots/2/new.txt", plant: func(t *testing.T, p string) {
			testutil.Must(t, os.Truncate(p, 1<<20))
		}, want: tree.ErrHashMismatch, says: "bytes"},
		{name: "fifo manifest", path: "snapshots/2.manifest", plant: plant("fifo"), want: manifest.ErrCorrupt, says: "a fifo upstream"},
		{name: "device manifest", path: "snapshots/2.manifest", plant: plant("chardev"), want: manifest.ErrCorrupt, says: "a character device upstream"},
		{name: "huge seq/end", path: "seq/end", plant: func(t *testing.T, p string) {
			testutil.Must(t, os.Truncate(p, 1<<30))
		}, want: seqfile.ErrCorrupt, says: "1073741824 bytes upstream"},
		{name: "fifo seq/end", path: "seq/end", plant: plant("fifo"), want: seqfile.ErrCorrupt, says: "a fifo upstream"},
		{name: "symlink seq/end", path: "seq/end", plant: plant("symlink"), want: seqfile.ErrCorrupt, says: "a symlink upstream"},
		{name: "fifo current", path: "current", plant: plant("fifo"), want: export.ErrBadCurrent, says: "a fifo upstream"},
	}
	tmp := t.TempDir()
	src, good, mir1 := filepath.Join(tmp, "src"), filepath.Join(tmp, "good"), filepath.Join(tmp, "mirror1")
	paths := testutil.GenTree(t, src, 4, 11)
	publish(t, good, src, 3)
	// One daemon serves every case's master (crafted later) as module cI.
	modules := map[string]string{"good": good}
	for i := range tests {
		modules[fmt.Sprint("c", i)] = filepath.Join(tmp, fmt.Sprint("c", i))
	}
	d := testutil.StartRsyncdServer(t, modules)
	if _, err := syncRsync(d.URL("good"), mir1); err != nil {
		t.Fatal(err)
	}
	testutil.Touch(t, src, paths[0], "changed")
	testutil.WriteTree(t, src, map[string]string{"new.txt": "new in 2\n"})
	publish(t, good, src, 3)
	for i, tt := range tests {
		master := modules[fmt.Sprint("c", i)]
		copyTree(t, good, master)
		tt.plant(t, filepath.Join(master, filepath.FromSlash(tt.path)))
		// A first copy takes other paths only for the snapshot's entries.
		for _, first := range []bool{false, true} {
			if first && !strings.HasPrefix(tt.path, "snapshots/") {
				continue
			}
			name := tt.name + "/update"
			if first {
				name = tt.name + "/first copy"
			}
			t.Run(name, func(t *testing.T) {
				mir := filepath.Join(t.TempDir(), "mirror")
				if !first {
					copyTree(t, mir1, mir)
				}
				_, err := syncRsync(d.URL(fmt.Sprint("c", i)), mir)
				says := tt.says
				if first && tt.first != "" {
					says = tt.first
				}
				if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), says) {
					t.Fatalf("sync: %v\nwant it to wrap %v and say %q", err, tt.want, says)
				}
				t.Logf("refused: %v", err)
				if strings.Contains(strings.ToLower(err.Error()), "no such file") || strings.Contains(err.Error(), "larger than 4294967296 bytes?") {
					t.Errorf("misleading error: %v", err)
				}
				if code := cliapp.ExitCode(err); code != cliapp.ExitCorrupt {
					t.Errorf("exit code %d, want %d", code, cliapp.ExitCorrupt)
				}
			})
		}
	}
}

func plant(kind string) func(t *testing.T, p string) {
	return func(t *testing.T, p string) { testutil.Plant(t, p, kind) }
}

// syncRsync runs one mirror.Sync of root from the rsync address up.
func syncRsync(up, root string) (mirror.Result, error) {
	u, err := transport.Open(up, fsys.OS(), transport.Options{})
	if err != nil {
		return mirror.Result{}, err
	}
	defer u.Close()
	return mirror.Sync(context.Background(), export.New(fsys.OS(), root), u, mirrorOpts(func(o *mirror.Options) { o.Retries, o.Backoff = 1, time.Millisecond }))
}

// copyTree copies a tree as cp -a does.
func copyTree(tb testing.TB, from, to string) {
	tb.Helper()
	if out, err := exec.Command("cp", "-a", from, to).CombinedOutput(); err != nil {
		tb.Fatalf("cp -a %s %s: %v\n%s", from, to, err, out)
	}
}

// A daemon that accepts and never answers gives up within the connect
// timeout, exit 5, the lock released; and the run does not wait again.
func TestSilentServer(t *testing.T) {
	addr := testutil.SilentServer(t)
	mir := filepath.Join(t.TempDir(), "mirror")
	for _, args := range [][]string{{}, {"--classic"}} {
		start := time.Now()
		code, out, errs := runMirror(t, append(args, "--upstream", "rsync://"+addr+"/m", "--root", mir,
			"--contimeout", "2s", "--timeout", "20s", "--retries", "3", "--backoff", "10ms")...)
		took := time.Since(start)
		if code != cliapp.ExitBusy {
			t.Fatalf("%v: exit %d, want %d\n%s%s", args, code, cliapp.ExitBusy, out, errs)
		}
		if took > 6*time.Second {
			t.Errorf("%v: gave up after %s, want about the 2s connect timeout", args, took)
		}
		if !strings.Contains(errs, "did not answer within the connect timeout") {
			t.Errorf("%v: error does not say why: %s", args, errs)
		}
		l, err := export.New(fsys.OS(), mir).Lock()
		if err != nil {
			t.Fatalf("lock still held: %v", err)
		}
		l.Unlock()
	}
}

// After a timeout the Upstream does not wait again: a run's later steps
// and retries fail at once.
func TestTimeoutOncePerRun(t *testing.T) {
	u := openRsyncWith(t, "rsync://"+testutil.SilentServer(t)+"/m", transport.Options{ConTimeout: time.Second, Timeout: 20 * time.Second})
	for i, bound := range []time.Duration{4 * time.Second, 200 * time.Millisecond, 200 * time.Millisecond} {
		start := time.Now()
		_, err := u.Seq(context.Background(), seqfile.End)
		if !errors.Is(err, transport.ErrUnavailable) {
			t.Fatalf("call %d: %v, want ErrUnavailable", i, err)
		}
		if took := time.Since(start); took > bound {
			t.Errorf("call %d took %s, want at most %s: %v", i, took, bound, err)
		}
	}
}

// A daemon that greets and then stalls is given up after the I/O timeout.
func TestStallAfterGreeting(t *testing.T) {
	addr := testutil.StallServer(t, []byte("@RSYNCD: 32.0 sha512 sha256 sha1 md5 md4\n"))
	start := time.Now()
	code, out, errs := runMirror(t, "--upstream", "rsync://"+addr+"/m", "--root", filepath.Join(t.TempDir(), "mirror"),
		"--contimeout", "30s", "--timeout", "2s", "--quiet")
	if code != cliapp.ExitBusy {
		t.Fatalf("exit %d, want %d\n%s%s", code, cliapp.ExitBusy, out, errs)
	}
	if took := time.Since(start); took > 8*time.Second {
		t.Errorf("gave up after %s, want about the 2s I/O timeout", took)
	}
}
