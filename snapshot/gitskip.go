package snapshot

import (
	"path"
	"path/filepath"
	"strings"
	"sync"

	"github.com/seqmirror/seqmirror/internal/fsys"
)

// gitTransient recognises the files git keeps only while it works, inside
// the git directories of a source tree, so that publish leaves them out:
// a push's quarantine (objects/tmp_objdir-incoming-*, mode 0700, which an
// rsync daemon running as another user cannot read, and which git deletes
// or migrates a moment later), temporary objects and packs, a pushed pack's
// .keep, and lock files (*.lock: a ref, packed-refs, config or index being
// rewritten).
//
// A git directory is a directory holding HEAD, objects/ and refs/: a bare
// repository (repo.git) or a working tree's .git. Only names inside one are
// ever left out; the same names elsewhere in the tree are published.
type gitTransient struct {
	f      fsys.FS
	source string
	mu     sync.Mutex
	isGit  map[string]bool // relative dir -> is a git directory
}

func newGitTransient(f fsys.FS, source string) *gitTransient {
	return &gitTransient{f: f, source: source, isGit: map[string]bool{}}
}

// skip reports whether rel (slash-separated, relative to the source) is
// one of git's transient files inside a git directory. It is safe for
// concurrent use.
func (g *gitTransient) skip(rel string) bool {
	dir, name := path.Split(rel)
	dir = strings.TrimSuffix(dir, "/")
	parent, pname := path.Split(dir)
	parent = strings.TrimSuffix(parent, "/")
	switch {
	case strings.HasSuffix(name, ".lock"):
		return g.insideGitDir(dir)
	case pname == "objects" && (strings.HasPrefix(name, "tmp_objdir-") || strings.HasPrefix(name, "incoming-")):
		return g.gitDir(parent)
	case pname == "pack" && (strings.HasPrefix(name, "tmp_") || strings.HasSuffix(name, ".keep")):
		// objects/pack/tmp_pack_*, tmp_idx_*, tmp_rev_*: being written;
		// *.keep: receive-pack's (mode 0600) from the moment a pushed pack
		// is moved in until the refs are updated. A .keep only steers a
		// repack of the repository, which no reader of a snapshot does.
		grand, gname := path.Split(parent)
		return gname == "objects" && g.gitDir(strings.TrimSuffix(grand, "/"))
	case len(pname) == 2 && strings.HasPrefix(name, "tmp_obj_"):
		// objects/xx/tmp_obj_*: a loose object being written
		grand, gname := path.Split(parent)
		return gname == "objects" && g.gitDir(strings.TrimSuffix(grand, "/"))
	}
	return false
}

// insideGitDir reports whether dir or one of its ancestors is a git
// directory.
func (g *gitTransient) insideGitDir(dir string) bool {
	for {
		if g.gitDir(dir) {
			return true
		}
		if dir == "" {
			return false
		}
		dir = path.Dir(dir)
		if dir == "." {
			dir = ""
		}
	}
}

// gitDir reports whether dir (relative; "" is the source) holds HEAD,
// objects/ and refs/.
func (g *gitTransient) gitDir(dir string) bool {
	g.mu.Lock()
	v, ok := g.isGit[dir]
	g.mu.Unlock()
	if ok {
		return v
	}
	full := filepath.Join(g.source, filepath.FromSlash(dir))
	v = true
	for _, want := range []struct {
		name string
		dir  bool
	}{{"HEAD", false}, {"objects", true}, {"refs", true}} {
		fi, err := fsys.Lstat(g.f, filepath.Join(full, want.name))
		if err != nil || fi.IsDir() != want.dir {
			v = false
			break
		}
	}
	g.mu.Lock()
	g.isGit[dir] = v
	g.mu.Unlock()
	return v
}
