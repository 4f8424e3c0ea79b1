package web

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/seqmirror/seqmirror/internal/export"
	"github.com/seqmirror/seqmirror/internal/fsys"
	"github.com/seqmirror/seqmirror/internal/retry"
	"github.com/seqmirror/seqmirror/internal/transport/upstream"
	"github.com/seqmirror/seqmirror/internal/tree"
	"github.com/seqmirror/seqmirror/manifest"
	"github.com/seqmirror/seqmirror/seqfile"
)

// fileRetries is how many more times one file (or manifest) is asked for
// after a transient failure.
const fileRetries = 3

// pointerRel is seq/current, the snapshot pointer.
var pointerRel = export.SeqName + "/" + seqfile.Current

// Seq implements upstream.Upstream: one GET of seq/NAME. A missing one
// reads as 0 (a root never updated).
func (u *Upstream) Seq(ctx context.Context, name string) (uint64, error) {
	if name != seqfile.Begin && name != seqfile.End {
		return 0, fmt.Errorf("read upstream seq %s: unknown seq file %q", u, name)
	}
	b, h, err := u.small(ctx, u.follow, export.SeqName+"/"+name, seqfile.MaxLen+1)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return 0, nil
	case errors.Is(err, ErrEncoding):
		return 0, fmt.Errorf("read upstream seq %s: %w: %w", name, seqfile.ErrCorrupt, err)
	case err != nil:
		return 0, fmt.Errorf("read upstream seq %s: %w", name, err)
	}
	n, err := seqfile.Parse(b)
	if err != nil {
		return 0, fmt.Errorf("read upstream seq %s from %s: %w%s", name, u, err, htmlHint(h))
	}
	return n, nil
}

// Current implements upstream.Upstream: one GET of seq/current, the
// snapshot pointer; its Last-Modified is when the upstream started
// serving the snapshot.
func (u *Upstream) Current(ctx context.Context) (uint64, time.Time, error) {
	b, h, err := u.small(ctx, u.follow, pointerRel, seqfile.MaxLen+1)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return u.noPointer(ctx)
	case errors.Is(err, ErrEncoding):
		return 0, time.Time{}, fmt.Errorf("upstream %s: %w: %w", u, export.ErrBadCurrent, err)
	case err != nil:
		return 0, time.Time{}, fmt.Errorf("read upstream's snapshot pointer: %w", err)
	}
	n, err := seqfile.Parse(b)
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("upstream %s: %w: its snapshot pointer %s: %w%s", u, export.ErrBadCurrent, pointerRel, err, htmlHint(h))
	}
	return n, lastModified(h), nil
}

// noPointer is Current for a root without seq/current: one that never
// published serves nothing (0); one that did predates the pointer.
func (u *Upstream) noPointer(ctx context.Context) (uint64, time.Time, error) {
	end, err := u.Seq(ctx, seqfile.End)
	if err != nil {
		return 0, time.Time{}, err
	}
	if end == 0 {
		return 0, time.Time{}, u.isRoot(ctx)
	}
	return 0, time.Time{}, fmt.Errorf("%w: %s has published (seq/end is %d) but has no %s: its seqmirror predates the snapshot pointer, "+
		"which HTTP clients read instead of the current symlink; one run there of a seqmirror that writes it (a no-op run does) adds it",
		ErrNoPointer, u, end, pointerRel)
}

// isRoot tells a root that serves nothing yet (it has snapshots/) from an
// address where there is no export root at all (a mistyped path): a
// static server answers snapshots/ with a listing, 403 or a redirect if it
// is there, 404 if not.
func (u *Upstream) isRoot(ctx context.Context) error {
	resp, err := u.send(ctx, u.noFollow, http.MethodHead, export.SnapshotsName+"/")
	if err != nil {
		return fmt.Errorf("upstream %s: %w", u, err)
	}
	defer resp.Body.Close()
	if c := resp.StatusCode; c == http.StatusNotFound || c == http.StatusGone {
		return fmt.Errorf("%w: %s: neither seq/end, seq/current nor snapshots/ is there (%s)", ErrNotRoot, u, resp.Status)
	}
	return nil
}

// transient reports whether a failed request is worth another attempt:
// the upstream did not answer, but has not timed out.
func transient(err error) (string, bool) {
	return err.Error(), errors.Is(err, upstream.ErrUnavailable) && !errors.Is(err, upstream.ErrTimedOut)
}

// again runs op, and again after a wait while it fails transiently.
func (u *Upstream) again(ctx context.Context, op func() error) error {
	p := retry.Policy{Retries: fileRetries, Backoff: u.backoff, Retryable: transient}
	err := retry.Do(ctx, p, func(int) error { return op() })
	var ex *retry.Exhausted
	if errors.As(err, &ex) {
		return fmt.Errorf("%w (after %d attempts)", ex.Err, ex.Attempts)
	}
	return err
}

func manifestRel(n uint64) string {
	return export.SnapshotsName + "/" + strconv.FormatUint(n, 10) + export.ManifestExt
}

// FetchManifest implements upstream.Upstream.
func (u *Upstream) FetchManifest(ctx context.Context, n uint64, dst string) error {
	return u.fetchManifest(ctx, n, manifestRel(n), dst)
}

// FetchFull implements upstream.FullFetcher.
func (u *Upstream) FetchFull(ctx context.Context, n uint64, dst string) error {
	return u.fetchManifest(ctx, n, export.SnapshotsName+"/"+strconv.FormatUint(n, 10)+export.FullExt, dst)
}

// FetchManifestFilter implements upstream.FilterFetcher: the filter file
// of snapshot n is read beside the manifest, at the same time, so that it
// costs a whole mirror no round trip.
func (u *Upstream) FetchManifestFilter(ctx context.Context, n uint64, dst string) ([]byte, error) {
	name := export.SnapshotsName + "/" + strconv.FormatUint(n, 10) + export.FilterExt
	type got struct {
		files map[string]upstream.SmallFile
		err   error
	}
	ch := make(chan got, 1)
	go func() {
		files, err := u.ReadSmall(ctx, []string{name}, filterReadMax)
		ch <- got{files, err}
	}()
	err := u.FetchManifest(ctx, n, dst)
	g := <-ch
	switch {
	case err != nil:
		return nil, err
	case g.err != nil:
		return nil, g.err
	}
	if f, ok := g.files[name]; ok {
		return f.Data, nil
	}
	return nil, nil
}

// filterReadMax bounds the filter file FetchManifestFilter reads: above
// the format's bound, so that the caller refuses a larger one rather than
// take it for none.
const filterReadMax = 16 << 20

// fetchManifest copies rel, a manifest of snapshot n, to dst.
func (u *Upstream) fetchManifest(ctx context.Context, n uint64, rel, dst string) error {
	return u.again(ctx, func() error {
		err := u.fetchManifestOnce(ctx, n, rel, dst)
		if err != nil && !errors.Is(err, fs.ErrExist) { // not a file it did not make
			_ = u.local.Remove(dst)
		}
		return err
	})
}

func (u *Upstream) fetchManifestOnce(ctx context.Context, n uint64, rel, dst string) error {
	what := fmt.Sprintf("fetch manifest of snapshot %d from %s", n, u)
	if rel != manifestRel(n) {
		what = fmt.Sprintf("fetch %s from %s", rel, u)
	}
	resp, err := u.get(ctx, rel)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%s: %w: %w", what, upstream.ErrVanished, err)
	case errors.Is(err, ErrEncoding):
		return fmt.Errorf("%s: %w: %w", what, manifest.ErrCorrupt, err)
	case err != nil:
		return fmt.Errorf("%s: %w", what, err)
	}
	defer resp.Body.Close()
	limit, free := u.manifestLimit(filepath.Dir(dst))
	if resp.ContentLength > limit {
		return u.tooLarge(what, fmt.Sprintf("Content-Length %d", resp.ContentLength), limit, free)
	}
	// What is not a manifest at all (an error page sent with status 200)
	// is refused before it is written, saying what it looks like; the
	// caller validates the rest.
	body := bufio.NewReader(resp.Body)
	if head, _ := body.Peek(len(manifest.Magic) + 1); !bytes.HasSuffix(head, []byte("\n")) || !manifest.IsMagic(string(head[:len(head)-1])) {
		return fmt.Errorf("%s: %w: it does not start with %q or %q%s", what, manifest.ErrCorrupt, manifest.Magic, manifest.Magic1, htmlHint(resp.Header))
	}
	_, _, err = tree.CopyFrom(body, u.local, dst, limit, manifest.Version1)
	switch {
	case errors.Is(err, tree.ErrHashMismatch): // more than limit came
		return u.tooLarge(what, fmt.Sprintf("more than %d bytes", limit), limit, free)
	case err != nil:
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// manifestLimit is the largest manifest FetchManifest accepts into dir:
// the 4 GiB cap, or half the space free there if that is less (a manifest
// that cannot fit beside the snapshot it describes is of no use; an
// endless body must not fill the disk). free is that space (-1 if unknown).
func (u *Upstream) manifestLimit(dir string) (limit, free int64) {
	limit, free = int64(upstream.MaxManifestSize), -1
	if f, err := fsys.FreeSpace(u.local, dir); err == nil {
		free = f
		limit = min(limit, max(free/2, 1))
	}
	return limit, free
}

// tooLarge is the error for a manifest over limit (got says by how much):
// corrupt above the cap, else too large for the space free.
func (u *Upstream) tooLarge(what, got string, limit, free int64) error {
	if limit >= int64(upstream.MaxManifestSize) || free < 0 {
		return fmt.Errorf("%s: %w: %s (a manifest may be at most %d bytes)", what, manifest.ErrCorrupt, got, int64(upstream.MaxManifestSize))
	}
	return fmt.Errorf("%s: %s, but only %d bytes are free here: refused; make room and run again: %w", what, got, free, syscall.ENOSPC)
}

// Fetch implements upstream.Upstream: the files are fetched in parallel,
// each streamed into its place while hashed. A record whose path is not
// clean and relative is refused before anything is fetched.
func (u *Upstream) Fetch(ctx context.Context, n uint64, files []manifest.Entry, dir string) error {
	for _, e := range files {
		if err := manifest.CheckPath(e.Path); err != nil {
			return fmt.Errorf("fetch snapshot %d: %w", n, err)
		}
	}
	pool := tree.NewPool(ctx, u.workers())
	p := u.newProgress(files)
	for _, e := range files {
		if e.Type != manifest.File {
			continue
		}
		dst := filepath.Join(dir, filepath.FromSlash(e.Path))
		err := pool.Go(func(ctx context.Context) error {
			if err := u.again(ctx, func() error { return u.fetchFile(ctx, n, e, dst, false) }); err != nil {
				return err
			}
			p.done(e.Size)
			return nil
		})
		if err != nil {
			break
		}
	}
	return pool.Wait()
}

// progress reports a Fetch call's bytes to Options.Progress, one call at
// a time, as its files complete.
type progress struct {
	mu           sync.Mutex
	report       func(bytes int64, percent int)
	bytes, total int64
}

func (u *Upstream) newProgress(files []manifest.Entry) *progress {
	p := &progress{report: u.opt.Progress}
	for _, e := range files {
		p.total += e.Size
	}
	return p
}

func (p *progress) done(size int64) {
	if p.report == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.bytes += size
	pct := 100
	if p.total > 0 {
		pct = int(p.bytes * 100 / p.total)
	}
	p.report(p.bytes, pct)
}

// fetchFile fetches the file of record e of snapshot n into the new file
// dst, hashing it as it comes, and with meta gives it e's mode and mtime;
// it removes dst if it fails.
func (u *Upstream) fetchFile(ctx context.Context, n uint64, e manifest.Entry, dst string, meta bool) (err error) {
	what := fmt.Sprintf("fetch %s of snapshot %d from %s", e.Path, n, u)
	rel := export.SnapshotsName + "/" + strconv.FormatUint(n, 10) + "/" + e.Path
	resp, err := u.get(ctx, rel)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%s: %w: %w", what, upstream.ErrVanished, err)
	case errors.Is(err, ErrEncoding):
		return fmt.Errorf("%s: %w: %w", what, tree.ErrHashMismatch, err)
	case err != nil:
		return fmt.Errorf("%s: %w", what, err)
	}
	defer resp.Body.Close()
	if resp.ContentLength > e.Size {
		return fmt.Errorf("%s: %w: Content-Length %d, the manifest says %d bytes%s", what, tree.ErrHashMismatch, resp.ContentLength, e.Size, htmlHint(resp.Header))
	}
	defer func() {
		if err != nil && !errors.Is(err, fs.ErrExist) { // not a file it did not make
			_ = u.local.Remove(dst)
		}
	}()
	var h manifest.Sum
	var size int64
	if meta {
		h, size, err = tree.CopyEntry(resp.Body, u.local, dst, e)
	} else {
		h, size, err = tree.CopyFrom(resp.Body, u.local, dst, e.Size, e.SumVersion())
	}
	if err == nil {
		err = tree.CheckHash(e, size, h)
	}
	if errors.Is(err, tree.ErrHashMismatch) {
		return fmt.Errorf("%s: %w%s", what, err, htmlHint(resp.Header))
	}
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}
