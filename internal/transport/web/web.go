package web

import (
	"compress/gzip"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"path"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/seqmirror/seqmirror/internal/export"
	"github.com/seqmirror/seqmirror/internal/fsys"
	"github.com/seqmirror/seqmirror/internal/transport/upstream"
	"github.com/seqmirror/seqmirror/internal/tree"
)

// Defaults for upstream.Options.Timeout and ConTimeout.
const (
	DefaultTimeout    = 300 * time.Second
	DefaultConTimeout = 30 * time.Second
)

var (
	// ErrEncoding means the server sent a body with a Content-Encoding
	// (gzip, br, ...) although it was asked for the bytes as they are.
	ErrEncoding = errors.New("the server sent a Content-Encoding it was not asked for")
	// ErrRedirect means the server redirected to another host or scheme
	// (or too many times).
	ErrRedirect = fmt.Errorf("%w: redirect refused", upstream.ErrRefused)
	// ErrCertificate means the server's TLS certificate is not trusted.
	ErrCertificate = fmt.Errorf("%w: TLS certificate not trusted", upstream.ErrRefused)
	// ErrNoPointer means a root that has published serves no seq/current:
	// it was written by a seqmirror that predates the snapshot pointer,
	// which HTTP clients need (they cannot read the current symlink).
	ErrNoPointer = fmt.Errorf("%w: the upstream serves no snapshot pointer (seq/current)", upstream.ErrRefused)
	// ErrNotRoot means there is no export root at the address.
	ErrNotRoot = fmt.Errorf("%w: no export root at this address", upstream.ErrRefused)

	errStalled = errors.New("no data moved")
)

// notFound is a 404 or 410 answer: it wraps fs.ErrNotExist.
type notFound struct{ status string }

func (e notFound) Error() string { return e.status }
func (notFound) Unwrap() error   { return fs.ErrNotExist }

// maxRedirects bounds the same-host redirects one request follows.
const maxRedirects = 5

// IsAddress reports whether s is an http:// or https:// address.
func IsAddress(s string) bool {
	l := strings.ToLower(s)
	return strings.HasPrefix(l, "http://") || strings.HasPrefix(l, "https://")
}

// Upstream is an export root read over HTTP(S).
type Upstream struct {
	base     *url.URL // the root, its path ending in "/"
	local    fsys.FS
	opt      upstream.Options
	timeout  time.Duration
	tr       *http.Transport
	follow   *http.Client // follows same-host redirects
	noFollow *http.Client // returns every redirect as is (Prober)
	backoff  time.Duration

	// h2c is set while the server has said that it takes HTTP/2 with
	// prior knowledge (export.H2CHeader) and no HTTP/2 request has failed:
	// requests then go through h2 (useH2C).
	h2c atomic.Bool
	h2  *h2cClients

	mu   sync.Mutex
	dead error // set when the upstream timed out: later calls fail at once
}

// h2cClients are follow and noFollow over HTTP/2 with prior knowledge.
type h2cClients struct {
	tr               *http.Transport
	follow, noFollow *http.Client
}

// Open parses addr (http:// or https://, the URL of the export root) and
// returns the upstream there, opened with opt (Timeout, ConTimeout,
// Workers, HTTP.CAFile). local is the filesystem every write goes through.
func Open(addr string, local fsys.FS, opt upstream.Options) (*Upstream, error) {
	base, err := parseAddress(addr)
	if err != nil {
		return nil, err
	}
	tlsConf, err := tlsConfig(opt.HTTP.CAFile)
	if err != nil {
		return nil, err
	}
	u := &Upstream{base: base, local: local, opt: opt, timeout: opt.Timeout, backoff: 100 * time.Millisecond}
	if u.timeout <= 0 {
		u.timeout = DefaultTimeout
	}
	con := opt.ConTimeout
	if con <= 0 {
		con = DefaultConTimeout
	}
	u.tr = &http.Transport{
		Proxy:                  http.ProxyFromEnvironment,
		DialContext:            (&net.Dialer{Timeout: con, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:      true,
		TLSClientConfig:        tlsConf,
		TLSHandshakeTimeout:    con,
		ResponseHeaderTimeout:  u.timeout,
		MaxResponseHeaderBytes: 64 << 10, // a static file's headers are small
		MaxIdleConnsPerHost:    max(u.workers(), 8) + 2,
		IdleConnTimeout:        90 * time.Second,
		DisableCompression:     true,
	}
	u.follow, u.noFollow = clientsOf(u.tr)
	if base.Scheme == "http" {
		h2 := u.tr.Clone()
		h2.Protocols = new(http.Protocols)
		h2.Protocols.SetUnencryptedHTTP2(true)
		h2.HTTP2 = &http.HTTP2Config{MaxReceiveBufferPerStream: 1 << 20}
		u.h2 = &h2cClients{tr: h2}
		u.h2.follow, u.h2.noFollow = clientsOf(h2)
	}
	return u, nil
}

// clientsOf are the clients of tr that follow same-host redirects and
// that return every redirect as is.
func clientsOf(tr *http.Transport) (follow, noFollow *http.Client) {
	follow = &http.Client{Transport: tr, CheckRedirect: sameHost}
	noFollow = &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}
	return follow, noFollow
}

// useH2C is the client of u's HTTP/2 transport that stands for client
// (u.follow or u.noFollow) while the server takes HTTP/2 with prior
// knowledge; else client.
func (u *Upstream) useH2C(client *http.Client) *http.Client {
	if !u.h2c.Load() {
		return client
	}
	if client == u.noFollow {
		return u.h2.noFollow
	}
	return u.h2.follow
}

// learnH2C notes what an answer over HTTP/1.1 says of HTTP/2 with prior
// knowledge (export.H2CHeader): taken only for a plain http:// upstream
// reached directly, since a proxy on the way would not pass it on.
func (u *Upstream) learnH2C(resp *http.Response) {
	if u.h2 == nil || resp.ProtoMajor != 1 || resp.Header.Get(export.H2CHeader) != export.H2CPriorKnowledge {
		return
	}
	if p, err := u.tr.Proxy(resp.Request); err != nil || p != nil {
		return
	}
	u.h2c.Store(true)
}

// parseAddress checks an http(s) address and returns it with its path
// ending in "/".
func parseAddress(addr string) (*url.URL, error) {
	b, err := url.Parse(addr)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", upstream.ErrBadAddress, err)
	}
	b.Scheme = strings.ToLower(b.Scheme)
	switch {
	case b.Scheme != "http" && b.Scheme != "https":
		return nil, fmt.Errorf("%w: %s: want http:// or https://", upstream.ErrBadAddress, addr)
	case b.Host == "" || b.Hostname() == "":
		return nil, fmt.Errorf("%w: %s: no host", upstream.ErrBadAddress, addr)
	case b.User != nil:
		return nil, fmt.Errorf("%w: %s: credentials in the address are not supported (they would be logged)", upstream.ErrBadAddress, b.Redacted())
	case b.RawQuery != "" || b.ForceQuery || b.Fragment != "":
		return nil, fmt.Errorf("%w: %s: the address of an export root has no query or fragment", upstream.ErrBadAddress, addr)
	}
	if !strings.HasSuffix(b.Path, "/") {
		b.Path += "/"
		if b.RawPath != "" {
			b.RawPath += "/"
		}
	}
	return b, nil
}

// tlsConfig trusts the system roots plus the PEM certificates in caFile.
func tlsConfig(caFile string) (*tls.Config, error) {
	conf := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile == "" {
		return conf, nil
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("read CA certificates: %w", err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("read CA certificates: %s holds no PEM certificate", caFile)
	}
	conf.RootCAs = pool
	return conf, nil
}

// sameHost follows a redirect only to the same scheme and host as the
// first request, at most maxRedirects times.
func sameHost(req *http.Request, via []*http.Request) error {
	first, last := via[0].URL, via[len(via)-1].URL
	switch {
	case req.URL.Scheme != first.Scheme || !strings.EqualFold(req.URL.Host, first.Host):
		return fmt.Errorf("%w: %s redirects to another host or scheme (%s); give the address it redirects to instead",
			ErrRedirect, last.Redacted(), req.URL.Redacted())
	case len(via) >= maxRedirects:
		return fmt.Errorf("%w: %s: more than %d redirects", ErrRedirect, first.Redacted(), maxRedirects)
	}
	return nil
}

func (u *Upstream) String() string { return u.base.Redacted() }

// Close implements upstream.Upstream: it closes idle connections.
func (u *Upstream) Close() error {
	u.tr.CloseIdleConnections()
	if u.h2 != nil {
		u.h2.tr.CloseIdleConnections()
	}
	return nil
}

// DefaultWorkers is how many files Fetch asks for at once when
// Options.Workers is 0: more than the CPUs, since a fetch mostly waits
// for the network (hashing a file as it comes costs little). Over HTTP/1.1
// each request costs a round trip, so on a link with latency the copy
// takes files/workers round trips: over a 20-80 ms link 16 instead of 8
// halved a first copy of 10k files and cut a 1% change by a third, at no
// cost on loopback (docs/performance.md, "Mirror network").
func DefaultWorkers() int { return max(16, 2*tree.Workers()) }

// H2CStreams is how many files Fetch asks for at once when Options.Workers
// is 0 and the server takes HTTP/2 with prior knowledge: the requests are
// streams of one connection, so more of them cost no connections, and a
// 1% change of 10k files over a 20-80 ms link is fetched in a round trip
// or two instead of one per 16 files.
const H2CStreams = 64

func (u *Upstream) workers() int {
	switch {
	case u.opt.Workers > 0:
		return u.opt.Workers
	case u.h2c.Load():
		return H2CStreams
	}
	return DefaultWorkers()
}

// url is the URL of rel (slash-separated, below the root), each segment
// escaped.
func (u *Upstream) url(rel string) string {
	segs := strings.Split(rel, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return u.base.String() + strings.Join(segs, "/")
}

func (u *Upstream) deadErr() error {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.dead
}

func (u *Upstream) setDead(err error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.dead == nil {
		u.dead = fmt.Errorf("%w (earlier in this run; not waiting again)", err)
	}
}

// send makes one request for rel. No byte moving for the timeout (the
// response header included) cancels it; the returned body keeps that
// watchdog, and its Close ends it. client is u.follow or u.noFollow.
func (u *Upstream) send(ctx context.Context, client *http.Client, method, rel string) (*http.Response, error) {
	if err := u.deadErr(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancelCause(ctx)
	timer := time.AfterFunc(u.timeout, func() { cancel(errStalled) })
	req, err := http.NewRequestWithContext(ctx, method, u.url(rel), nil)
	if err != nil {
		timer.Stop()
		cancel(nil)
		return nil, fmt.Errorf("%s %s: %w", method, rel, err)
	}
	req.Header.Set("Accept-Encoding", "identity")
	if gzipped(rel) && method == http.MethodGet {
		req.Header.Set("Accept-Encoding", "gzip")
	}
	req.Header.Set("User-Agent", "seqmirror")
	if !strings.HasPrefix(rel, export.SnapshotsName+"/") {
		// seq files, the pointer, status.json change in place: a cache on
		// the way (a proxy) must ask the server, not answer from its copy.
		req.Header.Set("Cache-Control", "no-cache")
	}
	via := u.useH2C(client)
	resp, err := via.Do(req)
	if err != nil {
		timer.Stop()
		if via != client && ctx.Err() == nil {
			u.h2c.Store(false) // the retry goes over HTTP/1.1
		}
		err = u.netErr(ctx, err)
		cancel(nil)
		return nil, fmt.Errorf("%s %s: %w", method, req.URL.Redacted(), err)
	}
	u.learnH2C(resp)
	resp.Body = &watchedBody{rc: resp.Body, u: u, ctx: ctx, cancel: cancel, timer: timer}
	return resp, nil
}

// netErr classifies a failed request or body read in ctx (the request's).
func (u *Upstream) netErr(ctx context.Context, err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err // the caller names the URL
	}
	var certErr *tls.CertificateVerificationError
	var nerr net.Error
	switch cause := context.Cause(ctx); {
	case errors.Is(cause, errStalled):
		err = fmt.Errorf("%w: %w: no data for %s", upstream.ErrUnavailable, upstream.ErrTimedOut, u.timeout)
		u.setDead(err)
		return err
	case cause != nil && ctx.Err() != nil:
		return cause // the caller's context: stopped
	case errors.Is(err, ErrRedirect):
		return err
	case errors.As(err, &certErr), errors.As(err, new(x509.UnknownAuthorityError)), errors.As(err, new(x509.HostnameError)),
		errors.As(err, new(x509.CertificateInvalidError)):
		return fmt.Errorf("%w: %w", ErrCertificate, err)
	case errors.As(err, &nerr) && nerr.Timeout():
		err = fmt.Errorf("%w: %w: %w", upstream.ErrUnavailable, upstream.ErrTimedOut, err)
		u.setDead(err)
		return err
	}
	return fmt.Errorf("%w: %w", upstream.ErrUnavailable, err)
}

// watchedBody is a response body read under the request's watchdog: each
// read that brings data restarts it.
type watchedBody struct {
	rc     io.ReadCloser
	u      *Upstream
	ctx    context.Context
	cancel context.CancelCauseFunc
	timer  *time.Timer
}

func (b *watchedBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if n > 0 {
		b.timer.Reset(b.u.timeout)
	}
	if err != nil && err != io.EOF {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			err = fmt.Errorf("the body ended before its Content-Length: %w", err)
		}
		err = b.u.netErr(b.ctx, err)
	}
	return n, err
}

func (b *watchedBody) Close() error {
	b.timer.Stop()
	err := b.rc.Close()
	b.cancel(nil)
	return err
}

// get GETs rel, following same-host redirects: a 200 answer in the
// identity encoding, or an error (wrapping fs.ErrNotExist for 404 and 410).
func (u *Upstream) get(ctx context.Context, rel string) (*http.Response, error) {
	return u.getWith(ctx, u.follow, rel)
}

func (u *Upstream) getWith(ctx context.Context, client *http.Client, rel string) (*http.Response, error) {
	resp, err := u.send(ctx, client, http.MethodGet, rel)
	if err != nil {
		return nil, err
	}
	if err := statusErr(resp); err != nil {
		discard(resp)
		return nil, err
	}
	ce := resp.Header.Get("Content-Encoding")
	if ce != "" && strings.EqualFold(ce, "gzip") && gzipped(rel) {
		zr, err := gzip.NewReader(resp.Body)
		if err != nil {
			resp.Body.Close()
			return nil, fmt.Errorf("GET %s: %w: gzip: %w", resp.Request.URL.Redacted(), ErrEncoding, err)
		}
		resp.Body = gunzipBody{zr: zr, rc: resp.Body}
		resp.ContentLength = -1
		resp.Header.Del("Content-Encoding")
		return resp, nil
	}
	if ce != "" && !strings.EqualFold(ce, "identity") {
		resp.Body.Close() // not drained: it may be endless
		return nil, fmt.Errorf("GET %s: %w (Content-Encoding: %.40q; turn compression off where the server serves this root)", resp.Request.URL.Redacted(), ErrEncoding, ce)
	}
	return resp, nil
}

// gzipped reports whether rel is asked for in gzip as well as as it is: a
// manifest (snapshots/N.manifest, N.full), about half redundant and read
// whole before a sync can diff. Its decoded bytes are bounded like any
// manifest's (fetchManifestOnce); nothing else is ever decoded.
func gzipped(rel string) bool {
	dir, name := path.Split(rel)
	return dir == export.SnapshotsName+"/" && (strings.HasSuffix(name, export.ManifestExt) || strings.HasSuffix(name, export.FullExt))
}

// gunzipBody is a response body in gzip, read decoded.
type gunzipBody struct {
	zr *gzip.Reader
	rc io.ReadCloser
}

func (b gunzipBody) Read(p []byte) (int, error) { return b.zr.Read(p) }
func (b gunzipBody) Close() error               { return b.rc.Close() }

// statusErr maps a status other than 200 to an error.
func statusErr(resp *http.Response) error {
	c := resp.StatusCode
	what := fmt.Sprintf("%s %s: %s", resp.Request.Method, resp.Request.URL.Redacted(), resp.Status)
	switch {
	case c == http.StatusOK:
		return nil
	case c == http.StatusNotFound || c == http.StatusGone:
		return notFound{what}
	case c == http.StatusUnauthorized || c == http.StatusForbidden:
		return fmt.Errorf("%w: %s", upstream.ErrRefused, what)
	case c == http.StatusRequestTimeout || c == http.StatusTooManyRequests || c >= 500:
		return fmt.Errorf("%w: %s", upstream.ErrUnavailable, what)
	case c >= 300 && c < 400:
		return fmt.Errorf("%w: %s (a redirect not followed)", ErrRedirect, what)
	}
	return fmt.Errorf("%s: unexpected status", what)
}

// discard reads a little of an unwanted body (so that the connection can
// be reused) and closes it.
func discard(resp *http.Response) {
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
}

// small GETs rel and reads at most max bytes of it.
func (u *Upstream) small(ctx context.Context, client *http.Client, rel string, max int64) ([]byte, http.Header, error) {
	resp, err := u.getWith(ctx, client, rel)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, max))
	if err != nil {
		return nil, nil, fmt.Errorf("GET %s: %w", resp.Request.URL.Redacted(), err)
	}
	return b, resp.Header, nil
}

// htmlHint says, for a body that is not what was expected, that the server
// answered with an HTML page (an error page sent with status 200?).
func htmlHint(h http.Header) string {
	if ct := h.Get("Content-Type"); strings.HasPrefix(strings.ToLower(strings.TrimSpace(ct)), "text/html") {
		return " (the server answered with an HTML page, Content-Type text/html: an error page sent with status 200?)"
	}
	return ""
}

// lastModified is the Last-Modified time of h (zero if none).
func lastModified(h http.Header) time.Time {
	t, err := http.ParseTime(h.Get("Last-Modified"))
	if err != nil {
		return time.Time{}
	}
	return t
}
