package mirror

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"

	"github.com/seqmirror/seqmirror/internal/export"
	"github.com/seqmirror/seqmirror/internal/transport"
)

// manifests are the upstreams' manifests a run has fetched, each once:
// the failover rule reads the identity of an upstream's snapshot from its
// manifest (fetchID), and the build then takes the same file instead of
// fetching it again (take). A run after a known snapshot (Options.Target,
// a trigger's) also starts the fetch of that snapshot's manifest from
// each upstream whose reads overlap (transport.Overlapping) as soon as
// the poll has read the upstream's seq/end, beside its read of current
// (fetchAhead), so that the manifest costs no round trip of its own.
//
// The protocol's order is kept: seq/end is read first and the manifest
// after it, as in a run that waits for current; only current and the
// manifest overlap. A fetch of a snapshot the run does not copy is dropped
// at the end of the run (close), and its file with it.
type manifests struct {
	root *export.Root
	mu   sync.Mutex
	seq  int
	list []*fetched
}

// fetched is one manifest fetch: upstream up's manifest of snapshot n
// into path, in ROOT/.work. From an upstream whose reads overlap, the
// snapshot's signature and the upstream's timestamp are read beside it
// (signed, when signedOK), so that signatures costs no round trip of its
// own either.
type fetched struct {
	up       string
	n        uint64
	path     string
	done     chan struct{}
	filter   upstreamFilter
	err      error
	signed   [][]byte
	signedOK bool
	cancel   context.CancelFunc
}

// start starts the fetch of up's manifest of n, unless one is there that
// has not failed, and returns it.
func (m *manifests) start(ctx context.Context, up transport.Upstream, n uint64) *fetched {
	m.mu.Lock()
	defer m.mu.Unlock()
	if f := m.removeLocked(up, n); f != nil {
		select {
		case <-f.done:
			if f.err != nil { // failed: fetch again
				return m.startLocked(ctx, up, n)
			}
		default:
		}
		m.list = append(m.list, f)
		return f
	}
	return m.startLocked(ctx, up, n)
}

// removeLocked takes up's fetch of n out of the list and returns it (nil
// if there is none).
func (m *manifests) removeLocked(up transport.Upstream, n uint64) *fetched {
	for i, f := range m.list {
		if f.up == up.String() && f.n == n {
			m.list = append(m.list[:i], m.list[i+1:]...)
			return f
		}
	}
	return nil
}

func (m *manifests) startLocked(ctx context.Context, up transport.Upstream, n uint64) *fetched {
	m.seq++
	ctx, cancel := context.WithCancel(ctx)
	f := &fetched{
		up: up.String(), n: n, done: make(chan struct{}), cancel: cancel,
		path: filepath.Join(m.root.WorkDir(), fmt.Sprintf("fetched-%d%s", m.seq, export.ManifestExt)),
	}
	_ = m.root.FS.Remove(f.path)
	go func() {
		defer close(f.done)
		var wg sync.WaitGroup
		if overlaps(up) {
			wg.Go(func() {
				var err error
				f.signed, err = fetchSigned(ctx, up, signatureName(n), export.TimestampName)
				f.signedOK = err == nil
			})
		}
		f.filter, f.err = fetchManifestFilter(ctx, up, n, f.path)
		wg.Wait()
	}()
	m.list = append(m.list, f)
	return f
}

// get fetches up's manifest of n, or waits for the fetch under way, and
// returns it; the file stays the run's (take or close removes it).
func (m *manifests) get(ctx context.Context, up transport.Upstream, n uint64) (*fetched, error) {
	f := m.start(ctx, up, n)
	<-f.done
	return f, f.err
}

// take moves up's manifest of n, fetched by this run, to dst and returns
// the fetch (its filter file, and the signature files if read): nil if the
// run has fetched none or the fetch failed (then the caller fetches).
func (m *manifests) take(up transport.Upstream, n uint64, dst string) *fetched {
	m.mu.Lock()
	f := m.removeLocked(up, n)
	m.mu.Unlock()
	if f == nil {
		return nil
	}
	<-f.done
	if f.err != nil {
		_ = m.root.FS.Remove(f.path) // a transport that left part of it
		return nil
	}
	if err := m.root.FS.Rename(f.path, dst); err != nil {
		_ = m.root.FS.Remove(f.path)
		return nil
	}
	return f
}

// close stops the fetches not taken, waits for them and removes their
// files (if that fails, the next run empties .work).
func (m *manifests) close() {
	m.mu.Lock()
	list := m.list
	m.list = nil
	m.mu.Unlock()
	for _, f := range list {
		f.cancel()
		<-f.done
		_ = m.root.FS.Remove(f.path)
	}
}

// fetchAhead starts the fetch of the target's manifest from up, whose seq/end
// the poll has just read, if the run is after a snapshot newer than the
// one served, on its first round, and up's reads overlap. The fetch is
// the first write of the new snapshot: it starts the update (seq/begin).
func (s *syncRun) fetchAhead(ctx context.Context, up transport.Upstream) {
	t := s.opt.Target
	if t == 0 || t <= s.res.Snapshot || s.res.Changed {
		return
	}
	if !overlaps(up) {
		return
	}
	s.startOnce.Do(func() { s.startErr = s.u.Start() })
	if s.startErr != nil {
		return // the run fails there again, and says why
	}
	s.mans.start(ctx, up, t)
}

// fetchManifestFilter fetches up's manifest of n to dst and reads its
// filter file (in the same request where the transport can).
func fetchManifestFilter(ctx context.Context, up transport.Upstream, n uint64, dst string) (upstreamFilter, error) {
	if ff, ok := up.(transport.FilterFetcher); ok {
		data, err := ff.FetchManifestFilter(ctx, n, dst)
		return upstreamFilter{data: data, read: true}, err
	}
	return upstreamFilter{}, up.FetchManifest(ctx, n, dst)
}

// overlaps reports whether up's reads may run side by side, each its own
// request (transport.Overlapping: HTTP).
func overlaps(up transport.Upstream) bool {
	o, ok := up.(transport.Overlapping)
	return ok && o.OverlappingReads()
}
