package server

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/seqmirror/seqmirror/internal/export"
	"github.com/seqmirror/seqmirror/seqfile"
)

// maxSmall bounds the seq files, the pointer and status.json.
const maxSmall = 1 << 20

// small serves a small no-cache file of the root (rel below it) with an
// ETag of its content.
func (h *Handler) small(w http.ResponseWriter, r *http.Request, rel, ctype, class string) string {
	f, err := h.dir.Open(rel)
	if err != nil {
		h.fail(w, r, err)
		return class
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		h.fail(w, r, err)
		return class
	}
	b, err := io.ReadAll(io.LimitReader(f, maxSmall+1))
	if err == nil && len(b) > maxSmall {
		err = fmt.Errorf("%s: larger than %d bytes", rel, maxSmall)
	}
	if err != nil {
		h.fail(w, r, err)
		return class
	}
	serveBytes(w, r, b, fi.ModTime(), ctype)
	return class
}

// signatureFile serves snapshots/N.manifest.minisig, immutable like the
// manifest it signs (docs/protocol.md section 10), with an ETag of its
// content.
func (h *Handler) signatureFile(w http.ResponseWriter, r *http.Request, n uint64) string {
	rel := export.SnapshotsName + "/" + strconv.FormatUint(n, 10) + export.SignatureExt
	f, err := h.dir.Open(rel)
	if err != nil {
		h.fail(w, r, err)
		return classManifest
	}
	defer f.Close()
	fi, err := f.Stat()
	if err == nil && !fi.Mode().IsRegular() {
		err = fs.ErrInvalid
	}
	var b []byte
	if err == nil {
		b, err = io.ReadAll(io.LimitReader(f, maxSmall))
	}
	if err != nil {
		h.fail(w, r, err)
		return classManifest
	}
	hd := w.Header()
	hd.Set("Cache-Control", cacheImmutable)
	hd.Set("Content-Type", "text/plain; charset=utf-8")
	hd.Set("ETag", fmt.Sprintf(`"%016x"`, xxhash.Sum64(b)))
	http.ServeContent(w, r, "", fi.ModTime(), bytes.NewReader(b))
	return classManifest
}

// serveBytes serves b, no-cache, with an ETag of its content.
func serveBytes(w http.ResponseWriter, r *http.Request, b []byte, mtime time.Time, ctype string) {
	hd := w.Header()
	hd.Set("Cache-Control", cacheNone)
	hd.Set("Content-Type", ctype)
	hd.Set("ETag", fmt.Sprintf(`"%016x"`, xxhash.Sum64(b)))
	http.ServeContent(w, r, "", mtime, bytes.NewReader(b))
}

// pointer serves seq/current; a root written before the pointer existed
// gets one made from its current symlink.
func (h *Handler) pointer(w http.ResponseWriter, r *http.Request) string {
	rel := export.SeqName + "/" + seqfile.Current
	if _, err := h.root.FS.Stat(h.root.PointerPath()); !errors.Is(err, fs.ErrNotExist) {
		return h.small(w, r, rel, "text/plain; charset=utf-8", classPointer)
	}
	n, err := h.root.Current()
	if err != nil || n == 0 {
		w.Header().Set("Cache-Control", cacheNone)
		http.NotFound(w, r)
		return classPointer
	}
	b := append(seqfile.Format(n), '\n')
	serveBytes(w, r, b, time.Time{}, "text/plain; charset=utf-8")
	return classPointer
}

// snapshot serves rest, the path below /snapshots/: N.manifest, N/ or
// N/PATH.
func (h *Handler) snapshot(w http.ResponseWriter, r *http.Request, rest string) string {
	num, rel, slash := strings.Cut(rest, "/")
	if m, ok := strings.CutSuffix(num, export.SignatureExt); ok && !slash {
		if n, ok := parseNumber(m); ok {
			return h.signatureFile(w, r, n)
		}
	}
	if m, ok := strings.CutSuffix(num, export.ManifestExt); ok && !slash {
		if n, ok := parseNumber(m); ok {
			return h.manifestFile(w, r, n, export.ManifestExt)
		}
	}
	if m, ok := strings.CutSuffix(num, export.FullExt); ok && !slash {
		if n, ok := parseNumber(m); ok {
			return h.manifestFile(w, r, n, export.FullExt)
		}
	}
	if m, ok := strings.CutSuffix(num, export.FilterExt); ok && !slash {
		if _, ok := parseNumber(m); ok {
			return h.small(w, r, export.SnapshotsName+"/"+num, "application/json", classManifest)
		}
	}
	n, ok := parseNumber(num)
	if !ok || isTemp(rel) {
		http.NotFound(w, r)
		return classOther
	}
	if !slash {
		return redirect(w, r, "/snapshots/"+num+"/", http.StatusMovedPermanently, cacheImmutable)
	}
	if rel == "" || strings.HasSuffix(rel, "/") {
		return h.snapshotListing(w, r, n, strings.TrimSuffix(rel, "/"))
	}
	return h.snapshotFile(w, r, n, rel)
}

// snapshotFile serves rel, a file of snapshot n, with the ETag of its
// manifest record.
func (h *Handler) snapshotFile(w http.ResponseWriter, r *http.Request, n uint64, rel string) string {
	ix, err := h.idx.get(n)
	if err != nil {
		h.fail(w, r, err)
		return classFile
	}
	rec, ok := ix.lookup(rel)
	switch {
	case !ok:
		return h.followLink(w, r, n, ix, rel, false)
	case rec.size == sizeDir:
		return redirect(w, r, snapshotURL(n, rel)+"/", http.StatusMovedPermanently, cacheImmutable)
	}
	c, err := h.openContent(snapshotRel(n, rel))
	if err != nil {
		h.fail(w, r, err)
		return classFile
	}
	defer c.close()
	hd := w.Header()
	if rec.size != sizeAmbiguous {
		if c.size != rec.size {
			h.fail(w, r, fmt.Errorf("snapshot %d: %s has %d bytes, its manifest records %d: damaged", n, rel, c.size, rec.size))
			return classFile
		}
		hd.Set("ETag", fileTag(rec.hash, rec.size))
	}
	hd["Cache-Control"] = cacheImmutableValue
	hd.Set("Content-Type", contentType(rel))
	if c.mem != nil && plainGet(r) {
		writeWhole(w, r, c)
		return classFile
	}
	http.ServeContent(w, r, "", c.mtime, c.reader())
	return classFile
}

// Header values shared by every answer that sends them (net/http only
// reads them).
var (
	cacheImmutableValue = []string{cacheImmutable}
	acceptRangesValue   = []string{"bytes"}
)

// plainGet reports whether r is a GET or HEAD that asks for no range and
// makes no condition: the whole file with status 200, which writeWhole
// answers as http.ServeContent would, without its parsing.
func plainGet(r *http.Request) bool {
	for _, k := range [...]string{"Range", "If-Match", "If-None-Match", "If-Modified-Since", "If-Unmodified-Since"} {
		if _, ok := r.Header[k]; ok {
			return false
		}
	}
	return true
}

// writeWhole answers r with the whole of c, a small file in memory: the
// headers of http.ServeContent's 200 answer (Accept-Ranges,
// Last-Modified, Content-Length) and, for a GET, the bytes in one write.
func writeWhole(w http.ResponseWriter, r *http.Request, c *content) {
	hd := w.Header()
	hd["Accept-Ranges"] = acceptRangesValue
	if sendsLastModified(c.mtime) {
		hd["Last-Modified"] = []string{c.mtime.UTC().Format(http.TimeFormat)}
	}
	hd["Content-Length"] = []string{strconv.FormatInt(c.size, 10)}
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(c.mem.data)
	}
}

// sendsLastModified reports whether an answer carries a Last-Modified of
// mtime (http.ServeContent's rule: not for the zero time or the epoch).
func sendsLastModified(mtime time.Time) bool {
	return !mtime.IsZero() && !mtime.Equal(time.Unix(0, 0))
}

// fileTag is the ETag of a snapshot file: `"HASH-SIZE"`, the hash as 16
// hex digits (what fmt's "%016x-%d" makes, without fmt's cost on every
// request).
func fileTag(hash uint64, size int64) string {
	var a [48]byte
	return string(appendFileTag(a[:0], hash, size))
}

// appendFileTag appends fileTag(hash, size) to b.
func appendFileTag(b []byte, hash uint64, size int64) []byte {
	const digits = "0123456789abcdef"
	b = append(b, '"')
	for shift := 60; shift >= 0; shift -= 4 {
		b = append(b, digits[hash>>uint(shift)&0xf])
	}
	b = append(b, '-')
	b = strconv.AppendInt(b, size, 10)
	return append(b, '"')
}

// followLink answers a path of snapshot n that is no file or directory of
// its manifest: a redirect if a component is a symlink whose target stays
// inside the snapshot, else 404.
func (h *Handler) followLink(w http.ResponseWriter, r *http.Request, n uint64, ix *snapIndex, rel string, dir bool) string {
	to, ok := ix.resolveLink(rel)
	if !ok {
		http.NotFound(w, r)
		return classOther
	}
	u := snapshotURL(n, to)
	if dir {
		u += "/"
	}
	return redirect(w, r, u, http.StatusFound, cacheImmutable)
}

// snapshotRel is the path of rel of snapshot n below the root.
func snapshotRel(n uint64, rel string) string {
	return export.SnapshotsName + "/" + strconv.FormatUint(n, 10) + "/" + rel
}

// snapshotURL is the escaped URL path of rel of snapshot n.
func snapshotURL(n uint64, rel string) string {
	segs := strings.Split(rel, "/")
	for i, s := range segs {
		segs[i] = escapeSegment(s)
	}
	return "/snapshots/" + strconv.FormatUint(n, 10) + "/" + strings.Join(segs, "/")
}

// contentType is the type of a file by its extension, or
// application/octet-stream (as nginx's default_type): no sniffing.
func contentType(name string) string {
	if t := mime.TypeByExtension(path.Ext(name)); t != "" {
		return t
	}
	return "application/octet-stream"
}

// manifestFile serves snapshots/N.manifest (ext ManifestExt), or a
// partial snapshot's full manifest N.full (FullExt), with an ETag of its
// footer's hash: immutable, but for the manifest of a partial snapshot,
// which a change of the mirror's filter replaces (no-cache).
func (h *Handler) manifestFile(w http.ResponseWriter, r *http.Request, n uint64, ext string) string {
	num := strconv.FormatUint(n, 10)
	f, err := h.dir.Open(export.SnapshotsName + "/" + num + ext)
	if err != nil {
		h.fail(w, r, err)
		return classManifest
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		h.fail(w, r, err)
		return classManifest
	}
	hd := w.Header()
	tag := manifestTag(f, fi.Size())
	if tag != "" {
		hd.Set("ETag", tag)
	}
	hd.Set("Cache-Control", cacheImmutable)
	if ext == export.ManifestExt {
		if _, err := h.root.FS.Stat(h.root.FilterPath(n)); err == nil {
			hd.Set("Cache-Control", cacheNone)
		}
	}
	hd.Set("Content-Type", "text/plain; charset=utf-8")
	hd.Set("Vary", "Accept-Encoding")
	if tag != "" && fi.Size() <= gzipMax && wantsGzip(r) {
		if gz, err := h.gz.get(tag, io.NewSectionReader(f, 0, fi.Size())); err == nil {
			hd.Set("ETag", strings.TrimSuffix(tag, `"`)+`-gz"`)
			hd.Set("Content-Encoding", "gzip")
			http.ServeContent(w, r, "", fi.ModTime(), bytes.NewReader(gz))
			return classManifest
		}
	}
	http.ServeContent(w, r, "", fi.ModTime(), f)
	return classManifest
}

// manifestTag reads the footer ("end COUNT HASH\n") at the end of a
// manifest of size bytes and makes an ETag of it; "" if there is none.
func manifestTag(f io.ReaderAt, size int64) string {
	const tail = 64
	off := max(0, size-tail)
	buf := make([]byte, size-off)
	if _, err := f.ReadAt(buf, off); err != nil {
		return ""
	}
	s, ok := strings.CutSuffix(string(buf), "\n")
	if !ok {
		return ""
	}
	fields := strings.Fields(s[strings.LastIndexByte(s, '\n')+1:])
	if len(fields) != 3 || fields[0] != "end" || len(fields[2]) != 16 {
		return ""
	}
	if _, err := strconv.ParseUint(fields[2], 16, 64); err != nil {
		return ""
	}
	return fmt.Sprintf(`"m%s-%d"`, fields[2], size)
}
