package changes

import (
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
	"sync"
	"syscall"

	"github.com/seqmirror/seqmirror/internal/cow"
	"github.com/seqmirror/seqmirror/internal/fsys"
	"github.com/seqmirror/seqmirror/internal/tree"
	"github.com/seqmirror/seqmirror/manifest"
)

// Base is the earlier snapshot's records, in canonical order, that a Walk
// reads along.
type Base interface {
	// Peek passes over the records before path (the listing has no entry
	// there) and returns the record at path, if there is one.
	Peek(path string) (manifest.Entry, bool)
	// Current returns the next record, if there is one.
	Current() (manifest.Entry, bool)
	// Drop passes over the next record: the listing has no entry at its
	// path.
	Drop()
}

// Walk lists a snapshot, Dir, whose changes since an earlier snapshot
// Set says.
type Walk struct {
	FS   fsys.FS
	Dir  string // the snapshot listed
	Set  *Set
	Base Base
	// Skip, if not nil, says which paths the listing leaves out (with all
	// below them); a skimmed directory asks it of every record.
	Skip func(rel string) bool
	// Emit is handed every entry in canonical order: settled (fi nil: the
	// record Base had at its path) or fresh (fi is its lstat). It may
	// read Base, which the walk then passes over the entry's path; it
	// must not keep e's address.
	Emit func(e manifest.Entry, fi fs.FileInfo) error

	tree          *cow.Tree
	ahead         map[string]*listing // directories being read ahead, by path
	read, skimmed int                 // directories
}

// Run lists the snapshot.
func (w *Walk) Run() error {
	t, err := cow.OpenTree(w.Dir)
	if err != nil {
		return err
	}
	defer t.Close()
	w.tree, w.ahead = t, map[string]*listing{}
	defer w.drain()
	return w.dir("", true, cow.SubvolumeRootIno)
}

// Counts says how many directories were read and how many skimmed.
func (w *Walk) Counts() (read, skimmed int) { return w.read, w.skimmed }

// dir reads directory rel (inode ino) and lists, depth first, what is
// below it; stable says it is the inode the earlier snapshot has at rel.
func (w *Walk) dir(rel string, stable bool, ino uint64) error {
	w.read++
	ents, err := w.list(rel)
	if err != nil {
		return err
	}
	w.readAhead(rel, ents)
	var names map[uint64]uint64 // when each entry got its name, if asked
	for _, d := range ents {
		r := join(rel, d.name)
		if w.Skip != nil && w.Skip(r) {
			delete(w.ahead, r) // read ahead for nothing: let it finish
			continue
		}
		if err := manifest.CheckPath(r); err != nil {
			return fmt.Errorf("walk %s: %w", w.Dir, err)
		}
		changed := w.Set.inodes[d.ino]
		e, fi, err := w.entry(r, d.typ, stable && !changed)
		if err != nil {
			return err
		}
		childStable := stable && !changed
		if stable && changed && d.typ == manifest.Dir {
			childStable = w.oldName(ino, d.ino, &names)
		}
		if err := w.emit(e, fi, childStable, d.ino); err != nil {
			return err
		}
	}
	return nil
}

// oldName reports whether the entry of directory dir naming inode ino is
// as old as the earlier snapshot: then it named the same inode there, and
// a changed directory under a stable one is stable. names caches dir's
// entries' transactions (none known: not stable).
func (w *Walk) oldName(dir, ino uint64, names *map[uint64]uint64) bool {
	if *names == nil {
		var err error
		if *names, err = w.tree.NameTransids(dir); err != nil {
			*names = map[uint64]uint64{}
		}
	}
	t := (*names)[ino]
	return t != 0 && t <= w.Set.since
}

// skim lists what is below directory rel — unchanged, stable, holding no
// changed inode and nothing left out in the earlier snapshot — from the
// records below rel: its entries are settled.
func (w *Walk) skim(rel string) error {
	w.skimmed++
	prefix := rel + "/"
	for {
		rec, ok := w.Base.Current()
		if !ok || !strings.HasPrefix(rec.Path, prefix) {
			return nil
		}
		r := rec.Path
		if strings.Contains(r[len(prefix):], "/") || w.Skip != nil && w.Skip(r) {
			// below an entry listed already (gone from a directory
			// read), or left out now
			w.Base.Drop()
			continue
		}
		if err := w.emit(rec, nil, true, 0); err != nil {
			return err
		}
	}
}

// emit hands e over and lists what is below it if it is a directory
// (stable: the earlier snapshot's inode at its path; ino: its inode, 0 if
// not known yet).
func (w *Walk) emit(e manifest.Entry, fi fs.FileInfo, stable bool, ino uint64) error {
	if err := w.Emit(e, fi); err != nil {
		return err
	}
	if _, ok := w.Base.Peek(e.Path); ok {
		w.Base.Drop()
	}
	if e.Type != manifest.Dir {
		return nil
	}
	if fi == nil {
		if ino == 0 {
			var err error
			if ino, err = w.inode(e.Path); err != nil {
				return err
			}
		}
		if !w.Set.read[ino] {
			return w.skim(e.Path)
		}
	}
	return w.dir(e.Path, stable, ino)
}

// inode is the inode number of r.
func (w *Walk) inode(r string) (uint64, error) {
	full := filepath.Join(w.Dir, filepath.FromSlash(r))
	fi, err := fsys.Lstat(w.FS, full)
	if err != nil {
		return 0, fmt.Errorf("walk: lstat %s: %w", full, err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, fmt.Errorf("walk: lstat %s: no inode number", full)
	}
	return st.Ino, nil
}

// entry is the entry at r: the record at r if settle and the record is of
// type typ, else from lstat (fresh: fi, the lstat, is not nil).
func (w *Walk) entry(r string, typ manifest.Type, settle bool) (_ manifest.Entry, fi fs.FileInfo, _ error) {
	if settle {
		if rec, ok := w.Base.Peek(r); ok && rec.Type == typ {
			return rec, nil, nil
		}
	}
	full := filepath.Join(w.Dir, filepath.FromSlash(r))
	fi, err := fsys.Lstat(w.FS, full)
	if err != nil {
		return manifest.Entry{}, nil, fmt.Errorf("walk: lstat %s: %w", full, err)
	}
	e, err := tree.EntryFromInfo(w.FS, full, r, fi)
	return e, fi, err
}

// aheadMax bounds the directories read ahead at once: on a cold cache
// their blocks come from the disk in parallel instead of one at a time.
const aheadMax = 16

// listing is a directory read ahead.
type listing struct {
	ents []dirent
	err  error
	done chan struct{}
}

// direntBufs are getdents buffers.
var direntBufs = sync.Pool{New: func() any { b := make([]byte, 64<<10); return &b }}

// list returns the entries of directory rel: read ahead, or read now.
func (w *Walk) list(rel string) ([]dirent, error) {
	if l, ok := w.ahead[rel]; ok {
		delete(w.ahead, rel)
		<-l.done
		return l.ents, l.err
	}
	return readDir(filepath.Join(w.Dir, filepath.FromSlash(rel)))
}

// readAhead starts reading the directories among ents (of directory rel)
// that the walk will read — changed, or holding a change — while there is
// room.
func (w *Walk) readAhead(rel string, ents []dirent) {
	for _, d := range ents {
		if len(w.ahead) >= aheadMax {
			return
		}
		if d.typ != manifest.Dir || !w.Set.inodes[d.ino] && !w.Set.read[d.ino] {
			continue
		}
		r := join(rel, d.name)
		l := &listing{done: make(chan struct{})}
		w.ahead[r] = l
		go func() {
			defer close(l.done)
			l.ents, l.err = readDir(filepath.Join(w.Dir, filepath.FromSlash(r)))
		}()
	}
}

// drain waits for the directories still being read ahead.
func (w *Walk) drain() {
	for r, l := range w.ahead {
		<-l.done
		delete(w.ahead, r)
	}
}

// readDir is readDirents with a pooled buffer.
func readDir(dir string) ([]dirent, error) {
	b := direntBufs.Get().(*[]byte)
	defer direntBufs.Put(b)
	return readDirents(dir, *b)
}

// join is rel/name ("" is the top).
func join(rel, name string) string {
	if rel == "" {
		return name
	}
	return rel + "/" + name
}
