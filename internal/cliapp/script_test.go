package cliapp_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"
	"github.com/seqmirror/seqmirror/internal/cliapp"
	"github.com/seqmirror/seqmirror/internal/cliapp/hacli"
	"github.com/seqmirror/seqmirror/internal/cow"
	"github.com/seqmirror/seqmirror/testutil"
)

// TestMain makes the test binary double as the publish and mirror-sync
// commands, which the scripts run as separate processes (publish as its
// main does: a signal cancels its context).
func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"publish": func() { cliapp.Main(hacli.PublishApp) }, // SIGINT stops publish --watch
		"mirror-sync": func() {
			os.Exit(cliapp.Run(context.Background(), cliapp.MirrorApp(os.Stdout, os.Stderr), os.Args))
		},
	})
}

// TestScripts runs testdata/script/*.txtar. Besides the standard commands
// they use `exits N prog args...`, which runs prog like exec and requires
// exit code N exactly, `receiver` (a trigger receiver: receiver's doc),
// `loopfs TYPE DIR` (a loop-mounted filesystem on DIR, unmounted at the
// end; root only, as CI runs) and `subvolume DIR` (a new btrfs subvolume).
func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata/script",
		RequireExplicitExec: true,
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"exits":     exits,
			"receiver":  receiver,
			"etcd":      etcdCmd,
			"loopfs":    loopfs,
			"subvolume": subvolume,
		},
	})
}

func exits(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: exits CODE PROGRAM [ARGS...]")
	}
	want, err := strconv.Atoi(args[0])
	if err != nil {
		ts.Fatalf("exits: bad code %q", args[0])
	}
	err = ts.Exec(args[1], args[2:]...)
	got := 0
	if err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			ts.Fatalf("exits: %v", err)
		}
		got = ee.ExitCode()
	}
	if got != want {
		ts.Fatalf("%s exited %d, want %d", args[1], got, want)
	}
}

// etcdCmd starts a one-member etcd (Debian's etcd-server) for the script,
// stopped when it ends, and sets $ETCD to its client URL.
func etcdCmd(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 0 {
		ts.Fatalf("usage: etcd")
	}
	bin, err := exec.LookPath("etcd")
	if err != nil {
		ts.Fatalf("etcd is required (apt-get install etcd-server): %v", err)
	}
	ms, err := testutil.LaunchEtcd(bin, ts.MkAbs("etcd"), 1)
	if err != nil {
		ts.Fatalf("start etcd: %v", err)
	}
	ts.Defer(ms[0].Stop)
	ts.Setenv("ETCD", ms[0].ClientURL)
}

// loopfs mounts a new filesystem of type args[0] (mkfs.TYPE over a sparse
// image in $WORK) on the new directory args[1].
func loopfs(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: loopfs TYPE DIR")
	}
	if os.Geteuid() != 0 {
		ts.Fatalf("loopfs needs root to mount a loop device (CI runs as root)")
	}
	img, dir := ts.MkAbs(args[1]+".img"), ts.MkAbs(args[1])
	sh := func(name string, args ...string) string {
		out, err := exec.Command(name, args...).CombinedOutput()
		ts.Check(errorOutput(err, out))
		return strings.TrimSpace(string(out))
	}
	ts.Check(os.WriteFile(img, nil, 0o600))
	ts.Check(os.Truncate(img, 512<<20))
	ts.Check(os.MkdirAll(dir, 0o755))
	mkfs := map[string][]string{"btrfs": {"-q", "-f"}, "xfs": {"-q", "-f"}, "ext4": {"-q", "-F"}}[args[0]]
	sh("mkfs."+args[0], append(mkfs, img)...)
	dev := sh("losetup", "--find", "--show", img)
	sh("mount", "-t", args[0], dev, dir)
	ts.Defer(func() {
		_ = exec.Command("umount", dir).Run()
		_ = exec.Command("losetup", "-d", dev).Run()
	})
}

// subvolume makes args[0] a new btrfs subvolume.
func subvolume(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: subvolume DIR")
	}
	ts.Check(cow.CreateSubvolume(ts.MkAbs(args[0])))
}

func errorOutput(err error, out []byte) error {
	if err != nil {
		return fmt.Errorf("%w: %s", err, out)
	}
	return nil
}
