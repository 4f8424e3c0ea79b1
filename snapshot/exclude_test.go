package snapshot_test

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/seqmirror/seqmirror/internal/tree"
	"github.com/seqmirror/seqmirror/snapshot"
	"github.com/seqmirror/seqmirror/testutil"
)

func TestExcludeMatch(t *testing.T) {
	tests := []struct {
		name    string
		pattern string
		path    string
		dir     bool
		want    bool
	}{
		{name: "name anywhere", pattern: "core", path: "a/b/core", want: true},
		{name: "name at top", pattern: "core", path: "core", want: true},
		{name: "name is not a substring", pattern: "core", path: "a/score", want: false},
		{name: "anchored at the root", pattern: "/tmp", path: "tmp", want: true},
		{name: "anchored, not deeper", pattern: "/tmp", path: "a/tmp", want: false},
		{name: "tail of the path", pattern: "b/c", path: "a/b/c", want: true},
		{name: "tail starts at a component", pattern: "b/c", path: "ab/c", want: false},
		{name: "anchored multi-component", pattern: "/a/b", path: "a/b", want: true},
		{name: "star in a component", pattern: "*.iso", path: "pub/x.iso", want: true},
		{name: "star does not cross /", pattern: "/a*c", path: "ab/c", want: false},
		{name: "double star crosses /", pattern: "/a/**/z", path: "a/b/c/z", want: true},
		{name: "double star, anchored prefix", pattern: "/pub/**", path: "pub/x/y", want: true},
		{name: "question mark", pattern: "f?o", path: "d/fxo", want: true},
		{name: "question mark is one char", pattern: "f?o", path: "d/fo", want: false},
		{name: "set", pattern: "v[0-9]", path: "v7", want: true},
		{name: "negated set", pattern: "v[!0-9]", path: "v7", want: false},
		{name: "negated set, other", pattern: "v[^0-9]", path: "vx", want: true},
		{name: "escaped star", pattern: `a\*`, path: "a*", want: true},
		{name: "escaped star is literal", pattern: `a\*`, path: "ab", want: false},
		{name: "dir only matches a dir", pattern: "releases/", path: "x/releases", dir: true, want: true},
		{name: "dir only skips a file", pattern: "releases/", path: "x/releases", want: false},
		{name: "unicode", pattern: "é?", path: "éa", want: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			x, err := snapshot.ParseExcludes([]string{tt.pattern})
			testutil.Must(t, err)
			if got := x.Match(tt.path, func() bool { return tt.dir }); got != tt.want {
				t.Fatalf("%q matches %q (dir %v) = %v, want %v", tt.pattern, tt.path, tt.dir, got, tt.want)
			}
		})
	}
}

func TestExcludeParseErrors(t *testing.T) {
	for _, p := range []string{"", "/", "//", "a//b", "[abc", `a\`, "[z-a]", "[/]", "[!]", "a\x00b", "\xff"} {
		if _, err := snapshot.ParseExcludes([]string{p}); !errors.Is(err, snapshot.ErrBadPattern) {
			t.Errorf("ParseExcludes(%q) = %v, want ErrBadPattern", p, err)
		}
	}
}

// FuzzExcludes checks that any pattern either parses or is refused with
// ErrBadPattern, and that matching never panics and is bounded.
func FuzzExcludes(f *testing.F) {
	for _, s := range []string{"core", "/tmp/", "a/**/b", "*.iso", "v[0-9]", "[!a-z]x", `a\*`, "**", "/**/", "[", "a//b", "é?"} {
		f.Add(s, "a/b/core")
	}
	f.Fuzz(func(t *testing.T, pattern, path string) {
		x, err := snapshot.ParseExcludes([]string{pattern})
		if err != nil {
			if !errors.Is(err, snapshot.ErrBadPattern) {
				t.Fatalf("ParseExcludes(%q) = %v, not ErrBadPattern", pattern, err)
			}
			return
		}
		if len(path) > 512 {
			path = path[:512]
		}
		x.Match(path, func() bool { return true })
		x.Match(path, func() bool { return false })
	})
}

// Item 24: --exclude leaves paths out (a fifo no longer fails the publish).
func TestPublishExclude(t *testing.T) {
	src := filepath.Join(t.TempDir(), "src")
	testutil.WriteTree(t, src, map[string]string{"keep.txt": "k", "releases/big.iso": "x", "a/releases": "a file", "a/core": "c", "tmp/x": "t"})
	testutil.Must(t, syscall.Mkfifo(filepath.Join(src, "a", "fifo"), 0o644))
	r := newRoot(t)
	if _, err := snapshot.Publish(context.Background(), r, src, fastOpts()); !errors.Is(err, tree.ErrUnsupportedType) {
		t.Fatalf("publish with a fifo = %v, want ErrUnsupportedType", err)
	}
	x, err := snapshot.ParseExcludes([]string{"fifo", "releases/", "/tmp", "core"})
	testutil.Must(t, err)
	opt := fastOpts()
	opt.Exclude = x
	res := publish(t, r, src, opt)
	got := strings.Join(manifestPaths(t, r, res.Snapshot), " ")
	if want := "a a/releases keep.txt"; got != want {
		t.Fatalf("published %q, want %q", got, want)
	}
}

// Item 24: the master refuses a mass delete, as mirrors do; Force or a
// higher MaxDelete accepts it.
func TestPublishMaxDelete(t *testing.T) {
	tests := []struct {
		name      string
		maxDelete float64
		force     bool
		wantErr   bool
	}{
		{name: "default refuses", maxDelete: snapshot.DefaultOptions().MaxDelete, wantErr: true},
		{name: "strict refuses", maxDelete: 0.1, wantErr: true},
		{name: "zero refuses any delete", maxDelete: 0, wantErr: true},
		{name: "loose accepts", maxDelete: 0.9},
		{name: "force accepts", maxDelete: snapshot.DefaultOptions().MaxDelete, force: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := filepath.Join(t.TempDir(), "src")
			files := map[string]string{}
			for _, p := range []string{"a", "b", "c", "d", "e", "f", "g", "h", "i", "j"} {
				files["d/"+p] = p
			}
			testutil.WriteTree(t, src, files)
			r := newRoot(t)
			first := publish(t, r, src, fastOpts())
			for _, p := range []string{"a", "b", "c", "d", "e", "f"} {
				testutil.Must(t, os.Remove(filepath.Join(src, "d", p)))
			}
			opt := fastOpts()
			opt.MaxDelete, opt.Force = tt.maxDelete, tt.force
			res, err := snapshot.Publish(context.Background(), r, src, opt)
			if tt.wantErr {
				if !errors.Is(err, snapshot.ErrTooManyDeletes) || !strings.Contains(err.Error(), "6 of the served snapshot's 10 files") {
					t.Fatalf("publish = %v, want ErrTooManyDeletes saying 6 of 10", err)
				}
				if cur, _ := r.Current(); cur != first.Snapshot {
					t.Fatalf("refused publish moved current to %d", cur)
				}
				return
			}
			testutil.Must(t, err)
			if !res.Published || res.Deleted != 6 {
				t.Fatalf("publish = %+v, want published with 6 deleted", res)
			}
		})
	}
}

// Item 24: entries other users cannot read are reported when published,
// at error level (shown under --quiet) when they are new, at warning level
// while the same ones stay.
func TestPublishWarnsUnreadable(t *testing.T) {
	src := filepath.Join(t.TempDir(), "src")
	testutil.WriteTree(t, src, map[string]string{"ok.txt": "ok", "secret": "s", "priv/x": "x"})
	testutil.Must(t, os.Chmod(filepath.Join(src, "secret"), 0o600))
	testutil.Must(t, os.Chmod(filepath.Join(src, "priv"), 0o700))
	r := newRoot(t)
	logs := &testutil.SyncBuffer{}
	opt := fastOpts()
	opt.Log = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelError}))
	res := publish(t, r, src, opt)
	if res.Unreadable != 2 || !strings.Contains(logs.String(), "level=ERROR") || !strings.Contains(logs.String(), "priv, secret") || !strings.Contains(logs.String(), "count=2") {
		t.Fatalf("unreadable = %d, log %q: want 2 reported at error level naming priv and secret", res.Unreadable, logs)
	}
	// Another snapshot with the same unreadable entries: warning level only.
	testutil.Touch(t, src, "ok.txt", "v2")
	warn := &testutil.SyncBuffer{}
	opt.Log = slog.New(slog.NewTextHandler(warn, &slog.HandlerOptions{Level: slog.LevelWarn}))
	res = publish(t, r, src, opt)
	if res.Unreadable != 2 || !strings.Contains(warn.String(), "level=WARN") || strings.Contains(warn.String(), "level=ERROR") {
		t.Fatalf("second publish: unreadable = %d, log %q: want a warning", res.Unreadable, warn)
	}
}

// Item 23: publish refuses a root that mirror-sync writes, unless told to
// take it over.
func TestPublishRefusesMirrorRoot(t *testing.T) {
	src := filepath.Join(t.TempDir(), "src")
	testutil.WriteTree(t, src, map[string]string{"a": "a"})
	r := newRoot(t)
	publish(t, r, src, fastOpts())
	// What mirror-sync leaves: status.json naming its upstream.
	st, err := r.Status()
	testutil.Must(t, err)
	st.Upstream = "rsync://master.example.org/pub"
	testutil.Must(t, r.WriteStatus(st))
	testutil.Touch(t, src, "a", "v2")
	if _, err := snapshot.Publish(context.Background(), r, src, fastOpts()); !errors.Is(err, snapshot.ErrMirrorRoot) {
		t.Fatalf("publish into a mirror's root = %v, want ErrMirrorRoot", err)
	}
	opt := fastOpts()
	opt.TakeOver = true
	if res := publish(t, r, src, opt); !res.Published {
		t.Fatalf("take over = %+v", res)
	}
	testutil.Touch(t, src, "a", "v3")
	publish(t, r, src, fastOpts()) // a master's root now
}

// A path publish leaves out (an --exclude, git's transients) may change
// while publish copies: that is no change to the snapshot, so the attempt
// is not retried, whichever way the listing is confirmed.
func TestPublishIgnoresChangesToLeftOutPaths(t *testing.T) {
	src := filepath.Join(t.TempDir(), "src")
	testutil.WriteTree(t, src, map[string]string{"keep.txt": "k", "logs/app.log": "line\n", "d/busy.log": "x"})
	git(t, src, "init", "-q", "--bare", "repo.git")
	r := newRoot(t)
	x, err := snapshot.ParseExcludes([]string{"*.log"})
	testutil.Must(t, err)
	opt := fastOpts()
	opt.Exclude = x
	attempts := 0
	opt.AfterList = func() {
		attempts++
		// Written while publish copies: an excluded file, a new one, and
		// a lock git takes in a repository.
		f, err := os.OpenFile(filepath.Join(src, "logs", "app.log"), os.O_APPEND|os.O_WRONLY, 0)
		testutil.Must(t, err)
		f.WriteString("another line\n")
		f.Close()
		testutil.Touch(t, src, "d/new.log", "new")
		testutil.Touch(t, src, "repo.git/refs/heads/main.lock", "0000")
	}
	res := publish(t, r, src, opt)
	if attempts != 1 || !res.Published {
		t.Fatalf("%d attempts (want 1), %+v", attempts, res)
	}
	got := strings.Join(manifestPaths(t, r, res.Snapshot), " ")
	if strings.Contains(got, ".log") || strings.Contains(got, ".lock") {
		t.Fatalf("published a left-out path: %s", got)
	}
}
