package testutil

import (
	"os"
	"path"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/seqmirror/seqmirror/internal/export"
	"github.com/seqmirror/seqmirror/internal/fsys"
	"github.com/seqmirror/seqmirror/manifest"
	"github.com/seqmirror/seqmirror/seqfile"
)

// FixtureMTime is the mtime SnapshotRoot gives every entry it makes.
var FixtureMTime = time.Unix(1_600_000_000, 0)

// SnapshotRoot makes dir an export root serving snapshot n (seq/begin and
// seq/end n, current flipped to it, seq/current n) whose tree holds files (slash path ->
// content; directories are implied), files 0644 and directories 0755, all
// with mtime FixtureMTime, and whose manifest lists exactly that, as a
// publish would leave it but without the publisher (transport tests need
// a root, not the code that makes one). It returns the manifest's records
// in canonical order. Calling it again with a higher n adds that snapshot.
func SnapshotRoot(tb testing.TB, dir string, n uint64, files map[string]string) []manifest.Entry {
	tb.Helper()
	return SnapshotRootVersion(tb, dir, n, files, manifest.Current)
}

// SnapshotRootVersion is SnapshotRoot with a manifest of version v
// (manifest.Version1: what a publish before version 2 left).
func SnapshotRootVersion(tb testing.TB, dir string, n uint64, files map[string]string, v int) []manifest.Entry {
	tb.Helper()
	r := export.New(fsys.OS(), dir)
	if err := r.Init(); err != nil {
		tb.Fatal(err)
	}
	snap := r.SnapshotDir(n)
	WriteTree(tb, snap, files)
	entries := fixtureRecords(files, v)
	for i := len(entries) - 1; i >= 0; i-- { // children before their directory
		e := entries[i]
		p := filepath.Join(snap, filepath.FromSlash(e.Path))
		if err := os.Chmod(p, e.Mode); err != nil {
			tb.Fatal(err)
		}
		if err := os.Chtimes(p, FixtureMTime, FixtureMTime); err != nil {
			tb.Fatal(err)
		}
	}
	b, err := (&manifest.Manifest{Snapshot: n, Version: v, Entries: entries}).Bytes()
	if err != nil {
		tb.Fatal(err)
	}
	if err := fsys.WriteFile(r.FS, r.ManifestPath(n), b, 0o644); err != nil {
		tb.Fatal(err)
	}
	for _, name := range []string{seqfile.Begin, seqfile.End} {
		if err := seqfile.Write(r.FS, filepath.Join(r.SeqDir(), name), n); err != nil {
			tb.Fatal(err)
		}
	}
	if err := r.Flip(n); err != nil {
		tb.Fatal(err)
	}
	if err := r.WritePointer(n); err != nil {
		tb.Fatal(err)
	}
	return entries
}

// fixtureRecords are SnapshotRoot's records for files, in canonical order,
// hashed for manifest version v.
func fixtureRecords(files map[string]string, v int) []manifest.Entry {
	mtime := FixtureMTime.UnixNano()
	seen := map[string]bool{}
	var entries []manifest.Entry
	for p, content := range files {
		e := manifest.Entry{Path: p, Type: manifest.File, Mode: 0o644, MTime: mtime, Size: int64(len(content))}
		e.SetSum(SumOf(content, v))
		entries = append(entries, e)
		for d := path.Dir(p); d != "." && !seen[d]; d = path.Dir(d) {
			seen[d] = true
			entries = append(entries, manifest.Entry{Path: d, Type: manifest.Dir, Mode: 0o755, MTime: mtime})
		}
	}
	sort.Slice(entries, func(i, j int) bool { return manifest.Compare(entries[i].Path, entries[j].Path) < 0 })
	return entries
}

// SumOf is the Sum a record of manifest version v gives content.
func SumOf(content string, v int) manifest.Sum {
	h := manifest.NewHasher(v)
	h.Write([]byte(content))
	return h.Sum()
}

// UnreachableHost is the host FakeSSH cannot reach.
const UnreachableHost = "unreachable.invalid"

// FakeSSH writes a stand-in for ssh that runs the remote command locally,
// for rsync's host:path addresses (rsync -e; transport.RsyncOptions.Rsh),
// and returns its path. rsync runs: RSH [-l user] host rsync --server ...;
// ssh would hand the joined command to the remote shell. For the host
// UnreachableHost it fails as ssh does when it cannot connect (exit 255).
func FakeSSH(tb testing.TB) string {
	tb.Helper()
	p := filepath.Join(tb.TempDir(), "fake-ssh")
	script := "#!/bin/sh\nwhile [ \"$1\" = -l ]; do shift 2; done\n" +
		"if [ \"$1\" = " + UnreachableHost + " ]; then echo \"ssh: connect to host $1 port 22: Connection refused\" >&2; exit 255; fi\n" +
		"shift\nexec sh -c \"$*\"\n"
	if err := os.WriteFile(p, []byte(script), 0o755); err != nil {
		tb.Fatal(err)
	}
	return p
}
