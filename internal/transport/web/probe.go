package web

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"sync"

	"github.com/seqmirror/seqmirror/internal/export"
	"github.com/seqmirror/seqmirror/internal/transport/upstream"
	"github.com/seqmirror/seqmirror/internal/tree"
	"github.com/seqmirror/seqmirror/manifest"
)

// Stat implements upstream.Prober: a HEAD of each name (in parallel),
// following no redirect. 200 is a regular file (its Content-Length and
// Last-Modified); a redirect to the same path plus "/" on the same host is
// a directory; 404 and 410 are absent.
func (u *Upstream) Stat(ctx context.Context, names []string) (map[string]upstream.PathInfo, error) {
	out := make(map[string]upstream.PathInfo, len(names))
	var mu sync.Mutex
	err := u.each(ctx, names, func(ctx context.Context, name string) error {
		fi, ok, err := u.statOne(ctx, name)
		if ok {
			mu.Lock()
			out[name] = fi
			mu.Unlock()
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// each checks names and runs fn on each, in parallel.
func (u *Upstream) each(ctx context.Context, names []string, fn func(context.Context, string) error) error {
	for _, name := range names {
		if err := manifest.CheckPath(name); err != nil {
			return fmt.Errorf("probe %s: %w", name, err)
		}
	}
	pool := tree.NewPool(ctx, max(u.workers(), 8))
	for _, name := range names {
		if err := pool.Go(func(ctx context.Context) error { return fn(ctx, name) }); err != nil {
			break
		}
	}
	return pool.Wait()
}

func (u *Upstream) statOne(ctx context.Context, name string) (upstream.PathInfo, bool, error) {
	resp, err := u.send(ctx, u.noFollow, http.MethodHead, name)
	if err != nil {
		return upstream.PathInfo{}, false, fmt.Errorf("upstream %s: %w", u, err)
	}
	defer resp.Body.Close()
	switch c := resp.StatusCode; {
	case c == http.StatusOK:
		return upstream.PathInfo{Regular: true, Size: resp.ContentLength, ModTime: lastModified(resp.Header)}, true, nil
	case c >= 300 && c < 400:
		loc, err := resp.Location()
		if err == nil && loc.Scheme == resp.Request.URL.Scheme && loc.Host == resp.Request.URL.Host &&
			loc.Path == resp.Request.URL.Path+"/" {
			return upstream.PathInfo{Dir: true, ModTime: lastModified(resp.Header)}, true, nil
		}
		return upstream.PathInfo{}, false, nil // not a directory of the root's
	}
	err = statusErr(resp)
	if errors.Is(err, fs.ErrNotExist) {
		return upstream.PathInfo{}, false, nil
	}
	return upstream.PathInfo{}, false, fmt.Errorf("upstream %s: %w", u, err)
}

// ReadSmall implements upstream.Prober: a GET of each name (in parallel),
// following no redirect (a directory is not read); one over max bytes is
// left out.
func (u *Upstream) ReadSmall(ctx context.Context, names []string, max int64) (map[string]upstream.SmallFile, error) {
	out := make(map[string]upstream.SmallFile, len(names))
	var mu sync.Mutex
	err := u.each(ctx, names, func(ctx context.Context, name string) error {
		b, h, err := u.small(ctx, u.noFollow, name, max+1)
		switch {
		case errors.Is(err, fs.ErrNotExist), errors.Is(err, ErrRedirect), errors.Is(err, ErrEncoding):
			return nil
		case err != nil:
			return fmt.Errorf("upstream %s: %w", u, err)
		case int64(len(b)) > max:
			return nil
		}
		mu.Lock()
		out[name] = upstream.SmallFile{Data: b, ModTime: lastModified(h)}
		mu.Unlock()
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// OverlappingReads implements upstream.Overlapping: every read is its own
// request (a stream of one h2c connection, or a connection of the pool).
func (u *Upstream) OverlappingReads() bool { return true }

// FetchStatus implements upstream.Upstream: ReadSmall of status.json.
func (u *Upstream) FetchStatus(ctx context.Context) ([]byte, error) {
	files, err := u.ReadSmall(ctx, []string{export.StatusName}, upstream.MaxStatusSize)
	if err != nil {
		return nil, fmt.Errorf("read status: %w", err)
	}
	return files[export.StatusName].Data, nil
}
