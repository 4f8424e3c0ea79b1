package snapshot

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"unsafe"

	"github.com/seqmirror/seqmirror/internal/fsys"
	"github.com/seqmirror/seqmirror/manifest"
	"github.com/spf13/afero"
)

// spool holds an attempt's listing of the source, written once as the
// source is listed and read again, as a stream, by each later pass (the
// directories, the files, the confirmation), so that publish keeps no
// record per entry in memory. It is a file in ROOT/.work, removed as soon
// as it is made (nothing of it outlives the process), in a compact binary
// form private to this process: each record's path is stored as the
// length it shares with the path before and the rest, and a linkable
// record carries the served record's hash and digest.
type spool struct {
	h    afero.File
	w    *bufio.Writer
	prev string
	buf  []byte
	size int64 // bytes written, once sealed
}

// spooled is a listed entry and whether the served snapshot has the same
// record (then Hash and Digest are its Sum).
type spooled struct {
	manifest.Entry
	linkable bool
	// settled: btrfs says the entry's inode did not change since the
	// served snapshot was taken (the copy-on-write listing, cowlist.go),
	// so the entry is the served record as it is.
	settled bool
}

// The flags byte of a spooled record.
const (
	spoolLinkable = 1 << iota
	spoolSettled
	spoolDigest // a linkable record's Digest follows its Hash
)

// spoolBuf is the buffer of a spool's writer and of each of its readers.
const spoolBuf = 256 << 10

// newSpool makes an empty spool in dir.
func newSpool(f fsys.FS, dir string) (*spool, error) {
	h, err := afero.TempFile(f, dir, "listing-")
	if err != nil {
		return nil, fmt.Errorf("make listing file: %w", err)
	}
	if err := f.Remove(h.Name()); err != nil {
		h.Close()
		return nil, fmt.Errorf("make listing file: %w", err)
	}
	return &spool{h: h, w: bufio.NewWriterSize(h, spoolBuf)}, nil
}

// add appends r (a linkable record with its Sum).
func (s *spool) add(r *spooled) error {
	e := &r.Entry
	shared := 0
	for shared < len(e.Path) && shared < len(s.prev) && e.Path[shared] == s.prev[shared] {
		shared++
	}
	var flags byte
	if r.linkable {
		flags |= spoolLinkable
		if !e.Digest.IsZero() {
			flags |= spoolDigest
		}
	}
	if r.settled {
		flags |= spoolSettled
	}
	b := append(s.buf[:0], byte(e.Type), flags)
	b = binary.AppendUvarint(b, uint64(e.Mode))
	b = binary.AppendVarint(b, e.Size)
	b = binary.AppendVarint(b, e.MTime)
	if r.linkable {
		b = binary.LittleEndian.AppendUint64(b, e.Hash)
	}
	if flags&spoolDigest != 0 {
		b = append(b, e.Digest[:]...)
	}
	b = binary.AppendUvarint(b, uint64(shared))
	b = binary.AppendUvarint(b, uint64(len(e.Path)-shared))
	b = append(b, e.Path[shared:]...)
	if e.Type == manifest.Symlink {
		b = binary.AppendUvarint(b, uint64(len(e.Target)))
		b = append(b, e.Target...)
	}
	s.buf, s.prev = b, e.Path
	_, err := s.w.Write(b)
	if err != nil {
		return fmt.Errorf("write listing file: %w", err)
	}
	return nil
}

// seal ends the writing; readers may start.
func (s *spool) seal() error {
	if err := s.w.Flush(); err != nil {
		return fmt.Errorf("write listing file: %w", err)
	}
	fi, err := s.h.Stat()
	if err != nil {
		return fmt.Errorf("listing file: %w", err)
	}
	s.size = fi.Size()
	return nil
}

// close releases the file.
func (s *spool) close() {
	if s != nil && s.h != nil {
		s.h.Close()
		s.h = nil
	}
}

// open returns a new reader of the sealed spool, from its start. Readers
// are independent (reads at offsets) and may run at once.
func (s *spool) open() *spoolReader {
	return &spoolReader{r: bufio.NewReaderSize(io.NewSectionReader(s.h, 0, s.size), spoolBuf)}
}

// spoolReader reads a spool's records in order.
type spoolReader struct {
	r    *bufio.Reader
	prev []byte
	err  error
}

// errSpool means the listing file did not read back as written.
var errSpool = errors.New("listing file is damaged")

// next returns the next record, io.EOF after the last.
func (r *spoolReader) next() (spooled, error) {
	if r.err != nil {
		return spooled{}, r.err
	}
	s, err := r.read()
	if err != nil {
		if err != io.EOF {
			err = fmt.Errorf("read listing file: %w", err)
		}
		r.err = err
	}
	return s, err
}

func (r *spoolReader) read() (s spooled, err error) {
	var hdr [2]byte
	if _, err := io.ReadFull(r.r, hdr[:]); err != nil {
		return s, err // io.EOF at a record's start: the end
	}
	s.Type, s.linkable, s.settled = manifest.Type(hdr[0]), hdr[1]&spoolLinkable != 0, hdr[1]&spoolSettled != 0
	mode, err := binary.ReadUvarint(r.r)
	s.Mode = fs.FileMode(mode)
	if err == nil {
		s.Size, err = binary.ReadVarint(r.r)
	}
	if err == nil {
		s.MTime, err = binary.ReadVarint(r.r)
	}
	if err == nil && s.linkable {
		var h [8]byte
		_, err = io.ReadFull(r.r, h[:])
		s.Hash = binary.LittleEndian.Uint64(h[:])
	}
	if err == nil && s.linkable && hdr[1]&spoolDigest != 0 {
		_, err = io.ReadFull(r.r, s.Digest[:])
	}
	if err == nil {
		s.Path, err = r.path()
	}
	if err == nil && s.Type == manifest.Symlink {
		s.Target, err = r.str(nil)
	}
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return s, err
}

// path reads a path stored against the one before.
func (r *spoolReader) path() (string, error) {
	shared, err := binary.ReadUvarint(r.r)
	if err != nil {
		return "", err
	}
	if shared > uint64(len(r.prev)) {
		return "", errSpool
	}
	p, err := r.str(r.prev[:shared])
	if err == nil {
		r.prev = append(r.prev[:0], p...)
	}
	return p, err
}

// str reads a length and that many bytes, appended to prefix.
func (r *spoolReader) str(prefix []byte) (string, error) {
	n, err := binary.ReadUvarint(r.r)
	if err != nil {
		return "", err
	}
	if n > 1<<20 {
		return "", errSpool
	}
	b := make([]byte, len(prefix)+int(n))
	copy(b, prefix)
	if _, err := io.ReadFull(r.r, b[len(prefix):]); err != nil {
		return "", err
	}
	if len(b) == 0 {
		return "", nil
	}
	return unsafe.String(&b[0], len(b)), nil // b is not used again
}

// Next implements manifest.Iterator: the records without their pairing.
func (r *spoolReader) Next() (manifest.Entry, error) {
	s, err := r.next()
	return s.Entry, err
}
