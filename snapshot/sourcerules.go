package snapshot

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"

	"github.com/seqmirror/seqmirror/internal/fsys"
	"github.com/seqmirror/seqmirror/manifest"
)

// sourceSkip is the walk's skip function for publishing source: the
// source's own seq/ (if it has valid counters), git's transient files
// inside git directories (gitTransient), and the exclude patterns.
func sourceSkip(f fsys.FS, source string, hasSeq bool, x *Excludes) func(rel string) bool {
	git := newGitTransient(f, source)
	return func(rel string) bool {
		if hasSeq && rel == SourceSeqDir {
			return true
		}
		if git.skip(rel) {
			return true
		}
		return x.Match(rel, func() bool {
			fi, err := fsys.Lstat(f, filepath.Join(source, filepath.FromSlash(rel)))
			return err == nil && fi.IsDir()
		})
	}
}

// checkDeletes refuses a snapshot that leaves out more of the served
// snapshot's files than opt.MaxDelete allows.
func checkDeletes(pr *pairer, opt PublishOptions) error {
	if opt.Force || opt.MaxDelete >= 1 || pr.files == 0 {
		return nil
	}
	if float64(pr.del) > opt.MaxDelete*float64(pr.files) {
		return fmt.Errorf("%w: it would delete %d of the served snapshot's %d files (%.0f%%; at most %.0f%% allowed); nothing was published",
			ErrTooManyDeletes, pr.del, pr.files, 100*float64(pr.del)/float64(pr.files), 100*opt.MaxDelete)
	}
	return nil
}

// othersCanRead reports whether a user other than the owner, such as an
// rsync daemon's uid, can read e: o+r for a file, o+rx for a directory.
func othersCanRead(e manifest.Entry) bool {
	switch e.Type {
	case manifest.File:
		return e.Mode&0o004 != 0
	case manifest.Dir:
		return e.Mode&0o005 == 0o005
	}
	return true
}

// maxNamedUnreadable bounds the paths the unreadable warning names.
const maxNamedUnreadable = 3

// unreadable counts the entries of a listing that other users cannot read.
type unreadable struct {
	count int      // all of them
	fresh int      // of which the served snapshot did not already hold unreadable
	first []string // the first few paths
}

// note counts e if others cannot read it; was says the served snapshot
// already held it, unreadable too.
func (u *unreadable) note(e *manifest.Entry, was bool) {
	if othersCanRead(*e) {
		return
	}
	u.count++
	if !was {
		u.fresh++
	}
	if len(u.first) < maxNamedUnreadable {
		u.first = append(u.first, e.Path)
	}
}

// log reports the unreadable entries of snapshot n: at error level (shown
// under --quiet) when some are new in this snapshot, so that cron reports
// a new problem once; at warning level while the same ones stay.
func (u *unreadable) log(l *slog.Logger, n uint64) {
	if u.count == 0 {
		return
	}
	level := slog.LevelWarn
	if u.fresh > 0 {
		level = slog.LevelError
	}
	paths := strings.Join(u.first, ", ")
	if u.count > len(u.first) {
		paths += ", ..."
	}
	l.Log(context.Background(), level, "published entries other users cannot read (a file without o+r, a directory without o+rx): an rsync daemon running as another user cannot serve them and every mirror's sync will fail; make them readable (chmod o+rX) or exclude them",
		"snapshot", n, "count", u.count, "new", u.fresh, "paths", paths)
}
