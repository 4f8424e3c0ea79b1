package server

import (
	"container/list"
	"errors"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// maxOpenFiles is a quarter of the process's limit of open files
// (RLIMIT_NOFILE; the connections need the rest), the most Options.OpenFiles
// keeps.
func maxOpenFiles() int {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil || lim.Cur == unix.RLIM_INFINITY {
		return 1 << 20
	}
	return int(lim.Cur / 4)
}

// openFiles keeps the small files of snapshots open, most recently served
// first, as nginx's open_file_cache does: a snapshot file never changes,
// so a request for one already open costs one pread instead of an openat2
// that walks the path beneath the root, an fstat, the pread and a close.
// It holds at most max files. The files of a snapshot's index go when the
// index does (dropIndex: the manifest changed, or the index was evicted);
// until then a pruned snapshot's open files keep their bytes on disk, at
// most max of them of at most smallFile bytes each.
//
// Safe for concurrent use. An *os.File it closes while a request reads
// it fails that read with os.ErrClosed (the file's own reference count
// defers the close(2) until reads in flight are done, so the descriptor is
// never reused under them); the caller opens the file again.
type openFiles struct {
	max int

	mu  sync.Mutex
	m   map[openKey]*list.Element // of *openFile
	lru list.List                 // front: most recently served
}

// openKey names a file of the snapshot whose index is ix.
type openKey struct {
	ix  *snapIndex
	rel string
}

// openFile is one file kept open, with what its fstat said.
type openFile struct {
	key   openKey
	f     *os.File
	size  int64
	mtime time.Time
}

func newOpenFiles(max int) *openFiles {
	return &openFiles{max: max, m: map[openKey]*list.Element{}}
}

// get returns the open file of k, or nil.
func (o *openFiles) get(k openKey) *openFile {
	if o == nil {
		return nil
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	e, ok := o.m[k]
	if !ok {
		return nil
	}
	o.lru.MoveToFront(e)
	return e.Value.(*openFile)
}

// add keeps fd (stat st) open as k's file and returns it; fd belongs to
// the cache from then on.
func (o *openFiles) add(k openKey, fd int, st *unix.Stat_t) *openFile {
	of := &openFile{key: k, f: os.NewFile(uintptr(fd), k.rel), size: st.Size, mtime: time.Unix(st.Mtim.Unix())}
	o.mu.Lock()
	defer o.mu.Unlock()
	if e, ok := o.m[k]; ok { // another request opened it first
		of.f.Close()
		return e.Value.(*openFile)
	}
	o.m[k] = o.lru.PushFront(of)
	for o.lru.Len() > o.max {
		o.remove(o.lru.Back())
	}
	return of
}

// forget drops k's file (a read of it failed).
func (o *openFiles) forget(of *openFile) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if e, ok := o.m[of.key]; ok && e.Value.(*openFile) == of {
		o.remove(e)
	}
}

// dropIndex closes the files of the snapshot whose index is ix.
func (o *openFiles) dropIndex(ix *snapIndex) {
	if o == nil || ix == nil {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	for k, e := range o.m {
		if k.ix == ix {
			o.remove(e)
		}
	}
}

// close closes every file kept.
func (o *openFiles) close() {
	if o == nil {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, e := range o.m {
		o.remove(e)
	}
}

func (o *openFiles) remove(e *list.Element) {
	of := o.lru.Remove(e).(*openFile)
	delete(o.m, of.key)
	of.f.Close()
}

// readCached reads of's bytes into a pooled buffer for c; false if of
// was closed meanwhile (evicted) and the file must be opened again.
func (c *content) readCached(of *openFile) (bool, error) {
	c.buf = bufPool.Get().(*[]byte)
	b := (*c.buf)[:of.size]
	for off := 0; off < len(b); {
		n, err := of.f.ReadAt(b[off:], int64(off))
		off += n
		switch {
		case errors.Is(err, os.ErrClosed):
			return false, nil
		case off == len(b):
		case err != nil:
			return false, err
		}
	}
	c.size, c.mtime = of.size, of.mtime
	c.mem = &memReader{data: b}
	return true, nil
}
