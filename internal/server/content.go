package server

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sync"
	"time"

	"github.com/seqmirror/seqmirror/internal/fsys"
	"golang.org/x/sys/unix"
)

// smallFile bounds the files read whole into a pooled buffer and written
// from there: for a small file that is fewer system calls than sendfile
// (open, fstat, read, close, one write of headers and body).
const smallFile = 32 << 10

var bufPool = sync.Pool{New: func() any { b := make([]byte, smallFile); return &b }}

// content is a snapshot file opened for serving: a small file read whole
// (mem), or an open file for sendfile (f).
type content struct {
	mem   *memReader
	buf   *[]byte // mem's pooled buffer
	f     io.ReadSeekCloser
	size  int64
	mtime time.Time
}

// reader is what http.ServeContent reads.
func (c *content) reader() io.ReadSeeker {
	if c.mem != nil {
		return c.mem
	}
	return c.f
}

// close gives back what c holds.
func (c *content) close() {
	if c.buf != nil {
		bufPool.Put(c.buf)
	}
	if c.f != nil {
		c.f.Close()
	}
}

// openContent opens rel below the root: no symlink followed, a regular
// file only (as fsys.OpenBeneath, whose way it takes where the kernel has
// no openat2).
func (h *Handler) openContent(rel string) (*content, error) {
	if !h.openat2 {
		f, err := h.dir.Open(rel)
		if err != nil {
			return nil, err
		}
		fi, err := f.Stat()
		if err != nil {
			f.Close()
			return nil, err
		}
		return &content{f: f, size: fi.Size(), mtime: fi.ModTime()}, nil
	}
	fd, st, err := h.openRegular(rel)
	if err != nil {
		return nil, err
	}
	c := &content{size: st.Size, mtime: time.Unix(st.Mtim.Unix())}
	if st.Size <= smallFile {
		err := c.readWhole(fd, rel)
		unix.Close(fd)
		if err != nil {
			c.close()
			return nil, err
		}
		return c, nil
	}
	// The open was non-blocking (never block on a fifo): back to blocking
	// for the os.File that sendfile reads.
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFL, 0); err != nil {
		unix.Close(fd)
		return nil, &fs.PathError{Op: "fcntl", Path: rel, Err: err}
	}
	c.f = os.NewFile(uintptr(fd), rel)
	return c, nil
}

// readWhole reads the c.size bytes of fd into a pooled buffer.
func (c *content) readWhole(fd int, rel string) error {
	c.buf = bufPool.Get().(*[]byte)
	b := (*c.buf)[:c.size]
	if err := preadFull(fd, b); err != nil {
		return &fs.PathError{Op: "read", Path: rel, Err: err}
	}
	c.mem = &memReader{data: b}
	return nil
}

// preadFull fills b from fd at offset 0.
func preadFull(fd int, b []byte) error {
	for off := 0; off < len(b); {
		n, err := unix.Pread(fd, b[off:], int64(off))
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return err
		}
		if n == 0 {
			return io.ErrUnexpectedEOF
		}
		off += n
	}
	return nil
}

// openRegular opens rel below the root (fsys.OpenatBeneath), refusing
// any symlink and anything but a regular file, and returns it with its
// stat.
func (h *Handler) openRegular(rel string) (int, unix.Stat_t, error) {
	var st unix.Stat_t
	fd, err := fsys.OpenatBeneath(h.rootfd, rel, fsys.ReadFlags)
	if err != nil {
		return -1, st, err
	}
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return -1, st, &fs.PathError{Op: "fstat", Path: rel, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		unix.Close(fd)
		return -1, st, fmt.Errorf("open %s: %w", rel, fsys.ErrNotRegular)
	}
	return fd, st, nil
}

// hasOpenat2 reports whether the kernel has openat2 (Linux 5.6) and lets
// this process use it (a seccomp filter may answer ENOSYS or EPERM).
func hasOpenat2(rootfd int) bool {
	fd, err := unix.Openat2(rootfd, ".", &unix.OpenHow{Flags: unix.O_PATH | unix.O_CLOEXEC, Resolve: unix.RESOLVE_BENEATH})
	if err != nil {
		return false
	}
	unix.Close(fd)
	return true
}

// memReader is a small file in memory for http.ServeContent; the
// countingWriter writes its bytes straight from the buffer.
type memReader struct {
	data []byte
	off  int64
}

func (m *memReader) Read(p []byte) (int, error) {
	if m.off >= int64(len(m.data)) {
		return 0, io.EOF
	}
	n := copy(p, m.data[m.off:])
	m.off += int64(n)
	return n, nil
}

func (m *memReader) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += m.off
	case io.SeekEnd:
		offset += int64(len(m.data))
	default:
		return 0, errors.New("memReader.Seek: invalid whence")
	}
	if offset < 0 {
		return 0, errors.New("memReader.Seek: negative position")
	}
	m.off = offset
	return offset, nil
}

// next returns up to n bytes from the current offset and moves past them.
func (m *memReader) next(n int64) []byte {
	start := min(m.off, int64(len(m.data)))
	end := min(start+n, int64(len(m.data)))
	m.off = end
	return m.data[start:end]
}
