package snapshot

import (
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"sync"
	"unsafe"

	"github.com/seqmirror/seqmirror/internal/fsys"
	"github.com/seqmirror/seqmirror/internal/retry"
	"github.com/seqmirror/seqmirror/internal/tree"
	"github.com/seqmirror/seqmirror/manifest"
	"golang.org/x/sys/unix"
)

// changeWatch confirms a listing through inotify instead of a second walk.
//
// The walker adds a watch on each directory it lists, after opening it and
// before reading its names, so every change to the directory's entries
// after that point (created, deleted, renamed, written, truncated, chmod,
// touched) queues an event. If none is queued when the copy is done, every
// entry was unchanged from the moment it was listed until then, which is
// what the second walk (confirmListing) establishes by listing the tree
// again, at the cost of one fstatat per entry.
//
// inotify reports a write to the parent directory of the name it was made
// through, so a file with other hard links could change unseen: files
// listed with a link count above one are kept aside and stat'ed again by
// check (a few thousand at most: a tree of hard links is confirmed by the
// second walk). Writes through a shared writable mmap raise no event (nor, once
// the page is dirty, a new mtime for a second walk to see). On network
// and FUSE filesystems changes made elsewhere raise no event at all: the
// watch gives up (fails) on any directory that is not on a local
// filesystem it knows, and publish then walks the tree a second time.
type changeWatch struct {
	fd   int
	wake int           // eventfd that stops the notify goroutine
	done chan struct{} // closed when the notify goroutine returns

	mu     sync.Mutex
	seen   error            // the change the notify goroutine read
	failed error            // why the watch cannot vouch for the listing
	linked []manifest.Entry // files listed with more than one link
	dirs   map[int]string   // watch descriptor -> directory, for messages
	// maxLinked bounds linked, which check stats one by one; beyond it the
	// watch gives up and the (parallel) second walk confirms the listing.
	maxLinked int
	// prefix and skip (see leaveOut) name the paths whose events are no
	// change to the listing.
	prefix string
	skip   func(rel string) bool
}

// watchMask is every event that means a directory's listing changed.
// Reads (IN_ACCESS, IN_OPEN, IN_CLOSE_NOWRITE), such as publish's own
// copies, are not among them; the kernel adds IN_Q_OVERFLOW and IN_IGNORED.
const watchMask = unix.IN_MODIFY | unix.IN_ATTRIB | unix.IN_CLOSE_WRITE | unix.IN_CREATE |
	unix.IN_DELETE | unix.IN_DELETE_SELF | unix.IN_MOVE_SELF | unix.IN_MOVED_FROM |
	unix.IN_MOVED_TO | unix.IN_ONLYDIR

// localFS lists the filesystems (statfs f_type) on which every change,
// whoever makes it, goes through this kernel and so raises inotify events.
var localFS = map[int64]string{
	0xEF53:     "ext4", // and ext2, ext3
	0x58465342: "xfs",
	0x9123683E: "btrfs",
	0x01021994: "tmpfs",
	0xF2F52010: "f2fs",
	0x2FC12FC1: "zfs",
	0xCA451A4E: "bcachefs",
}

// newChangeWatch starts an inotify instance. It never returns nil; a watch
// that could not start is failed, and check reports why.
func newChangeWatch() *changeWatch {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return &changeWatch{fd: -1, failed: fmt.Errorf("inotify_init1: %w", err)}
	}
	return &changeWatch{fd: fd, dirs: map[int]string{}, maxLinked: 4096}
}

func (w *changeWatch) Fail(err error) {
	w.mu.Lock()
	if w.failed == nil {
		w.failed, w.linked = err, nil
	}
	w.mu.Unlock()
}

func (w *changeWatch) ok() bool { return w.why() == nil }

// why says why the watch cannot vouch for the listing (nil: it can).
func (w *changeWatch) why() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.failed
}

// addDir watches the directory open as dirfd (full is its path, for
// messages). Call it before reading the directory.
func (w *changeWatch) AddDir(dirfd int, full string) {
	if !w.ok() {
		return
	}
	var st unix.Statfs_t
	if err := unix.Fstatfs(dirfd, &st); err != nil {
		w.Fail(fmt.Errorf("statfs %s: %w", full, err))
		return
	}
	if _, ok := localFS[int64(st.Type)]; !ok {
		w.Fail(fmt.Errorf("%s is on a filesystem (type %#x) whose changes may not raise inotify events", full, st.Type))
		return
	}
	// Through /proc, the watch lands on exactly the directory that is
	// open, whatever its path now leads to.
	wd, err := unix.InotifyAddWatch(w.fd, "/proc/self/fd/"+strconv.Itoa(dirfd), watchMask)
	if err != nil {
		if errors.Is(err, unix.ENOSPC) {
			err = fmt.Errorf("%w (the inotify watch limit, sysctl fs.inotify.max_user_watches, is too low for this tree)", err)
		}
		w.Fail(fmt.Errorf("watch %s: %w", full, err))
		return
	}
	w.mu.Lock()
	w.dirs[wd] = full
	w.mu.Unlock()
}

// noteFile records a regular file listed with nlink links.
func (w *changeWatch) NoteFile(e *manifest.Entry, nlink uint64) {
	if nlink <= 1 {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.failed != nil {
		return
	}
	if len(w.linked) == w.maxLinked {
		w.failed = fmt.Errorf("more than %d source files have other hard links", w.maxLinked)
		w.linked = nil
		return
	}
	w.linked = append(w.linked, *e)
}

// notify calls onChange, once, from its own goroutine, as soon as an event
// is queued (publish cancels the attempt with it rather than finishing a
// copy that check will refuse).
func (w *changeWatch) notify(onChange func(error)) {
	if w.fd < 0 || w.done != nil {
		return
	}
	wake, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return // check still sees every event; the attempt just runs to its end
	}
	w.wake, w.done = wake, make(chan struct{})
	go func() {
		defer close(w.done)
		fds := []unix.PollFd{{Fd: int32(w.fd), Events: unix.POLLIN}, {Fd: int32(wake), Events: unix.POLLIN}}
		for {
			if _, err := unix.Poll(fds, -1); err == unix.EINTR {
				continue
			} else if err != nil || fds[1].Revents != 0 || fds[0].Revents == 0 {
				return
			}
			if err := w.read(); err != nil {
				w.mu.Lock()
				w.seen = err
				w.mu.Unlock()
				onChange(err)
				return
			}
			// Only events about paths left out of the listing: go on.
		}
	}()
}

// halt stops the notify goroutine, if any, and waits for it.
func (w *changeWatch) halt() {
	if w.done != nil {
		unix.Write(w.wake, []byte{1, 0, 0, 0, 0, 0, 0, 0}) // eventfd: add 1
		<-w.done
		unix.Close(w.wake)
		w.done = nil
	}
}

// read returns a retry.Error for the first queued event, nil if none is.
func (w *changeWatch) read() error {
	buf := make([]byte, unix.SizeofInotifyEvent+unix.NAME_MAX+1)
	for {
		n, err := unix.Read(w.fd, buf)
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			return nil
		case err != nil:
			return fmt.Errorf("read inotify events: %w", err)
		case n >= unix.SizeofInotifyEvent:
			if ev := w.firstChange(buf[:n]); ev != nil {
				return retry.Again(w.describe(ev) + " while copying")
			}
			continue // every event was about a path left out
		}
		return nil
	}
}

// check reports whether anything changed since each directory was
// watched: a retry.Error if an event is queued or a hard-linked file
// (path relative to dir, on f) stats differently, another error if the
// watch cannot tell (then confirm by walking). It stops notify.
func (w *changeWatch) check(f fsys.FS, dir string) error {
	w.halt()
	w.mu.Lock()
	failed, seen := w.failed, w.seen
	w.mu.Unlock()
	if failed != nil {
		return failed
	}
	if seen != nil {
		return seen
	}
	if err := w.read(); err != nil {
		return err
	}
	for _, e := range w.linked {
		full := filepath.Join(dir, filepath.FromSlash(e.Path))
		fi, err := fsys.Lstat(f, full)
		var a manifest.Entry
		if err == nil {
			a, err = tree.EntryFromInfo(f, full, e.Path, fi)
		}
		if err != nil {
			return retry.Againf("%s: %v", e.Path, err)
		}
		if a.Type != e.Type || a.Mode != e.Mode || a.Size != e.Size || a.MTime != e.MTime {
			return retry.Again(e.Path + " changed while copying")
		}
	}
	return nil
}

// describe names the first event in buf for a message.
func (w *changeWatch) describe(buf []byte) string {
	ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[0]))
	w.mu.Lock()
	where := w.dirs[int(ev.Wd)]
	w.mu.Unlock()
	if l := int(ev.Len); l > 0 && unix.SizeofInotifyEvent+l <= len(buf) {
		where = filepath.Join(where, unix.ByteSliceToString(buf[unix.SizeofInotifyEvent:unix.SizeofInotifyEvent+l]))
	}
	what := "a directory was moved or removed"
	switch m := ev.Mask; {
	case m&unix.IN_Q_OVERFLOW != 0:
		return "many entries changed"
	case m&(unix.IN_MODIFY|unix.IN_CLOSE_WRITE) != 0:
		what = "an entry was written"
	case m&unix.IN_ATTRIB != 0:
		what = "an entry's metadata changed"
	case m&(unix.IN_CREATE|unix.IN_MOVED_TO) != 0:
		what = "an entry was added"
	case m&(unix.IN_DELETE|unix.IN_MOVED_FROM) != 0:
		what = "an entry was removed"
	}
	if where != "" {
		what += ": " + where
	}
	return what
}

// Close releases the inotify instance and its watches, in the background:
// closing an inotify descriptor waits for an RCU grace period (~10 ms here)
// before the marks are freed, which nobody needs to wait for. Call it from
// the goroutine that made the watch; a second call does nothing.
func (w *changeWatch) Close() {
	w.halt()
	if w.fd >= 0 {
		go unix.Close(w.fd)
		w.fd = -1
	}
}
