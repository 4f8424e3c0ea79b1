package server

import (
	"bufio"
	"errors"
	"html"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/seqmirror/seqmirror/internal/export"
	"github.com/seqmirror/seqmirror/internal/fsys"
	"github.com/seqmirror/seqmirror/seqfile"
	"golang.org/x/sys/unix"
)

// listEntry is one line of a directory listing.
type listEntry struct {
	name string
	dir  bool
}

// writeListing writes an HTML listing of the directory at URL path title.
func writeListing(w http.ResponseWriter, title string, ents []listEntry, cache string) {
	hd := w.Header()
	hd.Set("Content-Type", "text/html; charset=utf-8")
	hd.Set("Cache-Control", cache)
	hd.Set("X-Content-Type-Options", "nosniff")
	bw := bufio.NewWriterSize(w, 32<<10)
	t := html.EscapeString(title)
	bw.WriteString("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Index of " + t +
		"</title></head>\n<body><h1>Index of " + t + "</h1>\n<pre>\n")
	if title != "/" {
		bw.WriteString("<a href=\"../\">../</a>\n")
	}
	for _, e := range ents {
		name, href := e.name, "./"+escapeSegment(e.name)
		if e.dir {
			name, href = name+"/", href+"/"
		}
		bw.WriteString("<a href=\"" + html.EscapeString(href) + "\">" + html.EscapeString(name) + "</a>\n")
	}
	bw.WriteString("</pre></body></html>\n")
	bw.Flush()
}

// escapeSegment escapes one path segment for a URL (a "/" cannot occur
// in a name; ":" is left, which a leading "./" makes harmless).
func escapeSegment(s string) string { return url.PathEscape(s) }

// topListing lists what the root serves.
func (h *Handler) topListing(w http.ResponseWriter, r *http.Request) string {
	ents := []listEntry{{"current", true}, {export.SeqName, true}, {export.SnapshotsName, true}}
	if _, err := h.root.FS.Stat(h.root.Path(export.StatusName)); err == nil {
		ents = append(ents, listEntry{name: export.StatusName})
	}
	writeListing(w, "/", ents, cacheNone)
	return classListing
}

// seqListing lists the seq files served.
func (h *Handler) seqListing(w http.ResponseWriter, r *http.Request) string {
	var ents []listEntry
	for _, name := range []string{seqfile.Begin, seqfile.End, seqfile.Current} {
		if _, err := h.root.FS.Stat(h.root.Path(export.SeqName, name)); err == nil {
			ents = append(ents, listEntry{name: name})
		}
	}
	writeListing(w, "/seq/", ents, cacheNone)
	return classListing
}

// snapshotsListing lists the complete snapshots and their manifests.
func (h *Handler) snapshotsListing(w http.ResponseWriter, r *http.Request) string {
	nums, err := h.root.Snapshots()
	if err != nil {
		h.fail(w, r, err)
		return classListing
	}
	var ents []listEntry
	for _, n := range nums {
		s := strconv.FormatUint(n, 10)
		ents = append(ents, listEntry{s, true}, listEntry{name: s + export.ManifestExt})
	}
	writeListing(w, "/snapshots/", ents, cacheNone)
	return classListing
}

// snapshotListing lists directory rel ("" for the top) of snapshot n.
func (h *Handler) snapshotListing(w http.ResponseWriter, r *http.Request, n uint64, rel string) string {
	if !h.root.Complete(n) {
		http.NotFound(w, r)
		return classListing
	}
	full := export.SnapshotsName + "/" + strconv.FormatUint(n, 10)
	if rel != "" {
		full += "/" + rel
	}
	ents, err := h.readDir(full)
	if errors.Is(err, fsys.ErrSymlink) || errors.Is(err, unix.ELOOP) || errors.Is(err, unix.EXDEV) || errors.Is(err, unix.ENOTDIR) {
		// A symlink on the way (ENOTDIR: the last component, opened with
		// O_NOFOLLOW|O_DIRECTORY), or a file: the manifest says which.
		ix, err := h.idx.get(n)
		if err != nil {
			h.fail(w, r, err)
			return classListing
		}
		return h.followLink(w, r, n, ix, rel, true)
	}
	if err != nil {
		h.fail(w, r, err)
		return classListing
	}
	writeListing(w, r.URL.Path, ents, cacheImmutable)
	return classListing
}

// readDir lists directory rel below the root, following no symlink, and
// leaving out temp files and anything but directories, files and symlinks.
func (h *Handler) readDir(rel string) ([]listEntry, error) {
	fd, err := h.openDir(rel)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), rel)
	defer f.Close()
	des, err := f.ReadDir(-1)
	if err != nil {
		return nil, err
	}
	var ents []listEntry
	for _, d := range des {
		t := d.Type()
		if isTemp(d.Name()) || !(t.IsDir() || t.IsRegular() || t&fs.ModeSymlink != 0) {
			continue
		}
		ents = append(ents, listEntry{name: d.Name(), dir: t.IsDir()})
	}
	slices.SortFunc(ents, func(a, b listEntry) int { return strings.Compare(a.name, b.name) })
	return ents, nil
}

// openDir opens directory rel below the root, following no symlink
// (fsys.OpenatBeneath).
func (h *Handler) openDir(rel string) (int, error) {
	return fsys.OpenatBeneath(h.rootfd, rel, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC)
}
