package testutil

import (
	"bytes"
	"crypto/sha256"
	"os"
	"path/filepath"
	"testing"

	"github.com/seqmirror/seqmirror/manifest"
)

// ForgeRecord does what a tier that rewrites a file and fixes up a 64-bit
// content hash leaves: it rewrites the file rel of the snapshot tree
// snapDir to content (which must have the old size; the mtime is kept) and
// rewrites the version 2 manifest at manPath (with a correct footer) so
// that rel's record has content's SHA-256 in the first 8 bytes of its
// digest (all that its 64-bit Hash holds) and the old digest's in the
// other 24. Everything but a check of the whole digest passes.
func ForgeRecord(tb testing.TB, manPath, snapDir, rel, content string) {
	tb.Helper()
	b, err := os.ReadFile(manPath)
	Must(tb, err)
	m, err := manifest.Decode(bytes.NewReader(b))
	Must(tb, err)
	if m.Version != manifest.Version2 {
		tb.Fatalf("%s: version %d, want 2", manPath, m.Version)
	}
	got := sha256.Sum256([]byte(content))
	found := false
	for i := range m.Entries {
		if e := &m.Entries[i]; e.Path == rel && e.Type == manifest.File {
			if e.Size != int64(len(content)) {
				tb.Fatalf("%s: %d bytes, the forged content %d", rel, e.Size, len(content))
			}
			copy(e.Digest[:8], got[:8])
			e.Hash = e.Digest.Hash()
			found = true
		}
	}
	if !found {
		tb.Fatalf("%s: no file record %s", manPath, rel)
	}
	out, err := m.Bytes()
	Must(tb, err)
	Must(tb, os.Chmod(manPath, 0o644))
	Must(tb, os.WriteFile(manPath, out, 0o644))
	// In place (the same inode, so that hard links to it change too), its
	// mode and mtime restored.
	p := filepath.Join(snapDir, filepath.FromSlash(rel))
	fi, err := os.Stat(p)
	Must(tb, err)
	Must(tb, os.Chmod(p, 0o644))
	Must(tb, os.WriteFile(p, []byte(content), 0o644))
	Must(tb, os.Chmod(p, fi.Mode().Perm()))
	Must(tb, os.Chtimes(p, fi.ModTime(), fi.ModTime()))
}
