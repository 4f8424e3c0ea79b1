package server

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"strings"
	"sync"
)

// Manifests in gzip. A manifest is mostly paths and hex digests, about
// half of it redundant: a client that asks for it with Accept-Encoding:
// gzip (seqmirror's does, docs/protocol.md section 7) gets it compressed,
// which halves the bytes on the link a sync waits for before it can diff.
// The compressed bytes are made once per manifest and kept for the next
// requests (a mirror's children all fetch the same manifest at once);
// gzipKeep manifests are kept, each at most gzipMax bytes before
// compression (a larger one is sent as it is).
const (
	gzipKeep = 4
	gzipMax  = 64 << 20
)

// gzipCache holds the compressed bytes of the last manifests asked for in
// gzip, by ETag (which names the manifest's footer hash and size).
type gzipCache struct {
	mu   sync.Mutex
	list []*gzipEntry // most recent last
}

type gzipEntry struct {
	tag  string
	once sync.Once
	data []byte
	err  error
}

// get returns the gzip of the manifest read from r, whose ETag is tag,
// compressing it on the first request only (concurrent requests wait for
// that one).
func (c *gzipCache) get(tag string, r io.Reader) ([]byte, error) {
	c.mu.Lock()
	var e *gzipEntry
	for i, x := range c.list {
		if x.tag == tag {
			e = x
			c.list = append(append(c.list[:i:i], c.list[i+1:]...), x)
			break
		}
	}
	if e == nil {
		e = &gzipEntry{tag: tag}
		if len(c.list) >= gzipKeep {
			c.list = c.list[1:]
		}
		c.list = append(c.list, e)
	}
	c.mu.Unlock()
	e.once.Do(func() { e.data, e.err = compress(r) })
	if e.err != nil {
		c.drop(e)
	}
	return e.data, e.err
}

func (c *gzipCache) drop(e *gzipEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, x := range c.list {
		if x == e {
			c.list = append(c.list[:i:i], c.list[i+1:]...)
			return
		}
	}
}

func compress(r io.Reader) ([]byte, error) {
	var b bytes.Buffer
	zw, err := gzip.NewWriterLevel(&b, gzip.BestSpeed)
	if err != nil {
		return nil, err
	}
	if _, err := io.Copy(zw, r); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// wantsGzip reports whether request r takes a manifest in gzip: it lists
// gzip in Accept-Encoding with a quality above 0, and asks for no range
// (a range is of the bytes as they are).
func wantsGzip(r *http.Request) bool {
	if r.Header.Get("Range") != "" {
		return false
	}
	for _, v := range r.Header.Values("Accept-Encoding") {
		for part := range strings.SplitSeq(v, ",") {
			name, params, _ := strings.Cut(strings.TrimSpace(part), ";")
			if !strings.EqualFold(strings.TrimSpace(name), "gzip") {
				continue
			}
			q := strings.ToLower(strings.ReplaceAll(strings.TrimSpace(params), " ", ""))
			return q != "q=0" && q != "q=0.0" && q != "q=0.00" && q != "q=0.000"
		}
	}
	return false
}
