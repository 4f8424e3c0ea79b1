package cliapp

import (
	"io"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/seqmirror/seqmirror/internal/transport"
	"github.com/seqmirror/seqmirror/internal/transport/rsync"
	"github.com/urfave/cli/v2"
	"golang.org/x/term"
)

// Flags for remote upstreams: rsync (rsync://host/module, host::module,
// host:path) and HTTP(S) (--timeout, --contimeout, --ca-file).
var rsyncFlags = []cli.Flag{
	&cli.StringFlag{Name: "rsync", Value: "rsync", Usage: "rsync `PROGRAM` for rsync upstreams: a name looked up in $PATH, or a path"},
	&cli.StringSliceFlag{Name: "rsync-opt", Usage: "extra rsync `OPTION` for rsync upstreams (repeatable), e.g. --rsync-opt=--bwlimit=10m"},
	&cli.StringFlag{Name: "rsh", Usage: "remote shell `COMMAND` for host:path upstreams (rsync -e), e.g. 'ssh -i /etc/mirror/key'"},
	&cli.DurationFlag{Name: "timeout", Value: rsync.DefaultTimeout, Usage: "rsync and http(s) upstreams: give up when no data moves for `D` (once per run: a run that timed out does not wait again)"},
	&cli.DurationFlag{Name: "contimeout", Value: rsync.DefaultConTimeout, Usage: "rsync daemon and http(s) upstreams: give up on a server that has not answered (connected and greeted, TLS included) after `D`"},
	caFileFlag,
}

// openUpstream opens --upstream with the rsync flags (where the command has
// them) and, on a terminal without --quiet, a progress bar. scratch, if not
// "", is where the upstream keeps its private files: the .work of the root
// the run holds the lock of, which the next run empties.
func openUpstream(e *env, scratch string) (transport.Upstream, error) {
	return openAddr(e, e.c.StringSlice("upstream")[0], scratch)
}

// openAddr is openUpstream for the address addr.
func openAddr(e *env, addr, scratch string) (transport.Upstream, error) {
	c := e.c
	// Checked whatever the address: a bad flag is a bad crontab line even
	// while the upstream is a local path.
	if c.Duration("timeout") < 0 || c.Duration("contimeout") < 0 {
		return nil, Usage("--timeout and --contimeout must not be negative")
	}
	extra := c.StringSlice("rsync-opt")
	if err := checkRsyncOpts(extra); err != nil {
		return nil, err
	}
	opt := transport.Options{
		Timeout: c.Duration("timeout"), ConTimeout: c.Duration("contimeout"),
		Workers: c.Int("workers"), ScratchDir: scratch,
		Rsync: transport.RsyncOptions{Binary: c.String("rsync"), Rsh: c.String("rsh"), Extra: extra, Port: rsyncPort(extra)},
		HTTP:  transport.HTTPOptions{CAFile: c.String("ca-file")},
	}
	if !c.Bool("quiet") && !c.Bool("json") && c.Command.Name != "daemon" { // a daemon's stderr is its log
		opt.Progress = progress(c.App.ErrWriter)
	}
	return transport.Open(addr, e.fs, opt)
}

// progress returns a progress callback drawing a bar on w if w is a
// terminal, or nil.
func progress(w io.Writer) func(int64, int) {
	f, ok := w.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return nil
	}
	var bar *progressbar.ProgressBar
	return func(_ int64, percent int) {
		if bar == nil {
			bar = progressbar.NewOptions(100, progressbar.OptionSetWriter(w), progressbar.OptionSetDescription("fetch"),
				progressbar.OptionThrottle(100*time.Millisecond), progressbar.OptionClearOnFinish(),
				progressbar.OptionSetPredictTime(false), progressbar.OptionShowElapsedTimeOnFinish())
		}
		_ = bar.Set(percent)
		if percent >= 100 {
			_ = bar.Finish()
			bar = nil
		}
	}
}
