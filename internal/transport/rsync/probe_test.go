package rsync_test

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/seqmirror/seqmirror/internal/fsys"
	"github.com/seqmirror/seqmirror/internal/transport"
	"github.com/seqmirror/seqmirror/internal/transport/rsync"
	"github.com/seqmirror/seqmirror/testutil"
)

func TestParseListLine(t *testing.T) {
	tests := []struct {
		name, line, want string
		ok, dir, reg     bool
		size             int64
	}{
		{name: "file", line: "-rw-r--r--          1,234 2026/11/28 05:10:02 snapshots/3.manifest", want: "snapshots/3.manifest", ok: true, reg: true, size: 1234},
		{name: "dir", line: "drwxr-xr-x          4,096 2026/11/28 05:10:02 snapshots/3", want: "snapshots/3", ok: true, dir: true, size: 4096},
		{name: "symlink", line: "lrwxrwxrwx             11 2026/11/28 05:10:02 current", want: "current", ok: true, size: 11},
		{name: "blank in name", line: "-rw-r--r--              1 2026/11/28 05:10:02 a b"},
		{name: "bad size", line: "-rw-r--r--            1x1 2026/11/28 05:10:02 a"},
		{name: "bad time", line: "-rw-r--r--              1 2026/13/28 05:10:02 a"},
		{name: "empty", line: ""},
		{name: "message", line: "rsync: [sender] link_stat \"x\" failed: No such file or directory (2)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			name, fi, ok := rsync.ParseListLine(tt.line)
			if ok != tt.ok || name != tt.want || fi.Dir != tt.dir || fi.Regular != tt.reg || fi.Size != tt.size {
				t.Fatalf("ParseListLine(%q) = %q, %+v, %v", tt.line, name, fi, ok)
			}
			if ok && !fi.ModTime.Equal(time.Date(2026, 11, 28, 5, 10, 2, 0, time.Local)) {
				t.Fatalf("time %s", fi.ModTime)
			}
		})
	}
}

// Stat and ReadSmall over a daemon report exactly the names asked for;
// ReadSmall skips a file larger than the limit and one below a directory
// the upstream serves as a symlink.
func TestProbeThroughDaemon(t *testing.T) {
	dir := t.TempDir()
	root, elsewhere := filepath.Join(dir, "root"), filepath.Join(dir, "elsewhere")
	testutil.WriteTree(t, root, map[string]string{"status.json": "{}", "big": strings.Repeat("x", 100), "snapshots/3.manifest": "m", "snapshots/3/a": "a"})
	testutil.WriteTree(t, elsewhere, map[string]string{"checked": "secret"})
	if err := os.Symlink(elsewhere, filepath.Join(root, "seq")); err != nil {
		t.Fatal(err)
	}
	at := time.Now().Add(-time.Hour).Truncate(time.Second)
	if err := os.Chtimes(filepath.Join(root, "snapshots", "3.manifest"), at, at); err != nil {
		t.Fatal(err)
	}
	port := testutil.StartRsyncd(t, map[string]string{"mod": root})
	up, err := transport.Open("rsync://127.0.0.1:"+strconv.Itoa(port)+"/mod", fsys.OS(), transport.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer up.Close()
	p := up.(transport.Prober)
	ctx := context.Background()

	infos, err := p.Stat(ctx, []string{"snapshots/3", "snapshots/3.manifest", "snapshots/4.manifest"})
	if err != nil {
		t.Fatal(err)
	}
	if len(infos) != 2 || !infos["snapshots/3"].Dir || !infos["snapshots/3.manifest"].Regular || !infos["snapshots/3.manifest"].ModTime.Equal(at) {
		t.Fatalf("Stat = %+v", infos)
	}
	files, err := p.ReadSmall(ctx, []string{"status.json", "big", "seq/checked", "missing"}, 50)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 1 || string(files["status.json"].Data) != "{}" {
		t.Fatalf("ReadSmall = %v, want only status.json", files)
	}
	if _, err := p.Stat(ctx, []string{"../x"}); err == nil {
		t.Fatal("Stat accepted ../x")
	}
}
