package snapshot

import (
	"path/filepath"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// leaveOut makes the watch ignore events about the paths skip leaves out
// of the listing of dir (the walk's skip function): an excluded log being
// written, or a lock git takes in a repository, changes nothing publish
// copies.
func (w *changeWatch) leaveOut(dir string, skip func(rel string) bool) {
	if skip == nil {
		return
	}
	prefix := filepath.Clean(dir)
	if !strings.HasSuffix(prefix, string(filepath.Separator)) {
		prefix += string(filepath.Separator)
	}
	w.prefix, w.skip = prefix, skip
}

// firstChange returns the first event in buf (whole events, as read) that
// is not about a path left out, or nil.
func (w *changeWatch) firstChange(buf []byte) []byte {
	for off := 0; off+unix.SizeofInotifyEvent <= len(buf); {
		ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
		end := off + unix.SizeofInotifyEvent + int(ev.Len)
		if end > len(buf) || !w.leftOut(ev, buf[off+unix.SizeofInotifyEvent:end]) {
			return buf[off:]
		}
		off = end
	}
	return nil
}

// leftOut reports whether ev, with name as its name field, is about a
// path of the source that the listing leaves out.
func (w *changeWatch) leftOut(ev *unix.InotifyEvent, name []byte) bool {
	n := unix.ByteSliceToString(name)
	if w.skip == nil || ev.Mask&unix.IN_Q_OVERFLOW != 0 || n == "" {
		return false
	}
	w.mu.Lock()
	dir, ok := w.dirs[int(ev.Wd)]
	w.mu.Unlock()
	if !ok {
		return false
	}
	full := filepath.Join(dir, n)
	rel, ok := strings.CutPrefix(full, w.prefix)
	return ok && rel != "" && w.skip(filepath.ToSlash(rel))
}
