package server

import (
	"errors"
	"io/fs"
	"log/slog"
	"net/http"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/seqmirror/seqmirror/internal/export"
	"github.com/seqmirror/seqmirror/internal/fsys"
	"github.com/seqmirror/seqmirror/seqfile"
	"golang.org/x/sys/unix"
)

// Request classes, the class label of the metrics.
const (
	classSeq      = "seq"
	classPointer  = "pointer"
	classStatus   = "status"
	classManifest = "manifest"
	classFile     = "file"
	classListing  = "listing"
	classRedirect = "redirect"
	classMetrics  = "metrics"
	classOther    = "other"
)

// Cache-Control values.
const (
	cacheImmutable = "public, max-age=31536000, immutable"
	cacheNone      = "no-cache"
)

// Options configures a Handler.
type Options struct {
	// Root is the export root directory.
	Root string
	// Indexes is how many snapshots' indexes are kept (default 3).
	Indexes int
	// Log receives errors of the root (an unreadable manifest, a damaged
	// file); nil: discarded.
	Log *slog.Logger
	// Now is the clock of the lag metrics; nil: time.Now.
	Now func() time.Time
}

// Handler serves an export root read-only (see the package doc).
type Handler struct {
	root      *export.Root
	dir       *fsys.BeneathDir // files below the root
	rootfd    int              // the root, O_PATH, for openat2
	openat2   bool             // the kernel has openat2 (else files through dir)
	idx       *indexCache
	gz        gzipCache // manifests in gzip (gzip.go)
	closeOnce sync.Once
	log       *slog.Logger
	metrics   *metrics
}

// NewHandler opens the root o.Root for serving. Close it when done.
func NewHandler(o Options) (*Handler, error) {
	if o.Indexes <= 0 {
		o.Indexes = 3
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	root := export.New(fsys.OS(), o.Root)
	if err := root.Exists(); err != nil {
		return nil, err
	}
	dir, err := fsys.OpenBeneathDir(root.FS, root.Dir)
	if err != nil {
		return nil, err
	}
	rootfd, err := unix.Open(root.Dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		dir.Close()
		return nil, &fs.PathError{Op: "open", Path: root.Dir, Err: err}
	}
	h := &Handler{root: root, dir: dir, rootfd: rootfd, openat2: hasOpenat2(rootfd), log: o.Log,
		idx: &indexCache{root: root, dir: dir, max: o.Indexes}}
	h.metrics = newMetrics(root, o.Now)
	return h, nil
}

// Close releases the root.
func (h *Handler) Close() error {
	var err error
	h.closeOnce.Do(func() {
		unix.Close(h.rootfd)
		err = h.dir.Close()
	})
	return err
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	cw := newCountingWriter(w, connDeadlineOf(r))
	class := h.serve(cw, r)
	h.metrics.observe(class, cw.status(), cw.n)
}

// serve answers r and returns its class.
func (h *Handler) serve(w http.ResponseWriter, r *http.Request) string {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed (read-only)", http.StatusMethodNotAllowed)
		return classOther
	}
	p := r.URL.Path
	if !canonical(p) {
		http.NotFound(w, r)
		return classOther
	}
	switch p {
	case "/metrics":
		h.metrics.handler.ServeHTTP(w, r)
		return classMetrics
	case "/":
		return h.topListing(w, r)
	case "/" + export.StatusName:
		return h.small(w, r, export.StatusName, "application/json", classStatus)
	case "/seq/" + seqfile.Begin, "/seq/" + seqfile.End, "/" + export.TimestampName:
		return h.small(w, r, p[1:], "text/plain; charset=utf-8", classSeq)
	case "/seq/" + seqfile.Current:
		return h.pointer(w, r)
	case "/seq/":
		return h.seqListing(w, r)
	case "/snapshots/":
		return h.snapshotsListing(w, r)
	}
	switch {
	case p == "/current" || strings.HasPrefix(p, "/current/"):
		return h.current(w, r)
	case strings.HasPrefix(p, "/snapshots/"):
		return h.snapshot(w, r, p[len("/snapshots/"):])
	case p == "/seq" || p == "/snapshots":
		return redirect(w, r, p+"/", http.StatusMovedPermanently, "")
	}
	http.NotFound(w, r)
	return classOther
}

// canonical reports whether the URL path p is clean: absolute, no empty,
// "." or ".." segment, no NUL; a trailing slash is allowed.
func canonical(p string) bool {
	if p == "/" {
		return true
	}
	if !strings.HasPrefix(p, "/") || strings.IndexByte(p, 0) >= 0 {
		return false
	}
	q := strings.TrimSuffix(p, "/")
	return path.Clean(q) == q
}

// isTemp reports whether a path holds a segment named like a temp file of
// fsys (RemoveTemps' rule).
func isTemp(rel string) bool {
	for seg := range strings.SplitSeq(rel, "/") {
		if strings.HasPrefix(seg, ".") && strings.Contains(seg, fsys.TempMarker) {
			return true
		}
	}
	return false
}

// parseNumber parses a snapshot number as the layout writes it.
func parseNumber(s string) (uint64, bool) {
	n, err := strconv.ParseUint(s, 10, 64)
	return n, err == nil && n > 0 && strconv.FormatUint(n, 10) == s
}

// redirect answers with a redirect to to (an absolute path, escaped).
func redirect(w http.ResponseWriter, r *http.Request, to string, code int, cache string) string {
	if cache != "" {
		w.Header().Set("Cache-Control", cache)
	}
	http.Redirect(w, r, to, code)
	return classRedirect
}

// current redirects /current/PATH to /snapshots/N/PATH, N the snapshot
// served now (the pointer; the current symlink in a root written before it).
func (h *Handler) current(w http.ResponseWriter, r *http.Request) string {
	n, err := h.served()
	if err != nil || n == 0 {
		w.Header().Set("Cache-Control", cacheNone)
		http.Error(w, "no snapshot is served", http.StatusNotFound)
		return classRedirect
	}
	rest := strings.TrimPrefix(strings.TrimPrefix(r.URL.EscapedPath(), "/current"), "/")
	return redirect(w, r, "/snapshots/"+strconv.FormatUint(n, 10)+"/"+rest, http.StatusFound, cacheNone)
}

// served returns the snapshot the root serves (0: none).
func (h *Handler) served() (uint64, error) {
	n, err := seqfile.ReadBeneath(h.root.FS, h.root.Dir, export.SeqName+"/"+seqfile.Current)
	if errors.Is(err, fs.ErrNotExist) {
		return h.root.Current()
	}
	return n, err
}

// fail answers a request that met an error of the root: 404 for what is
// not there or refused (a symlink, a special file), else 500, logged.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, errNoSnapshot) || fsys.Refused(err) ||
		errors.Is(err, fs.ErrInvalid) || errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.ELOOP) || errors.Is(err, unix.EXDEV) {
		http.NotFound(w, r)
		return
	}
	h.log.Error("serve", "path", r.URL.Path, "err", err)
	http.Error(w, "internal error (logged)", http.StatusInternalServerError)
}
