package transport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"github.com/seqmirror/seqmirror/internal/export"
	"github.com/seqmirror/seqmirror/internal/fsys"
	"github.com/seqmirror/seqmirror/manifest"
)

// Stat implements Prober.
func (l *Local) Stat(_ context.Context, names []string) (map[string]PathInfo, error) {
	out := make(map[string]PathInfo, len(names))
	for _, name := range names {
		if err := manifest.CheckPath(name); err != nil {
			return nil, fmt.Errorf("stat %s: %w", name, err)
		}
		fi, err := fsys.Lstat(l.root.FS, l.root.Path(filepath.FromSlash(name)))
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("upstream %s: %w", l.root.Dir, l.wrap(err))
		}
		out[name] = PathInfo{Dir: fi.IsDir(), Regular: fi.Mode().IsRegular(), Size: fi.Size(), ModTime: fi.ModTime()}
	}
	return out, nil
}

// ReadSmall implements Prober.
func (l *Local) ReadSmall(ctx context.Context, names []string, max int64) (map[string]SmallFile, error) {
	infos, err := l.Stat(ctx, names)
	if err != nil {
		return nil, err
	}
	out := map[string]SmallFile{}
	for name, fi := range infos {
		if !fi.Regular || fi.Size > max {
			continue
		}
		b, err := l.readSmall(name, max)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("upstream %s: %w", l.root.Dir, err)
		}
		out[name] = SmallFile{Data: b, ModTime: fi.ModTime}
	}
	return out, nil
}

// readSmall reads at most max bytes of the regular file name, not
// following a final symlink.
func (l *Local) readSmall(name string, max int64) ([]byte, error) {
	f, err := l.root.FS.OpenFile(l.root.Path(filepath.FromSlash(name)), os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, max))
}

// FetchStatus implements Upstream: ReadSmall of status.json.
func (l *Local) FetchStatus(ctx context.Context) ([]byte, error) {
	files, err := l.ReadSmall(ctx, []string{export.StatusName}, MaxStatusSize)
	if err != nil {
		return nil, fmt.Errorf("read status of %s: %w", l.root.Dir, err)
	}
	f, ok := files[export.StatusName]
	if !ok {
		if err := l.root.Exists(); err != nil { // unmounted, not a root without status
			return nil, fmt.Errorf("%w: read status: %w", ErrUnavailable, err)
		}
	}
	return f.Data, nil
}
