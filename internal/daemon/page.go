package daemon

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/seqmirror/seqmirror/internal/export"
	"github.com/seqmirror/seqmirror/internal/fsys"
	"github.com/seqmirror/seqmirror/internal/statuspage"
	"github.com/seqmirror/seqmirror/internal/transport"
)

// StatusPath is the URL path of the status page. An export root serves
// nothing there (its paths are /, /status.json, /seq/, /snapshots/,
// /current and /metrics).
const StatusPath = "/status"

// keepHistory is how many recent snapshots the propagation history keeps:
// as many as the page plots.
const keepHistory = statuspage.MaxPlotted

// StateUnprobed is a downstream's state on the page before its first probe
// has ended.
const StateUnprobed = "not probed yet"

// OpenFunc opens a downstream's export root, at its read address
// (ReadAddress), for a probe. opt bounds the connection and each request.
type OpenFunc func(addr string, opt transport.Options) (transport.Upstream, error)

// openDownstream is the default OpenFunc: transport.Open.
func openDownstream(addr string, opt transport.Options) (transport.Upstream, error) {
	return transport.Open(addr, fsys.OS(), opt)
}

// ReadAddress is where the downstream daemon at the --downstream URL raw
// serves its export root: the URL with a final /trigger path taken off (a
// daemon serves its root at / and its trigger endpoint at /trigger), so
// that http://host:port and http://host:port/trigger both read from
// http://host:port/.
func ReadAddress(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	u.Path = strings.TrimSuffix(u.Path, TriggerPath)
	if u.Path == "" {
		u.Path = "/"
	}
	u.RawPath, u.RawQuery, u.Fragment = "", "", ""
	return u.String()
}

// watch is what the daemon last saw of its downstream mirrors and of the
// propagation of recent snapshots. Its fields are guarded by mu; the
// probing goroutine writes them, page requests read copies.
type watch struct {
	mu      sync.Mutex
	rows    map[string]statuspage.Downstream // by --downstream URL
	names   map[string]string                // by URL: the name its lineage gives
	history []statuspage.Propagation         // newest first, at most keepHistory

	now     chan struct{} // a round of probes is asked for (after a sync)
	flipped chan struct{} // ... after a flip: one more round ProbeAgain later
}

func newWatch() *watch {
	return &watch{rows: map[string]statuspage.Downstream{}, names: map[string]string{},
		now: make(chan struct{}, 1), flipped: make(chan struct{}, 1)}
}

// ask asks the probing goroutine for a round, without waiting: asks made
// while one runs coalesce into one more round.
func (w *watch) ask(flipped bool) {
	if flipped {
		select {
		case w.flipped <- struct{}{}:
		default:
		}
	}
	select {
	case w.now <- struct{}{}:
	default:
	}
}

// probeLoop runs the rounds of probes, one at a time, when asked (after
// every sync) and once more Timing.ProbeAgain after a flip, until ctx is
// done. It is the only writer of the watch.
func (d *Daemon) probeLoop(ctx context.Context) {
	again := time.NewTimer(time.Hour)
	again.Stop()
	defer again.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-d.watch.now:
		case <-again.C:
		}
		select {
		case <-d.watch.flipped:
			again.Reset(d.cfg.Timing.ProbeAgain)
		default:
		}
		d.probeRound(ctx)
	}
}

// probed is one downstream's probe: its row and its lineage.
type probed struct {
	url     string
	row     statuspage.Downstream
	lineage []statuspage.Hop
}

// probeRound probes every downstream at once, each bounded by
// Timing.ProbeTimeout, and records the rows and the arrivals their
// lineages tell, with this server's own.
func (d *Daemon) probeRound(ctx context.Context) {
	st, err := d.root.Status()
	if err != nil {
		d.log.Warn("status page: cannot read the root's status; downstream mirrors not probed", "err", err)
		return
	}
	now := d.cfg.Now()
	urls := d.settings.Load().Downstream
	ctx, cancel := context.WithTimeout(ctx, d.cfg.Timing.ProbeTimeout)
	defer cancel()
	got := make([]probed, len(urls))
	var wg sync.WaitGroup
	for i, u := range urls {
		wg.Go(func() { got[i] = d.probeOne(ctx, u, st.Snapshot, now) })
	}
	wg.Wait()
	d.watch.record(got, ownLineage(d.cfg.Name, st))
}

// probeOne probes the downstream at the --downstream URL u.
func (d *Daemon) probeOne(ctx context.Context, u string, ours uint64, now time.Time) probed {
	addr := ReadAddress(u)
	a := statuspage.ProbeArgs{Name: d.watch.name(u), URL: addr, Ours: ours, Self: d.self, Now: now}
	timeout := d.cfg.Timing.ProbeTimeout
	up, err := d.cfg.Open(addr, transport.Options{Timeout: timeout, ConTimeout: timeout})
	if err != nil {
		return probed{url: u, row: statuspage.Downstream{Name: a.Name, URL: addr,
			State: export.StateUnreachable, Error: err.Error()}}
	}
	defer up.Close()
	row, lineage := statuspage.Probe(ctx, up, a)
	if n := len(lineage); n > 0 && lineage[n-1].Name != "" {
		row.Name = lineage[n-1].Name
	}
	return probed{url: u, row: row, lineage: lineage}
}

// name is the name the page gives the downstream at URL u: the one its
// lineage last gave, else the URL's host.
func (w *watch) name(u string) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	if n, ok := w.names[u]; ok {
		return n
	}
	if p, err := url.Parse(u); err == nil && p.Host != "" {
		return p.Host
	}
	return u
}

// record stores a round's rows (Merge: an unreachable mirror keeps what
// was last seen of it) and adds the arrivals of the lineages, own first.
func (w *watch) record(got []probed, own []statuspage.Hop) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.history = statuspage.AddArrival(w.history, own, keepHistory)
	for _, p := range got {
		w.rows[p.url] = statuspage.Merge(w.rows[p.url], p.row)
		if p.lineage != nil {
			w.names[p.url] = p.row.Name
			w.history = statuspage.AddArrival(w.history, p.lineage, keepHistory)
		}
	}
}

// view returns copies of the rows of the downstream URLs urls, in that
// order (one never probed yet is StateUnprobed), and of the history.
func (w *watch) view(urls []string) ([]statuspage.Downstream, []statuspage.Propagation) {
	w.mu.Lock()
	defer w.mu.Unlock()
	rows := make([]statuspage.Downstream, 0, len(urls))
	for _, u := range urls {
		r, ok := w.rows[u]
		if !ok {
			r = statuspage.Downstream{Name: u, URL: ReadAddress(u), State: StateUnprobed}
		}
		rows = append(rows, r)
	}
	history := slices.Clone(w.history)
	for i := range history {
		history[i].Arrivals = slices.Clone(history[i].Arrivals)
	}
	return rows, history
}

// Page is the status page's data, made now: this server from its root's
// status, its lineage, and the downstream mirrors and propagation history
// as last probed. Safe for concurrent use.
func (d *Daemon) Page(context.Context) (statuspage.Page, error) {
	st, err := d.root.Status()
	if err != nil {
		return statuspage.Page{}, fmt.Errorf("read the root's status: %w", err)
	}
	p := statuspage.Page{
		Server:  statuspage.Server{Name: d.cfg.Name, Root: d.root.Dir, Snapshot: st.Snapshot, State: st.State},
		Lineage: ownLineage(d.cfg.Name, st),
		Now:     d.cfg.Now(),
	}
	if st.Updated != nil {
		p.Server.Updated = *st.Updated
	}
	p.Downstreams, p.History = d.watch.view(d.settings.Load().Downstream)
	return p, nil
}

// ownLineage is the lineage of the snapshot the root serves, as its
// status.json records it (export.Status.Lineage: master first, this server
// last); without one, this server alone (since its last flip), or none
// when it serves nothing.
func ownLineage(name string, st export.Status) []statuspage.Hop {
	if st.Snapshot == 0 {
		return nil
	}
	if len(st.Lineage) > 0 {
		return st.Lineage
	}
	self := statuspage.Hop{Name: name, Snapshot: st.Snapshot}
	if st.Updated != nil {
		self.Since = *st.Updated
	}
	return []statuspage.Hop{self}
}
