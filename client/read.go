package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"syscall"

	"github.com/seqmirror/seqmirror/internal/export"
	"github.com/seqmirror/seqmirror/internal/fsys"
	"github.com/seqmirror/seqmirror/internal/transport"
	"github.com/seqmirror/seqmirror/internal/tree"
	"github.com/seqmirror/seqmirror/manifest"
)

// Open is OpenContext with context.Background(): the transport's timeouts
// bound it.
func (s *Snapshot) Open(name string) (io.ReadCloser, error) {
	return s.OpenContext(context.Background(), name)
}

// OpenContext returns the content of the regular file name (a path as
// Stat takes) of the pinned snapshot. It fetches the whole file and checks
// its size and content hash (the whole SHA-256 of a version 2 record)
// against the manifest before it returns: a file that does not match is an
// error wrapping ErrCorrupt, and no reader.
// A directory or symlink is refused with ErrNotFile.
func (s *Snapshot) OpenContext(ctx context.Context, name string) (io.ReadCloser, error) {
	e, err := s.Stat(name)
	if err != nil {
		return nil, err
	}
	if e.Type != manifest.File {
		return nil, fmt.Errorf("open %q in snapshot %d of %s: %w: %s", name, s.n, s.addr, ErrNotFile, describe(e))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, fmt.Errorf("open %q in snapshot %d of %s: %w", name, s.n, s.addr, fs.ErrClosed)
	}
	s.fetches++
	dir := filepath.Join(s.scratch, "f"+strconv.FormatUint(s.fetches, 10))
	defer os.RemoveAll(dir) // the open file stays readable
	if err := s.fetch(ctx, e, dir); err != nil {
		return nil, fmt.Errorf("open %q in snapshot %d of %s: %w", name, s.n, s.addr, err)
	}
	f, err := openChecked(filepath.Join(dir, filepath.FromSlash(e.Path)), e)
	if err != nil {
		return nil, fmt.Errorf("open %q in snapshot %d of %s: %w", name, s.n, s.addr, err)
	}
	return f, nil
}

// ReadFile returns the whole content of the regular file name, checked as
// OpenContext checks it.
func (s *Snapshot) ReadFile(name string) ([]byte, error) {
	r, err := s.Open(name)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	e, _ := s.Stat(name) // Open found it
	b := make([]byte, e.Size)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, fmt.Errorf("read %q in snapshot %d of %s: %w", name, s.n, s.addr, err)
	}
	return b, nil
}

// describe says what a record that is not a regular file is.
func describe(e manifest.Entry) string {
	if e.Type == manifest.Symlink {
		return fmt.Sprintf("a symlink to %q", e.Target)
	}
	return "a directory"
}

// fetch has the transport copy and check the file of record e into dir.
func (s *Snapshot) fetch(ctx context.Context, e manifest.Entry, dir string) error {
	parent := filepath.Join(dir, filepath.FromSlash(path.Dir(e.Path)))
	if err := os.MkdirAll(parent, 0o700); err != nil {
		return fmt.Errorf("scratch directory: %w", err)
	}
	if err := s.up.Fetch(ctx, s.n, []manifest.Entry{e}, dir); err != nil {
		return classify(err)
	}
	return nil
}

// openChecked opens the fetched file p and checks it against e once more
// through the descriptor it returns, rewound: the transport checked it
// already, and this check makes the guarantee the client's own, whatever
// the transport (the re-read comes from the page cache).
func openChecked(p string, e manifest.Entry) (*os.File, error) {
	_ = os.Chmod(p, 0o400) // a record may have mode 0000; the copy is ours
	f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	if err := checkOpen(f, e); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// checkOpen hashes the regular file f against e and rewinds it.
func checkOpen(f *os.File, e manifest.Entry) error {
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%w: %w: the fetched copy is not a regular file", ErrCorrupt, tree.ErrHashMismatch)
	}
	h := manifest.NewHasher(e.SumVersion())
	n, err := io.Copy(h, io.LimitReader(f, e.Size+1))
	if err != nil {
		return err
	}
	if err := tree.CheckHash(e, n, h.Sum()); err != nil {
		return fmt.Errorf("%w: the fetched copy: %w", ErrCorrupt, err)
	}
	_, err = f.Seek(0, io.SeekStart)
	return err
}

// Check reports whether the upstream still holds the pinned snapshot:
// nil if it serves it or still keeps it complete, an error wrapping
// ErrSnapshotGone if it was pruned (or replaced by another snapshot with
// the same number), another error if the upstream could not tell.
func (s *Snapshot) Check(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fmt.Errorf("check snapshot %d of %s: %w", s.n, s.addr, fs.ErrClosed)
	}
	return s.check(ctx)
}

// Close checks, as Check does, that the upstream still holds the pinned
// snapshot (so that a nil error means everything read came from a
// snapshot still held), then removes the scratch directory and closes
// the upstream. Readers returned by Open stay readable.
func (s *Snapshot) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fmt.Errorf("close snapshot %d of %s: %w", s.n, s.addr, fs.ErrClosed)
	}
	s.closed = true
	err := s.check(context.Background())
	if cerr := s.up.Close(); cerr != nil {
		err = errors.Join(err, fmt.Errorf("close %s: %w", s.addr, cerr))
	}
	if rerr := os.RemoveAll(s.scratch); rerr != nil {
		err = errors.Join(err, fmt.Errorf("remove scratch directory: %w", rerr))
	}
	return err
}

// check is Check with the lock held.
func (s *Snapshot) check(ctx context.Context) error {
	if err := s.held(ctx); err != nil {
		return fmt.Errorf("check snapshot %d of %s: %w", s.n, s.addr, err)
	}
	return nil
}

// held reports whether the upstream still keeps the pinned snapshot
// complete, served or not: its manifest is there, and the same (pruning
// removes the manifest first; a rollback may serve another snapshot under
// the same number). A Prober (path, rsync) looks at the manifest's type
// and size in one call; otherwise the manifest is fetched again and its
// footer, whose checksum covers the rest, compared.
func (s *Snapshot) held(ctx context.Context) error {
	name := export.SnapshotsName + "/" + strconv.FormatUint(s.n, 10) + export.ManifestExt
	p, ok := s.up.(transport.Prober)
	if !ok {
		return s.sameManifest(ctx)
	}
	infos, err := p.Stat(ctx, []string{name})
	if err != nil {
		return classify(err)
	}
	fi, ok := infos[name]
	switch {
	case !ok:
		return fmt.Errorf("%w: %s is gone", ErrSnapshotGone, name)
	case !fi.Regular || fi.Size != s.manSize:
		return fmt.Errorf("%w: %s is not the manifest read at open", ErrSnapshotGone, name)
	}
	return nil
}

// sameManifest fetches the pinned snapshot's manifest again and compares
// its footer (whose checksum covers all the rest) with the one read at
// open.
func (s *Snapshot) sameManifest(ctx context.Context) error {
	p := filepath.Join(s.scratch, "check.manifest")
	_ = os.Remove(p)
	defer os.Remove(p)
	if err := s.up.FetchManifest(ctx, s.n, p); err != nil {
		return classify(err)
	}
	id, err := export.ManifestID(fsys.OS(), p)
	if err != nil {
		return classify(err)
	}
	if id != s.manID {
		return fmt.Errorf("%w: its manifest is not the one read at open", ErrSnapshotGone)
	}
	return nil
}
