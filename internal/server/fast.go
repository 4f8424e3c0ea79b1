package server

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/seqmirror/seqmirror/internal/export"
	"golang.org/x/sys/unix"
)

// The fast path of plain connections (the package doc): fastServer
// accepts them, fastConn reads and answers their requests until one goes
// to net/http through handoffListener.

// headBufSize bounds a request head on the fast path: a longer one goes to
// net/http (whose bound is maxHeaderBytes).
const headBufSize = 4 << 10

// fastServer runs the fast path of the plain connections of one Serve.
type fastServer struct {
	h       *Handler
	handoff *handoffListener
	idle    time.Duration // between requests (idleTimeout)
	head    time.Duration // from a request's first bytes to its whole head (readHeaderTimeout)

	closing atomic.Bool
	mu      sync.Mutex
	conns   map[*fastConn]struct{}
	wg      sync.WaitGroup
}

func newFastServer(h *Handler, addr net.Addr, o ServerOptions) *fastServer {
	return &fastServer{h: h, handoff: newHandoffListener(addr), idle: o.IdleTimeout, head: o.HeaderTimeout,
		conns: make(map[*fastConn]struct{})}
}

// acceptLoop accepts the connections of ln until it is closed; it returns
// the error that stopped it (net.ErrClosed after a Close).
func (s *fastServer) acceptLoop(ln net.Listener) error {
	var backoff time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			var te interface{ Temporary() bool }
			if errors.As(err, &te) && te.Temporary() && !s.closing.Load() { // EMFILE and the like: as net/http
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				time.Sleep(backoff)
				continue
			}
			return err
		}
		backoff = 0
		fc := &fastConn{s: s, c: c, r: bufio.NewReaderSize(c, headBufSize)}
		fc.dl.conn = c
		if !s.track(fc) {
			c.Close()
			continue
		}
		go fc.serve()
	}
}

// track adds fc to the connections Shutdown waits for; false once closing.
func (s *fastServer) track(fc *fastConn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing.Load() {
		return false
	}
	s.conns[fc] = struct{}{}
	s.wg.Add(1)
	return true
}

func (s *fastServer) untrack(fc *fastConn) {
	s.mu.Lock()
	delete(s.conns, fc)
	s.mu.Unlock()
	s.wg.Done()
}

// shutdown makes every fast connection close once its request in flight
// (if any) is answered, and waits for them until done is closed; then it
// closes what is left.
func (s *fastServer) shutdown(done <-chan struct{}) {
	s.mu.Lock()
	s.closing.Store(true)
	for fc := range s.conns {
		_ = fc.c.SetReadDeadline(time.Now()) // wakes a connection waiting for a request
	}
	s.mu.Unlock()
	all := make(chan struct{})
	go func() { s.wg.Wait(); close(all) }()
	select {
	case <-all:
		return
	case <-done:
	}
	s.mu.Lock()
	for fc := range s.conns {
		fc.c.Close()
	}
	s.mu.Unlock()
	<-all
}

// fastConn is one connection on the fast path.
type fastConn struct {
	s      *fastServer
	c      net.Conn
	r      *bufio.Reader
	dl     connDeadline // the write deadline
	readAt int64        // the read deadline set last, Unix nanoseconds
}

// serve answers c's requests until it closes, or hands it to net/http.
func (fc *fastConn) serve() {
	defer fc.s.untrack(fc)
	for {
		head, err := fc.readHead()
		if errors.Is(err, errHandOff) {
			fc.handOff()
			return
		}
		if err != nil {
			fc.c.Close()
			return
		}
		req, ok := parseHead(head)
		if !ok {
			fc.handOff()
			return
		}
		switch fc.answer(req) {
		case answerHandOff:
			fc.handOff()
			return
		case answerClose:
			fc.c.Close()
			return
		}
		_, _ = fc.r.Discard(len(head))
	}
}

// errHandOff says that a connection goes to net/http.
var errHandOff = errors.New("to net/http")

// readHead returns the next request's head (request line and header
// lines, through the empty line) without consuming it. A head that does
// not end in the buffer, or whose end is a bare LF, is errHandOff; an
// error of the connection (its close, a timeout, shutdown) is returned.
func (fc *fastConn) readHead() ([]byte, error) {
	partial := false
	for {
		buf, _ := fc.r.Peek(fc.r.Buffered())
		if len(buf) > 0 {
			if i := bytes.Index(buf, []byte("\n\r\n")); i >= 0 {
				return buf[:i+3], nil
			}
			if bytes.Contains(buf, []byte("\n\n")) {
				return nil, errHandOff // bare LF line ends: net/http's to judge
			}
			if len(buf) >= fc.r.Size() {
				return nil, errHandOff
			}
			if len(buf) >= 4 && string(buf[:4]) == "PRI " {
				return nil, errHandOff // HTTP/2 with prior knowledge
			}
		}
		if fc.s.closing.Load() && len(buf) == 0 {
			return nil, net.ErrClosed
		}
		now := time.Now().UnixNano()
		switch {
		case len(buf) == 0 && fc.readAt-now < int64(fc.s.idle-deadlineSlack):
			fc.setReadDeadline(now + int64(fc.s.idle))
		case len(buf) > 0 && !partial:
			partial = true
			fc.setReadDeadline(now + int64(fc.s.head))
		}
		if fc.s.closing.Load() && len(buf) == 0 {
			return nil, net.ErrClosed // (again: the deadline just set may be later than shutdown's)
		}
		if _, err := fc.r.Peek(len(buf) + 1); err != nil {
			return nil, err // closed, reset, timed out (a head not whole in time), or shut down
		}
	}
}

func (fc *fastConn) setReadDeadline(at int64) {
	_ = fc.c.SetReadDeadline(time.Unix(0, at))
	fc.readAt = at
}

// handOff gives the connection, with what it buffered, to net/http.
func (fc *fastConn) handOff() {
	if fc.readAt != 0 {
		_ = fc.c.SetReadDeadline(time.Time{}) // net/http sets its own
	}
	if fc.dl.at.Load() != 0 {
		_ = fc.c.SetWriteDeadline(time.Time{}) // the Handler's countingWriter sets its own
	}
	var c net.Conn = fc.c
	if fc.r.Buffered() > 0 {
		c = &bufferedConn{Conn: fc.c, r: fc.r}
	}
	if !fc.s.handoff.hand(c) {
		fc.c.Close()
	}
}

// request is a request head the fast path may answer.
type request struct {
	head   bool   // HEAD, else GET
	target string // the canonical /snapshots/... path
}

// parseHead parses a request head ending in "\r\n\r\n" strictly: a GET or
// HEAD of an origin-form target under /snapshots/ made only of characters
// that need no escaping, HTTP/1.1, CRLF line ends, one valid Host, valid
// header fields, and none that asks for more than the whole file (ranges,
// conditions, a body, an upgrade, a Connection but keep-alive). Anything
// else is not ok: net/http answers it.
func parseHead(head []byte) (request, bool) {
	var req request
	line, rest, ok := bytes.Cut(head, []byte("\r\n"))
	if !ok {
		return req, false
	}
	method, line, ok1 := bytes.Cut(line, []byte(" "))
	target, proto, ok2 := bytes.Cut(line, []byte(" "))
	if !ok1 || !ok2 || string(proto) != "HTTP/1.1" {
		return req, false
	}
	switch string(method) {
	case http.MethodGet:
	case http.MethodHead:
		req.head = true
	default:
		return req, false
	}
	if !bytes.HasPrefix(target, []byte("/snapshots/")) {
		return req, false
	}
	for _, b := range target {
		if !pathByte[b] {
			return req, false
		}
	}
	hosts := 0
	for len(rest) > 2 {
		line, rest, _ = bytes.Cut(rest, []byte("\r\n"))
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok || len(name) == 0 || !validValue(value) {
			return req, false
		}
		for _, b := range name {
			if !tokenByte[b] {
				return req, false
			}
		}
		value = bytes.Trim(value, " \t")
		switch {
		case asciiFold(name, "host"):
			hosts++
			if len(value) == 0 {
				return req, false
			}
			for _, b := range value {
				if !hostByte[b] {
					return req, false
				}
			}
		case asciiFold(name, "connection"):
			if !asciiFold(value, "keep-alive") {
				return req, false
			}
		case handOffField(name):
			return req, false
		}
	}
	if hosts != 1 || string(rest) != "\r\n" {
		return req, false
	}
	req.target = string(target)
	if !canonical(req.target) {
		return req, false
	}
	return req, true
}

// handOffField reports whether a header field changes the answer or the
// framing of a request: net/http's to handle.
func handOffField(name []byte) bool {
	for _, f := range [...]string{"range", "if-range", "if-match", "if-none-match", "if-modified-since",
		"if-unmodified-since", "content-length", "transfer-encoding", "expect", "upgrade", "te",
		"trailer", "http2-settings", "proxy-connection", "keep-alive"} {
		if asciiFold(name, f) {
			return true
		}
	}
	return false
}

// validValue reports whether a field value holds no control character
// but HTAB (net/http's rule).
func validValue(v []byte) bool {
	for _, b := range v {
		if b < ' ' && b != '\t' || b == 0x7f {
			return false
		}
	}
	return true
}

// asciiFold reports whether b equals s, which is lower case, in ASCII
// case-insensitively.
func asciiFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range b {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}

// Byte classes of parseHead.
var pathByte, tokenByte, hostByte [256]bool

func init() {
	set := func(t *[256]bool, chars string) {
		for i := range 256 {
			if 'a' <= i && i <= 'z' || 'A' <= i && i <= 'Z' || '0' <= i && i <= '9' {
				t[i] = true
			}
		}
		for _, c := range []byte(chars) {
			t[c] = true
		}
	}
	set(&pathByte, "-._~$&+,;=:@/")    // what net/url leaves unescaped in a path: no '%', no '?'
	set(&tokenByte, "!#$%&'*+-.^_`|~") // RFC 9110 tchar
	set(&hostByte, "-._:[]")           // names, IPv4, [IPv6] and a port
}

// Outcomes of fastConn.answer.
const (
	answerDone    = iota // answered: next request
	answerHandOff        // not answered, nothing written: to net/http
	answerClose          // the connection failed
)

// answer answers req if it is a small file of a snapshot as the manifest
// records it; anything else (a directory, a link, a big file, an error of
// the root) is answerHandOff, and net/http's Handler answers it (404,
// redirect, sendfile, 500) as it answers every request.
func (fc *fastConn) answer(req request) int {
	h := fc.s.h
	if !h.openat2 {
		return answerHandOff
	}
	rel := req.target[1:] // snapshots/N/PATH
	num, path, _ := strings.Cut(rel[len(export.SnapshotsName)+1:], "/")
	n, ok := parseNumber(num)
	if !ok || path == "" || path[len(path)-1] == '/' || isTemp(path) {
		return answerHandOff
	}
	ix, err := h.idx.get(n)
	if err != nil {
		return answerHandOff
	}
	rec, ok := ix.lookup(path)
	if !ok || rec.size < 0 {
		return answerHandOff
	}
	fd, st, err := h.openRegular(rel)
	if err != nil {
		return answerHandOff
	}
	if st.Size != rec.size {
		unix.Close(fd)
		return answerHandOff // damaged: the Handler logs it and answers 500
	}
	bp := outPool.Get().(*[]byte)
	defer outPool.Put(bp)
	out := appendHead((*bp)[:0], rec, st, path)
	if req.head {
		unix.Close(fd)
		return fc.send(out, 0, nil, 0)
	}
	if st.Size > smallFile {
		// The open was non-blocking (never block on a fifo): back to
		// blocking for the os.File that sendfile reads.
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFL, 0); err != nil {
			unix.Close(fd)
			return answerHandOff
		}
		f := os.NewFile(uintptr(fd), rel)
		defer f.Close()
		return fc.send(out, 0, f, st.Size)
	}
	if cap(out)-len(out) < int(st.Size) {
		out = append(out, make([]byte, st.Size)...)[:len(out)]
	}
	body := out[len(out) : len(out)+int(st.Size)]
	err = preadFull(fd, body)
	unix.Close(fd)
	if err != nil {
		return answerHandOff
	}
	return fc.send(out[:len(out)+len(body)], st.Size, nil, 0)
}

// send writes out (the head and body bytes of a body), then size bytes of
// f by sendfile in chunks that each move the write deadline, and counts
// the answer.
func (fc *fastConn) send(out []byte, body int64, f *os.File, size int64) int {
	fc.dl.extend()
	if _, err := fc.c.Write(out); err != nil {
		return answerClose
	}
	sent := body
	for sent < size {
		fc.dl.extend()
		n, err := sendFrom(fc.c, &io.LimitedReader{R: f, N: min(sendChunk, size-sent)})
		sent += n
		if err != nil || n == 0 {
			fc.s.h.metrics.observe(classFile, http.StatusOK, sent)
			return answerClose
		}
	}
	fc.s.h.metrics.observe(classFile, http.StatusOK, sent)
	return answerDone
}

// outPool holds the buffers of fast answers: headers and a small file.
var outPool = sync.Pool{New: func() any { b := make([]byte, 0, 1<<10+smallFile); return &b }}

// appendHead appends the status line and headers of the 200 answer to a
// plain GET of a snapshot file (as snapshotFile and writeWhole make them,
// in net/http's order).
func appendHead(b []byte, rec record, st unix.Stat_t, rel string) []byte {
	b = append(b, "HTTP/1.1 200 OK\r\nAccept-Ranges: bytes\r\nCache-Control: "+cacheImmutable+"\r\nContent-Length: "...)
	b = strconv.AppendInt(b, st.Size, 10)
	b = append(b, "\r\nContent-Type: "...)
	b = append(b, contentType(rel)...)
	b = append(b, "\r\nEtag: "...)
	b = appendFileTag(b, rec.hash, rec.size)
	if mtime := time.Unix(st.Mtim.Unix()); sendsLastModified(mtime) {
		b = append(b, "\r\nLast-Modified: "...)
		b = mtime.UTC().AppendFormat(b, http.TimeFormat)
	}
	b = append(b, "\r\n"+export.H2CHeader+": "+export.H2CPriorKnowledge+"\r\nDate: "...)
	b = appendDate(b)
	return append(b, "\r\n\r\n"...)
}

// The Date header's value, formatted once a second.
var dateCache atomic.Pointer[dateValue]

type dateValue struct {
	sec int64
	b   []byte
}

func appendDate(b []byte) []byte {
	now := time.Now()
	d := dateCache.Load()
	if d == nil || d.sec != now.Unix() {
		d = &dateValue{sec: now.Unix(), b: now.UTC().AppendFormat(nil, http.TimeFormat)}
		dateCache.Store(d)
	}
	return append(b, d.b...)
}

// bufferedConn is a connection handed to net/http with the bytes the fast
// path had read of it.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader // nil once drained
}

func (c *bufferedConn) Read(p []byte) (int, error) {
	if c.r != nil {
		if c.r.Buffered() > 0 {
			return c.r.Read(p)
		}
		c.r = nil
	}
	return c.Conn.Read(p)
}

// ReadFrom keeps the connection's sendfile (see limitConn.ReadFrom).
func (c *bufferedConn) ReadFrom(r io.Reader) (int64, error) { return sendFrom(c.Conn, r) }

// handoffListener is the listener of net/http's server under the fast
// path: it accepts the connections the fast path hands over.
type handoffListener struct {
	addr net.Addr
	ch   chan net.Conn
	done chan struct{}
	once sync.Once
}

func newHandoffListener(addr net.Addr) *handoffListener {
	return &handoffListener{addr: addr, ch: make(chan net.Conn), done: make(chan struct{})}
}

// hand gives c to net/http; false once the listener is closed.
func (l *handoffListener) hand(c net.Conn) bool {
	select {
	case l.ch <- c:
		return true
	case <-l.done:
		return false
	}
}

func (l *handoffListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *handoffListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *handoffListener) Addr() net.Addr { return l.addr }
