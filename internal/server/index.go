package server

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/seqmirror/seqmirror/internal/export"
	"github.com/seqmirror/seqmirror/internal/fsys"
	"github.com/seqmirror/seqmirror/manifest"
)

// Special sizes of an index record.
const (
	sizeDir       = -1 // a directory
	sizeAmbiguous = -2 // two paths of the snapshot share a path hash
)

// record is what the index keeps of a manifest record.
type record struct {
	path uint64 // xxhash64 of the path
	hash uint64 // xxhash64 of the content (files)
	size int64  // bytes (files), or sizeDir, sizeAmbiguous
}

// snapIndex is the index of one snapshot's manifest.
type snapIndex struct {
	recs  []record          // sorted by path hash
	links map[string]string // symlink path -> target
}

// lookup returns the record of rel ("" for the snapshot's top directory).
func (ix *snapIndex) lookup(rel string) (record, bool) {
	if rel == "" {
		return record{size: sizeDir}, true
	}
	h := xxhash.Sum64String(rel)
	i, ok := slices.BinarySearchFunc(ix.recs, h, func(r record, h uint64) int {
		switch {
		case r.path < h:
			return -1
		case r.path > h:
			return 1
		}
		return 0
	})
	if !ok {
		return record{}, false
	}
	return ix.recs[i], true
}

// resolveLink finds the first component of rel (slash-separated, below
// the snapshot) that is a symlink, and returns rel with that component
// replaced by its target, cleaned. ok is false if no component is a
// symlink, or if the target leaves the snapshot (absolute, or ".." too far).
func (ix *snapIndex) resolveLink(rel string) (string, bool) {
	if len(ix.links) == 0 {
		return "", false
	}
	for i := 0; i <= len(rel); i++ {
		if i < len(rel) && rel[i] != '/' {
			continue
		}
		target, ok := ix.links[rel[:i]]
		if !ok {
			continue
		}
		if path.IsAbs(target) {
			return "", false
		}
		to := path.Join(path.Dir(rel[:i]), target) + rel[i:]
		to = path.Clean(to)
		if to == "." || to == ".." || len(to) > 2 && to[:3] == "../" {
			return "", false
		}
		return to, true
	}
	return "", false
}

// buildIndex reads and checks the manifest of snapshot n below dir.
func buildIndex(dir *fsys.BeneathDir, n uint64) (*snapIndex, error) {
	rel := export.SnapshotsName + "/" + strconv.FormatUint(n, 10) + export.ManifestExt
	f, err := dir.Open(rel)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	mr, err := manifest.NewReader(f)
	if err != nil {
		return nil, fmt.Errorf("manifest of snapshot %d: %w", n, err)
	}
	ix := &snapIndex{links: map[string]string{}}
	for {
		e, err := mr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("manifest of snapshot %d: %w", n, err)
		}
		ix.add(e)
	}
	if mr.Snapshot() != n {
		return nil, fmt.Errorf("manifest of snapshot %d: %w: records snapshot %d", n, manifest.ErrCorrupt, mr.Snapshot())
	}
	ix.sort()
	return ix, nil
}

func (ix *snapIndex) add(e manifest.Entry) {
	switch e.Type {
	case manifest.File:
		ix.recs = append(ix.recs, record{path: xxhash.Sum64String(e.Path), hash: e.Hash, size: e.Size})
	case manifest.Dir:
		ix.recs = append(ix.recs, record{path: xxhash.Sum64String(e.Path), size: sizeDir})
	case manifest.Symlink:
		ix.links[e.Path] = e.Target
	}
}

// sort orders the records by path hash and marks the records of paths
// whose hashes collide as ambiguous (served without an ETag).
func (ix *snapIndex) sort() {
	slices.SortFunc(ix.recs, func(a, b record) int {
		switch {
		case a.path < b.path:
			return -1
		case a.path > b.path:
			return 1
		}
		return 0
	})
	out := ix.recs[:0]
	for i, r := range ix.recs {
		if i > 0 && r.path == out[len(out)-1].path {
			out[len(out)-1].size = sizeAmbiguous
			continue
		}
		out = append(out, r)
	}
	ix.recs = slices.Clip(out)
}

// fileID identifies a manifest file: a snapshot number reused after a
// rollback has a new manifest, so a new index.
type fileID struct {
	dev, ino uint64
	size     int64
	mtime    int64
}

func statID(name string) (fileID, error) {
	fi, err := os.Stat(name)
	if err != nil {
		return fileID{}, err
	}
	id := fileID{size: fi.Size(), mtime: fi.ModTime().UnixNano()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		id.dev, id.ino = uint64(st.Dev), st.Ino
	}
	return id, nil
}

// indexEntry is one cached index; done is closed once ix or err is set.
type indexEntry struct {
	n       uint64
	id      fileID
	checked time.Time // when id was last found to be the manifest's (under the cache's mu)
	done    chan struct{}
	ix      *snapIndex
	err     error
}

// indexCache keeps the indexes of the last max snapshots used.
type indexCache struct {
	root *export.Root
	dir  *fsys.BeneathDir
	max  int

	mu      sync.Mutex
	entries []*indexEntry // most recently used first
}

// errNoSnapshot means the snapshot is not complete (no manifest).
var errNoSnapshot = errors.New("no such snapshot")

// recheck is how long an index is used without checking that its
// manifest is still the same file (a stat per request would cost more
// than the lookup).
const recheck = time.Second

// get returns the index of snapshot n, building it if need be.
func (c *indexCache) get(n uint64) (*snapIndex, error) {
	now := time.Now()
	e := c.fresh(n, now)
	if e == nil {
		id, err := statID(c.root.ManifestPath(n))
		if err != nil {
			return nil, fmt.Errorf("snapshot %d: %w", n, errNoSnapshot)
		}
		var build bool
		e, build = c.entry(n, id, now)
		if build {
			e.ix, e.err = buildIndex(c.dir, n)
			close(e.done)
		}
	}
	<-e.done
	return e.ix, e.err
}

// fresh returns the entry of n if its manifest was checked less than
// recheck before now.
func (c *indexCache) fresh(n uint64, now time.Time) *indexEntry {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, e := range c.entries {
		if e.n == n && now.Sub(e.checked) < recheck {
			c.touch(i)
			return e
		}
	}
	return nil
}

// touch makes entry i the most recently used.
func (c *indexCache) touch(i int) {
	if i > 0 {
		e := c.entries[i]
		copy(c.entries[1:i+1], c.entries[:i])
		c.entries[0] = e
	}
}

// entry finds or adds the entry of (n, id), checked at now; build says
// the caller builds it.
func (c *indexCache) entry(n uint64, id fileID, now time.Time) (*indexEntry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, e := range c.entries {
		if e.n == n && e.id == id {
			e.checked = now
			c.touch(i)
			return e, false
		}
	}
	e := &indexEntry{n: n, id: id, checked: now, done: make(chan struct{})}
	c.entries = slices.DeleteFunc(c.entries, func(old *indexEntry) bool { return old.n == n })
	c.entries = slices.Insert(c.entries, 0, e)
	if len(c.entries) > c.max {
		clear(c.entries[c.max:]) // the evicted index goes to the GC
		c.entries = c.entries[:c.max]
	}
	return e, true
}
