// Command loadgen drives HTTP servers with the same load, alternating
// between them, and prints one table: requests/s and latency percentiles
// of each, and their ratios to the first. It is the load generator of
// `make bench-serve` (scripts/bench-serve.sh): seqmirror's serve against
// nginx on the same export root.
//
//	loadgen -paths FILE -target serve=http://127.0.0.1:8080 -target nginx=http://127.0.0.1:8081 [-c 32] [-d 30s] [-rounds 3]
//
// Each of -c clients keeps one keep-alive connection and GETs random paths
// of FILE (one URL path per line, e.g. /snapshots/1/a/b) one after the
// other, reading each body whole; any status but 200 counts as an error.
// Each target gets -d in all, in -rounds slices, the targets taking turns
// so that neither always runs on a warmer or colder machine.
//
// That closed loop measures the most each server answers, and its latency
// depends on it: a faster server leaves the load generator (on the same
// machine) more work, and its own queueing shows in the percentiles. With
// -rate-frac F (0 < F < 1) a second, open-loop phase follows: every target
// gets the same fixed rate, F times the lowest requests/s of the first
// phase, for -d again in -rounds slices; requests go out on a schedule and
// a request's latency runs from the time it was due, not from when a
// client got to send it (no coordinated omission: a server that falls
// behind shows it). A second table gives those percentiles.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

type target struct{ name, base string }

type targets []target

func (t *targets) String() string { return fmt.Sprint(*t) }

func (t *targets) Set(s string) error {
	name, base, ok := strings.Cut(s, "=")
	if !ok {
		return fmt.Errorf("want NAME=URL, got %q", s)
	}
	*t = append(*t, target{name, strings.TrimSuffix(base, "/")})
	return nil
}

// result is what one target's runs add up to.
type result struct {
	requests, errors int64
	bytes            int64
	elapsed          time.Duration
	lat              []time.Duration
}

func main() {
	var ts targets
	flag.Var(&ts, "target", "NAME=URL of a server (repeat; the first is the reference of the ratios)")
	paths := flag.String("paths", "", "file of URL paths, one per line")
	conc := flag.Int("c", 32, "concurrent clients")
	dur := flag.Duration("d", 30*time.Second, "time per target, in all")
	rounds := flag.Int("rounds", 3, "slices per target, taking turns")
	frac := flag.Float64("rate-frac", 0, "then an open-loop phase at this fraction of the lowest requests/s (0: none)")
	flag.Parse()
	list, err := readPaths(*paths)
	if err != nil || len(ts) == 0 {
		fmt.Fprintln(os.Stderr, "loadgen:", err, "(need -paths FILE and -target NAME=URL)")
		os.Exit(2)
	}
	res := make([]result, len(ts))
	slice := *dur / time.Duration(*rounds)
	for r := 0; r < *rounds; r++ {
		for i, t := range ts {
			if err := run(t, list, *conc, slice, &res[i]); err != nil {
				fmt.Fprintf(os.Stderr, "loadgen: %s: %v\n", t.name, err)
				os.Exit(1)
			}
		}
	}
	printTable(os.Stdout, ts, res, *conc, list)
	if *frac <= 0 || *frac >= 1 {
		return
	}
	rate := math.Inf(1)
	for _, r := range res {
		rate = min(rate, *frac*float64(r.requests)/r.elapsed.Seconds())
	}
	open := make([]result, len(ts))
	for r := 0; r < *rounds; r++ {
		for i, t := range ts {
			if err := runRate(t, list, *conc, slice, rate, &open[i]); err != nil {
				fmt.Fprintf(os.Stderr, "loadgen: %s: %v\n", t.name, err)
				os.Exit(1)
			}
		}
	}
	printRateTable(os.Stdout, ts, open, rate, *frac)
}

func readPaths(name string) ([]string, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" {
			out = append(out, l)
		}
	}
	if len(out) == 0 && sc.Err() == nil {
		return nil, fmt.Errorf("%s: no paths", name)
	}
	return out, sc.Err()
}

// run drives t with conc clients for d and adds to res.
func run(t target, list []string, conc int, d time.Duration, res *result) error {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	return drive(conc, res, func(client *http.Client, rng *rand.Rand, local *result) error {
		return client1(ctx, client, t.base, list, rng, local)
	})
}

// drive runs conc clients, each fn with its own random source and result,
// over one keep-alive transport, and adds their results to res.
func drive(conc int, res *result, fn func(client *http.Client, rng *rand.Rand, local *result) error) error {
	tr := &http.Transport{MaxIdleConnsPerHost: conc, MaxConnsPerHost: conc, DisableCompression: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	var mu sync.Mutex
	var wg sync.WaitGroup
	var firstErr error
	start := time.Now()
	for w := 0; w < conc; w++ {
		wg.Add(1)
		go func(seed uint64) {
			defer wg.Done()
			var local result
			err := fn(client, rand.New(rand.NewPCG(seed, 42)), &local)
			mu.Lock()
			defer mu.Unlock()
			res.requests += local.requests
			res.errors += local.errors
			res.bytes += local.bytes
			res.lat = append(res.lat, local.lat...)
			if err != nil && firstErr == nil {
				firstErr = err
			}
		}(uint64(w) + uint64(start.UnixNano()))
	}
	wg.Wait()
	res.elapsed += time.Since(start)
	return firstErr
}

// client1 is one client: GET after GET until ctx ends.
func client1(ctx context.Context, client *http.Client, base string, list []string, rng *rand.Rand, res *result) error {
	over := func() bool { return ctx.Err() != nil }
	for !over() {
		if err := get1(client, base+list[rng.IntN(len(list))], time.Now(), res, over); err != nil {
			return err
		}
	}
	return nil
}

// runRate drives t at rate requests/s for d, open loop: request i is due
// at start+i/rate; conc clients take the next due request, wait for its
// time if it is ahead, and time it from then.
func runRate(t target, list []string, conc int, d time.Duration, rate float64, res *result) error {
	var next atomic.Int64
	start := time.Now()
	total := int64(d.Seconds() * rate)
	return drive(conc, res, func(client *http.Client, rng *rand.Rand, local *result) error {
		for {
			i := next.Add(1) - 1
			if i >= total {
				return nil
			}
			due := start.Add(time.Duration(float64(i) / rate * float64(time.Second)))
			if wait := time.Until(due); wait > 0 {
				time.Sleep(wait)
			}
			if err := get1(client, t.base+list[rng.IntN(len(list))], due, local, func() bool { return false }); err != nil {
				return err
			}
		}
	})
}

// get1 GETs url, reads the body whole and adds it to res with its
// latency from t0. A request that fails once over() (the run has ended)
// is not counted.
func get1(client *http.Client, url string, t0 time.Time, res *result, over func() bool) error {
	resp, err := client.Get(url)
	if err != nil {
		if over() {
			return nil
		}
		return err
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil && over() {
		return nil
	}
	res.lat = append(res.lat, time.Since(t0))
	res.requests++
	res.bytes += n
	if resp.StatusCode != 200 || err != nil {
		res.errors++
	}
	return nil
}

func printRateTable(w io.Writer, ts targets, res []result, rate, frac float64) {
	fmt.Fprintf(w, "\nopen loop: %.0f req/s for each (%.0f%% of the lowest above), latency from each request's due time\n", rate, 100*frac)
	fmt.Fprintf(w, "%-8s %10s %9s %9s %9s %9s %9s %7s %12s\n", "server", "requests", "req/s", "p50", "p90", "p99", "p99.9", "errors", "p99 ratio")
	var p990 time.Duration
	for i, t := range ts {
		r := &res[i]
		slices.Sort(r.lat)
		p99 := pct(r.lat, 0.99)
		if i == 0 {
			p990 = p99
		}
		fmt.Fprintf(w, "%-8s %10d %9.0f %9s %9s %9s %9s %7d %12.2f\n", t.name, r.requests, float64(r.requests)/r.elapsed.Seconds(),
			pct(r.lat, 0.5).Round(time.Microsecond), pct(r.lat, 0.9).Round(time.Microsecond), p99.Round(time.Microsecond),
			pct(r.lat, 0.999).Round(time.Microsecond), r.errors, float64(p99)/float64(p990))
	}
}

func pct(lat []time.Duration, p float64) time.Duration {
	if len(lat) == 0 {
		return 0
	}
	return lat[min(len(lat)-1, int(float64(len(lat))*p))]
}

func printTable(w io.Writer, ts targets, res []result, conc int, list []string) {
	fmt.Fprintf(w, "%d clients, keep-alive, random GETs over %d files\n", conc, len(list))
	fmt.Fprintf(w, "%-8s %10s %9s %9s %9s %9s %7s %12s %12s\n", "server", "requests", "req/s", "MB/s", "p50", "p99", "errors", "req/s ratio", "p99 ratio")
	var rps0 float64
	var p990 time.Duration
	for i, t := range ts {
		r := &res[i]
		slices.Sort(r.lat)
		rps := float64(r.requests) / r.elapsed.Seconds()
		p99 := pct(r.lat, 0.99)
		if i == 0 {
			rps0, p990 = rps, p99
		}
		fmt.Fprintf(w, "%-8s %10d %9.0f %9.1f %9s %9s %7d %12.2f %12.2f\n", t.name, r.requests, rps,
			float64(r.bytes)/r.elapsed.Seconds()/1e6, pct(r.lat, 0.5).Round(time.Microsecond), p99.Round(time.Microsecond),
			r.errors, rps/rps0, float64(p99)/float64(p990))
	}
}
