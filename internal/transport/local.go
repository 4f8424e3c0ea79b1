package transport

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"time"

	"github.com/seqmirror/seqmirror/internal/cow"
	"github.com/seqmirror/seqmirror/internal/export"
	"github.com/seqmirror/seqmirror/internal/fsys"
	"github.com/seqmirror/seqmirror/internal/tree"
	"github.com/seqmirror/seqmirror/manifest"
	"github.com/seqmirror/seqmirror/seqfile"
	"golang.org/x/sys/unix"
)

// Local reads an export root on a mounted filesystem (local disk or NFS).
type Local struct {
	root    *export.Root
	Workers int
}

// NewLocal returns the upstream rooted at dir.
func NewLocal(f fsys.FS, dir string) (*Local, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrBadAddress, dir, err)
	}
	return &Local{root: export.New(f, abs), Workers: tree.Workers()}, nil
}

func (l *Local) String() string { return l.root.Dir }

func (l *Local) wrap(err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		if _, serr := l.root.FS.Stat(l.root.Dir); serr != nil {
			return fmt.Errorf("%w: %s: %w", ErrUnavailable, l.root.Dir, serr)
		}
	}
	return err
}

// rel is the path of full (below the root) relative to the root.
func (l *Local) rel(full string) string {
	r, err := filepath.Rel(l.root.Dir, full)
	if err != nil {
		return full // not below the root: OpenBeneath refuses it
	}
	return r
}

// beneath opens the root for reading many files with BeneathDir.Open: no
// symlink below the root is followed (not even snapshots/ or snapshots/N),
// and only regular files are opened. The caller closes it.
func (l *Local) beneath() (*fsys.BeneathDir, error) {
	d, err := fsys.OpenBeneathDir(l.root.FS, l.root.Dir)
	if err != nil {
		return nil, fmt.Errorf("open upstream: %w", l.wrap(err))
	}
	return d, nil
}

// Seq implements Upstream.
func (l *Local) Seq(_ context.Context, name string) (uint64, error) {
	read := func() (uint64, error) {
		return seqfile.ReadBeneath(l.root.FS, l.root.Dir, filepath.Join(export.SeqName, name))
	}
	n, err := read()
	if errors.Is(err, fs.ErrNotExist) {
		if rerr := l.root.Exists(); rerr != nil {
			return 0, fmt.Errorf("%w: read upstream seq %s: %w", ErrUnavailable, l.root.Dir, rerr)
		}
		// The root is there now. It may have just appeared (mounted
		// between the read and the check), so read once more: still
		// missing means a root never updated, whose counter is 0, as
		// in seqfile.Counters.
		if n, err = read(); errors.Is(err, fs.ErrNotExist) {
			return 0, nil
		}
	}
	if err != nil {
		return 0, fmt.Errorf("read upstream seq %s: %w", l.root.Dir, l.wrap(err))
	}
	return n, nil
}

// Current implements Upstream.
func (l *Local) Current(context.Context) (uint64, time.Time, error) {
	n, err := l.root.Current()
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("upstream %s: %w", l.root.Dir, err)
	}
	if n == 0 {
		if err := l.root.Exists(); err != nil {
			return 0, time.Time{}, fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
		return 0, time.Time{}, nil
	}
	var t time.Time
	if fi, err := fsys.Lstat(l.root.FS, l.root.Path(export.CurrentName)); err == nil {
		t = fi.ModTime()
	}
	return n, t, nil
}

// FetchManifest implements Upstream.
func (l *Local) FetchManifest(_ context.Context, n uint64, dst string) error {
	return l.fetchManifest(n, l.root.ManifestPath(n), dst)
}

// FetchFull implements FullFetcher.
func (l *Local) FetchFull(_ context.Context, n uint64, dst string) error {
	return l.fetchManifest(n, l.root.FullPath(n), dst)
}

// fetchManifest copies the manifest of snapshot n at path to dst.
func (l *Local) fetchManifest(n uint64, path, dst string) error {
	in, err := fsys.OpenBeneath(l.root.FS, l.root.Dir, l.rel(path))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("fetch manifest of snapshot %d: %w: %w", n, ErrVanished, l.wrap(err))
	case fsys.Refused(err):
		return fmt.Errorf("fetch manifest of snapshot %d from %s: %w: %w", n, l.root.Dir, manifest.ErrCorrupt, err)
	case err != nil:
		return fmt.Errorf("fetch manifest of snapshot %d: %w", n, err)
	}
	defer in.Close()
	if fi, err := in.Stat(); err == nil && fi.Size() > MaxManifestSize {
		return fmt.Errorf("fetch manifest of snapshot %d from %s: %w: %d bytes, more than %d", n, l.root.Dir, manifest.ErrCorrupt, fi.Size(), int64(MaxManifestSize))
	}
	if _, _, err := tree.CopyFrom(in, l.root.FS, dst, MaxManifestSize, manifest.Version1); err != nil {
		return fmt.Errorf("fetch manifest of snapshot %d: %w", n, err)
	}
	return nil
}

// Fetch implements Upstream: copies and hashes in one pass, in parallel.
// A record whose path is not clean and relative is refused, as the rsync
// transport refuses it, before anything is copied.
func (l *Local) Fetch(ctx context.Context, n uint64, files []manifest.Entry, dir string) error {
	for _, e := range files {
		if err := manifest.CheckPath(e.Path); err != nil {
			return fmt.Errorf("fetch snapshot %d: %w", n, err)
		}
	}
	up, err := l.beneath()
	if err != nil {
		return err
	}
	defer up.Close()
	src := l.rel(l.root.SnapshotDir(n))
	pool := tree.NewPool(ctx, l.Workers)
	for _, e := range files {
		err := pool.Go(func(context.Context) error { return l.fetchOne(up, src, e, dir) })
		if err != nil {
			break
		}
	}
	return pool.Wait()
}

// fetchOne copies and checks the file of record e from the snapshot
// directory src (relative to the root up) into dir.
func (l *Local) fetchOne(up *fsys.BeneathDir, src string, e manifest.Entry, dir string) error {
	rel := filepath.FromSlash(e.Path)
	in, err := up.Open(filepath.Join(src, rel))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("fetch %s: %w: %w", e.Path, ErrVanished, err)
	case fsys.Refused(err):
		return fmt.Errorf("fetch %s from %s: %w: the manifest says a regular file: %w", e.Path, l.root.Dir, tree.ErrHashMismatch, err)
	case err != nil:
		return fmt.Errorf("fetch %s: %w", e.Path, err)
	}
	defer in.Close()
	h, sz, err := tree.CopyFrom(in, l.root.FS, filepath.Join(dir, rel), e.Size, e.SumVersion())
	if err != nil {
		return fmt.Errorf("fetch %s: %w", e.Path, err)
	}
	if err := tree.CheckHash(e, sz, h); err != nil {
		return fmt.Errorf("fetch %s from %s: %w", e.Path, l.root.Dir, err)
	}
	return nil
}

// Close implements Upstream.
func (l *Local) Close() error { return nil }

// FetchTree implements TreeFetcher for a plain tree on a mounted filesystem
// (classic mode): every directory, symlink and file but the top-level seq/,
// files hard-linked from linkDest when size, mtime and mode match.
func (l *Local) FetchTree(ctx context.Context, dir, linkDest string) error {
	f, src := l.root.FS, l.root.Dir
	entries, err := tree.Walk(ctx, f, src, func(rel string) bool { return rel == export.SeqName })
	if err != nil {
		return fmt.Errorf("copy tree %s: %w", src, l.wrap(err))
	}
	up, err := l.beneath()
	if err != nil {
		return err
	}
	defer up.Close()
	var dirs []manifest.Entry
	pool := tree.NewPool(ctx, l.Workers)
	for _, e := range entries {
		rel := filepath.FromSlash(e.Path)
		dst := filepath.Join(dir, rel)
		switch e.Type {
		case manifest.Dir:
			if err = f.Mkdir(dst, 0o700); err != nil {
				err = fmt.Errorf("mkdir %s: %w", dst, err)
			}
			dirs = append(dirs, e)
		case manifest.Symlink:
			if err = f.SymlinkIfPossible(e.Target, dst); err != nil {
				err = fmt.Errorf("symlink %s: %w", dst, err)
			}
		case manifest.File:
			err = pool.Go(func(context.Context) error {
				if linkDest != "" {
					old := filepath.Join(linkDest, rel)
					if fi, err := fsys.Lstat(f, old); err == nil && fi.Mode().IsRegular() && fi.Size() == e.Size &&
						fi.ModTime().UnixNano() == e.MTime && fi.Mode().Perm() == e.Mode && f.Link(old, dst) == nil {
						return nil
					}
				}
				return l.copyOne(up, rel, dst, e)
			})
		}
		if err != nil {
			break
		}
	}
	if werr := pool.Wait(); err == nil {
		err = werr
	}
	if err != nil {
		return err
	}
	return tree.FinishDirs(f, dir, dirs)
}

// copyOne copies the upstream file rel (below the root up), which the walk
// listed as the regular file of record e, to dst (classic mode). What is no
// longer a regular file, or is now reached through a symlink, changed since
// the walk: like a file that vanished, that is a reason to start over.
func (l *Local) copyOne(up *fsys.BeneathDir, rel, dst string, e manifest.Entry) error {
	in, err := up.Open(rel)
	if errors.Is(err, fs.ErrNotExist) || fsys.Refused(err) {
		return fmt.Errorf("copy %s: %w: %w", e.Path, ErrVanished, err)
	}
	if err != nil {
		return fmt.Errorf("copy %s: %w", e.Path, err)
	}
	defer in.Close()
	if _, _, err := tree.CopyFrom(in, l.root.FS, dst, -1, manifest.Version1); err != nil {
		return fmt.Errorf("copy %s: %w", e.Path, err)
	}
	return tree.SetMeta(l.root.FS, dst, e)
}

// SnapshotInfo implements SnapshotCloner.
func (l *Local) SnapshotInfo(n uint64) (cow.SubvolInfo, error) {
	fd, name, err := l.openSnapshot(n)
	if err != nil {
		return cow.SubvolInfo{}, err
	}
	defer unix.Close(fd)
	return cow.InfoOf(fd, name)
}

// CloneSnapshot implements SnapshotCloner.
func (l *Local) CloneSnapshot(_ context.Context, n uint64, dst string) (cow.SubvolInfo, error) {
	fd, name, err := l.openSnapshot(n)
	if err != nil {
		return cow.SubvolInfo{}, err
	}
	defer unix.Close(fd)
	info, err := cow.InfoOf(fd, name)
	if err == nil {
		err = cow.SnapshotOf(fd, name, dst, false)
	}
	return info, err
}

// openSnapshot opens the upstream's snapshots/N, reached without a
// symlink, if it is the root of a btrfs subvolume. Every error wraps
// cow.ErrUnsupported: the mirror then copies, and that reports what is
// wrong with the upstream.
func (l *Local) openSnapshot(n uint64) (fd int, name string, err error) {
	name = l.root.SnapshotDir(n)
	rfd, err := unix.Open(l.root.Dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, name, fmt.Errorf("open %s: %w: %w", l.root.Dir, cow.ErrUnsupported, err)
	}
	defer unix.Close(rfd)
	fd, err = fsys.OpenatBeneath(rfd, l.rel(name), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC)
	if err != nil {
		return -1, name, fmt.Errorf("open %s: %w: %w", name, cow.ErrUnsupported, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || st.Ino != cow.SubvolumeRootIno {
		unix.Close(fd)
		return -1, name, fmt.Errorf("%s is not a btrfs subvolume: %w", name, cow.ErrUnsupported)
	}
	return fd, name, nil
}
