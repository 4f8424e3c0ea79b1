package tree_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"syscall"
	"testing"

	"github.com/seqmirror/seqmirror/internal/fsys"
	"github.com/seqmirror/seqmirror/internal/tree"
	"github.com/seqmirror/seqmirror/manifest"
	"github.com/seqmirror/seqmirror/testutil"
)

// The parallel tree.Walk returns what a sequential depth-first walk returns,
// including the partial listing and the error when it stops early.
func TestWalkMatchesSequential(t *testing.T) {
	dir := t.TempDir()
	testutil.GenTree(t, dir, 3000, 3)
	testutil.WriteTree(t, dir, map[string]string{"d00/l": "->s01", "z/y/x/w": "deep", "a b/%c": "odd"})
	f := fsys.OS()
	ctx := context.Background()
	skip := func(rel string) bool { return rel == "d03" || rel == "d01/s02" }
	for _, sk := range []func(string) bool{nil, skip} {
		got, err := tree.Walk(ctx, f, dir, sk)
		want, werr := walkRef(ctx, f, dir, sk)
		if err != nil || werr != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("Walk: %d entries, %v; sequential: %d entries, %v", len(got), err, len(want), werr)
		}
	}
	// Special files stop the walk at the first one in canonical order.
	for _, p := range []string{"d04/s01/fifo", "d02/s03/zfifo"} {
		if err := syscall.Mkfifo(filepath.Join(dir, p), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := tree.Walk(ctx, f, dir, nil)
	want, werr := walkRef(ctx, f, dir, nil)
	if !errors.Is(err, tree.ErrUnsupportedType) || fmt.Sprint(err) != fmt.Sprint(werr) || !reflect.DeepEqual(got, want) {
		t.Fatalf("Walk: %d entries, %v; sequential: %d entries, %v", len(got), err, len(want), werr)
	}
	// An unreadable directory (not for root, who reads anything).
	if os.Getuid() != 0 {
		os.Chmod(filepath.Join(dir, "d05"), 0)
		defer os.Chmod(filepath.Join(dir, "d05"), 0o755)
		_, err := tree.Walk(ctx, f, dir, nil)
		_, werr := walkRef(ctx, f, dir, nil)
		if fmt.Sprint(err) != fmt.Sprint(werr) {
			t.Fatalf("Walk: %v; sequential: %v", err, werr)
		}
	}
}

// walkRef is the sequential walk tree.Walk replaced, kept as its reference.
func walkRef(ctx context.Context, f fsys.FS, dir string, skip func(rel string) bool) ([]manifest.Entry, error) {
	var out []manifest.Entry
	var walk func(rel string) error
	walk = func(rel string) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		full := filepath.Join(dir, rel)
		d, err := f.Open(full)
		if err != nil {
			return fmt.Errorf("walk %s: %w", full, err)
		}
		names, err := d.Readdirnames(-1)
		d.Close()
		if err != nil {
			return fmt.Errorf("walk %s: %w", full, err)
		}
		sort.Strings(names)
		for _, name := range names {
			r := name
			if rel != "" {
				r = rel + "/" + name
			}
			if skip != nil && skip(r) {
				continue
			}
			p := filepath.Join(dir, r)
			fi, err := fsys.Lstat(f, p)
			if err != nil {
				return fmt.Errorf("walk: lstat %s: %w", p, err)
			}
			e, err := tree.EntryFromInfo(f, p, r, fi)
			if err != nil {
				return err
			}
			if err := manifest.CheckPath(e.Path); err != nil {
				return fmt.Errorf("walk %s: %w", p, err)
			}
			out = append(out, e)
			if e.Type == manifest.Dir {
				if err := walk(r); err != nil {
					return err
				}
			}
		}
		return nil
	}
	fi, err := f.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("%w %s: %w (give an existing directory)", tree.ErrNoTree, dir, err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("%w: %s is not a directory", tree.ErrNoTree, dir)
	}
	err = walk("") // before reading out: operand order in a return is unspecified
	return out, err
}
