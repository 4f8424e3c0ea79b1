package manifest

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strconv"
	"strings"

	"github.com/cespare/xxhash/v2"
)

var (
	// ErrCorrupt is wrapped by errors for a manifest that is malformed,
	// truncated, or whose checksum does not match.
	ErrCorrupt = errors.New("corrupt manifest")
	// ErrUnsafePath is wrapped by errors for a record whose path could make
	// a writer leave the snapshot directory or is otherwise not allowed.
	ErrUnsafePath = errors.New("unsafe path in manifest")
)

// The versions of the format, and their first lines. Version 2 names a
// file's content by its SHA-256 (Entry.Digest) where version 1 has its
// xxhash64; a Reader takes both, a Writer writes either (NewWriter: the
// current one).
const (
	Version1 = 1
	Version2 = 2
	// Current is the version NewWriter and Manifest.Encode write.
	Current = Version2
	// Magic1 is the first line of a version 1 manifest.
	Magic1 = "seqmirror-manifest 1"
	// Magic is the first line of a version 2 manifest.
	Magic = "seqmirror-manifest 2"
)

// magicPrefix is what the first line of every version starts with.
const magicPrefix = "seqmirror-manifest "

// MagicOf returns the first line of a manifest of version v ("" if v is
// not a version of the format).
func MagicOf(v int) string {
	switch v {
	case Version1:
		return Magic1
	case Version2:
		return Magic
	}
	return ""
}

// IsMagic reports whether line (without its newline) is the first line of
// a manifest of a version this package reads.
func IsMagic(line string) bool { return versionOf(line) != 0 }

func versionOf(line string) int {
	switch line {
	case Magic1:
		return Version1
	case Magic:
		return Version2
	}
	return 0
}

// MaxSize is the largest file size a manifest may claim (1 TiB).
const MaxSize = 1 << 40

// maxPath bounds a record's path (and symlink target), as PATH_MAX does.
const maxPath = 4096

// maxLine bounds one record: two encoded maxPath-byte paths and the fields.
const maxLine = 3*maxPath*2 + 256

// Type of a record.
type Type byte

// Record types.
const (
	File    Type = 'f'
	Dir     Type = 'd'
	Symlink Type = 'l'
)

// Entry is one record: a directory, regular file or symlink.
type Entry struct {
	Path   string      // slash-separated, relative, clean
	Type   Type        // File, Dir or Symlink
	Mode   fs.FileMode // permission bits only (0..0777)
	Size   int64       // bytes for files, len(Target) for symlinks, 0 for dirs
	MTime  int64       // nanoseconds since the Unix epoch; 0 for symlinks
	Hash   uint64      // files only: xxhash64 of the content (version 1), Digest's first 8 bytes (version 2)
	Digest Digest      // files of a version 2 manifest only: SHA-256 of the content
	Target string      // symlink target, symlinks only
}

// SameContent reports whether a and b describe the same object: same type,
// mode, size, mtime, hash, digest and target (the path is not compared). A
// version 1 record and a version 2 record of a file are never the same: the
// first vouches for no digest.
func (a Entry) SameContent(b Entry) bool {
	return a.Type == b.Type && a.Mode == b.Mode && a.Size == b.Size &&
		a.MTime == b.MTime && a.Hash == b.Hash && a.Digest == b.Digest && a.Target == b.Target
}

// Compare orders paths canonically: bytewise, with '/' below every other byte.
func Compare(a, b string) int {
	n := min(len(a), len(b))
	for i := 0; i < n; i++ {
		ca, cb := a[i], b[i]
		if ca == cb {
			continue
		}
		if ca == '/' {
			return -1
		}
		if cb == '/' {
			return 1
		}
		if ca < cb {
			return -1
		}
		return 1
	}
	switch {
	case len(a) < len(b):
		return -1
	case len(a) > len(b):
		return 1
	}
	return 0
}

// CheckPath returns an error wrapping ErrUnsafePath unless p is a relative,
// clean, slash-separated path with no ".." component and no NUL.
func CheckPath(p string) error {
	if cleanRel(p) {
		return nil
	}
	switch {
	case p == "" || p == ".":
		return fmt.Errorf("%w: empty path", ErrUnsafePath)
	case strings.IndexByte(p, 0) >= 0:
		return fmt.Errorf("%w: NUL in %q", ErrUnsafePath, p)
	case strings.HasPrefix(p, "/"):
		return fmt.Errorf("%w: absolute path %q", ErrUnsafePath, p)
	case path.Clean(p) != p:
		return fmt.Errorf("%w: path %q is not clean", ErrUnsafePath, p)
	case p == ".." || strings.HasPrefix(p, "../") || strings.Contains(p, "/../") || strings.HasSuffix(p, "/.."):
		return fmt.Errorf("%w: path %q contains ..", ErrUnsafePath, p)
	}
	return nil
}

// cleanRel is the fast path of CheckPath: p is non-empty, relative, without
// NUL, and every component is neither empty nor "." nor "..".
func cleanRel(p string) bool {
	start := 0
	for i := 0; i <= len(p); i++ {
		if i < len(p) && p[i] != '/' {
			if p[i] == 0 {
				return false
			}
			continue
		}
		switch p[start:i] {
		case "", ".", "..":
			return false
		}
		start = i + 1
	}
	return true
}

// Escape percent-encodes every byte outside 0x21..0x7e, and '%'.
func Escape(s string) string {
	need := false
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= 0x20 || c >= 0x7f || c == '%' {
			need = true
			break
		}
	}
	if !need {
		return s
	}
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= 0x20 || c >= 0x7f || c == '%' {
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
		} else {
			b.WriteByte(c)
		}
	}
	return b.String()
}

// Unescape reverses Escape and insists the input was canonical.
func Unescape(s string) (string, error) {
	if strings.IndexByte(s, '%') < 0 {
		for i := 0; i < len(s); i++ {
			if c := s[i]; c <= 0x20 || c >= 0x7f {
				return "", fmt.Errorf("%w: raw byte %#x in field", ErrCorrupt, c)
			}
		}
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '%' {
			if c <= 0x20 || c >= 0x7f {
				return "", fmt.Errorf("%w: raw byte %#x in field", ErrCorrupt, c)
			}
			b.WriteByte(c)
			continue
		}
		if i+2 >= len(s) {
			return "", fmt.Errorf("%w: truncated escape in %q", ErrCorrupt, s)
		}
		v, err := strconv.ParseUint(s[i+1:i+3], 16, 8)
		if err != nil || strings.ToUpper(s[i+1:i+3]) != s[i+1:i+3] {
			return "", fmt.Errorf("%w: bad escape in %q", ErrCorrupt, s)
		}
		c = byte(v)
		if !(c <= 0x20 || c >= 0x7f || c == '%') {
			return "", fmt.Errorf("%w: needless escape in %q", ErrCorrupt, s)
		}
		b.WriteByte(c)
		i += 2
	}
	return b.String(), nil
}

// AppendRecord appends e's record line (with newline) to buf: a file's
// content field is its Digest if it has one (version 2), else its Hash.
func AppendRecord(buf []byte, e Entry) []byte {
	m := uint32(e.Mode.Perm())
	buf = append(buf, byte(e.Type), ' ', '0', byte('0'+m>>6&7), byte('0'+m>>3&7), byte('0'+m&7), ' ')
	buf = strconv.AppendInt(buf, e.Size, 10)
	buf = append(buf, ' ')
	buf = strconv.AppendInt(buf, e.MTime, 10)
	buf = append(buf, ' ')
	switch {
	case e.Type == File && !e.Digest.IsZero():
		buf = hex.AppendEncode(buf, e.Digest[:])
	case e.Type == File:
		buf = appendHex16(buf, e.Hash)
	default:
		buf = append(buf, '-')
	}
	buf = append(buf, ' ')
	buf = append(buf, Escape(e.Path)...)
	if e.Type == Symlink {
		buf = append(buf, ' ')
		buf = append(buf, Escape(e.Target)...)
	}
	return append(buf, '\n')
}

// appendHex16 appends h as 16 lowercase hex digits (fmt's %016x).
func appendHex16(buf []byte, h uint64) []byte {
	const hex = "0123456789abcdef"
	for shift := 60; shift >= 0; shift -= 4 {
		buf = append(buf, hex[h>>uint(shift)&15])
	}
	return buf
}

// Writer streams a manifest. Add records in canonical order, then Close.
type Writer struct {
	w     *bufio.Writer
	h     *xxhash.Digest
	v     validator
	count int
	buf   []byte
	err   error
}

// NewWriter starts a manifest of the current version for snapshot snap on w.
func NewWriter(w io.Writer, snap uint64) *Writer {
	return NewVersionWriter(w, snap, Current)
}

// NewVersionWriter starts a manifest of version v (Version1 or Version2;
// anything else is the current version) for snapshot snap on w. Version 2
// requires a Digest on every file record, version 1 refuses one.
func NewVersionWriter(w io.Writer, snap uint64, v int) *Writer {
	if MagicOf(v) == "" {
		v = Current
	}
	mw := &Writer{w: bufio.NewWriterSize(w, 256<<10), h: xxhash.New(), v: validator{version: v}}
	mw.emit([]byte(fmt.Sprintf("%s\nsnapshot %d\n", MagicOf(v), snap)))
	return mw
}

func (w *Writer) emit(b []byte) {
	if w.err != nil {
		return
	}
	w.h.Write(b)
	_, w.err = w.w.Write(b)
}

// Add appends e, refusing records that a Reader would refuse.
func (w *Writer) Add(e Entry) error {
	if w.err != nil {
		return w.err
	}
	if err := w.v.check(e); err != nil {
		return err
	}
	w.buf = AppendRecord(w.buf[:0], e)
	w.emit(w.buf)
	w.count++
	return w.err
}

// Close writes the footer and flushes. It does not close the underlying writer.
func (w *Writer) Close() error {
	if w.err != nil {
		return w.err
	}
	footer := fmt.Sprintf("end %d %016x\n", w.count, w.h.Sum64())
	if _, err := w.w.WriteString(footer); err != nil {
		return err
	}
	return w.w.Flush()
}

// validator enforces the safety rules over a stream of records.
type validator struct {
	version int // Version1 or Version2
	prev    string
	first   bool
	dirs    []string // stack of directories that are ancestors of prev
}

func (v *validator) check(e Entry) error {
	if err := CheckPath(e.Path); err != nil {
		return err
	}
	if len(e.Path) > maxPath {
		return fmt.Errorf("%w: path %q... is %d bytes, longer than %d", ErrUnsafePath, e.Path[:64], len(e.Path), maxPath)
	}
	if v.first && Compare(v.prev, e.Path) >= 0 {
		if v.prev == e.Path {
			return fmt.Errorf("%w: duplicate path %q", ErrUnsafePath, e.Path)
		}
		return fmt.Errorf("%w: %q listed after %q (not canonical order)", ErrUnsafePath, e.Path, v.prev)
	}
	v.first, v.prev = true, e.Path
	parent := "." // path.Dir of a clean path, without its Clean
	if i := strings.LastIndexByte(e.Path, '/'); i >= 0 {
		parent = e.Path[:i]
	}
	for len(v.dirs) > 0 && !(parent == v.dirs[len(v.dirs)-1] || isBelow(parent, v.dirs[len(v.dirs)-1])) {
		v.dirs = v.dirs[:len(v.dirs)-1]
	}
	if parent != "." && (len(v.dirs) == 0 || v.dirs[len(v.dirs)-1] != parent) {
		return fmt.Errorf("%w: %q: parent %q is not listed before it as a directory", ErrUnsafePath, e.Path, parent)
	}
	if e.Mode&^0o777 != 0 {
		return fmt.Errorf("%w: %q: mode %o beyond 0777", ErrCorrupt, e.Path, e.Mode)
	}
	switch e.Type {
	case Dir:
		if e.Size != 0 || e.Hash != 0 || !e.Digest.IsZero() || e.Target != "" {
			return fmt.Errorf("%w: directory %q with size, hash or target", ErrCorrupt, e.Path)
		}
		v.dirs = append(v.dirs, e.Path)
	case File:
		if e.Size < 0 || e.Size > MaxSize {
			return fmt.Errorf("%w: %q: size %d outside 0..%d", ErrCorrupt, e.Path, e.Size, int64(MaxSize))
		}
		if e.Target != "" {
			return fmt.Errorf("%w: file %q with a target", ErrCorrupt, e.Path)
		}
		return v.checkDigest(e)
	case Symlink:
		if e.Target == "" || strings.IndexByte(e.Target, 0) >= 0 || len(e.Target) > 4096 {
			return fmt.Errorf("%w: symlink %q with bad target", ErrCorrupt, e.Path)
		}
		if e.Size != int64(len(e.Target)) || e.Hash != 0 || !e.Digest.IsZero() || e.MTime != 0 {
			return fmt.Errorf("%w: symlink %q: size must be len(target), mtime 0, no hash", ErrCorrupt, e.Path)
		}
	default:
		return fmt.Errorf("%w: %q: unknown type %q", ErrCorrupt, e.Path, byte(e.Type))
	}
	return nil
}

// checkDigest is the version rule for a file record's content field: in
// version 2 a non-zero Digest whose first 8 bytes are the Hash, in version
// 1 no Digest.
func (v *validator) checkDigest(e Entry) error {
	switch {
	case v.version == Version1 && !e.Digest.IsZero():
		return fmt.Errorf("%w: file %q: a version 1 record has no digest", ErrCorrupt, e.Path)
	case v.version == Version1:
		return nil
	case e.Digest.IsZero():
		return fmt.Errorf("%w: file %q: a version 2 record needs a non-zero SHA-256 digest", ErrCorrupt, e.Path)
	case e.Hash != e.Digest.Hash():
		return fmt.Errorf("%w: file %q: hash %016x is not its digest's first 8 bytes", ErrCorrupt, e.Path, e.Hash)
	}
	return nil
}

// isBelow reports whether p lies below directory dir (strings.HasPrefix(p,
// dir+"/") without building the string).
func isBelow(p, dir string) bool {
	return len(p) > len(dir) && p[len(dir)] == '/' && p[:len(dir)] == dir
}

// Reader streams and validates a manifest.
type Reader struct {
	s        *bufio.Reader
	h        *xxhash.Digest
	v        validator
	snapshot uint64
	count    int
	done     bool
	line     int
}

// NewReader reads the header from r.
func NewReader(r io.Reader) (*Reader, error) {
	mr := &Reader{s: bufio.NewReaderSize(r, 256<<10), h: xxhash.New()}
	l, err := mr.readLine()
	if err != nil {
		return nil, err
	}
	mr.v.version = versionOf(l)
	if mr.v.version == 0 {
		return nil, fmt.Errorf("%w: first line (%d bytes) is neither %q nor %q (not a seqmirror manifest, or a newer version)", ErrCorrupt, len(l), Magic1, Magic)
	}
	mr.h.WriteString(l + "\n")
	l, err = mr.readLine()
	if err != nil {
		return nil, err
	}
	num, ok := strings.CutPrefix(l, "snapshot ")
	n, perr := strconv.ParseUint(num, 10, 64)
	if !ok || perr != nil || n == 0 || strconv.FormatUint(n, 10) != num {
		return nil, fmt.Errorf("%w: line 2 (%d bytes) is not \"snapshot N\" with N >= 1", ErrCorrupt, len(l))
	}
	mr.h.WriteString(l + "\n")
	mr.snapshot = n
	return mr, nil
}

func (r *Reader) readLine() (string, error) {
	l, err := r.readLineBytes()
	if err != nil {
		return "", err
	}
	return string(l[:len(l)-1]), nil
}

// readLineBytes returns the next line with its newline. The slice is valid
// until the next read; a line that fits the buffer is not copied.
func (r *Reader) readLineBytes() ([]byte, error) {
	r.line++
	var buf []byte
	for {
		frag, err := r.s.ReadSlice('\n')
		if buf == nil && err == nil {
			if len(frag) > maxLine {
				return nil, fmt.Errorf("%w: line %d longer than %d bytes", ErrCorrupt, r.line, maxLine)
			}
			return frag, nil
		}
		buf = append(buf, frag...)
		if len(buf) > maxLine {
			return nil, fmt.Errorf("%w: line %d longer than %d bytes", ErrCorrupt, r.line, maxLine)
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err == io.EOF {
			return nil, fmt.Errorf("%w: truncated at line %d (no footer)", ErrCorrupt, r.line)
		}
		if err != nil {
			return nil, fmt.Errorf("read manifest: %w", err)
		}
		return buf, nil
	}
}

// Snapshot is the snapshot number the manifest records.
func (r *Reader) Snapshot() uint64 { return r.snapshot }

// Version is the manifest's version (Version1 or Version2).
func (r *Reader) Version() int { return r.v.version }

// Next returns the next record, or io.EOF after a valid footer.
func (r *Reader) Next() (Entry, error) {
	if r.done {
		return Entry{}, io.EOF
	}
	lb, err := r.readLineBytes()
	if err != nil {
		return Entry{}, err
	}
	if bytes.HasPrefix(lb, []byte("end ")) {
		return Entry{}, r.footer(string(lb[4 : len(lb)-1]))
	}
	e, ok := parseRecordFast(lb[:len(lb)-1], r.v.version)
	if !ok {
		// The slow path is the reference; it words the error.
		if e, err = parseRecord(string(lb[:len(lb)-1]), r.v.version); err != nil {
			return Entry{}, fmt.Errorf("line %d: %w", r.line, err)
		}
	}
	if err := r.v.check(e); err != nil {
		return Entry{}, fmt.Errorf("line %d: %w", r.line, err)
	}
	r.h.Write(lb)
	r.count++
	return e, nil
}

// parseRecordFast parses a well-formed record without allocating more than
// the path (and target) strings. It returns ok=false for anything it does not
// accept, and then parseRecord decides (and words the error): whatever it
// accepts, parseRecord accepts with the same result.
func parseRecordFast(l []byte, version int) (Entry, bool) {
	var f [7][]byte
	nf := 0
	for nf < 7 {
		i := bytes.IndexByte(l, ' ')
		if i < 0 {
			f[nf] = l
			nf++
			l = nil
			break
		}
		f[nf] = l[:i]
		nf++
		l = l[i+1:]
	}
	if l != nil || nf < 6 || len(f[0]) != 1 {
		return Entry{}, false
	}
	e := Entry{Type: Type(f[0][0])}
	want := 6
	if e.Type == Symlink {
		want = 7
	}
	if nf != want || len(f[1]) != 4 {
		return Entry{}, false
	}
	var m uint32
	for _, c := range f[1] {
		if c < '0' || c > '7' {
			return Entry{}, false
		}
		m = m<<3 | uint32(c-'0')
	}
	e.Mode = fs.FileMode(m)
	var ok bool
	if e.Size, ok = parseCanonicalInt(f[2]); !ok || e.Size < 0 {
		return Entry{}, false
	}
	if e.MTime, ok = parseCanonicalInt(f[3]); !ok {
		return Entry{}, false
	}
	switch {
	case e.Type == File && version == Version2:
		if len(f[4]) != 2*len(e.Digest) || !decodeLowerHex(e.Digest[:], f[4]) {
			return Entry{}, false
		}
		e.Hash = e.Digest.Hash()
	case e.Type == File:
		var h [8]byte
		if len(f[4]) != 16 || !decodeLowerHex(h[:], f[4]) {
			return Entry{}, false
		}
		e.Hash = binary.BigEndian.Uint64(h[:])
	case len(f[4]) != 1 || f[4][0] != '-':
		return Entry{}, false
	}
	var err error
	if e.Path, err = unescapeBytes(f[5]); err != nil {
		return Entry{}, false
	}
	if e.Type == Symlink {
		if e.Target, err = unescapeBytes(f[6]); err != nil {
			return Entry{}, false
		}
	}
	return e, true
}

// decodeLowerHex decodes src, 2*len(dst) lowercase hex digits, into dst in
// one pass; it reports false for any other byte.
func decodeLowerHex(dst, src []byte) bool {
	for i := range dst {
		hi, lo := unhex[src[2*i]], unhex[src[2*i+1]]
		if hi|lo > 15 {
			return false
		}
		dst[i] = hi<<4 | lo
	}
	return true
}

// unhex maps a lowercase hex digit to its value and every other byte to 255.
var unhex = func() (t [256]byte) {
	for i := range t {
		t[i] = 255
	}
	for c := byte('0'); c <= '9'; c++ {
		t[c] = c - '0'
	}
	for c := byte('a'); c <= 'f'; c++ {
		t[c] = c - 'a' + 10
	}
	return t
}()

// unescapeBytes is Unescape for a field that is still bytes: one allocation
// when nothing is escaped.
func unescapeBytes(b []byte) (string, error) {
	if bytes.IndexByte(b, '%') >= 0 {
		return Unescape(string(b))
	}
	for _, c := range b {
		if c <= 0x20 || c >= 0x7f {
			return "", ErrCorrupt
		}
	}
	return string(b), nil
}

// parseCanonicalInt is parseInt for bytes: a decimal int64 exactly as
// strconv.FormatInt writes it (no '+', no leading zeros, no "-0").
func parseCanonicalInt(b []byte) (int64, bool) {
	neg := len(b) > 0 && b[0] == '-'
	d := b
	if neg {
		d = b[1:]
	}
	if len(d) == 0 || len(d) > 19 || (d[0] == '0' && (len(d) > 1 || neg)) {
		return 0, false
	}
	var u uint64
	for _, c := range d {
		if c < '0' || c > '9' {
			return 0, false
		}
		u = u*10 + uint64(c-'0')
	}
	if neg {
		if u > 1<<63 {
			return 0, false
		}
		return int64(-u), true
	}
	if u > 1<<63-1 {
		return 0, false
	}
	return int64(u), true
}

func (r *Reader) footer(rest string) error {
	cnt, sum, ok := strings.Cut(rest, " ")
	n, err := strconv.Atoi(cnt)
	if !ok || err != nil || strconv.Itoa(n) != cnt || len(sum) != 16 {
		return fmt.Errorf("%w: bad footer (%d bytes)", ErrCorrupt, len(rest))
	}
	if n != r.count {
		return fmt.Errorf("%w: footer counts %d records, read %d", ErrCorrupt, n, r.count)
	}
	if want := string(appendHex16(nil, r.h.Sum64())); sum != want {
		return fmt.Errorf("%w: checksum %s, computed %s (edited or damaged)", ErrCorrupt, sum, want)
	}
	switch _, err := r.s.ReadByte(); {
	case err == nil:
		return fmt.Errorf("%w: data after footer", ErrCorrupt)
	case err != io.EOF:
		return fmt.Errorf("read manifest: %w", err)
	}
	r.done = true
	return io.EOF
}

func parseRecord(l string, version int) (Entry, error) {
	f := strings.Split(l, " ")
	if len(f) < 6 || len(f[0]) != 1 {
		return Entry{}, fmt.Errorf("%w: malformed record (%d bytes)", ErrCorrupt, len(l))
	}
	e := Entry{Type: Type(f[0][0])}
	want := 6
	if e.Type == Symlink {
		want = 7
	}
	if len(f) != want {
		return Entry{}, fmt.Errorf("%w: a record has %d fields, want %d", ErrCorrupt, len(f), want)
	}
	if len(f[1]) != 4 {
		return Entry{}, fmt.Errorf("%w: mode field is not 4 octal digits", ErrCorrupt)
	}
	m, err := strconv.ParseUint(f[1], 8, 32)
	if err != nil {
		return Entry{}, fmt.Errorf("%w: bad mode field", ErrCorrupt)
	}
	e.Mode = fs.FileMode(m)
	if e.Size, err = parseInt(f[2]); err != nil || e.Size < 0 {
		return Entry{}, fmt.Errorf("%w: size field is not a decimal number", ErrCorrupt)
	}
	if e.MTime, err = parseInt(f[3]); err != nil {
		return Entry{}, fmt.Errorf("%w: mtime field is not a decimal number", ErrCorrupt)
	}
	if e.Type == File {
		if e.Hash, e.Digest, err = parseContent(f[4], version); err != nil {
			return Entry{}, err
		}
	} else if f[4] != "-" {
		return Entry{}, fmt.Errorf("%w: hash field on a non-file", ErrCorrupt)
	}
	if e.Path, err = Unescape(f[5]); err != nil {
		return Entry{}, err
	}
	if e.Type == Symlink {
		if e.Target, err = Unescape(f[6]); err != nil {
			return Entry{}, err
		}
	}
	return e, nil
}

// parseContent parses a file record's content field: 16 lowercase hex
// digits of xxhash64 in version 1, 64 of SHA-256 in version 2 (whose first
// 8 bytes are then the hash).
func parseContent(s string, version int) (uint64, Digest, error) {
	var d Digest
	if version == Version2 {
		if len(s) != 64 || strings.ToLower(s) != s {
			return 0, d, fmt.Errorf("%w: digest field is not 64 lowercase hex digits", ErrCorrupt)
		}
		if _, err := hex.Decode(d[:], []byte(s)); err != nil {
			return 0, d, fmt.Errorf("%w: bad digest field", ErrCorrupt)
		}
		return d.Hash(), d, nil
	}
	if len(s) != 16 || strings.ToLower(s) != s {
		return 0, d, fmt.Errorf("%w: hash field is not 16 lowercase hex digits", ErrCorrupt)
	}
	h, err := strconv.ParseUint(s, 16, 64)
	if err != nil {
		return 0, d, fmt.Errorf("%w: bad hash field", ErrCorrupt)
	}
	return h, d, nil
}

func parseInt(s string) (int64, error) {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || strconv.FormatInt(n, 10) != s {
		return 0, errors.New("not canonical")
	}
	return n, nil
}

// Manifest is a whole manifest in memory.
type Manifest struct {
	Snapshot uint64
	Version  int // Version1 or Version2; 0 encodes as Current
	Entries  []Entry
}

// Decode reads and validates a whole manifest.
func Decode(r io.Reader) (*Manifest, error) {
	mr, err := NewReader(r)
	if err != nil {
		return nil, err
	}
	m := &Manifest{Snapshot: mr.Snapshot(), Version: mr.Version()}
	for {
		e, err := mr.Next()
		if err == io.EOF {
			return m, nil
		}
		if err != nil {
			return nil, err
		}
		m.Entries = append(m.Entries, e)
	}
}

// Encode writes m canonically; entries must already be in canonical order.
func (m *Manifest) Encode(w io.Writer) error {
	mw := NewVersionWriter(w, m.Snapshot, m.Version)
	for _, e := range m.Entries {
		if err := mw.Add(e); err != nil {
			return err
		}
	}
	return mw.Close()
}

// Bytes returns the encoded manifest.
func (m *Manifest) Bytes() ([]byte, error) {
	var b bytes.Buffer
	err := m.Encode(&b)
	return b.Bytes(), err
}

// Check validates a whole manifest in one streaming pass and returns its
// snapshot number and record count.
func Check(r io.Reader) (snap uint64, count int, err error) {
	mr, err := NewReader(r)
	if err != nil {
		return 0, 0, err
	}
	for {
		_, err := mr.Next()
		if err == io.EOF {
			return mr.Snapshot(), mr.count, nil
		}
		if err != nil {
			return 0, 0, err
		}
	}
}
