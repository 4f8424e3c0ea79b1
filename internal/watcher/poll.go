package watcher

import (
	"encoding/binary"
	"io/fs"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/cespare/xxhash/v2"
)

// pollWatch is the polling source: it lists the tree every interval and
// reports a change when the listing's digest differs from the last one.
type pollWatch struct {
	root   string
	every  time.Duration
	change chan struct{}
	done   chan struct{}
	wg     sync.WaitGroup
}

// startPoll polls the tree at root, saying why (a line at warning level:
// changes are seen up to an interval late, at the cost of a listing).
func startPoll(root string, opt *Options, why string) *pollWatch {
	opt.Log.Warn("polling the tree for changes instead of watching it", "root", root, "why", why, "interval", opt.PollInterval)
	p := &pollWatch{root: root, every: opt.PollInterval, change: make(chan struct{}, 1), done: make(chan struct{})}
	first := treeDigest(root)
	p.wg.Add(1)
	go p.run(first)
	return p
}

func (p *pollWatch) changed() <-chan struct{} { return p.change }
func (p *pollWatch) fallback() <-chan string  { return nil }

func (p *pollWatch) close() {
	close(p.done)
	p.wg.Wait()
}

func (p *pollWatch) run(last uint64) {
	defer p.wg.Done()
	t := time.NewTicker(p.every)
	defer t.Stop()
	for {
		select {
		case <-p.done:
			return
		case <-t.C:
		}
		if d := treeDigest(p.root); d != last {
			last = d
			select {
			case p.change <- struct{}{}:
			default:
			}
		}
	}
}

// treeDigest digests the listing of the tree at root: each entry's path,
// type and permissions, size, inode, modification and change times (the
// ctime moves on any write, chmod, link or rename, even one that puts the
// mtime back). An entry that cannot be read adds its error.
func treeDigest(root string) uint64 {
	h := xxhash.New()
	var buf [8]byte
	num := func(v uint64) {
		binary.LittleEndian.PutUint64(buf[:], v)
		h.Write(buf[:])
	}
	_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		h.WriteString(p)
		h.Write([]byte{0})
		if err != nil {
			h.WriteString(err.Error())
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			h.WriteString(err.Error())
			return nil
		}
		num(uint64(fi.Mode()))
		num(uint64(fi.Size()))
		num(uint64(fi.ModTime().UnixNano()))
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			num(st.Ino)
			num(uint64(st.Ctim.Sec)*1e9 + uint64(st.Ctim.Nsec))
		}
		return nil
	})
	return h.Sum64()
}
