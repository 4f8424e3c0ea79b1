package seqfile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"path/filepath"
	"strconv"

	"github.com/seqmirror/seqmirror/internal/fsys"
)

// ErrCorrupt is wrapped by every error for a seq file whose content is not
// one decimal number and a newline.
var ErrCorrupt = errors.New("corrupt seq file")

// ErrExhausted means a counter is at the largest value a seq file can hold
// (2^64-1): bumping it would wrap to 0, which every reader would take for a
// root that was never updated.
var ErrExhausted = errors.New("seq counter exhausted")

// MaxLen is the largest valid seq file: 20 digits and a newline.
const MaxLen = 21

// Names of the two counters inside ROOT/seq, and of the snapshot pointer
// beside them: seq/current holds, in the same format, the number N of the
// snapshot current points to (snapshots/N), for clients that cannot read a
// symlink (HTTP). A writer rewrites it right after the flip of current and
// before it sets end; while begin != end it may lag current by one update.
const (
	Begin   = "begin"
	End     = "end"
	Current = "current"
)

// Parse parses the content of a seq file. Its errors describe what is wrong
// without quoting the content, which may come from an upstream (or, through
// a symlink, from any file the reader can read).
func Parse(b []byte) (uint64, error) {
	if len(b) < 2 || len(b) > MaxLen || b[len(b)-1] != '\n' {
		return 0, fmt.Errorf("%w: want one decimal number and a newline, got %d bytes%s", ErrCorrupt, len(b), noNewline(b))
	}
	d := b[:len(b)-1]
	if len(d) > 1 && d[0] == '0' {
		return 0, fmt.Errorf("%w: leading zero", ErrCorrupt)
	}
	for _, c := range d {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("%w: not a decimal number (%d bytes)", ErrCorrupt, len(b))
		}
	}
	n, err := strconv.ParseUint(string(d), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: %d digits, out of range (above %d)", ErrCorrupt, len(d), uint64(1<<64-1))
	}
	return n, nil
}

func noNewline(b []byte) string {
	if len(b) > 0 && len(b) <= MaxLen && b[len(b)-1] != '\n' {
		return " with no final newline"
	}
	return ""
}

// Format returns the canonical content of a seq file holding n.
func Format(n uint64) []byte { return strconv.AppendUint(nil, n, 10) }

// ReadFrom reads a seq file's content from r, refusing more than MaxLen bytes.
func ReadFrom(r io.Reader) (uint64, error) {
	b, err := io.ReadAll(io.LimitReader(r, MaxLen+1))
	if err != nil {
		return 0, err
	}
	return Parse(b)
}

// Read reads the seq file at name, which must be a regular file: a symlink,
// a fifo or a device there is an error wrapping ErrCorrupt.
func Read(f fsys.FS, name string) (uint64, error) {
	return ReadBeneath(f, filepath.Dir(name), filepath.Base(name))
}

// ReadBeneath reads the seq file root/rel, opened with fsys.OpenBeneath:
// no symlink below root is followed and only a regular file is read (never
// a fifo, which would block, or a device); anything else is an error
// wrapping ErrCorrupt (and fsys.ErrSymlink or fsys.ErrNotRegular).
func ReadBeneath(f fsys.FS, root, rel string) (uint64, error) {
	name := filepath.Join(root, rel)
	h, err := fsys.OpenBeneath(f, root, rel)
	if fsys.Refused(err) {
		return 0, fmt.Errorf("read seq %s: %w: %w", name, ErrCorrupt, err)
	}
	if err != nil {
		return 0, fmt.Errorf("read seq %s: %w", name, err)
	}
	defer h.Close()
	n, err := ReadFrom(h)
	if err != nil {
		return 0, fmt.Errorf("read seq %s: %w", name, err)
	}
	return n, nil
}

// Write durably writes n to the seq file at name.
func Write(f fsys.FS, name string, n uint64) error {
	b := append(Format(n), '\n')
	if err := fsys.WriteFile(f, name, b, 0o644); err != nil {
		return fmt.Errorf("write seq %s: %w", name, err)
	}
	return nil
}

// Pair is a server's two counters.
type Pair struct {
	Begin, End uint64
}

// Idle reports whether no update is in progress (or died part way).
func (p Pair) Idle() bool { return p.Begin == p.End }

// Counters reads dir/begin and dir/end; a missing file counts as 0.
func Counters(f fsys.FS, dir string) (Pair, error) {
	var p Pair
	var err error
	if p.Begin, err = readOr0(f, filepath.Join(dir, Begin)); err != nil {
		return p, err
	}
	if p.End, err = readOr0(f, filepath.Join(dir, End)); err != nil {
		return p, err
	}
	return p, nil
}

func readOr0(f fsys.FS, name string) (uint64, error) {
	n, err := Read(f, name)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	return n, err
}

// StartUpdate durably bumps dir/begin to max(begin, end)+1 and returns it.
// Call it, under the writer lock, before changing the tree.
func StartUpdate(f fsys.FS, dir string) (uint64, error) {
	p, err := Counters(f, dir)
	if err != nil {
		return 0, err
	}
	hi := max(p.Begin, p.End)
	if hi == math.MaxUint64 {
		return 0, fmt.Errorf("%w: %s holds %d, the largest value a seq file can hold", ErrExhausted, dir, hi)
	}
	next := hi + 1
	if err := f.MkdirAll(dir, 0o755); err != nil {
		return 0, fmt.Errorf("make seq dir %s: %w", dir, err)
	}
	if err := Write(f, filepath.Join(dir, Begin), next); err != nil {
		return 0, err
	}
	return next, nil
}

// FinishUpdate durably sets dir/end to the value StartUpdate returned.
func FinishUpdate(f fsys.FS, dir string, begin uint64) error {
	return Write(f, filepath.Join(dir, End), begin)
}
