package client_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/seqmirror/seqmirror/client"
	"github.com/seqmirror/seqmirror/internal/export"
	"github.com/seqmirror/seqmirror/internal/fsys"
	"github.com/seqmirror/seqmirror/snapshot"
)

// Open the snapshot a mirror serves, list it, read a file (checked
// against the manifest before a byte is handed out), and learn at Close
// whether the mirror still holds that snapshot. The address could as well
// be rsync://host/module; here it is an export root on local disk, which
// publishSample makes.
func Example() {
	root, cleanup := publishSample()
	defer cleanup()

	snap, err := client.Open(context.Background(), root, client.Options{})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("snapshot", snap.N())
	for e := range snap.Entries() {
		fmt.Printf("%c %s\n", e.Type, e.Path)
	}
	top, err := snap.List("")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("top-level records:", len(top))
	b, err := snap.ReadFile("docs/README")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("docs/README: %s", b)
	_, err = snap.ReadFile("docs/missing")
	fmt.Println("missing is ErrNotFound:", errors.Is(err, client.ErrNotFound))
	if err := snap.Close(); err != nil {
		log.Fatal(err) // errors.Is(err, client.ErrSnapshotGone): pruned meanwhile
	}
	// Output:
	// snapshot 1
	// d docs
	// f docs/README
	// f hello.txt
	// top-level records: 2
	// docs/README: read me first
	// missing is ErrNotFound: true
}

// publishSample publishes a two-file tree as snapshot 1 of a new export
// root, as `publish --root ROOT --source SRC` does, and returns the root.
func publishSample() (root string, cleanup func()) {
	dir, err := os.MkdirTemp("", "seqmirror-example-")
	if err != nil {
		log.Fatal(err)
	}
	src, root := filepath.Join(dir, "src"), filepath.Join(dir, "root")
	for name, data := range map[string]string{"hello.txt": "hello, mirror\n", "docs/README": "read me first\n"} {
		p := filepath.Join(src, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			log.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			log.Fatal(err)
		}
	}
	_, err = snapshot.Publish(context.Background(), export.New(fsys.OS(), root), src, snapshot.DefaultOptions())
	if err != nil {
		log.Fatal(err)
	}
	return root, func() { os.RemoveAll(dir) }
}
