package server

import (
	"io"
	"net/http"
	"time"
)

// writeIdle is how long one write to a client may block: the write
// deadline moves on with every write (and every sendfile chunk), so a big
// file to a slow but live client is not cut while a stalled one is.
const writeIdle = 60 * time.Second

// sendChunk is how much one sendfile call sends before the deadline moves.
const sendChunk = 4 << 20

// countingWriter counts the status and body bytes of a response and moves
// the write deadline along; it keeps the underlying ReadFrom (sendfile).
type countingWriter struct {
	http.ResponseWriter
	rc   *http.ResponseController
	code int
	n    int64
}

func newCountingWriter(w http.ResponseWriter) *countingWriter {
	cw := &countingWriter{ResponseWriter: w, rc: http.NewResponseController(w)}
	cw.extend()
	return cw
}

// extend moves the write deadline writeIdle ahead (not supported by a
// test recorder: ignored).
func (w *countingWriter) extend() { _ = w.rc.SetWriteDeadline(time.Now().Add(writeIdle)) }

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
