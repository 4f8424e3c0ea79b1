package reliab

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/cespare/xxhash/v2"
	"github.com/seqmirror/seqmirror/export"
	"github.com/seqmirror/seqmirror/fsys"
	"github.com/seqmirror/seqmirror/internal/cliapp"
	"github.com/seqmirror/seqmirror/manifest"
	"github.com/seqmirror/seqmirror/mirror"
	"github.com/seqmirror/seqmirror/seqfile"
	"github.com/seqmirror/seqmirror/snapshot"
	"github.com/seqmirror/seqmirror/transport"
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
}

// rollbackCase is the case whose mirror first serves snapshot 2.
const rollbackCase = "rollback to a lower snapshot"

// hostileCases returns every crafted upstream; each starts as a copy of a
// good root serving snapshot 2, mirrored by a root serving snapshot 1.
func hostileCases() []hostileCase {
	return []hostileCase{
		{name: "dotdot path", want: manifest.ErrUnsafePath, exit: cliapp.ExitCorrupt, craft: func(h hostileUp) {
			h.editRecords(func(r []string) []string {
				return append(r, "f 0644 1 1 0000000000000000 ../../../sentinel/pwned")
			})
		}},
		{name: "dotdot inside path", want: manifest.ErrUnsafePath, exit: cliapp.ExitCorrupt, craft: func(h hostileUp) {
			h.editRecords(func(r []string) []string { return append(r, "f 0644 1 1 0000000000000000 zz/../../x") })
		}},
		{name: "absolute path", want: manifest.ErrUnsafePath, exit: cliapp.ExitCorrupt, craft: func(h hostileUp) {
			h.editRecords(func(r []string) []string {
				return append([]string{"f 0644 1 1 0000000000000000 " + h.sentinel + "/pwned"}, r...)
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
				return append(r, "l 0777 17 0 - zzlink ../../../sentinel", "f 0644 1 1 0000000000000000 zzlink/pwned")
			})
		}},
		{name: "symlink to outside then a write through it", want: manifest.ErrUnsafePath, exit: cliapp.ExitCorrupt, craft: func(h hostileUp) {
			t := h.sentinel
			h.editRecords(func(r []string) []string {
				return append(r, fmt.Sprintf("l 0777 %d 0 - zzz %s", len(t), t), "d 0755 0 1 - zzz/sub", "f 0644 1 1 0000000000000000 zzz/sub/pwned")
			})
		}},
		{name: "symlink in the upstream tree where the manifest has a file", want: snapshot.ErrHashMismatch, exit: cliapp.ExitCorrupt, craft: func(h hostileUp) {
			// A file the mirror must fetch (new in snapshot 2), not link.
			p := filepath.Join(h.dir, "snapshots", "2", "new", "dir", "added.txt")
			os.Remove(p)
			if err := os.Symlink(filepath.Join(h.sentinel, "secret"), p); err != nil {
				h.tb.Fatal(err)
			}
		}},
		{name: "symlinked directory in the upstream tree", want: snapshot.ErrHashMismatch, exit: cliapp.ExitCorrupt, craft: func(h hostileUp) {
			// new/dir is a directory in the manifest but a symlink to the
			// sentinel upstream: reads go there, writes must not.
			d := filepath.Join(h.dir, "snapshots", "2", "new", "dir")
			chmodAll(filepath.Join(h.dir, "snapshots", "2"))
			if err := os.RemoveAll(d); err != nil {
				h.tb.Fatal(err)
			}
			writeFile(h.tb, filepath.Join(h.sentinel, "added.txt"), "not the content\n")
			if err := os.Symlink(h.sentinel, d); err != nil {
				h.tb.Fatal(err)
			}
		}},
		{name: "content does not match hash", want: snapshot.ErrHashMismatch, exit: cliapp.ExitCorrupt, craft: func(h hostileUp) {
			// Same size, same mtime, other bytes: only the hash can tell.
			p := filepath.Join(h.dir, "snapshots", "2", "new", "dir", "added.txt")
			fi, _ := os.Stat(p)
			h.write("snapshots/2/new/dir/added.txt", "ADDED\n")
			os.Chtimes(p, fi.ModTime(), fi.ModTime())
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
		{name: "size claim bigger than the file", want: snapshot.ErrHashMismatch, exit: cliapp.ExitCorrupt, craft: func(h hostileUp) {
			h.editRecords(func(r []string) []string {
				for i, rec := range r {
					if strings.HasSuffix(rec, " new/dir/added.txt") {
						f := strings.Fields(rec)
						f[2] = "1000000"
						r[i] = strings.Join(f, " ")
					}
				}
				return r
			})
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
			chmodAll(h.dir)
			if err := os.RemoveAll(h.dir); err != nil {
				h.tb.Fatal(err)
			}
		}},
		{name: "upstream removed in the middle of the fetch", want: transport.ErrUnavailable, exit: cliapp.ExitBusy,
			craft: func(hostileUp) {},
			fs: func(up string) fsys.FS {
				return &vanishingFS{FS: fsys.OS(), under: filepath.Join(up, "snapshots", "2"), dir: up}
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
	writeFile(t, filepath.Join(sentinel, "secret"), "do not touch\n")
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
	err := sync(f, up, root)
	if !errors.Is(err, tt.want) {
		t.Fatalf("Sync err = %v, want it to wrap %v", err, tt.want)
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
	after := readState(t, root)
	if after.Cur != before.Cur || after.Seq.End != before.Seq.End {
		t.Errorf("served snapshot/end moved from %+v to %+v", before, after)
	}
	if !sameEntries(verifyCurrent(t, root), oldMan) {
		t.Errorf("served tree changed")
	}
}

func TestHostileUpstream(t *testing.T) {
	base := fastDir(t)
	fx := newHostileFixture(t, base)
	for i, tt := range hostileCases() {
		t.Run(tt.name, func(t *testing.T) {
			fx.run(t, filepath.Join(base, "case", fmt.Sprint(i)), tt, func(f fsys.FS, up, root string) error {
				return syncOnce(f, root, up)
			})
		})
	}
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
