package statuspage

import (
	"time"

	"github.com/seqmirror/seqmirror/internal/export"
)

// t0 is the fixtures' clock: the page is made at t0.
var t0 = time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)

// threeTiers is the page of tier-1 mirror t1-a in a network of a master,
// two tier-1 mirrors and two tier-2 mirrors (t2-a and t2-b follow t1-a):
// t2-a is stale (still at 41), t2-b unreachable. History: snapshots 35 to
// 42, each reaching both tier-1 mirrors (t1-a at 42 when the lineage says),
// t2-a until 41 and t2-b until 37.
func threeTiers() Page {
	flip := func(n uint64) time.Time { return t0.Add(-time.Duration(43-n) * 5 * time.Minute) }
	p := Page{
		Server: Server{Name: "t1-a.example.org", Root: "/srv/mirror", Snapshot: 42, State: export.StateFresh,
			Updated: flip(42).Add(420 * time.Millisecond)},
		Lineage: []Hop{
			{Name: "master.example.org", Address: "rsync://master.example.org/pub", Snapshot: 42, Since: flip(42)},
			{Name: "t1-a.example.org", Address: "http://t1-a.example.org/pub", Snapshot: 42, Since: flip(42).Add(420 * time.Millisecond)},
		},
		Downstreams: []Downstream{
			{Name: "t2-a.example.org", URL: "http://t2-a.example.org/pub", State: export.StateStale, Snapshot: 41,
				LagSnapshots: 1, Lag: 4*time.Minute + 59*time.Second, LastSeen: t0.Add(-10 * time.Second)},
			{Name: "t2-b.example.org", URL: "http://t2-b.example.org/pub", State: export.StateUnreachable,
				LastSeen: t0.Add(-26 * time.Minute), Error: "dial tcp 192.0.2.7:80: connect: connection refused"},
		},
		Now: t0,
	}
	for n := uint64(35); n <= 42; n++ {
		prop := Propagation{Snapshot: n, Flipped: flip(n)}
		ms := time.Duration(n%5) * 60 * time.Millisecond
		prop.Arrivals = append(prop.Arrivals,
			Arrival{Mirror: "t1-a.example.org", Tier: 1, At: flip(n).Add(300*time.Millisecond + ms)},
			Arrival{Mirror: "t1-b.example.org", Tier: 1, At: flip(n).Add(350*time.Millisecond + 2*ms)})
		if n < 42 {
			prop.Arrivals = append(prop.Arrivals,
				Arrival{Mirror: "t2-a.example.org", Tier: 2, At: flip(n).Add(700*time.Millisecond + 3*ms)})
		}
		if n < 38 {
			prop.Arrivals = append(prop.Arrivals,
				Arrival{Mirror: "t2-b.example.org", Tier: 2, At: flip(n).Add(800*time.Millisecond + ms)})
		}
		p.History = append(p.History, prop)
	}
	return p
}

// arrivals counts the arrivals of a page's plotted history.
func arrivals(p Page) int {
	n := 0
	for _, h := range p.History {
		n += len(h.Arrivals)
	}
	return n
}
