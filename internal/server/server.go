package server

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/seqmirror/seqmirror/internal/export"
)

// ServerOptions configures Serve.
type ServerOptions struct {
	// TLSCert and TLSKey are PEM files; both empty: plain HTTP. With TLS,
	// HTTP/2 is offered through ALPN; without, HTTP/2 with prior knowledge
	// is taken beside HTTP/1.1 on the same port (h2c), and every answer
	// says so (export.H2CHeader).
	TLSCert, TLSKey string
	// MaxConns bounds the open connections (0: DefaultMaxConns); a client
	// beyond it waits in the kernel's accept queue.
	MaxConns int
	// ShutdownTimeout is how long Serve lets requests in flight finish once
	// ctx is done before it closes their connections (0: 10s).
	ShutdownTimeout time.Duration
	// HeaderTimeout bounds the time from a request's first byte to the end
	// of its head, IdleTimeout the wait for the next request of a
	// keep-alive connection (0: 10s and 120s).
	HeaderTimeout, IdleTimeout time.Duration
	// Files, if set, is the Handler to which h passes every request under
	// /snapshots/: a plain HTTP/1.1 connection's GETs and HEADs of
	// snapshot files (no range, no condition) are then answered without
	// net/http, as Files would answer them (the package doc's fast path).
	// nil: net/http serves every request.
	Files *Handler
}

// DefaultMaxConns is the connection limit when ServerOptions gives none.
const DefaultMaxConns = 1024

// Timeouts against slow clients. Writes have a deadline per write (see
// countingWriter), not for the whole response, so big files still go out.
const (
	readHeaderTimeout = 10 * time.Second
	readTimeout       = 30 * time.Second // a GET has no body
	idleTimeout       = 120 * time.Second
	maxHeaderBytes    = 64 << 10
)

// Serve serves h on ln until ctx is done, then shuts down gracefully:
// no new connections, requests in flight get o.ShutdownTimeout to finish.
// It returns nil after a shutdown, or the error that stopped it.
func Serve(ctx context.Context, ln net.Listener, h http.Handler, o ServerOptions) error {
	if o.MaxConns <= 0 {
		o.MaxConns = DefaultMaxConns
	}
	if o.ShutdownTimeout <= 0 {
		o.ShutdownTimeout = 10 * time.Second
	}
	if o.HeaderTimeout <= 0 {
		o.HeaderTimeout = readHeaderTimeout
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = idleTimeout
	}
	srv := &http.Server{
		Handler:           advertiseH2C(h),
		ReadHeaderTimeout: o.HeaderTimeout,
		ReadTimeout:       max(readTimeout, o.HeaderTimeout),
		IdleTimeout:       o.IdleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ConnContext:       withConnDeadline,
	}
	srv.Protocols = new(http.Protocols)
	srv.Protocols.SetHTTP1(true)
	srv.Protocols.SetHTTP2(true)
	srv.Protocols.SetUnencryptedHTTP2(true)
	ln = LimitListener(ln, o.MaxConns)
	if o.Files == nil || o.TLSCert != "" || o.TLSKey != "" {
		return serveHTTP(ctx, srv, ln, o)
	}
	return serveFast(ctx, srv, ln, o)
}

// serveFast serves ln with the fast path in front of srv until ctx is
// done, then shuts both down (Serve's contract).
func serveFast(ctx context.Context, srv *http.Server, ln net.Listener, o ServerOptions) error {
	fast := newFastServer(o.Files, ln.Addr(), o)
	accepted := make(chan error, 1)
	go func() { accepted <- fast.acceptLoop(ln) }()
	hctx, stop := context.WithCancel(ctx)
	defer stop()
	served := make(chan error, 1)
	go func() { served <- serveHTTP(hctx, srv, fast.handoff, o) }()
	var err error
	select {
	case err = <-accepted: // the listener failed, or was closed at shutdown
		if ctx.Err() != nil {
			err = nil
		}
		ln.Close()
		stop()
	case <-ctx.Done():
		ln.Close()
		<-accepted
	}
	sctx, cancel := context.WithTimeout(context.Background(), o.ShutdownTimeout)
	defer cancel()
	fast.shutdown(sctx.Done())
	serr := <-served // (net/http's shutdown closes fast.handoff)
	if err == nil && !errors.Is(serr, http.ErrServerClosed) {
		err = serr
	}
	return err
}

// serveHTTP serves ln with srv until ctx is done, then shuts it down
// (Serve's contract).
func serveHTTP(ctx context.Context, srv *http.Server, ln net.Listener, o ServerOptions) error {
	done := make(chan error, 1)
	go func() {
		if o.TLSCert != "" || o.TLSKey != "" {
			done <- srv.ServeTLS(ln, o.TLSCert, o.TLSKey)
		} else {
			done <- srv.Serve(ln)
		}
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), o.ShutdownTimeout)
	defer cancel()
	err := srv.Shutdown(sctx)
	if errors.Is(err, context.DeadlineExceeded) {
		err = srv.Close()
	}
	if serr := <-done; !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	return err
}

// h2cValue is the value of every export.H2CHeader that Serve sends (one
// shared slice: net/http only reads it).
var h2cValue = []string{export.H2CPriorKnowledge}

// advertiseH2C says on every answer that the port also takes HTTP/2 with
// prior knowledge (export.H2CHeader): Serve's server does, a handler
// mounted elsewhere may not, so the header is Serve's, not the Handler's.
func advertiseH2C(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil {
			w.Header()[export.H2CHeader] = h2cValue
		}
		h.ServeHTTP(w, r)
	})
}

// LimitListener returns a listener that accepts at most n connections at
// once (golang.org/x/net/netutil's, which the module does not otherwise
// need): Accept waits for a slot.
func LimitListener(l net.Listener, n int) net.Listener {
	return &limitListener{Listener: l, sem: make(chan struct{}, n), done: make(chan struct{})}
}

type limitListener struct {
	net.Listener
	sem       chan struct{}
	closeOnce sync.Once
	done      chan struct{}
}

func (l *limitListener) Accept() (net.Conn, error) {
	select {
	case l.sem <- struct{}{}:
	case <-l.done:
		return nil, net.ErrClosed
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.sem
		return nil, err
	}
	return &limitConn{Conn: c, release: func() { <-l.sem }}, nil
}

func (l *limitListener) Close() error {
	err := l.Listener.Close()
	l.closeOnce.Do(func() { close(l.done) })
	return err
}

type limitConn struct {
	net.Conn
	once    sync.Once
	release func()
}

// net/http sends a file with sendfile(2) only through a connection that is
// an io.ReaderFrom.
var _ io.ReaderFrom = (*limitConn)(nil)

// ReadFrom keeps the connection's own ReadFrom (sendfile(2) from a file
// on a TCP connection): net/http sends a response body through it only if
// the connection it was handed has one.
func (c *limitConn) ReadFrom(r io.Reader) (int64, error) { return sendFrom(c.Conn, r) }

// sendFrom sends r through c's own ReadFrom (sendfile(2) from a file on a
// TCP connection), or by copying if c has none.
func sendFrom(c net.Conn, r io.Reader) (int64, error) {
	if rf, ok := c.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(struct{ io.Writer }{c}, r)
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
