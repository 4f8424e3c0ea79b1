package server

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"time"
)

// writeIdle is how long one write to a client may block: the write
// deadline moves on with every write (and every sendfile chunk), so a big
// file to a slow but live client is not cut while a stalled one is.
const writeIdle = 60 * time.Second

// sendChunk is how much one sendfile call sends before the deadline moves.
const sendChunk = 4 << 20

// deadlineSlack is how stale a plain connection's write deadline may grow
// before a write moves it: the deadline of a write is between writeIdle
// minus deadlineSlack and writeIdle after it starts, and a connection
// answering many requests a second moves it once a second, not twice a
// request (each move is a timer update in the runtime's poller).
const deadlineSlack = time.Second

// countingWriter counts the status and body bytes of a response and moves
// the write deadline along; it keeps the underlying ReadFrom (sendfile).
type countingWriter struct {
	http.ResponseWriter
	dl   *connDeadline // the connection's (plain HTTP/1.1 under Serve), else nil
	code int
	n    int64
}

func newCountingWriter(w http.ResponseWriter, dl *connDeadline) *countingWriter {
	cw := &countingWriter{ResponseWriter: w, dl: dl}
	cw.extend()
	return cw
}

// extend moves the write deadline writeIdle ahead: through the connection
// if it is known (only when deadlineSlack has passed since it was last
// moved), else through the ResponseWriter (not supported by a test
// recorder: ignored).
func (w *countingWriter) extend() {
	if w.dl != nil {
		w.dl.extend()
		return
	}
	_ = http.NewResponseController(w.ResponseWriter).SetWriteDeadline(time.Now().Add(writeIdle))
}

// connDeadline is the write deadline of one plain (HTTP/1.1, one request
// at a time) connection, set directly on it.
type connDeadline struct {
	conn net.Conn
	at   atomic.Int64 // the deadline set last, Unix nanoseconds (0: none)
}

type connDeadlineKey struct{}

// withConnDeadline is http.Server.ConnContext: a plain connection's
// requests move its write deadline through a connDeadline. A TLS one
// (which may carry HTTP/2 streams side by side) gets none: its requests
// move their own deadlines through the ResponseWriter.
func withConnDeadline(ctx context.Context, c net.Conn) context.Context {
	if _, ok := c.(*tls.Conn); ok {
		return ctx
	}
	return context.WithValue(ctx, connDeadlineKey{}, &connDeadline{conn: c})
}

// connDeadlineOf is the connDeadline of r's connection, or nil.
func connDeadlineOf(r *http.Request) *connDeadline {
	dl, _ := r.Context().Value(connDeadlineKey{}).(*connDeadline)
	return dl
}

func (d *connDeadline) extend() {
	now := time.Now()
	if d.at.Load()-now.UnixNano() > int64(writeIdle-deadlineSlack) {
		return
	}
	at := now.Add(writeIdle)
	_ = d.conn.SetWriteDeadline(at)
	d.at.Store(at.UnixNano())
}

func (w *countingWriter) status() int {
	if w.code == 0 {
		return http.StatusOK
	}
	return w.code
}

func (w *countingWriter) WriteHeader(code int) {
	if w.code == 0 && code >= 200 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *countingWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	w.extend()
	n, err := w.ResponseWriter.Write(b)
	w.n += int64(n)
	return n, err
}

// ReadFrom sends src in chunks of sendChunk, each by the underlying
// writer's ReadFrom (sendfile for a file), moving the deadline before each.
func (w *countingWriter) ReadFrom(src io.Reader) (int64, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	rf, ok := w.ResponseWriter.(io.ReaderFrom)
	if !ok {
		n, err := io.Copy(struct{ io.Writer }{w}, src)
		return n, err
	}
	inner, left := src, int64(-1)
	if lr, ok := src.(*io.LimitedReader); ok {
		inner, left = lr.R, lr.N
	}
	if m, ok := inner.(*memReader); ok { // a small file: one buffered write
		if left < 0 {
			left = int64(len(m.data))
		}
		n, err := w.Write(m.next(left))
		return int64(n), err
	}
	var total int64
	for left != 0 {
		chunk := int64(sendChunk)
		if left > 0 {
			chunk = min(chunk, left)
		}
		w.extend()
		n, err := rf.ReadFrom(&io.LimitedReader{R: inner, N: chunk})
		total += n
		w.n += n
		if left > 0 {
			left -= n
		}
		if err != nil || n < chunk {
			return total, err
		}
	}
	return total, nil
}

// Unwrap lets http.ResponseController reach the connection.
func (w *countingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
