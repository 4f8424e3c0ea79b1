package cliapp_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strconv"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"
	"github.com/seqmirror/seqmirror/internal/cliapp"
	"github.com/seqmirror/seqmirror/internal/cliapp/hacli"
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
// exit code N exactly, and `receiver` (a trigger receiver: receiver's doc).
func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata/script",
		RequireExplicitExec: true,
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"exits":    exits,
			"receiver": receiver,
			"etcd":     etcdCmd,
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
