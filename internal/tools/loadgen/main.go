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
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
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
	tr := &http.Transport{MaxIdleConnsPerHost: conc, MaxConnsPerHost: conc, DisableCompression: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var mu sync.Mutex
	var wg sync.WaitGroup
	var firstErr error
	start := time.Now()
	for w := 0; w < conc; w++ {
		wg.Add(1)
		go func(seed uint64) {
			defer wg.Done()
			var local result
			rng := rand.New(rand.NewPCG(seed, 42))
			err := client1(ctx, client, t.base, list, rng, &local)
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
	for ctx.Err() == nil {
		req, err := http.NewRequest("GET", base+list[rng.IntN(len(list))], nil)
		if err != nil {
			return err
		}
		t0 := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		n, err := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil && ctx.Err() != nil {
			return nil
		}
		res.lat = append(res.lat, time.Since(t0))
		res.requests++
		res.bytes += n
		if resp.StatusCode != 200 || err != nil {
			res.errors++
		}
	}
	return nil
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
