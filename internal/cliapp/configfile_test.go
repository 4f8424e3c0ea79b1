package cliapp

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/seqmirror/seqmirror/testutil"
	"github.com/urfave/cli/v2"
)

// got is what the test app's commands saw.
type got struct {
	cmd      string
	upstream []string
	keep     int
	secret   string
	listen   string
	notify   []string
	quiet    bool
}

// testApp is a tool shaped like the coming ones (a repeatable --upstream, a
// daemon subcommand with flags of its own): applyConfig knows no flag by
// name, so it must serve them as it serves today's.
func testApp(stdout, stderr *bytes.Buffer, seen *got) *cli.App {
	record := func(c *cli.Context) error {
		*seen = got{cmd: c.Command.Name, upstream: c.StringSlice("upstream"), keep: c.Int("keep"),
			quiet: c.Bool("quiet")}
		if c.Command.Name == "daemon" {
			seen.secret, seen.listen, seen.notify = c.String("secret-file"), c.String("listen"), c.StringSlice("notify")
		}
		return nil
	}
	up := &cli.StringSliceFlag{Name: "upstream", Usage: "upstream `ADDR` (repeatable)"}
	keep := &cli.IntFlag{Name: "keep", Value: 3, Usage: "keep `K`"}
	quiet := &cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}}
	return withCommonFlags(&cli.App{
		Name: "tool", Writer: stdout, ErrWriter: stderr,
		Flags:  []cli.Flag{up, keep, quiet},
		Action: record,
		Commands: []*cli.Command{{
			Name: "daemon",
			Flags: []cli.Flag{up, keep,
				&cli.StringFlag{Name: "secret-file", Usage: "shared secret `FILE`"},
				&cli.StringFlag{Name: "listen", Value: "127.0.0.1:8080", Usage: "listen on `ADDR`"},
				&cli.StringSliceFlag{Name: "notify", Usage: "trigger `URL` (repeatable)"}},
			Action: record,
		}},
	})
}

func TestApplyConfig(t *testing.T) {
	dir := t.TempDir()
	etc := filepath.Join(dir, "etc")
	conf := filepath.Join(etc, "a.conf")
	tests := []struct {
		name     string
		file     string
		args     []string
		env      string // $SEQMIRROR_CONFIG
		want     got
		wantCode int
		wantErr  string
	}{
		{name: "no file", args: []string{}, want: got{cmd: "tool", keep: 3}},
		{name: "list gets every value in order; relative local address resolved",
			file: "upstream = /m1\nupstream = ../m2\nupstream = rsync://h/mod\nupstream = http://h/x\nupstream = h:path\nkeep = 5\nquiet = true\n",
			args: []string{"--config", conf},
			want: got{cmd: "tool", upstream: []string{"/m1", filepath.Join(dir, "m2"), "rsync://h/mod", "http://h/x", "h:path"}, keep: 5, quiet: true}},
		{name: "environment",
			file: "keep = 6\n", env: conf,
			want: got{cmd: "tool", keep: 6}},
		{name: "--config wins over the environment",
			file: "keep = 6\n", env: filepath.Join(dir, "none.conf"), args: []string{"--config", conf},
			want: got{cmd: "tool", keep: 6}},
		{name: "command line wins, a list whole",
			file: "upstream = /m1\nupstream = /m2\nkeep = 5\nquiet = true\n",
			args: []string{"--config", conf, "--upstream", "/x", "--keep", "1", "-q=false"},
			want: got{cmd: "tool", upstream: []string{"/x"}, keep: 1}},
		{name: "subcommand: its own flags, paths and addresses; another command's keys ignored",
			file: "quiet = true\nsecret-file = secret\nlisten = :9000\nnotify = http://a/t\nnotify = http://b/t\nupstream = /m\n",
			args: []string{"daemon", "--config", conf},
			want: got{cmd: "daemon", upstream: []string{"/m"}, keep: 3, secret: filepath.Join(etc, "secret"), listen: ":9000",
				notify: []string{"http://a/t", "http://b/t"}}},
		{name: "subcommand under the tool's --config",
			file: "secret-file = /s\n", args: []string{"--config", conf, "daemon"},
			want: got{cmd: "daemon", keep: 3, secret: "/s", listen: "127.0.0.1:8080"}},
		{name: "a daemon's key for the tool's own run is ignored",
			file: "secret-file = /s\nkeep = 2\n", args: []string{"--config", conf},
			want: got{cmd: "tool", keep: 2}},
		{name: "unknown key", file: "keep = 2\nlisten = :1\nkep = 3\n", args: []string{"--config", conf},
			wantCode: ExitUsage, wantErr: "line 3: unknown key \"kep\": no command of tool has a flag --kep"},
		{name: "alias is no key", file: "q = true\n", args: []string{"--config", conf},
			wantCode: ExitUsage, wantErr: "line 1: unknown key \"q\""},
		{name: "help is no key", file: "help = true\n", args: []string{"--config", conf},
			wantCode: ExitUsage, wantErr: "line 1: help cannot be set"},
		{name: "repeated scalar", file: "keep = 2\nkeep = 2\n", args: []string{"--config", conf},
			wantCode: ExitUsage, wantErr: "line 2: keep is given again (first on line 1)"},
		{name: "repeated scalar even when the command line sets it", file: "keep = 2\nkeep = 2\n", args: []string{"--config", conf, "--keep", "1"},
			wantCode: ExitUsage, wantErr: "line 2: keep is given again"},
		{name: "bad bool", file: "quiet = yes\n", args: []string{"--config", conf},
			wantCode: ExitUsage, wantErr: "line 1: quiet = yes: not a valid value for --quiet, which takes true or false"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := os.MkdirAll(etc, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(conf, []byte(tt.file), 0o644); err != nil {
				t.Fatal(err)
			}
			t.Setenv(ConfigEnv, tt.env)
			var stdout, stderr bytes.Buffer
			var seen got
			code := Run(context.Background(), testApp(&stdout, &stderr, &seen), append([]string{"tool"}, tt.args...))
			if code != tt.wantCode || !strings.Contains(stderr.String(), tt.wantErr) {
				t.Fatalf("exit %d, stderr %q; want %d and %q", code, stderr.String(), tt.wantCode, tt.wantErr)
			}
			if tt.wantCode == 0 && !equalGot(seen, tt.want) {
				t.Fatalf("saw %+v, want %+v", seen, tt.want)
			}
		})
	}
}

func equalGot(a, b got) bool {
	return a.cmd == b.cmd && slices.Equal(a.upstream, b.upstream) && a.keep == b.keep && a.secret == b.secret &&
		a.listen == b.listen && slices.Equal(a.notify, b.notify) && a.quiet == b.quiet
}

// Every command of both tools, at every depth, takes --config and
// --log-format (so commands added later do too), and the tools' flags that
// name files or directories say so in their placeholder, which is how a
// configuration file's relative paths are found.
func TestEveryCommandTakesConfig(t *testing.T) {
	paths := map[string]bool{"root": true, "source": true, "metrics-file": true, "tls-cert": true, "tls-key": true,
		"ca-file": true, "upstream": true, "against": true, "config": true,
		"secret-file": true, "mirror": true, // issue 14's, on other branches: a relative one must resolve too
		"sign-key": true, "password-file": true, "trust-key": true}
	for _, app := range []*cli.App{PublishApp(nil, nil), MirrorApp(nil, nil)} {
		var walk func(path string, flags []cli.Flag, cmds []*cli.Command)
		walk = func(path string, flags []cli.Flag, cmds []*cli.Command) {
			names := map[string]bool{}
			for _, f := range flags {
				name := f.Names()[0]
				names[name] = true
				ph := placeholder(f)
				if isPath := ph == "DIR" || ph == "FILE" || ph == "PATH" || ph == "ADDR"; isPath != paths[name] && name != "listen" {
					t.Errorf("%s --%s: placeholder %q", path, name, ph)
				}
			}
			if !names["config"] || !names["log-format"] {
				t.Errorf("%s: no --config or --log-format", path)
			}
			for _, c := range cmds {
				walk(path+" "+c.Name, c.Flags, c.Subcommands)
			}
		}
		walk(app.Name, app.Flags, app.Commands)
	}
}

func TestClosestKey(t *testing.T) {
	known := map[string]bool{"upstream": true, "keep": true, "min-age": true, "config": true, "max-delete": true}
	tests := []struct{ name, key, want string }{
		{name: "typo", key: "upstrem", want: "upstream"},
		{name: "short", key: "kep", want: "keep"},
		{name: "underscore", key: "min_age", want: "min-age"},
		{name: "far", key: "bandwidth", want: ""},
		{name: "reserved never suggested", key: "confi", want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := closest(tt.key, known); got != tt.want {
				t.Fatalf("closest(%q) = %q, want %q", tt.key, got, tt.want)
			}
		})
	}
}

// A daemon's SIGHUP: reloadConfig gives the flags the command line left
// out the file's new values, or their defaults when the file dropped
// them; a file with an error changes nothing.
func TestReloadConfig(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "d.conf")
	write := func(s string) { t.Helper(); testutil.Must(t, os.WriteFile(conf, []byte(s), 0o644)) }
	write("upstream = /a\nupstream = /b,c\nkeep = 5\nlisten = :1\nnotify = http://n/\n")
	var before, after, broken got
	var reloadErr error
	read := func(c *cli.Context) got {
		return got{upstream: slices.Clone(c.StringSlice("upstream")), keep: c.Int("keep"), listen: c.String("listen"),
			notify: slices.Clone(c.StringSlice("notify")), quiet: c.Bool("quiet")}
	}
	up := &cli.StringSliceFlag{Name: "upstream", Usage: "`ADDR`"}
	app := withCommonFlags(&cli.App{Name: "tool", Commands: []*cli.Command{{
		Name: "daemon",
		Flags: []cli.Flag{up, &cli.IntFlag{Name: "keep", Value: 3}, &cli.BoolFlag{Name: "quiet"},
			&cli.StringFlag{Name: "listen", Value: "127.0.0.1:8080"}, &cli.StringSliceFlag{Name: "notify"}},
		Action: func(c *cli.Context) error {
			before = read(c)
			write("upstream = /z\nquiet = true\n")
			if err := reloadConfig(c); err != nil {
				return err
			}
			after = read(c)
			write("upstream = /y\nkeep = 1\nkeep = 2\n")
			reloadErr = reloadConfig(c)
			broken = read(c)
			return nil
		},
	}}})
	var stderr bytes.Buffer
	app.Writer, app.ErrWriter = &stderr, &stderr
	if code := Run(context.Background(), app, []string{"tool", "daemon", "--config", conf, "--listen", ":2"}); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	want := got{upstream: []string{"/a", "/b,c"}, keep: 5, listen: ":2", notify: []string{"http://n/"}}
	if !equalGot(before, want) {
		t.Fatalf("first: %+v, want %+v", before, want)
	}
	want = got{upstream: []string{"/z"}, keep: 3, listen: ":2", quiet: true}
	if !equalGot(after, want) {
		t.Fatalf("after the reload: %+v, want %+v", after, want)
	}
	if !strings.Contains(fmt.Sprint(reloadErr), "line 3: keep is given again") || !equalGot(broken, after) {
		t.Fatalf("broken file: error %v, flags %+v; want the error and %+v", reloadErr, broken, after)
	}
}
