package snapshot_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/seqmirror/seqmirror/internal/export"
	"github.com/seqmirror/seqmirror/internal/fsys"
	"github.com/seqmirror/seqmirror/snapshot"
	"github.com/seqmirror/seqmirror/testutil"
)

// A publish that fails because the disk is full still records why in
// status.json: the root keeps room for it in its lock file.
func TestDiskFullFailureIsRecorded(t *testing.T) {
	mnt := testutil.SmallFS(t, 4<<20)
	src := t.TempDir()
	testutil.WriteTree(t, src, map[string]string{"a": "first"})
	r := export.New(fsys.OS(), filepath.Join(mnt, "pub"))
	opt := snapshot.DefaultOptions()
	opt.Backoff, opt.Workers = time.Millisecond, 2
	if _, err := snapshot.Publish(context.Background(), r, src, opt); err != nil {
		t.Fatal(err)
	}
	testutil.WriteTree(t, src, map[string]string{"big": strings.Repeat("x", 1<<20)})
	testutil.FillFS(t, mnt)
	_, err := snapshot.Publish(context.Background(), r, src, opt)
	if err == nil {
		t.Fatal("publish on a full disk succeeded")
	}
	st, serr := r.Status()
	if serr != nil {
		t.Fatal(serr)
	}
	if st.Snapshot != 1 {
		t.Fatalf("serves %d, want 1", st.Snapshot)
	}
	if !strings.Contains(st.LastError, "no space left on device") {
		b, _ := os.ReadFile(r.Path(export.StatusName))
		t.Fatalf("status.json does not record the failure (%v):\n%s", err, b)
	}
}
