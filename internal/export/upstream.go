package export

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/seqmirror/seqmirror/internal/fsys"
	"github.com/seqmirror/seqmirror/manifest"
)

// UpstreamStateName is the file in ROOT where mirror-sync records which
// upstream snapshot the served one is, so that a later poll can tell the
// upstream's snapshot N from another snapshot that happens to carry the
// same number, and an upstream that is behind from one that rolled back.
// It is never served; its presence (or an upstream recorded in
// status.json) marks a root that mirror-sync writes.
const UpstreamStateName = ".upstream"

// RecordedUpstream returns the upstream status.json records the root was
// last synced from ("" for a master's root, or if there is none).
func (r *Root) RecordedUpstream() string {
	rec, ok := r.recordedStatus()
	if !ok {
		return ""
	}
	return rec.Upstream
}

// MirroredFrom returns where mirror-sync last synced the root from, from
// its state file or status.json; "" if mirror-sync never wrote it (or a
// publish took it over since).
func (r *Root) MirroredFrom() string {
	if _, err := fsys.Lstat(r.FS, r.Path(UpstreamStateName)); err == nil {
		if up := r.RecordedUpstream(); up != "" {
			return up
		}
		return "an upstream (" + UpstreamStateName + ")"
	}
	return r.RecordedUpstream()
}

// maxFooter bounds a manifest's last line, "end COUNT CHECKSUM".
const maxFooter = 64

// ManifestID returns the identity of the manifest file at p: its footer,
// "end COUNT CHECKSUM", whose checksum covers every byte before it, so two
// manifests with the same footer describe the same snapshot. It reads only
// the end of the file; it does not validate the rest.
func ManifestID(f fsys.FS, p string) (string, error) {
	h, err := f.Open(p)
	if err != nil {
		return "", err
	}
	defer h.Close()
	fi, err := h.Stat()
	if err != nil {
		return "", err
	}
	off := max(0, fi.Size()-maxFooter)
	buf := make([]byte, fi.Size()-off)
	if _, err := h.ReadAt(buf, off); err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("read manifest %s: %w", p, err)
	}
	s := strings.TrimSuffix(string(buf), "\n")
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	if !strings.HasPrefix(s, "end ") || !strings.HasSuffix(string(buf), "\n") {
		return "", fmt.Errorf("%w: %s: no footer line at its end", manifest.ErrCorrupt, p)
	}
	return s, nil
}
