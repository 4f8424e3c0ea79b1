package snapshot_test

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/seqmirror/seqmirror/internal/export"
	"github.com/seqmirror/seqmirror/internal/fsys"
	"github.com/seqmirror/seqmirror/internal/tree"
	"github.com/seqmirror/seqmirror/snapshot"
	"github.com/seqmirror/seqmirror/testutil"
	"github.com/seqmirror/seqmirror/testutil/faultfs"
	"golang.org/x/sys/unix"
)

// walkFallback is the debug message of a publish that confirms its listing
// by listing the source again rather than through inotify.
const walkFallback = "confirming the listing by listing the source again"

// onLocalFS reports whether dir is on a filesystem whose changes raise
// inotify events (snapshot's list), where publish must use the watch.
func onLocalFS(tb testing.TB, dir string) bool {
	tb.Helper()
	var st unix.Statfs_t
	testutil.Must(tb, unix.Statfs(dir, &st))
	if _, ok := snapshot.LocalFS[int64(st.Type)]; ok {
		return true
	}
	tb.Logf("%s is on filesystem type %#x: publish confirms by walking", dir, st.Type)
	return false
}

// TestPublishSourceChangesAfterListing changes the source once, after
// publish listed it and before the copy: by either way of confirming the
// listing (inotify on the real filesystem, a second walk through a wrapping
// FS), publish must notice, retry, and publish the tree as it is after the
// change.
func TestPublishSourceChangesAfterListing(t *testing.T) {
	tests := []struct {
		name   string
		change func(t *testing.T, src, outside string)
	}{
		{name: "write a linked file", change: func(t *testing.T, src, _ string) {
			testutil.Touch(t, src, "README", "HELLO") // same size, later mtime
		}},
		{name: "add a file", change: func(t *testing.T, src, _ string) {
			testutil.Touch(t, src, "dir/sub/new.txt", "new")
		}},
		{name: "remove a file", change: func(t *testing.T, src, _ string) {
			testutil.Must(t, os.Remove(filepath.Join(src, "dir/sub/deep.txt")))
		}},
		{name: "chmod a file", change: func(t *testing.T, src, _ string) {
			testutil.Must(t, os.Chmod(filepath.Join(src, "empty"), 0o600))
		}},
		{name: "rename a directory", change: func(t *testing.T, src, _ string) {
			testutil.Must(t, os.Rename(filepath.Join(src, "dir/sub"), filepath.Join(src, "dir/moved")))
		}},
		{name: "replace a symlink", change: func(t *testing.T, src, _ string) {
			testutil.Must(t, os.Remove(filepath.Join(src, "link")))
			testutil.Must(t, os.Symlink("empty", filepath.Join(src, "link")))
		}},
		{name: "write a hard link from outside the tree", change: func(t *testing.T, _, outside string) {
			testutil.Touch(t, filepath.Dir(outside), filepath.Base(outside), "SHARED")
		}},
		{name: "write the file being copied", change: func(t *testing.T, src, _ string) {
			testutil.Touch(t, src, "bin/tool", "#!/bin/sh\necho bye\n")
		}},
	}
	for _, mode := range []string{"inotify", "walk"} {
		for _, tc := range tests {
			t.Run(mode+"/"+tc.name, func(t *testing.T) {
				src := richTree(t)
				// shared has a second link outside the tree.
				outside := filepath.Join(t.TempDir(), "shared")
				testutil.Touch(t, src, "shared", "shared")
				testutil.Must(t, os.Link(filepath.Join(src, "shared"), outside))
				var f fsys.FS = fsys.OS()
				if mode == "walk" {
					f = faultfs.New(fsys.OS()) // not the OS filesystem itself: no inotify
				}
				r := export.New(f, filepath.Join(t.TempDir(), "root"))
				publish(t, r, src, fastOpts())
				testutil.Touch(t, src, "bin/tool", "#!/bin/sh\necho hello\n") // something to publish
				var logs testutil.SyncBuffer
				opt := fastOpts()
				opt.Log = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
				calls := 0
				opt.AfterList = func() {
					if calls++; calls == 1 {
						tc.change(t, src, outside)
					}
				}
				res, err := snapshot.Publish(context.Background(), r, src, opt)
				if err != nil {
					t.Fatalf("Publish: %v\n%s", err, logs.String())
				}
				watched := mode == "inotify" && onLocalFS(t, src)
				if fellBack := strings.Contains(logs.String(), walkFallback); fellBack == watched {
					t.Fatalf("confirmed by walking = %v, want %v\n%s", fellBack, !watched, logs.String())
				}
				if calls != 2 || !strings.Contains(logs.String(), "source is changing; retrying after a wait") {
					t.Fatalf("%d attempts, want 2 (the change noticed once)\n%s", calls, logs.String())
				}
				if !res.Published || res.Snapshot != 2 {
					t.Fatalf("Publish = %+v, want snapshot 2", res)
				}
				requireSameTree(t, src, r.SnapshotDir(2), nil)
				if probs, err := tree.Verify(context.Background(), r.FS, r.SnapshotDir(2), readManifest(t, r, 2), 2); err != nil || len(probs) != 0 {
					t.Fatalf("Verify = %v, %v", probs, err)
				}
			})
		}
	}
}

// TestPublishSourceNeverQuiet: a source that changes in every attempt is
// never published, and each attempt is cut short (the watch cancels it)
// rather than copied to the end.
func TestPublishSourceNeverQuiet(t *testing.T) {
	for _, mode := range []string{"inotify", "walk"} {
		t.Run(mode, func(t *testing.T) {
			src := richTree(t)
			var f fsys.FS = fsys.OS()
			if mode == "walk" {
				f = faultfs.New(fsys.OS())
			}
			r := export.New(f, filepath.Join(t.TempDir(), "root"))
			publish(t, r, src, fastOpts())
			testutil.Touch(t, src, "bin/tool", "#!/bin/sh\necho hello\n") // something to publish
			opt := fastOpts()
			opt.Retries = 2
			calls := 0
			opt.AfterList = func() {
				calls++
				testutil.Touch(t, src, "README", strings.Repeat("x", calls))
			}
			_, err := snapshot.Publish(context.Background(), r, src, opt)
			if !errors.Is(err, snapshot.ErrSourceChanging) || !strings.Contains(err.Error(), "README") {
				t.Fatalf("Publish = %v, want ErrSourceChanging naming README", err)
			}
			if calls != 3 {
				t.Fatalf("%d attempts, want 3", calls)
			}
			if n, _ := r.Current(); n != 1 {
				t.Fatalf("current = %d, want 1", n)
			}
			if snaps, _ := r.Snapshots(); len(snaps) != 1 {
				t.Fatalf("snapshots = %v, want [1]", snaps)
			}
			// The next quiet run publishes and settles the counters.
			res := publish(t, r, src, fastOpts())
			if !res.Published {
				t.Fatalf("quiet publish = %+v", res)
			}
			if p := counters(t, r); p.Begin != p.End {
				t.Fatalf("counters = %+v after a quiet publish", p)
			}
		})
	}
}
