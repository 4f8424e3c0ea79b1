package tree_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"reflect"
	"syscall"
	"testing"

	"github.com/seqmirror/seqmirror/internal/fsys"
	"github.com/seqmirror/seqmirror/internal/tree"
	"github.com/seqmirror/seqmirror/manifest"
	"github.com/seqmirror/seqmirror/testutil"
	"github.com/seqmirror/seqmirror/testutil/faultfs"
)

// listAll drains a Lister of dir: the entries and the error that ended it
// (nil at io.EOF).
func listAll(tb testing.TB, f fsys.FS, dir string, skip func(string) bool) ([]manifest.Entry, error) {
	tb.Helper()
	l, err := tree.NewLister(context.Background(), f, dir, tree.WalkOptions{Skip: skip})
	if err != nil {
		return nil, err
	}
	defer l.Close()
	var out []manifest.Entry
	for {
		e, err := l.Next()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, e)
	}
}

// A Lister yields what the sequential depth-first walk returns, the
// partial listing and the error included when it stops early, on the OS
// filesystem and through a wrapper.
func TestListerMatchesSequential(t *testing.T) {
	dir := t.TempDir()
	testutil.GenTree(t, dir, 3000, 5)
	testutil.WriteTree(t, dir, map[string]string{"d00/l": "->s01", "z/y/x/w": "deep", "a b/%c": "odd"})
	ctx := context.Background()
	skip := func(rel string) bool { return rel == "d03" || rel == "d01/s02" }
	for _, tc := range []struct {
		name string
		f    fsys.FS
		skip func(string) bool
	}{
		{name: "os", f: fsys.OS()},
		{name: "os, skip", f: fsys.OS(), skip: skip},
		{name: "wrapped, skip", f: faultfs.New(fsys.OS()), skip: skip},
	} {
		got, err := listAll(t, tc.f, dir, tc.skip)
		want, werr := walkRef(ctx, fsys.OS(), dir, tc.skip)
		if err != nil || werr != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("%s: Lister: %d entries, %v; sequential: %d entries, %v", tc.name, len(got), err, len(want), werr)
		}
	}
	for _, p := range []string{"d04/s01/fifo", "d02/s03/zfifo"} {
		if err := syscall.Mkfifo(filepath.Join(dir, p), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := listAll(t, fsys.OS(), dir, nil)
	want, werr := walkRef(ctx, fsys.OS(), dir, nil)
	if !errors.Is(err, tree.ErrUnsupportedType) || fmt.Sprint(err) != fmt.Sprint(werr) || !reflect.DeepEqual(got, want) {
		t.Fatalf("Lister: %d entries, %v; sequential: %d entries, %v", len(got), err, len(want), werr)
	}
}
