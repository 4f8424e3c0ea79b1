package rsync

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/seqmirror/seqmirror/internal/export"
	"github.com/seqmirror/seqmirror/internal/transport/upstream"
	"github.com/seqmirror/seqmirror/manifest"
	"github.com/spf13/afero"
)

// This file is the upstream.Prober side of the rsync upstream: one
// rsync --list-only run for Stat, one small fetch for ReadSmall, each
// limited to the names asked for (--files-from), so a hostile upstream
// cannot make either produce more than those names.

var _ upstream.Prober = (*Upstream)(nil)

// maxProbeNames bounds the names one Stat or ReadSmall may ask for.
const maxProbeNames = 4096

// probeList writes the --files-from list of names (below the address's
// path) into a fresh private dir and returns the dir, the list and the
// rsync source base.
func (u *Upstream) probeList(names []string) (dir, list, base, prefix string, err error) {
	if len(names) > maxProbeNames {
		return "", "", "", "", fmt.Errorf("probe %s: %d names, at most %d", u, len(names), maxProbeNames)
	}
	for _, n := range names {
		if err := manifest.CheckPath(n); err != nil {
			return "", "", "", "", fmt.Errorf("probe %s: %w", u, err)
		}
	}
	if dir, err = u.tempDir(); err != nil {
		return "", "", "", "", err
	}
	base, prefix = u.Addr.FilesFromBase()
	var b bytes.Buffer
	for _, n := range names {
		b.WriteString(prefix + n + "\x00")
	}
	list = filepath.Join(dir, "list")
	if err := afero.WriteFile(u.local, list, b.Bytes(), 0o600); err != nil {
		u.local.RemoveAll(dir)
		return "", "", "", "", fmt.Errorf("rsync file list: %w", err)
	}
	return dir, list, base, prefix, nil
}

// partial tells a fetch that failed only for some names (exit 23, e.g.
// one unreadable), whose other files came, from a real failure.
func partial(err error) error {
	var xe *ExitError
	if err != nil && errors.As(err, &xe) && xe.Code == 23 {
		return nil
	}
	return err
}

// Stat implements upstream.Prober with one rsync --list-only run.
func (u *Upstream) Stat(ctx context.Context, names []string) (map[string]upstream.PathInfo, error) {
	u.pending = nil
	if len(names) == 0 {
		return map[string]upstream.PathInfo{}, nil
	}
	dir, list, base, prefix, err := u.probeList(names)
	if err != nil {
		return nil, err
	}
	defer u.local.RemoveAll(dir)
	// --ignore-missing-args: a missing name is no error, so rsync exits 0
	// and its listing of the others comes back.
	out, err := u.execInto(ctx, &output{allLines: true}, []string{"--list-only", "--no-implied-dirs", "--ignore-missing-args", "--files-from=" + list, "--from0", base, filepath.Join(dir, "dst") + "/"})
	if err != nil {
		return nil, fmt.Errorf("stat %s: %w", u, err)
	}
	want := make(map[string]bool, len(names))
	for _, n := range names {
		want[prefix+n] = true
	}
	infos := map[string]upstream.PathInfo{}
	for _, line := range out.lines {
		name, fi, ok := ParseListLine(line)
		if ok && want[name] {
			infos[strings.TrimPrefix(name, prefix)] = fi
		}
	}
	return infos, nil
}

// ParseListLine parses one line of rsync --list-only output, e.g.
// "-rw-r--r--          1,234 2026/11/28 05:10:02 snapshots/3.manifest",
// whose time is in the local time zone. Only names without blanks, which
// are all Stat asks for, parse.
func ParseListLine(line string) (string, upstream.PathInfo, bool) {
	f := strings.Fields(line)
	if len(f) != 5 || len(f[0]) != 10 {
		return "", upstream.PathInfo{}, false
	}
	size, err := strconv.ParseInt(strings.ReplaceAll(f[1], ",", ""), 10, 64)
	if err != nil {
		return "", upstream.PathInfo{}, false
	}
	t, err := time.ParseInLocation("2006/01/02 15:04:05", f[2]+" "+f[3], time.Local)
	if err != nil {
		return "", upstream.PathInfo{}, false
	}
	return f[4], upstream.PathInfo{Dir: f[0][0] == 'd', Regular: f[0][0] == '-', Size: size, ModTime: t}, true
}

// ReadSmall implements upstream.Prober: one rsync run copies the named
// files that exist (at most max bytes each, symlinks as symlinks, mtimes
// kept) into a private temp dir, which it then reads.
func (u *Upstream) ReadSmall(ctx context.Context, names []string, max int64) (map[string]upstream.SmallFile, error) {
	u.pending = nil
	if len(names) == 0 {
		return map[string]upstream.SmallFile{}, nil
	}
	dir, list, base, prefix, err := u.probeList(names)
	if err != nil {
		return nil, err
	}
	defer u.local.RemoveAll(dir)
	dst := filepath.Join(dir, "got")
	if err := u.local.Mkdir(dst, 0o700); err != nil {
		return nil, err
	}
	// exec, not run: an entry rsync skips (too large, not a regular file)
	// is simply not read.
	_, err = u.exec(ctx, nil, []string{"-lt", fmt.Sprintf("--max-size=%d", max), "--ignore-missing-args", "--files-from=" + list, "--from0", base, dst + "/"})
	if err := partial(err); err != nil {
		return nil, fmt.Errorf("read %s: %w", u, err)
	}
	files := map[string]upstream.SmallFile{}
	for _, n := range names {
		p := filepath.Join(dst, filepath.FromSlash(prefix+n))
		if !dirsBelow(dst, filepath.Dir(p)) {
			continue // a directory on the way came as a symlink
		}
		fi, err := os.Lstat(p)
		if err != nil || !fi.Mode().IsRegular() || fi.Size() > max {
			continue
		}
		b, err := readAtMost(p, max)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", u, err)
		}
		files[n] = upstream.SmallFile{Data: b, ModTime: fi.ModTime()}
	}
	return files, nil
}

// dirsBelow reports whether d and each directory between it and top
// (which is ours) is a real directory, not a symlink the upstream sent.
func dirsBelow(top, d string) bool {
	for ; d != top && len(d) > len(top); d = filepath.Dir(d) {
		if fi, err := os.Lstat(d); err != nil || !fi.IsDir() {
			return false
		}
	}
	return true
}

func readAtMost(p string, max int64) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, max))
}

// FetchStatus implements upstream.Upstream: ReadSmall of status.json (one
// rsync run).
func (u *Upstream) FetchStatus(ctx context.Context) ([]byte, error) {
	files, err := u.ReadSmall(ctx, []string{export.StatusName}, upstream.MaxStatusSize)
	if err != nil {
		return nil, fmt.Errorf("read status: %w", err)
	}
	return files[export.StatusName].Data, nil
}
