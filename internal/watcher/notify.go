package watcher

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/fsnotify/fsnotify"
	"golang.org/x/sys/unix"
)

// source is one way of seeing the tree's changes.
type source interface {
	// changed receives after one or more changes (they coalesce).
	changed() <-chan struct{}
	// fallback receives why this source can no longer see every change:
	// Run then polls.
	fallback() <-chan string
	close()
}

// errPoll carries why the tree must be polled.
type errPoll struct{ why string }

func (e errPoll) Error() string { return e.why }

// watchTree starts the inotify watch of the tree at root, or polling if
// it must (ForcePoll, a remote filesystem, the watch limit), and says at
// the start which it does.
func watchTree(root string, opt *Options) source {
	if opt.ForcePoll {
		return startPoll(root, opt, "polling was asked for")
	}
	w, err := startNotify(root, opt)
	var p errPoll
	switch {
	case errors.As(err, &p):
		return startPoll(root, opt, p.why)
	case err != nil:
		return startPoll(root, opt, fmt.Sprintf("inotify cannot be used: %v", err))
	}
	return w
}

// notifyWatch is the inotify source: a watch on every directory of the
// tree.
type notifyWatch struct {
	root   string
	w      *fsnotify.Watcher
	opt    *Options
	log    *slog.Logger
	change chan struct{}
	fall   chan string
	done   chan struct{}
	wg     sync.WaitGroup
}

// startNotify watches every directory of the tree at root, or fails with
// errPoll where polling must do.
func startNotify(root string, opt *Options) (*notifyWatch, error) {
	w, err := fsnotify.NewBufferedWatcher(4096)
	if err != nil {
		return nil, err
	}
	n := &notifyWatch{root: root, w: w, opt: opt, log: opt.Log, change: make(chan struct{}, 1), fall: make(chan string, 1), done: make(chan struct{})}
	dirs, err := n.addTree(root)
	if err != nil {
		w.Close()
		return nil, err
	}
	n.log.Info("watching the tree for changes through inotify", "root", root, "directories", dirs)
	n.wg.Add(1)
	go n.run()
	return n, nil
}

func (n *notifyWatch) changed() <-chan struct{} { return n.change }
func (n *notifyWatch) fallback() <-chan string  { return n.fall }

func (n *notifyWatch) close() {
	close(n.done)
	n.w.Close()
	n.wg.Wait()
}

// addTree adds a watch on dir and every directory below it, checking
// each one's filesystem; it returns how many it added. A directory that
// vanished meanwhile is no error (its removal is a change already seen).
func (n *notifyWatch) addTree(dir string) (int, error) {
	added := 0
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return fmt.Errorf("list %s: %w", p, err)
		}
		if !d.IsDir() {
			return nil
		}
		if why := pollReason(n.opt.fsType, p); why != "" {
			return errPoll{why}
		}
		if err := n.opt.addWatch(n.w, p); err != nil {
			return n.addFailed(p, err)
		}
		added++
		return nil
	})
	return added, err
}

// addFailed says what a failed watch of dir means: nothing if dir
// vanished, polling at the watch limit, else an error.
func (n *notifyWatch) addFailed(dir string, err error) error {
	switch {
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, unix.ENOTDIR):
		return nil
	case errors.Is(err, unix.ENOSPC):
		return errPoll{fmt.Sprintf("the inotify watch limit is reached at %s (fs.inotify.max_user_watches = %s; raise it with sysctl to watch instead of polling)", dir, sysctl("fs/inotify/max_user_watches"))}
	}
	return fmt.Errorf("watch %s: %w", dir, err)
}

// sysctl reads /proc/sys/name ("?" if it cannot).
func sysctl(name string) string {
	b, err := os.ReadFile("/proc/sys/" + name)
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(string(b))
}

// run turns inotify's events into changes, adding each new directory (and
// what it holds) to the watch, until close.
func (n *notifyWatch) run() {
	defer n.wg.Done()
	for {
		select {
		case <-n.done:
			return
		case ev, ok := <-n.w.Events:
			if !ok {
				return
			}
			if !n.event(ev) {
				return
			}
		case err, ok := <-n.w.Errors:
			if !ok {
				return
			}
			if !errors.Is(err, fsnotify.ErrEventOverflow) {
				n.log.Warn("inotify reported an error; counting it as a change", "err", err)
			}
			n.signal()
		}
	}
}

// event handles one event: a change, and a new directory to watch. It
// reports false once the watch cannot go on (it sent the fallback).
func (n *notifyWatch) event(ev fsnotify.Event) bool {
	if ev.Name == n.root && (ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename)) {
		// The watch went with the directory; a new one at the same path
		// would raise no event: look at the path from now on.
		n.fall <- fmt.Sprintf("%s itself was removed or renamed", n.root)
		return false
	}
	if ev.Has(fsnotify.Create) {
		if fi, err := os.Lstat(ev.Name); err == nil && fi.IsDir() {
			if _, err := n.addTree(ev.Name); err != nil {
				why := fmt.Sprintf("a new directory cannot be watched: %v", err)
				var p errPoll
				if errors.As(err, &p) {
					why = p.why
				}
				n.fall <- why
				return false
			}
		}
	}
	n.signal()
	return true
}

// signal records a change (a pending one absorbs it).
func (n *notifyWatch) signal() {
	select {
	case n.change <- struct{}{}:
	default:
	}
}
