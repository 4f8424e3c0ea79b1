package rsync

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/seqmirror/seqmirror/internal/export"
	"github.com/seqmirror/seqmirror/internal/filter"
	"github.com/seqmirror/seqmirror/internal/fsys"
	"github.com/seqmirror/seqmirror/internal/transport/upstream"
	"github.com/seqmirror/seqmirror/internal/tree"
	"github.com/seqmirror/seqmirror/manifest"
	"github.com/seqmirror/seqmirror/seqfile"
	"github.com/spf13/afero"
)

// Defaults for upstream.Options.Timeout and ConTimeout.
const (
	DefaultTimeout    = 300 * time.Second
	DefaultConTimeout = 30 * time.Second
)

// Upstream is an export root (or, for classic mode, a plain tree) read
// through the rsync binary.
type Upstream struct {
	Addr Address

	opt     upstream.Options
	local   fsys.FS
	pending *state // values fetched by the last Seq and not yet returned
	dead    error  // set when the upstream timed out: later runs fail at once
}

// Open parses addr (see ParseAddress) and returns the upstream there,
// opened with opt. local is the filesystem Fetch writes to and through
// which every write of the upstream's own goes.
func Open(addr string, local fsys.FS, opt upstream.Options) (*Upstream, error) {
	a, err := ParseAddress(addr)
	if err != nil {
		return nil, err
	}
	return New(a, local, opt), nil
}

// New returns the upstream at a, opened with opt (the fields that concern
// rsync: Timeout, ConTimeout, Workers, Progress, ScratchDir and Rsync).
// A daemon address that names no port takes opt.Rsync.Port.
func New(a Address, local fsys.FS, opt upstream.Options) *Upstream {
	if a.Kind == Daemon && a.Port == 0 && opt.Rsync.Port > 0 {
		a.Port = opt.Rsync.Port
	}
	return &Upstream{Addr: a, opt: opt, local: local}
}

func (u *Upstream) String() string { return u.Addr.String() }

// Close implements upstream.Upstream; it has nothing to release.
func (u *Upstream) Close() error { return nil }

// srcDir is the rsync source argument for directory rel, with a trailing
// slash (copy its contents).
func (u *Upstream) srcDir(rel string) string {
	s := u.Addr.Source(rel)
	if !strings.HasSuffix(s, "/") {
		s += "/"
	}
	return s
}

// state is one read of seq/begin, seq/end and current.
type state struct {
	begin, end       uint64
	beginErr, endErr error
	cur              uint64
	curTime          time.Time
	curErr           error
	used             map[string]bool // values already returned
	at               time.Time       // when they were read
	forBegin         bool            // read for a Seq "begin" call
}

const curKey = "current"

// tempDir makes a fresh private scratch directory below Options.ScratchDir
// (ROOT/.work for mirror-sync, which the next run empties).
func (u *Upstream) tempDir() (string, error) {
	dir, err := afero.TempDir(u.local, u.opt.ScratchDir, "seqmirror-rsync-")
	if errors.Is(err, fs.ErrNotExist) && u.opt.ScratchDir != "" { // a retry emptied ROOT/.work
		if err = u.local.MkdirAll(u.opt.ScratchDir, 0o755); err == nil {
			dir, err = afero.TempDir(u.local, u.opt.ScratchDir, "seqmirror-rsync-")
		}
	}
	if err != nil {
		return "", fmt.Errorf("rsync upstream temp dir: %w", err)
	}
	return dir, nil
}

// fetchState runs ONE rsync that copies seq/begin, seq/end and the current
// symlink itself (-l: not what it points to) into a fresh private dir below
// Options.ScratchDir. It also asks for the snapshots/ directory (the entry
// alone, no contents): a root that has it reads a missing seq file as 0, as
// docs/protocol.md section 2 and the local transport do.
func (u *Upstream) fetchState(ctx context.Context) (*state, error) {
	dir, err := u.tempDir()
	if err != nil {
		return nil, err
	}
	defer u.local.RemoveAll(dir)
	list := filepath.Join(dir, "list")
	base, prefix := u.Addr.FilesFromBase()
	names := []string{prefix + export.SeqName + "/" + seqfile.End, prefix + export.SeqName + "/" + seqfile.Begin,
		prefix + export.CurrentName, prefix + export.SnapshotsName}
	if err := afero.WriteFile(u.local, list, []byte(strings.Join(names, "\x00")+"\x00"), 0o600); err != nil {
		return nil, fmt.Errorf("rsync file list: %w", err)
	}
	dst := filepath.Join(dir, "got")
	if err := u.local.Mkdir(dst, 0o700); err != nil {
		return nil, err
	}
	// -l copies current as a symlink; -t keeps its mtime (when the upstream
	// flipped it); --max-size keeps a hostile upstream from filling the disk.
	skips, rerr := u.run(ctx, nil, "-lt", fmt.Sprintf("--max-size=%d", seqfile.MaxLen), "--files-from="+list, "--from0", base, dst+"/")
	var xe *ExitError
	var se *skipError
	if rerr != nil && !(errors.As(rerr, &xe) && xe.Code == 23) && !errors.As(rerr, &se) {
		return nil, rerr // 23: some of them are missing; look at what came
	}
	got := filepath.Join(dst, filepath.FromSlash(prefix))
	fi, err := os.Lstat(filepath.Join(got, export.SnapshotsName))
	isRoot := err == nil && fi.IsDir()
	st := &state{used: map[string]bool{}, at: time.Now()}
	read := func(name string) (uint64, error) {
		if s, ok := skipped(skips, prefix+export.SeqName+"/"+name); ok {
			return 0, fmt.Errorf("%w: %s", seqfile.ErrCorrupt, s.what())
		}
		return readSeq(filepath.Join(got, export.SeqName, name), isRoot, rerr)
	}
	st.begin, st.beginErr = read(seqfile.Begin)
	st.end, st.endErr = read(seqfile.End)
	st.cur, st.curTime, st.curErr = readCurrent(filepath.Join(got, export.CurrentName), skips, prefix+export.CurrentName)
	return st, nil
}

// readCurrent reads the copy of the upstream's current symlink at p (name:
// its name in rsync's reports). A missing one is 0: nothing served.
func readCurrent(p string, skips []skip, name string) (uint64, time.Time, error) {
	if s, ok := skipped(skips, name); ok {
		return 0, time.Time{}, fmt.Errorf("%w: upstream's current is not a symlink: %s", export.ErrBadCurrent, s.what())
	}
	fi, err := os.Lstat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, time.Time{}, nil
	}
	if err != nil {
		return 0, time.Time{}, err
	}
	t, err := os.Readlink(p)
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("%w: upstream's current is not a symlink: it is %s", export.ErrBadCurrent, "a "+fsys.TypeName(fi.Mode()))
	}
	n, err := export.ParseCurrent(t)
	if err != nil {
		return 0, time.Time{}, err
	}
	return n, fi.ModTime(), nil
}

// skipped finds the entry name among what rsync skipped.
func skipped(skips []skip, name string) (skip, bool) {
	for _, s := range skips {
		if s.name == name {
			return s, true
		}
	}
	return skip{}, false
}

// readSeq reads the copy of an upstream seq file at p, which must be a
// regular file. A missing one reads as 0 if the upstream is an export root
// (it has snapshots/); else the error names rerr, the rsync failure.
func readSeq(p string, isRoot bool, rerr error) (uint64, error) {
	fi, err := os.Lstat(p)
	switch {
	case errors.Is(err, fs.ErrNotExist) && isRoot:
		return 0, nil
	case errors.Is(err, fs.ErrNotExist) && rerr != nil:
		return 0, fmt.Errorf("%w (%w)", err, rerr)
	case err != nil:
		return 0, err
	case !fi.Mode().IsRegular():
		return 0, fmt.Errorf("%w: it is %s upstream, not a regular file", seqfile.ErrCorrupt, "a "+fsys.TypeName(fi.Mode()))
	}
	f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	return seqfile.ReadFrom(f)
}

// maxStateAge bounds how long a value read by one rsync run may answer a
// later call.
const maxStateAge = 10 * time.Second

// take returns remembered state for key if it has not been returned yet and
// is recent; otherwise (or with fresh) it fetches afresh.
func (u *Upstream) take(ctx context.Context, key string, fresh bool) (*state, error) {
	st := u.pending
	if fresh || st == nil || st.used[key] || time.Since(st.at) > maxStateAge {
		var err error
		if st, err = u.fetchState(ctx); err != nil {
			u.pending = nil
			return nil, err
		}
		st.forBegin = key == seqfile.Begin
		u.pending = st
	}
	st.used[key] = true
	return st, nil
}

// Seq implements upstream.Upstream. Seq "end" starts a poll: it runs
// rsync once, reading begin, end and current together; a Seq "begin" or
// Current call that follows with nothing else in between is answered from
// that run, as if all three had been read at once. The one exception: a Seq
// "end" right after a Seq "begin" that ran rsync itself (mirror.Sync's check
// after a copy, then its next poll) takes end from that run, read moments
// ago, instead of running rsync again.
func (u *Upstream) Seq(ctx context.Context, name string) (uint64, error) {
	if name != seqfile.Begin && name != seqfile.End {
		return 0, fmt.Errorf("read upstream seq %s: unknown seq file %q", u, name)
	}
	fresh := name == seqfile.End
	if p := u.pending; fresh && p != nil && p.forBegin && len(p.used) == 1 && p.used[seqfile.Begin] {
		fresh = false
	}
	st, err := u.take(ctx, name, fresh)
	if err != nil {
		return 0, fmt.Errorf("read upstream seq %s: %w", u, err)
	}
	n, err := st.end, st.endErr
	if name == seqfile.Begin {
		n, err = st.begin, st.beginErr
	}
	if err != nil {
		return 0, fmt.Errorf("read upstream seq/%s of %s: %w", name, u, err)
	}
	return n, nil
}

// Current implements upstream.Upstream (see Seq).
func (u *Upstream) Current(ctx context.Context) (uint64, time.Time, error) {
	st, err := u.take(ctx, curKey, false)
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("read upstream current %s: %w", u, err)
	}
	if st.curErr != nil {
		return 0, time.Time{}, fmt.Errorf("upstream %s: %w", u, st.curErr)
	}
	return st.cur, st.curTime, nil
}

// FetchManifest implements upstream.Upstream. rsync skips (--max-size) a
// manifest larger than the 4 GiB cap or half the space free where dst goes,
// before copying a byte of it, and any entry that is not a regular file.
func (u *Upstream) FetchManifest(ctx context.Context, n uint64, dst string) error {
	return u.fetchManifest(ctx, n, export.ManifestExt, dst)
}

// FetchFull implements upstream.FullFetcher.
func (u *Upstream) FetchFull(ctx context.Context, n uint64, dst string) error {
	return u.fetchManifest(ctx, n, export.FullExt, dst)
}

// FetchManifestFilter implements upstream.FilterFetcher: the manifest and
// the filter file of snapshot n in one rsync run (a missing filter file
// is no error: the snapshot is whole).
func (u *Upstream) FetchManifestFilter(ctx context.Context, n uint64, dst string) ([]byte, error) {
	u.pending = nil
	num := export.SnapshotsName + "/" + strconv.FormatUint(n, 10)
	abs, err := filepath.Abs(dst)
	if err != nil {
		return nil, err
	}
	tmp, err := afero.TempDir(u.local, filepath.Dir(abs), ".manifest-")
	if err != nil {
		return nil, err
	}
	defer u.local.RemoveAll(tmp)
	limit, free := u.manifestLimit(filepath.Dir(abs))
	// The manifest last of the sources: run describes a skipped entry
	// from the last source (sourceOf).
	_, err = u.run(ctx, nil, "-t", fmt.Sprintf("--max-size=%d", limit), "--ignore-missing-args",
		u.Addr.Source(num+export.FilterExt), u.Addr.Source(num+export.ManifestExt), tmp+"/")
	var se *skipError
	switch {
	case errors.As(err, &se) && strings.HasSuffix(se.skips[0].name, export.FilterExt):
		return nil, fmt.Errorf("fetch the filter of snapshot %d from %s: %w: %s", n, u, manifest.ErrCorrupt, se.skips[0].what())
	case errors.As(err, &se):
		return nil, u.manifestSkipped(n, se.skips[0], free)
	case err != nil:
		return nil, fmt.Errorf("fetch manifest of snapshot %d from %s: %w", n, u, vanished(err))
	}
	got := filepath.Join(tmp, filepath.Base(num)+export.ManifestExt)
	if fi, err := os.Lstat(got); err != nil || !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("fetch manifest of snapshot %d from %s: %w: it is not there", n, u, upstream.ErrVanished)
	}
	if err := u.local.Rename(got, abs); err != nil {
		return nil, err
	}
	data, err := readAtMost(filepath.Join(tmp, filepath.Base(num)+export.FilterExt), filter.MaxFileSize+1)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return data, err
}

// fetchManifest copies snapshots/N+ext, a manifest of snapshot n, to dst.
func (u *Upstream) fetchManifest(ctx context.Context, n uint64, ext, dst string) error {
	u.pending = nil
	name := export.SnapshotsName + "/" + strconv.FormatUint(n, 10) + ext
	abs, err := filepath.Abs(dst)
	if err != nil {
		return err
	}
	limit, free := u.manifestLimit(filepath.Dir(abs))
	_, err = u.run(ctx, nil, "-t", fmt.Sprintf("--max-size=%d", limit), u.Addr.Source(name), abs)
	var se *skipError
	if errors.As(err, &se) {
		return u.manifestSkipped(n, se.skips[0], free)
	}
	if err != nil {
		return fmt.Errorf("fetch manifest of snapshot %d from %s: %w", n, u, vanished(err))
	}
	if _, err := os.Lstat(abs); err != nil {
		return fmt.Errorf("fetch manifest of snapshot %d from %s: not transferred: %w", n, u, err)
	}
	return nil
}

// manifestLimit is the largest manifest FetchManifest accepts into dir:
// the 4 GiB cap, or half the space free there if that is less (a manifest
// that cannot fit beside the snapshot it describes is of no use). free is
// that space (-1 if unknown).
func (u *Upstream) manifestLimit(dir string) (limit, free int64) {
	limit, free = int64(upstream.MaxManifestSize), -1
	if f, err := fsys.FreeSpace(u.local, dir); err == nil {
		free = f
		limit = min(limit, max(free/2, 1))
	}
	return limit, free
}

// manifestSkipped is the error for a manifest rsync did not copy.
func (u *Upstream) manifestSkipped(n uint64, s skip, free int64) error {
	what := fmt.Sprintf("fetch manifest of snapshot %d from %s", n, u)
	switch {
	case !s.big:
		return fmt.Errorf("%s: %w: %s", what, manifest.ErrCorrupt, s.what())
	case s.size > int64(upstream.MaxManifestSize) || free < 0 || s.limit == int64(upstream.MaxManifestSize):
		return fmt.Errorf("%s: %w: %s (a manifest may be at most %d bytes)", what, manifest.ErrCorrupt, s.what(), int64(upstream.MaxManifestSize))
	}
	return fmt.Errorf("%s: %s, but only %d bytes are free here: refused before copying it; make room and run again", what, s.what(), free)
}

// Fetch implements upstream.Upstream: rsync runs with --files-from pull
// the listed files of snapshots/N/ into a staging directory on dir's
// filesystem (makeStage), they are renamed into dir, then each is hashed
// and checked.
//
// Files whose base names are unique in the batch (usually nearly all) come
// in one run into one flat directory (--no-relative), which costs no
// staging directories to make and remove; the rest come in a second run
// into a staging tree that mirrors their paths.
func (u *Upstream) Fetch(ctx context.Context, n uint64, files []manifest.Entry, dir string) error {
	u.pending = nil
	if len(files) == 0 {
		return nil
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	for _, e := range files {
		if err := manifest.CheckPath(e.Path); err != nil {
			return fmt.Errorf("fetch snapshot %d: %w", n, err)
		}
	}
	stage, done, err := u.makeStage(abs)
	if err != nil {
		return fmt.Errorf("fetch snapshot %d: staging dir: %w", n, err)
	}
	defer done()
	seen := make(map[string]bool, len(files))
	var flat, deep []manifest.Entry
	for _, e := range files {
		b := path.Base(e.Path)
		if seen[b] {
			deep = append(deep, e)
		} else {
			seen[b] = true
			flat = append(flat, e)
		}
	}
	base, prefix := u.Addr.FilesFromBase()
	b := batch{n: n, base: base, snap: prefix + export.SnapshotsName + "/" + strconv.FormatUint(n, 10) + "/", stage: stage, abs: abs}
	if err := u.fetchFlat(ctx, b, flat); err != nil {
		return err
	}
	if err := u.fetchDeep(ctx, b, deep); err != nil {
		return err
	}
	return u.check(ctx, n, files, abs)
}

// makeStage makes the staging directory of a Fetch into abs, on abs's
// filesystem so that moving files out of it is a rename: beside abs, or,
// when abs is a btrfs subvolume or a mount of its own (a rename out of its
// parent would cross devices: the copy-on-write work tree), inside abs
// under a fresh random name (no entry of the tree can be it; the top
// directory's mtime is not part of a snapshot). done removes it.
func (u *Upstream) makeStage(abs string) (stage string, done func(), err error) {
	inside, err := ownDevice(abs)
	if err != nil {
		return "", nil, err
	}
	if inside {
		stage, err = afero.TempDir(u.local, abs, ".rsync-stage-")
	} else {
		stage = filepath.Join(filepath.Dir(abs), "."+filepath.Base(abs)+".rsync-stage")
		if err = u.local.RemoveAll(stage); err == nil {
			err = u.local.Mkdir(stage, 0o700)
		}
	}
	if err != nil {
		return "", nil, err
	}
	return stage, func() { u.local.RemoveAll(stage) }, nil
}

// ownDevice reports whether dir is on another device than its parent.
func ownDevice(dir string) (bool, error) {
	var a, b syscall.Stat_t
	if err := syscall.Lstat(dir, &a); err != nil {
		return false, &fs.PathError{Op: "lstat", Path: dir, Err: err}
	}
	if err := syscall.Lstat(filepath.Dir(dir), &b); err != nil {
		return false, &fs.PathError{Op: "lstat", Path: filepath.Dir(dir), Err: err}
	}
	return a.Dev != b.Dev, nil
}

// batch is where the files of one Fetch call come from and go.
type batch struct {
	n     uint64 // the snapshot
	base  string // the rsync source base, which --files-from names are below
	snap  string // snapshots/N/ below base
	stage string // the staging directory, on abs's filesystem (makeStage)
	abs   string // the directory the files go to
}

// fetchArgs are the rsync arguments for pulling the files of list.
func fetchArgs(files []manifest.Entry, list string) []string {
	// Exactly the listed files (--files-from, no -r), contents only: no -a,
	// as modes and mtimes come from the manifest afterwards (setMeta) and
	// owners are the mirror's, so rsync makes no chmod, chown or utimes
	// calls; --inplace: the stage is empty and private, so each file is
	// written under its own name (no temp file and rename); -W: no basis
	// file exists to send deltas against; -l: a symlink where the manifest
	// lists a file comes as a symlink, which install names as such.
	var largest int64 // nothing larger than the manifest claims is accepted
	for _, e := range files {
		largest = max(largest, e.Size)
	}
	return []string{"-l", "--inplace", "-W", fmt.Sprintf("--max-size=%d", largest+1), "--files-from=" + list, "--from0"}
}

// fetchSkipped is the error for a file of snapshot n that rsync skipped (s;
// e is its record): what it is upstream, or that it is larger than e says.
func (u *Upstream) fetchSkipped(ctx context.Context, n uint64, e manifest.Entry, s skip) error {
	if s.kind == "" && s.size < 0 {
		s.kind, s.size = u.describe(ctx, u.Addr.Source(export.SnapshotsName+"/"+strconv.FormatUint(n, 10)+"/"+e.Path))
	}
	why := s.what()
	if s.big && s.size >= 0 {
		why = fmt.Sprintf("it is %d bytes upstream, the manifest says %d", s.size, e.Size)
	} else if s.big {
		why = fmt.Sprintf("it is larger upstream than the manifest says (%d bytes)", e.Size)
	}
	return fmt.Errorf("fetch %s of snapshot %d from %s: %w: %s", e.Path, n, u, tree.ErrHashMismatch, why)
}

// batchSkipped maps rsync's report of a skipped entry (name, as printed: a
// base name for a flat fetch, else snap and the path) to its record.
func (u *Upstream) batchSkipped(ctx context.Context, n uint64, files []manifest.Entry, snap string, err error) error {
	var se *skipError
	if !errors.As(err, &se) {
		return err
	}
	s := se.skips[0]
	for _, e := range files {
		if e.Path == strings.TrimPrefix(s.name, snap) || (!strings.Contains(s.name, "/") && path.Base(e.Path) == s.name) {
			return u.fetchSkipped(ctx, n, e, s)
		}
	}
	return fmt.Errorf("fetch snapshot %d from %s: %w", n, u, err)
}

// writeList writes the --files-from list of files (paths below the module).
func (u *Upstream) writeList(list, snap string, files []manifest.Entry) error {
	return fsys.WriteStream(u.local, list, 0o600, func(w io.Writer) error {
		bw := bufio.NewWriter(w)
		for _, e := range files {
			bw.WriteString(snap + e.Path)
			bw.WriteByte(0)
		}
		return bw.Flush()
	})
}

// fetchFlat pulls files, whose base names are distinct, from b.snap into
// b.stage/flat and renames each into place below b.abs.
func (u *Upstream) fetchFlat(ctx context.Context, b batch, files []manifest.Entry) error {
	if len(files) == 0 {
		return nil
	}
	n, snap := b.n, b.snap
	into := filepath.Join(b.stage, "flat")
	if err := u.local.Mkdir(into, 0o700); err != nil {
		return fmt.Errorf("fetch snapshot %d: staging dir: %w", n, err)
	}
	list := filepath.Join(b.stage, "flat.list")
	if err := u.writeList(list, snap, files); err != nil {
		return fmt.Errorf("fetch snapshot %d: file list: %w", n, err)
	}
	// --no-relative: each file lands in into/ under its base name.
	args := append(fetchArgs(files, list), "--no-relative", b.base, into+"/")
	if _, err := u.run(ctx, u.opt.Progress, args...); errors.As(err, new(*skipError)) {
		return u.batchSkipped(ctx, n, files, snap, err)
	} else if err != nil {
		return fmt.Errorf("fetch %d files of snapshot %d from %s: %w", len(files), n, u, vanished(err))
	}
	if fi, err := os.Lstat(into); err != nil || !fi.IsDir() {
		return fmt.Errorf("fetch snapshot %d from %s: staging directory %s was replaced: %w", n, u, into, manifest.ErrUnsafePath)
	}
	for _, e := range files {
		if err := u.install(filepath.Join(into, path.Base(e.Path)), b, e); err != nil {
			return err
		}
	}
	return nil
}

// install renames the fetched copy of e at from to its place below b.abs,
// if it is a regular file.
func (u *Upstream) install(from string, b batch, e manifest.Entry) error {
	n := b.n
	if fi, err := fsys.Lstat(u.local, from); err != nil {
		return fmt.Errorf("fetch %s of snapshot %d from %s: not transferred: %w", e.Path, n, u, err)
	} else if !fi.Mode().IsRegular() {
		return fmt.Errorf("fetch %s of snapshot %d from %s: %w: it is %s upstream, not a regular file", e.Path, n, u, tree.ErrHashMismatch, "a "+fsys.TypeName(fi.Mode()))
	}
	if err := u.local.Rename(from, filepath.Join(b.abs, filepath.FromSlash(e.Path))); err != nil {
		return fmt.Errorf("fetch %s of snapshot %d from %s: %w", e.Path, n, u, err)
	}
	return nil
}

// fetchDeep pulls files into a staging tree below b.stage/deep that
// mirrors their paths and renames each into place below b.abs.
func (u *Upstream) fetchDeep(ctx context.Context, b batch, files []manifest.Entry) error {
	if len(files) == 0 {
		return nil
	}
	n, snap := b.n, b.snap
	into := filepath.Join(b.stage, "deep")
	made := map[string]bool{into: true} // every staging directory, ancestors included
	if err := u.local.Mkdir(into, 0o700); err != nil {
		return fmt.Errorf("fetch snapshot %d: staging dir: %w", n, err)
	}
	for _, e := range files {
		d := filepath.Dir(filepath.Join(into, filepath.FromSlash(snap+e.Path)))
		if made[d] {
			continue
		}
		if err := u.local.MkdirAll(d, 0o700); err != nil {
			return fmt.Errorf("fetch snapshot %d: staging dir: %w", n, err)
		}
		for ; d != into && !made[d]; d = filepath.Dir(d) {
			made[d] = true
		}
	}
	list := filepath.Join(b.stage, "deep.list")
	if err := u.writeList(list, snap, files); err != nil {
		return fmt.Errorf("fetch snapshot %d: file list: %w", n, err)
	}
	// --no-implied-dirs: the staging directories exist and stay ours.
	args := append(fetchArgs(files, list), "--no-implied-dirs", b.base, into+"/")
	if _, err := u.run(ctx, u.opt.Progress, args...); errors.As(err, new(*skipError)) {
		return u.batchSkipped(ctx, n, files, snap, err)
	} else if err != nil {
		return fmt.Errorf("fetch %d files of snapshot %d from %s: %w", len(files), n, u, vanished(err))
	}
	// Only what was asked for leaves the stage: directories still ours (not
	// replaced by symlinks) and regular files.
	for d := range made {
		if fi, err := os.Lstat(d); err != nil || !fi.IsDir() {
			return fmt.Errorf("fetch snapshot %d from %s: staging directory %s was replaced: %w", n, u, d, manifest.ErrUnsafePath)
		}
	}
	for _, e := range files {
		if err := u.install(filepath.Join(into, filepath.FromSlash(snap), filepath.FromSlash(e.Path)), b, e); err != nil {
			return err
		}
	}
	return nil
}

// check hashes every fetched file and compares it with its record.
func (u *Upstream) check(ctx context.Context, n uint64, files []manifest.Entry, dir string) error {
	w := u.opt.Workers
	if w <= 0 {
		w = tree.Workers()
	}
	pool := tree.NewPool(ctx, w)
	for _, e := range files {
		if err := pool.Go(func(context.Context) error {
			_, err := tree.CheckFile(u.local, filepath.Join(dir, filepath.FromSlash(e.Path)), e)
			switch {
			case errors.Is(err, tree.ErrHashMismatch):
				return fmt.Errorf("fetch %s of snapshot %d from %s: %w", e.Path, n, u, err)
			case err != nil:
				return fmt.Errorf("check %s of snapshot %d from %s: %w", e.Path, n, u, err)
			}
			return nil
		}); err != nil {
			break
		}
	}
	return pool.Wait()
}

// FetchTree implements upstream.TreeFetcher (classic mode): -rlpt, not
// -a: no owners, and (safetyArgs) no devices, specials or setuid, setgid
// and sticky bits. A device or special file upstream is refused, as the
// local transport refuses it, rather than left out.
func (u *Upstream) FetchTree(ctx context.Context, dir, linkDest string) error {
	u.pending = nil
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	// --modify-window=-1: the quick check (size and mtime) compares
	// nanoseconds, else a same-size change within the same second of the
	// last copy would be hard-linked from the old snapshot unseen.
	args := []string{"-rlpt", "--delete", "--modify-window=-1", "--exclude=/" + export.SeqName + "/"}
	if linkDest != "" {
		ld, err := filepath.Abs(linkDest)
		if err != nil {
			return err
		}
		args = append(args, "--link-dest="+ld)
	}
	if u.opt.Progress != nil {
		args = append(args, "--no-inc-recursive") // a total known up front
	}
	args = append(args, u.srcDir(""), abs+"/")
	_, err = u.run(ctx, u.opt.Progress, args...)
	var se *skipError
	if errors.As(err, &se) {
		return fmt.Errorf("copy tree from %s: %w: %s: %s; a snapshot holds only files, directories and symlinks",
			u, tree.ErrUnsupportedType, quoteName(se.skips[0].name), se.skips[0].what())
	}
	if err != nil {
		return fmt.Errorf("copy tree from %s: %w", u, err)
	}
	return nil
}

// vanished adds upstream.ErrVanished to an rsync failure that says a
// snapshot file or directory is not there (exit 23 or 3, "No such file"):
// the snapshot was pruned upstream.
func vanished(err error) error {
	var xe *ExitError
	if errors.As(err, &xe) && (xe.Code == 23 || xe.Code == 3) && strings.Contains(xe.Stderr, "No such file or directory") {
		return fmt.Errorf("%w: %w", upstream.ErrVanished, err)
	}
	return err
}

// ExitError is a failed rsync run.
type ExitError struct {
	Code   int
	Stderr string // the tail of rsync's stderr
}

var exitMeaning = map[int]string{
	1: "syntax or usage error", 2: "protocol incompatibility", 3: "errors selecting input/output files or dirs",
	4: "requested action not supported", 5: "error starting client-server protocol", 6: "daemon unable to append to log-file",
	10: "error in socket I/O", 11: "error in file I/O", 12: "error in rsync protocol data stream",
	13: "errors with program diagnostics", 14: "error in IPC code", 20: "received SIGUSR1 or SIGINT",
	21: "some error returned by waitpid()", 22: "error allocating core memory buffers",
	23: "partial transfer due to error", 24: "partial transfer due to vanished source files",
	25: "the --max-delete limit stopped deletions", 30: "timeout in data send/receive",
	35: "timeout waiting for daemon connection", 255: "remote shell failed",
}

func (e *ExitError) Error() string {
	msg := fmt.Sprintf("rsync exited with code %d (%s)", e.Code, exitMeaning[e.Code])
	if e.Code >= 1 && e.Code <= 4 {
		msg += " — a configuration problem: check the address, the rsync binary and its options, and the daemon's config"
	}
	if s := strings.TrimSpace(e.Stderr); s != "" {
		msg += ": " + s
	}
	return msg
}

// refusals are what an rsync daemon (or the remote side) says when it
// answered and will not do what was asked: retrying cannot help.
var refusals = []string{
	"@ERROR: Unknown module", "@ERROR: auth failed", "@ERROR: access denied", "@ERROR: chroot failed",
	"@ERROR: chdir failed", "is configured to refuse", "Permission denied (13)",
}

// Unwrap maps the exit code: a refusal quoted in rsync's stderr is
// upstream.ErrRefused; 24 is upstream.ErrVanished; codes that mean the
// upstream did not answer properly are upstream.ErrUnavailable.
func (e *ExitError) Unwrap() error {
	for _, r := range refusals {
		if strings.Contains(e.Stderr, r) {
			return upstream.ErrRefused
		}
	}
	switch e.Code {
	case 24:
		return upstream.ErrVanished
	case 5, 10, 12, 30, 35, 255:
		return upstream.ErrUnavailable
	}
	return nil
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	b   []byte
	max int
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = append(t.b[:0], t.b[len(t.b)-t.max:]...)
	}
	return len(p), nil
}

// ParseProgressLine parses one --info=progress2 record.
func ParseProgressLine(line string) (bytes int64, percent int, ok bool) {
	f := strings.Fields(line)
	if len(f) < 2 || !strings.HasSuffix(f[1], "%") {
		return 0, 0, false
	}
	b, err := strconv.ParseInt(strings.ReplaceAll(f[0], ",", ""), 10, 64)
	if err != nil {
		return 0, 0, false
	}
	p, err := strconv.Atoi(strings.TrimSuffix(f[1], "%"))
	if err != nil || p < 0 || p > 100 {
		return 0, 0, false
	}
	return b, p, true
}

// FetchSnapshot implements upstream.SnapshotFetcher: ONE recursive rsync
// run copies snapshots/N/ (never current/) into dir, whose directories the
// caller made, then the tree is checked against m: nothing more, nothing
// less, same types and symlink targets, every regular file hashed (in
// parallel). Devices, specials and owners are not copied (-rlpt, not -a).
//
// A hostile upstream cannot make it write much more than m declares: no
// file larger than the largest m lists is taken (--max-size), and the run
// is stopped once more than m's total size plus pullSlack has come (rsync
// reports its byte count as each file completes), so extras the manifest
// does not list cannot fill the disk before the check refuses them.
// (A --files-from run by m's list would write nothing unlisted, but a
// daemon serves --files-from names several times slower than a recursive
// run: 8x for 20k small files here.)
func (u *Upstream) FetchSnapshot(ctx context.Context, n uint64, m upstream.Records, dir string) error {
	u.pending = nil
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	largest, total, err := fileSizes(m)
	if err != nil {
		return err
	}
	if err := u.pullWhole(ctx, n, largest, total, abs); err != nil {
		return err
	}
	return u.checkTree(ctx, n, m, abs)
}

// pullSlack is how many bytes beyond its manifest's total a whole-snapshot
// pull may bring before it is stopped (besides the file in flight when the
// limit is crossed, which is no larger than the manifest's largest).
const pullSlack = 1 << 20

// ErrUnlisted means the upstream's snapshot holds entries its manifest does
// not list (it wraps tree.ErrHashMismatch).
var ErrUnlisted = fmt.Errorf("%w: the upstream holds files its manifest does not list", tree.ErrHashMismatch)

// pullWhole runs the recursive rsync of snapshots/N/ into abs, stopping it
// once more than total+pullSlack bytes have come.
func (u *Upstream) pullWhole(ctx context.Context, n uint64, largest, total int64, abs string) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	limit := total + pullSlack
	over := fmt.Errorf("%w (more than the %d bytes its manifest declares came; stopped)", ErrUnlisted, total)
	progress := func(b int64, pct int) {
		if b > limit {
			cancel(over)
		}
		if u.opt.Progress != nil {
			u.opt.Progress(b, pct)
		}
	}
	args := []string{"-rlpt", fmt.Sprintf("--max-size=%d", largest+1)}
	if u.opt.Progress != nil {
		args = append(args, "--no-inc-recursive") // a total known up front
	}
	args = append(args, u.srcDir(export.SnapshotsName+"/"+strconv.FormatUint(n, 10)), abs+"/")
	if _, err := u.run(ctx, progress, args...); err != nil {
		return fmt.Errorf("fetch snapshot %d from %s: %w", n, u, vanished(err))
	}
	return nil
}

// fileSizes returns the largest and the total size of m's files.
func fileSizes(m upstream.Records) (largest, total int64, err error) {
	it, err := m.Open()
	if err != nil {
		return 0, 0, err
	}
	defer it.Close()
	for {
		e, err := it.Next()
		if err == io.EOF {
			return largest, total, nil
		}
		if err != nil {
			return 0, 0, err
		}
		if e.Type == manifest.File {
			largest, total = max(largest, e.Size), total+e.Size
		}
	}
}

// checkTree compares the tree at dir with m in one streaming pass over m,
// holding only the directories above the current record: each record's
// path must hold the same type (directories are checked before what is
// below them, so no path goes through a symlink), each symlink its target,
// each regular file (opened without following symlinks, hashed by a worker
// pool) its size and hash; and once m has listed all of a directory's
// entries, the directory must hold that many, so it holds nothing else.
func (u *Upstream) checkTree(ctx context.Context, n uint64, m upstream.Records, dir string) error {
	it, err := m.Open()
	if err != nil {
		return err
	}
	defer it.Close()
	w := u.opt.Workers
	if w <= 0 {
		w = tree.Workers()
	}
	c := &treeCheck{u: u, n: n, dir: dir, pool: tree.NewPool(ctx, w), stack: []checkDir{{}}}
	for err == nil {
		var e manifest.Entry
		if e, err = it.Next(); err == nil {
			err = c.add(e)
		}
	}
	if err == io.EOF {
		err = c.popUntil("")
	}
	if werr := c.pool.Wait(); err == nil {
		err = werr
	}
	return err
}

// treeCheck is one checkTree pass.
type treeCheck struct {
	u     *Upstream
	n     uint64
	dir   string
	pool  *tree.Pool
	stack []checkDir // the top directory ("") and those above the current record
}

// checkDir is a directory and the number of its entries listed so far.
type checkDir struct {
	path    string
	entries int
}

func (c *treeCheck) bad(p, why string) error {
	return fmt.Errorf("fetch snapshot %d from %s: %s: %w: %s", c.n, c.u, p, tree.ErrHashMismatch, why)
}

func (c *treeCheck) full(p string) string { return filepath.Join(c.dir, filepath.FromSlash(p)) }

// add checks the next record, after the directories it is not below.
func (c *treeCheck) add(e manifest.Entry) error {
	if err := c.popUntil(e.Path); err != nil {
		return err
	}
	c.stack[len(c.stack)-1].entries++
	full := c.full(e.Path)
	if e.Type == manifest.File { // opened without following symlinks
		return c.pool.Go(func(context.Context) error { return c.file(full, e) })
	}
	fi, err := os.Lstat(full)
	if err != nil {
		return fmt.Errorf("fetch %s of snapshot %d from %s: not transferred: %w", e.Path, c.n, c.u, err)
	}
	switch t := fi.Mode().Type(); {
	case t == fs.ModeDir && e.Type == manifest.Dir:
		c.stack = append(c.stack, checkDir{path: e.Path})
	case t == fs.ModeSymlink && e.Type == manifest.Symlink:
		target, err := os.Readlink(full)
		if err != nil {
			return fmt.Errorf("check snapshot %d from %s: %w", c.n, c.u, err)
		}
		if target != e.Target {
			return c.bad(e.Path, fmt.Sprintf("symlink to %q, manifest says %q", target, e.Target))
		}
	default:
		return c.bad(e.Path, fmt.Sprintf("got type %s, manifest says %c", t, e.Type))
	}
	return nil
}

// file hashes the regular file at full and gives it e's mode and mtime.
func (c *treeCheck) file(full string, e manifest.Entry) error {
	fi, err := tree.CheckFile(c.u.local, full, e)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("fetch %s of snapshot %d from %s: not transferred: %w", e.Path, c.n, c.u, err)
	case errors.Is(err, tree.ErrHashMismatch):
		return fmt.Errorf("fetch %s of snapshot %d from %s: %w", e.Path, c.n, c.u, err)
	case err != nil:
		return fmt.Errorf("check %s of snapshot %d from %s: %w", e.Path, c.n, c.u, err)
	}
	// rsync -pt normally left the manifest's mode and mtime.
	if fi.Mode().Perm() != e.Mode || fi.ModTime().UnixNano() != e.MTime {
		return tree.SetMeta(c.u.local, full, e)
	}
	return nil
}

// popUntil closes the directories on the stack that p is not below (all
// but the top directory for ""; then that too): m has listed all their
// entries, so each must hold exactly that many.
func (c *treeCheck) popUntil(p string) error {
	for len(c.stack) > 1 || p == "" {
		d := c.stack[len(c.stack)-1]
		if p != "" && len(p) > len(d.path) && p[len(d.path)] == '/' && p[:len(d.path)] == d.path {
			return nil
		}
		if err := c.count(d); err != nil {
			return err
		}
		if c.stack = c.stack[:len(c.stack)-1]; len(c.stack) == 0 {
			return nil
		}
	}
	return nil
}

// count checks that directory d holds exactly the entries m listed in it.
func (c *treeCheck) count(d checkDir) error {
	h, err := os.OpenFile(c.full(d.path), os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_DIRECTORY, 0)
	if err != nil {
		return fmt.Errorf("check snapshot %d from %s: %w", c.n, c.u, err)
	}
	defer h.Close()
	got := 0
	for {
		names, err := h.Readdirnames(4096)
		got += len(names)
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("check snapshot %d from %s: %w", c.n, c.u, err)
		}
	}
	if got != d.entries {
		name := d.path
		if name == "" {
			name = "."
		}
		return fmt.Errorf("fetch snapshot %d from %s: %s: %w (%d entries, the manifest lists %d)", c.n, c.u, name, ErrUnlisted, got, d.entries)
	}
	return nil
}
