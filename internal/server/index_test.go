package server

import (
	"fmt"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/seqmirror/seqmirror/testutil"
)

// The cache keeps at most Indexes snapshots' indexes, and a snapshot
// number whose manifest was replaced (a rollback reused it) gets a new one.
func TestIndexCacheBounded(t *testing.T) {
	dir := t.TempDir()
	for n := uint64(1); n <= 4; n++ {
		testutil.SnapshotRoot(t, dir, n, map[string]string{"f": string(rune('a' + n))})
	}
	h, err := NewHandler(Options{Root: dir, Indexes: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	get := func(p string) string {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", p, nil))
		if rec.Code != 200 {
			t.Fatalf("%s: %d", p, rec.Code)
		}
		return rec.Body.String()
	}
	for _, p := range []string{"/snapshots/1/f", "/snapshots/2/f", "/snapshots/3/f", "/snapshots/4/f", "/snapshots/1/f"} {
		get(p)
		if len(h.idx.entries) > 2 {
			t.Fatalf("after %s: %d indexes kept", p, len(h.idx.entries))
		}
	}
	if h.idx.entries[0].n != 1 || h.idx.entries[1].n != 4 {
		t.Fatalf("kept %d and %d, want 1 and 4", h.idx.entries[0].n, h.idx.entries[1].n)
	}
	// Snapshot 4 made anew with other content: a new index, a new ETag.
	old := h.idx.entries[1]
	if err := os.RemoveAll(h.root.SnapshotDir(4)); err != nil {
		t.Fatal(err)
	}
	testutil.SnapshotRoot(t, dir, 4, map[string]string{"f": "longer content"})
	for _, e := range h.idx.entries { // as if a second passed
		e.checked = e.checked.Add(-recheck)
	}
	if got := get("/snapshots/4/f"); got != "longer content" {
		t.Fatalf("renewed snapshot 4: %q", got)
	}
	if h.idx.entries[0] == old || h.idx.entries[0].n != 4 {
		t.Fatalf("snapshot 4's index was not rebuilt")
	}
}

// Requests for several snapshots at once, more than the cache keeps:
// every answer is right while indexes are built, shared and evicted (run
// under -race by make test-race).
func TestIndexCacheConcurrent(t *testing.T) {
	dir := t.TempDir()
	for n := uint64(1); n <= 3; n++ {
		testutil.SnapshotRoot(t, dir, n, map[string]string{"f": strings.Repeat("x", int(n)), "d/g": "g"})
	}
	h, err := NewHandler(Options{Root: dir, Indexes: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 100; i++ {
				n := 1 + (w+i)%3
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, httptest.NewRequest("GET", fmt.Sprintf("/snapshots/%d/f", n), nil))
				if rec.Code != 200 || rec.Body.String() != strings.Repeat("x", n) {
					t.Errorf("snapshot %d: %d %q", n, rec.Code, rec.Body.String())
					return
				}
			}
		}()
	}
	wg.Wait()
}

// Where the kernel has no openat2, files are opened the fsys way: the
// same answers.
func TestWithoutOpenat2(t *testing.T) {
	dir := t.TempDir()
	testutil.SnapshotRoot(t, dir, 1, map[string]string{"f": "content", "d/g": "g"})
	if err := os.Symlink("/etc/passwd", h2path(dir, "l")); err != nil {
		t.Fatal(err)
	}
	h, err := NewHandler(Options{Root: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	h.openat2 = false
	for p, want := range map[string]int{"/snapshots/1/f": 200, "/snapshots/1/d/g": 200, "/snapshots/1/l": 404, "/snapshots/1/d/": 200} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", p, nil))
		if rec.Code != want {
			t.Errorf("%s: %d, want %d", p, rec.Code, want)
		}
	}
}

func h2path(root, rel string) string { return root + "/snapshots/1/" + rel }

func TestFileTag(t *testing.T) {
	for _, tt := range []struct {
		name string
		hash uint64
		size int64
	}{
		{name: "zero", hash: 0, size: 0},
		{name: "small hash", hash: 0xab, size: 7},
		{name: "full hash", hash: 0xfedcba9876543210, size: 1 << 40},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got, want := fileTag(tt.hash, tt.size), fmt.Sprintf(`"%016x-%d"`, tt.hash, tt.size); got != want {
				t.Fatalf("fileTag = %s, want %s", got, want)
			}
		})
	}
}
