package reliab

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/seqmirror/seqmirror/internal/cliapp"
	"github.com/seqmirror/seqmirror/internal/export"
	"github.com/seqmirror/seqmirror/internal/fsys"
	"github.com/seqmirror/seqmirror/internal/mirror"
	"github.com/seqmirror/seqmirror/internal/transport"
	"github.com/seqmirror/seqmirror/internal/tree"
	"github.com/seqmirror/seqmirror/manifest"
	"github.com/seqmirror/seqmirror/seqfile"
	"github.com/seqmirror/seqmirror/testutil"
	"github.com/spf13/afero"
)

// rawManifest encodes a manifest from raw record lines with a correct
// footer, so that only the defect a test plants is there.
func rawManifest(header string, records []string) []byte {
	var b bytes.Buffer
	b.WriteString(manifest.Magic + "\n" + header + "\n")
	for _, r := range records {
		b.WriteString(r + "\n")
	}
	return fmt.Appendf(b.Bytes(), "end %d %016x\n", len(records), xxhash.Sum64(b.Bytes()))
}

// records returns the record lines of the manifest at p (no header, footer).
func records(tb testing.TB, p string) []string {
	tb.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		tb.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	return lines[2 : len(lines)-1]
}

// hostileUp is an upstream root being crafted: a copy of a good root that
// serves snapshot 2.
type hostileUp struct {
	tb       testing.TB
	dir      string // upstream root
	sentinel string // directory beside the mirror that nothing may touch
}

func (h hostileUp) manPath() string { return filepath.Join(h.dir, "snapshots", "2.manifest") }

// setManifest replaces manifest 2 by records (correct footer) under header.
func (h hostileUp) setManifest(header string, recs []string) {
	h.tb.Helper()
	h.write("snapshots/2.manifest", string(rawManifest(header, recs)))
}

// editRecords rewrites manifest 2 after applying fn to its records.
func (h hostileUp) editRecords(fn func([]string) []string) {
	h.tb.Helper()
	h.setManifest("snapshot 2", fn(records(h.tb, h.manPath())))
}

func (h hostileUp) write(rel, content string) {
	h.tb.Helper()
	p := filepath.Join(h.dir, filepath.FromSlash(rel))
	os.Chmod(filepath.Dir(p), 0o755)
	os.Remove(p)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		h.tb.Fatal(err)
	}
}

// replace removes the upstream entry at rel (making its directory writable
// first: snapshot directories are read-only) and lets plant put another
// thing at its path p.
func (h hostileUp) replace(rel string, plant func(p string)) {
	h.tb.Helper()
	p := filepath.Join(h.dir, filepath.FromSlash(rel))
	os.Chmod(filepath.Dir(p), 0o755)
	testutil.MakeWritable(p)
	if err := os.RemoveAll(p); err != nil {
		h.tb.Fatal(err)
	}
	plant(p)
}

// moveOut moves the upstream entry at rel to the sentinel directory (as
// name) and leaves a symlink to it in its place: the content is right, only
// it is outside the upstream.
func (h hostileUp) moveOut(rel, name string) {
	h.tb.Helper()
	p, out := filepath.Join(h.dir, filepath.FromSlash(rel)), filepath.Join(h.sentinel, name)
	os.Chmod(filepath.Dir(p), 0o755)
	if err := os.Rename(p, out); err != nil {
		h.tb.Fatal(err)
	}
	if err := os.Symlink(out, p); err != nil {
		h.tb.Fatal(err)
	}
}

// symlink replaces the upstream entry at rel by a symlink to target.
func (h hostileUp) symlink(rel, target string) {
	h.tb.Helper()
	h.replace(rel, func(p string) {
		if err := os.Symlink(target, p); err != nil {
			h.tb.Fatal(err)
		}
	})
}

// anyDigest is a well-formed content field of a version 2 record (the
// SHA-256 of "hello\n"), for records whose path is what is wrong.
const anyDigest = "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03"

// forgeDigest gives the record of path in recs the digest that a tier
// rewriting the file's content to content would need to pass a 64-bit
// check: content's SHA-256 in the first 8 bytes (all the record's Hash
// holds), the old digest's in the other 24.
func forgeDigest(recs []string, path, content string) []string {
	got := sha256.Sum256([]byte(content))
	for i, rec := range recs {
		if f := strings.Fields(rec); f[0] == "f" && f[5] == path {
			f[4] = hex.EncodeToString(got[:8]) + f[4][16:]
			recs[i] = strings.Join(f, " ")
		}
	}
	return recs
}

// secret is what the sentinel's secret file holds: the first line of an
// /etc/shadow. No error, status.json or mirrored file may ever hold it (or
// its hash).
const secret = "root:*:20228:0:99999:7:::\n"

// addedFile is a file new in snapshot 2, which the mirror (serving 1) fetches.
const addedFile = "snapshots/2/new/dir/added.txt"

// setSize sets the size of the record of path in recs.
func setSize(recs []string, path string, size int64) []string {
	for i, rec := range recs {
		if strings.HasSuffix(rec, " "+path) {
			f := strings.Fields(rec)
			f[2] = fmt.Sprint(size)
			recs[i] = strings.Join(f, " ")
		}
	}
	return recs
}

// fileRecord finds the first file record and returns its index.
func fileRecord(recs []string) int {
	for i, r := range recs {
		if strings.HasPrefix(r, "f ") {
			return i
		}
	}
	return -1
}

// vanishingFS removes dir the first time a file below under is opened: an
// upstream that stops answering in the middle of a fetch.
type vanishingFS struct {
	fsys.FS
	under, dir string
	once       sync.Once
	err        error
}

func (v *vanishingFS) OpenFile(name string, flag int, perm os.FileMode) (afero.File, error) {
	if strings.HasPrefix(name, v.under+"/") {
		v.once.Do(func() { v.err = os.RemoveAll(v.dir) })
		if v.err != nil {
			return nil, v.err
		}
	}
	return v.FS.OpenFile(name, flag, perm)
}

// hostileCase is an upstream crafted to attack a mirror, and how the mirror
// must refuse it.
type hostileCase struct {
	name  string
	craft func(h hostileUp)
	fs    func(up string) fsys.FS // the filesystem the mirror sees (default: OS)
	want  error
	exit  int
	says  string // if not "", the error must say it (what was wrong)
}

// forgedCase is the case of a rewritten file whose record's 64-bit hash
// was forged to match (manifest version 2: only the digest refuses it).
const forgedCase = "content rewritten, 64-bit hash forged to match"

// rollbackCase is the case whose mirror first serves snapshot 2.
const rollbackCase = "rollback to a lower snapshot"

// hostileCases returns every crafted upstream; each starts as a copy of a
// good root serving snapshot 2, mirrored by a root serving snapshot 1.
func hostileCases() []hostileCase {
	return []hostileCase{
		{name: "dotdot path", want: manifest.ErrUnsafePath, exit: cliapp.ExitCorrupt, craft: func(h hostileUp) {
			h.editRecords(func(r []string) []string {
				return append(r, "f 0644 1 1 "+anyDigest+" ../../../sentinel/pwned")
			})
		}},
		{name: "dotdot inside path", want: manifest.ErrUnsafePath, exit: cliapp.ExitCorrupt, craft: func(h hostileUp) {
			h.editRecords(func(r []string) []string { return append(r, "f 0644 1 1 "+anyDigest+" zz/../../x") })
		}},
		{name: "absolute path", want: manifest.ErrUnsafePath, exit: cliapp.ExitCorrupt, craft: func(h hostileUp) {
			h.editRecords(func(r []string) []string {
				return append([]string{"f 0644 1 1 " + anyDigest + " " + h.sentinel + "/pwned"}, r...)
			})
		}},
		{name: "duplicate path", want: manifest.ErrUnsafePath, exit: cliapp.ExitCorrupt, craft: func(h hostileUp) {
			h.editRecords(func(r []string) []string {
				i := fileRecord(r)
				return slices.Insert(r, i+1, r[i])
			})
		}},
		{name: "path below a symlinked directory", want: manifest.ErrUnsafePath, exit: cliapp.ExitCorrupt, craft: func(h hostileUp) {
			h.editRecords(func(r []string) []string {
				return append(r, "l 0777 17 0 - zzlink ../../../sentinel", "f 0644 1 1 "+anyDigest+" zzlink/pwned")
			})
		}},
		{name: "symlink to outside then a write through it", want: manifest.ErrUnsafePath, exit: cliapp.ExitCorrupt, craft: func(h hostileUp) {
			t := h.sentinel
			h.editRecords(func(r []string) []string {
				return append(r, fmt.Sprintf("l 0777 %d 0 - zzz %s", len(t), t), "d 0755 0 1 - zzz/sub", "f 0644 1 1 "+anyDigest+" zzz/sub/pwned")
			})
		}},
		{name: "symlink in the upstream tree where the manifest has a file", want: tree.ErrHashMismatch, exit: cliapp.ExitCorrupt, craft: func(h hostileUp) {
			// A file the mirror must fetch (new in snapshot 2), not link.
			p := filepath.Join(h.dir, "snapshots", "2", "new", "dir", "added.txt")
			os.Remove(p)
			if err := os.Symlink(filepath.Join(h.sentinel, "secret"), p); err != nil {
				h.tb.Fatal(err)
			}
		}},
		{name: "symlinked directory in the upstream tree", want: tree.ErrHashMismatch, exit: cliapp.ExitCorrupt, craft: func(h hostileUp) {
			// new/dir is a directory in the manifest but a symlink to the
			// sentinel upstream: reads go there, writes must not.
			d := filepath.Join(h.dir, "snapshots", "2", "new", "dir")
			testutil.MakeWritable(filepath.Join(h.dir, "snapshots", "2"))
			if err := os.RemoveAll(d); err != nil {
				h.tb.Fatal(err)
			}
			writeFile(h.tb, filepath.Join(h.sentinel, "added.txt"), "not the content\n")
			if err := os.Symlink(h.sentinel, d); err != nil {
				h.tb.Fatal(err)
			}
		}},
		{name: "content does not match hash", want: tree.ErrHashMismatch, exit: cliapp.ExitCorrupt, craft: func(h hostileUp) {
			// Same size, same mtime, other bytes: only the hash can tell.
			p := filepath.Join(h.dir, "snapshots", "2", "new", "dir", "added.txt")
			fi, _ := os.Stat(p)
			h.write("snapshots/2/new/dir/added.txt", "ADDED\n")
			os.Chtimes(p, fi.ModTime(), fi.ModTime())
		}},
		{name: forgedCase, want: tree.ErrHashMismatch, exit: cliapp.ExitCorrupt, says: "sha256", craft: func(h hostileUp) {
			// A tier that rewrote the file and fixed up its record so
			// that the 64-bit hash matches: only the SHA-256 can tell.
			p := filepath.Join(h.dir, "snapshots", "2", "new", "dir", "added.txt")
			fi, _ := os.Stat(p)
			h.write("snapshots/2/new/dir/added.txt", "ADDED\n")
			os.Chtimes(p, fi.ModTime(), fi.ModTime())
			h.editRecords(func(r []string) []string { return forgeDigest(r, "new/dir/added.txt", "ADDED\n") })
		}},
		{name: "wrong manifest checksum", want: manifest.ErrCorrupt, exit: cliapp.ExitCorrupt, craft: func(h hostileUp) {
			b, _ := os.ReadFile(h.manPath())
			i := bytes.LastIndexByte(b[:len(b)-1], ' ') + 1
			b[i] ^= 1 // '0'<->'1', 'a'<->'`' ... still wrong either way
			h.write("snapshots/2.manifest", string(b))
		}},
		{name: "record edited, checksum kept", want: manifest.ErrCorrupt, exit: cliapp.ExitCorrupt, craft: func(h hostileUp) {
			b, _ := os.ReadFile(h.manPath())
			h.write("snapshots/2.manifest", strings.Replace(string(b), "f 0644", "f 0666", 1))
		}},
		{name: "truncated manifest", want: manifest.ErrCorrupt, exit: cliapp.ExitCorrupt, craft: func(h hostileUp) {
			b, _ := os.ReadFile(h.manPath())
			h.write("snapshots/2.manifest", string(b[:len(b)/2]))
		}},
		{name: "manifest records another snapshot", want: manifest.ErrCorrupt, exit: cliapp.ExitCorrupt, craft: func(h hostileUp) {
			h.setManifest("snapshot 3", records(h.tb, h.manPath()))
		}},
		{name: "garbage seq end", want: seqfile.ErrCorrupt, exit: cliapp.ExitCorrupt, craft: func(h hostileUp) {
			h.write("seq/end", "2; rm -rf /\n")
		}},
		{name: "huge seq end", want: seqfile.ErrCorrupt, exit: cliapp.ExitCorrupt, craft: func(h hostileUp) {
			h.write("seq/end", strings.Repeat("9", 1<<16)+"\n")
		}},
		{name: "size claim bigger than the file", want: tree.ErrHashMismatch, exit: cliapp.ExitCorrupt, craft: func(h hostileUp) {
			h.editRecords(func(r []string) []string { return setSize(r, "new/dir/added.txt", 1000000) })
		}},
		{name: "size claim beyond MaxSize", want: manifest.ErrCorrupt, exit: cliapp.ExitCorrupt, craft: func(h hostileUp) {
			h.editRecords(func(r []string) []string {
				f := strings.Fields(r[fileRecord(r)])
				f[2] = fmt.Sprint(int64(manifest.MaxSize) + 1)
				r[fileRecord(r)] = strings.Join(f, " ")
				return r
			})
		}},
		{name: rollbackCase, want: mirror.ErrRollback, exit: cliapp.ExitRefused, craft: func(h hostileUp) {
			// The mirror will serve 2, synced from this upstream while it
			// was good (see run). The upstream has updated since (its
			// seq/end advanced) and serves an older snapshot: a rollback.
			// (An upstream that is merely behind is skipped with no error:
			// mirror.TestBehindUpstream.)
			h.write("seq/begin", "9\n")
			h.write("seq/end", "9\n")
			os.Remove(filepath.Join(h.dir, "current"))
			os.Symlink("snapshots/1", filepath.Join(h.dir, "current"))
		}},
		{name: "current points to garbage", want: export.ErrBadCurrent, exit: cliapp.ExitCorrupt, craft: func(h hostileUp) {
			os.Remove(filepath.Join(h.dir, "current"))
			os.Symlink("/etc", filepath.Join(h.dir, "current"))
		}},
		{name: "upstream directory removed", want: transport.ErrUnavailable, exit: cliapp.ExitBusy, craft: func(h hostileUp) {
			testutil.MakeWritable(h.dir)
			if err := os.RemoveAll(h.dir); err != nil {
				h.tb.Fatal(err)
			}
		}},
		{name: "upstream removed in the middle of the fetch", want: transport.ErrUnavailable, exit: cliapp.ExitBusy,
			craft: func(hostileUp) {},
			fs: func(up string) fsys.FS {
				return &vanishingFS{FS: fsys.OS(), under: filepath.Join(up, "snapshots", "2"), dir: up}
			}},
		// Special files and symlinks upstream (issue 10 item 2): each must be
		// refused at once, without blocking, reading a device or following.
		{name: "fifo where a file should be", want: tree.ErrHashMismatch, exit: cliapp.ExitCorrupt, says: "is a fifo", craft: func(h hostileUp) {
			h.replace(addedFile, func(p string) { testutil.Fifo(h.tb, p) })
		}},
		{name: "fifo as the manifest", want: manifest.ErrCorrupt, exit: cliapp.ExitCorrupt, says: "is a fifo", craft: func(h hostileUp) {
			h.replace("snapshots/2.manifest", func(p string) { testutil.Fifo(h.tb, p) })
		}},
		{name: "fifo as seq/end", want: seqfile.ErrCorrupt, exit: cliapp.ExitCorrupt, says: "is a fifo", craft: func(h hostileUp) {
			h.replace("seq/end", func(p string) { testutil.Fifo(h.tb, p) })
		}},
		{name: "fifo as seq/begin", want: seqfile.ErrCorrupt, exit: cliapp.ExitCorrupt, says: "is a fifo", craft: func(h hostileUp) {
			h.replace("seq/begin", func(p string) { testutil.Fifo(h.tb, p) })
		}},
		{name: "character device where a file should be", want: tree.ErrHashMismatch, exit: cliapp.ExitCorrupt, says: "is a character device", craft: func(h hostileUp) {
			h.replace(addedFile, func(p string) { testutil.ZeroDevice(h.tb, p) })
		}},
		{name: "character device as the manifest", want: manifest.ErrCorrupt, exit: cliapp.ExitCorrupt, says: "is a character device", craft: func(h hostileUp) {
			h.replace("snapshots/2.manifest", func(p string) { testutil.ZeroDevice(h.tb, p) })
		}},
		{name: "symlinked directory to a right copy outside", want: tree.ErrHashMismatch, exit: cliapp.ExitCorrupt, says: "is a symlink", craft: func(h hostileUp) {
			h.moveOut("snapshots/2/new/dir", "dir")
		}},
		{name: "symlinked directory to a secret", want: tree.ErrHashMismatch, exit: cliapp.ExitCorrupt, says: "is a symlink", craft: func(h hostileUp) {
			// A size claim above the secret's, so that a read through the
			// link gets to hash it all.
			h.editRecords(func(r []string) []string { return setSize(r, "new/dir/added.txt", 1000) })
			writeFile(h.tb, filepath.Join(h.sentinel, "added.txt"), secret)
			h.symlink("snapshots/2/new/dir", h.sentinel)
		}},
		{name: "symlinked snapshot directory", want: tree.ErrHashMismatch, exit: cliapp.ExitCorrupt, says: "is a symlink", craft: func(h hostileUp) {
			h.moveOut("snapshots/2", "2")
		}},
		{name: "symlinked snapshots directory", want: manifest.ErrCorrupt, exit: cliapp.ExitCorrupt, says: "is a symlink", craft: func(h hostileUp) {
			h.moveOut("snapshots", "snapshots")
		}},
		{name: "manifest symlink to a right copy outside", want: manifest.ErrCorrupt, exit: cliapp.ExitCorrupt, says: "is a symlink", craft: func(h hostileUp) {
			h.moveOut("snapshots/2.manifest", "2.manifest")
		}},
		{name: "seq/end symlink to a secret", want: seqfile.ErrCorrupt, exit: cliapp.ExitCorrupt, says: "is a symlink", craft: func(h hostileUp) {
			h.symlink("seq/end", filepath.Join(h.sentinel, "secret"))
		}},
		{name: "seq/end symlink to a right number outside", want: seqfile.ErrCorrupt, exit: cliapp.ExitCorrupt, says: "is a symlink", craft: func(h hostileUp) {
			h.moveOut("seq/end", "end")
		}},
		{name: "symlinked seq directory", want: seqfile.ErrCorrupt, exit: cliapp.ExitCorrupt, says: "is a symlink", craft: func(h hostileUp) {
			h.moveOut("seq", "seq")
		}},
	}
}

// hostileFixture holds the good roots every hostile case starts from.
type hostileFixture struct {
	good       string // serves snapshot 2 (v2), has 1 (v1)
	goodMirror string // a mirror serving snapshot 1
}

func newHostileFixture(tb testing.TB, base string) hostileFixture {
	tb.Helper()
	v1, v2 := makeSources(tb, filepath.Join(base, "src"))
	fx := hostileFixture{good: filepath.Join(base, "good"), goodMirror: filepath.Join(base, "goodmirror")}
	publish(tb, fsys.OS(), fx.good, v1)
	publish(tb, fsys.OS(), fx.good, v2)
	good1 := filepath.Join(base, "good1")
	publish(tb, fsys.OS(), good1, v1)
	if err := syncOnce(fsys.OS(), fx.goodMirror, good1); err != nil {
		tb.Fatal(err)
	}
	return fx
}

// run crafts tt's upstream at dir/up from the good root, lets sync (which
// mirrors up into root; f is the filesystem the mirror sees) run once, and
// checks that it was refused for the right reason with nothing written
// outside dir/mirror and the served snapshot unchanged and verifying.
func (fx hostileFixture) run(t *testing.T, dir string, tt hostileCase, sync func(f fsys.FS, up, root string) error) {
	t.Helper()
	up, root, sentinel := filepath.Join(dir, "up"), filepath.Join(dir, "mirror"), filepath.Join(dir, "sentinel")
	if err := os.MkdirAll(sentinel, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(sentinel, "secret"), secret)
	cp(t, fx.good, up)
	cp(t, fx.goodMirror, root)
	if tt.name == rollbackCase {
		// Synced from this very upstream (same address), while it is good.
		if err := sync(fsys.OS(), up, root); err != nil {
			t.Fatal(err)
		}
	}
	tt.craft(hostileUp{tb: t, dir: up, sentinel: sentinel})
	beforeBase, beforeSentinel := listing(t, dir), listing(t, sentinel)
	var beforeUp []string
	if _, err := os.Stat(up); err == nil {
		beforeUp = listing(t, up)
	}
	before := readState(t, root)
	oldMan := verifyCurrent(t, root)

	f := fsys.OS()
	if tt.fs != nil {
		f = tt.fs(up)
	}
	err := within(t, 20*time.Second, func() error { return sync(f, up, root) })
	if !errors.Is(err, tt.want) {
		t.Fatalf("Sync err = %v, want it to wrap %v", err, tt.want)
	}
	if !strings.Contains(fmt.Sprint(err), tt.says) {
		t.Errorf("Sync err = %v, want it to say %q", err, tt.says)
	}
	if code := cliapp.ExitCode(err); code != tt.exit {
		t.Errorf("exit code %d for %v, want %d", code, err, tt.exit)
	}
	t.Logf("refused: %v", err)
	if got := listing(t, sentinel); !slices.Equal(got, beforeSentinel) {
		t.Errorf("sentinel directory changed:\n%v\nwas\n%v", got, beforeSentinel)
	}
	if tt.fs == nil {
		if got := listing(t, dir); !slices.Equal(outside(got, "mirror"), outside(beforeBase, "mirror")) {
			t.Errorf("something was written outside ROOT:\n%v\nwas\n%v", got, beforeBase)
		}
		if beforeUp != nil && !slices.Equal(listing(t, up), beforeUp) {
			t.Errorf("the mirror wrote into the upstream")
		}
	}
	checkNoLeak(t, root, err)
	after := readState(t, root)
	if after.Cur != before.Cur || after.Seq.End != before.Seq.End {
		t.Errorf("served snapshot/end moved from %+v to %+v", before, after)
	}
	if !sameEntries(verifyCurrent(t, root), oldMan) {
		t.Errorf("served tree changed")
	}
}

func TestHostileUpstream(t *testing.T) {
	base := testutil.FastDir(t)
	fx := newHostileFixture(t, base)
	for i, tt := range hostileCases() {
		t.Run(tt.name, func(t *testing.T) {
			fx.run(t, filepath.Join(base, "case", fmt.Sprint(i)), tt, func(f fsys.FS, up, root string) error {
				return syncOnce(f, root, up)
			})
		})
	}
}

// within runs fn and fails the test if it has not returned after d (a run
// blocked on a fifo upstream would hold its lock forever).
func within(tb testing.TB, d time.Duration, fn func() error) error {
	tb.Helper()
	done := make(chan error, 1)
	go func() { done <- fn() }()
	select {
	case err := <-done:
		return err
	case <-time.After(d):
		tb.Fatalf("still running after %v: blocked", d)
		return nil
	}
}

// checkNoLeak checks that the secret (a file outside the upstream) reached
// neither the error, nor status.json (served to the world), nor any file
// of the mirror, nor a file bigger than 1 MiB there (a device read on).
func checkNoLeak(tb testing.TB, root string, runErr error) {
	tb.Helper()
	sum := sha256.Sum256([]byte(secret))
	marks := []string{"20228", fmt.Sprintf("%016x", xxhash.Sum64String(secret)), hex.EncodeToString(sum[:8])}
	status, _ := os.ReadFile(filepath.Join(root, export.StatusName))
	for _, m := range marks {
		if strings.Contains(fmt.Sprint(runErr), m) {
			tb.Errorf("the error quotes the secret or its hash: %v", runErr)
		}
		if bytes.Contains(status, []byte(m)) {
			tb.Errorf("status.json holds the secret or its hash:\n%s", status)
		}
	}
	filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil || !fi.Mode().IsRegular() {
			return nil
		}
		if fi.Size() > 1<<20 {
			tb.Errorf("%s: %d bytes written", p, fi.Size())
			return nil
		}
		if b, _ := os.ReadFile(p); bytes.Contains(b, []byte(secret)) {
			tb.Errorf("%s holds the secret", p)
		}
		return nil
	})
}

// outside drops the entries below the directory skip.
func outside(l []string, skip string) []string {
	var out []string
	for _, s := range l {
		if s == skip || strings.HasPrefix(s, skip+"/") || strings.HasPrefix(s, skip+" ") {
			continue
		}
		out = append(out, s)
	}
	return out
}

func writeFile(tb testing.TB, p, content string) {
	tb.Helper()
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		tb.Fatal(err)
	}
}

// runWithin is run (of a built binary) that fails the test if the process
// has not exited after d; it is then killed.
func runWithin(tb testing.TB, d time.Duration, name string, args ...string) (stderr string, code int) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var errb bytes.Buffer
	cmd := exec.CommandContext(ctx, bin(name), args...)
	cmd.Stderr = &errb
	err := cmd.Run()
	if ctx.Err() != nil {
		tb.Fatalf("%s %v still running after %v: blocked\n%s", name, args, d, errb.String())
	}
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		tb.Fatalf("%s %v: %v", name, args, err)
	}
	return errb.String(), cmd.ProcessState.ExitCode()
}

// hostileCasesByName indexes hostileCases by name, for tests that run
// some of them another way (the CLI, the rsync transport).
func hostileCasesByName() map[string]hostileCase {
	m := map[string]hostileCase{}
	for _, c := range hostileCases() {
		m[c.name] = c
	}
	return m
}

// TestHostileUpstreamCLI runs mirror-sync (the binary, which takes the
// lock) against some of TestHostileUpstream's special files upstream: it
// must exit 7 at once, twice (a run that blocked on a fifo held the lock,
// so every later run exited 4), quote nothing of the secret, and sync once
// the upstream is repaired.
func TestHostileUpstreamCLI(t *testing.T) {
	base := testutil.FastDir(t)
	fx := newHostileFixture(t, base)
	byName := hostileCasesByName()
	tests := []struct {
		name string // a case of hostileCases
	}{
		{name: "fifo as seq/end"},
		{name: "fifo as seq/begin"},
		{name: "fifo as the manifest"},
		{name: "fifo where a file should be"},
		{name: "character device as the manifest"},
		{name: "seq/end symlink to a secret"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hc, ok := byName[tt.name]
			if !ok {
				t.Fatalf("no hostile case %q", tt.name)
			}
			dir := filepath.Join(base, "cli", fmt.Sprint(i))
			up, root, sentinel := filepath.Join(dir, "up"), filepath.Join(dir, "mirror"), filepath.Join(dir, "sentinel")
			fatalIf(t, os.MkdirAll(sentinel, 0o755))
			writeFile(t, filepath.Join(sentinel, "secret"), secret)
			cp(t, fx.good, up)
			cp(t, fx.goodMirror, root)
			hc.craft(hostileUp{tb: t, dir: up, sentinel: sentinel})
			args := []string{"--upstream", up, "--root", root, "-q"}
			for try := 1; try <= 2; try++ {
				stderr, code := runWithin(t, 15*time.Second, "mirror-sync", args...)
				if code != cliapp.ExitCorrupt || strings.Contains(stderr, "20228") {
					t.Fatalf("run %d: exit %d, want %d, without the secret:\n%s", try, code, cliapp.ExitCorrupt, stderr)
				}
			}
			checkNoLeak(t, root, nil)
			testutil.MakeWritable(up)
			fatalIf(t, os.RemoveAll(up))
			cp(t, fx.good, up)
			if stderr, code := runWithin(t, 15*time.Second, "mirror-sync", args...); code != 0 {
				t.Fatalf("run on the repaired upstream: exit %d\n%s", code, stderr)
			}
			checkClean(t, root)
		})
	}
}

// TestPublishSourceSeqSpecial: publish reads the source's own seq/begin
// and seq/end; a fifo there (which blocked publish, holding the lock) or a
// symlink (read through) is refused at once with exit 7, and publish works
// again once they are plain files.
func TestPublishSourceSeqSpecial(t *testing.T) {
	tests := []struct {
		name  string
		plant func(tb testing.TB, seqDir, outside string)
	}{
		{name: "fifo as seq/begin", plant: func(tb testing.TB, seqDir, _ string) { testutil.Fifo(tb, filepath.Join(seqDir, "begin")) }},
		{name: "fifo as seq/end", plant: func(tb testing.TB, seqDir, _ string) { testutil.Fifo(tb, filepath.Join(seqDir, "end")) }},
		{name: "character device as seq/begin", plant: func(tb testing.TB, seqDir, _ string) {
			testutil.ZeroDevice(tb, filepath.Join(seqDir, "begin"))
		}},
		{name: "seq/begin symlink to a number outside", plant: func(tb testing.TB, seqDir, outside string) {
			writeFile(tb, filepath.Join(outside, "one"), "1\n")
			os.Remove(filepath.Join(seqDir, "begin"))
			fatalIf(tb, os.Symlink(filepath.Join(outside, "one"), filepath.Join(seqDir, "begin")))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			src, root, outside := filepath.Join(dir, "src"), filepath.Join(dir, "root"), filepath.Join(dir, "outside")
			testutil.WriteTree(t, src, map[string]string{"a.txt": "a\n", "seq/begin": "1\n", "seq/end": "1\n"})
			fatalIf(t, os.Mkdir(outside, 0o755))
			tt.plant(t, filepath.Join(src, "seq"), outside)
			args := []string{"--root", root, "--source", src, "-q"}
			for try := 1; try <= 2; try++ {
				if stderr, code := runWithin(t, 15*time.Second, "publish", args...); code != cliapp.ExitCorrupt {
					t.Fatalf("run %d: exit %d, want %d\n%s", try, code, cliapp.ExitCorrupt, stderr)
				}
			}
			for _, n := range []string{"begin", "end"} {
				os.Remove(filepath.Join(src, "seq", n))
				writeFile(t, filepath.Join(src, "seq", n), "1\n")
			}
			if stderr, code := runWithin(t, 15*time.Second, "publish", args...); code != 0 {
				t.Fatalf("publish with plain seq files: exit %d\n%s", code, stderr)
			}
			checkClean(t, root)
		})
	}
}

func fatalIf(tb testing.TB, err error) {
	tb.Helper()
	if err != nil {
		tb.Fatal(err)
	}
}
