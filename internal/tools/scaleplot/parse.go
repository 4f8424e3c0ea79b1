package main

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// header is the CSV's first line, exactly.
const header = "fs,files,op,via,tool,seconds,rss_kib"

// The known operations, ways and tools, in table order.
var (
	ops   = []string{"publish-initial", "publish-1pct", "publish-noop", "sync-initial", "sync-1pct", "sync-noop"}
	vias  = []string{"local", "rsync", "http"}
	tools = []string{"seqmirror", "rsync", "cp-al"}
)

// Errors of Parse; each is wrapped with the line it was found on.
var (
	ErrHeader = errors.New("the first line is not the header " + header)
	ErrField  = errors.New("malformed field")
	ErrEmpty  = errors.New("no runs after the header")
)

// key names one measured quantity; every run of a key is a repetition.
type key struct {
	fs    string
	files int
	op    string
	via   string
	tool  string
}

// series is one line of the plot: a key without the number of files.
type series struct {
	fs, op, via, tool string
}

func (k key) series() series { return series{k.fs, k.op, k.via, k.tool} }

// sample is one CSV line: one timed run.
type sample struct {
	key
	seconds float64
	rssKiB  int64 // -1: none
}

// results are the aggregated runs of one CSV.
type results struct {
	fs      []string        // in order of first appearance
	files   []int           // every number of files, ascending
	median  map[key]float64 // median seconds over the repetitions
	peakRSS map[key]int64   // KiB, largest over the seqmirror repetitions that have one
}

// parse reads the CSV from r and aggregates it. A malformed line is an
// error naming its line number.
func parse(r io.Reader) (*results, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = true
	rec, err := cr.Read()
	if err == io.EOF {
		return nil, fmt.Errorf("line 1: %w (the input is empty)", ErrHeader)
	}
	if err != nil {
		return nil, lineError(err)
	}
	if strings.Join(rec, ",") != header {
		return nil, fmt.Errorf("line 1: %w, got %q", ErrHeader, strings.Join(rec, ","))
	}
	var runs []sample
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, lineError(err)
		}
		line, _ := cr.FieldPos(0)
		ru, err := parseRun(rec)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		runs = append(runs, ru)
	}
	if len(runs) == 0 {
		return nil, ErrEmpty
	}
	return aggregate(runs), nil
}

// lineError rewords a csv.ParseError to start with its line.
func lineError(err error) error {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return fmt.Errorf("line %d: %w: %w", pe.Line, ErrField, pe.Err)
	}
	return fmt.Errorf("reading the CSV: %w", err)
}

// parseRun checks and converts the fields of one line.
func parseRun(rec []string) (sample, error) {
	if len(rec) != 7 {
		return sample{}, fmt.Errorf("%w: %d fields, want 7 (%s)", ErrField, len(rec), header)
	}
	ru := sample{key: key{fs: rec[0], op: rec[2], via: rec[3], tool: rec[4]}, rssKiB: -1}
	if !printable(ru.fs) {
		return sample{}, fmt.Errorf("%w: fs %q is not a non-empty printable name", ErrField, ru.fs)
	}
	n, err := strconv.Atoi(rec[1])
	if err != nil || n <= 0 {
		return sample{}, fmt.Errorf("%w: files %q is not a positive integer", ErrField, rec[1])
	}
	ru.files = n
	if err := checkNames(ru.key); err != nil {
		return sample{}, err
	}
	s, err := strconv.ParseFloat(rec[5], 64)
	if err != nil || math.IsNaN(s) || math.IsInf(s, 0) || s < 0 {
		return sample{}, fmt.Errorf("%w: seconds %q is not a finite number >= 0", ErrField, rec[5])
	}
	ru.seconds = s
	if rec[6] != "" {
		kib, err := strconv.ParseInt(rec[6], 10, 64)
		if err != nil || kib < 0 {
			return sample{}, fmt.Errorf("%w: rss_kib %q is neither empty nor an integer >= 0", ErrField, rec[6])
		}
		ru.rssKiB = kib
	}
	return ru, nil
}

// checkNames checks op, via and tool against the known names and each other.
func checkNames(k key) error {
	switch {
	case !slices.Contains(ops, k.op):
		return fmt.Errorf("%w: op %q is none of %s", ErrField, k.op, strings.Join(ops, ", "))
	case !slices.Contains(vias, k.via):
		return fmt.Errorf("%w: via %q is none of %s", ErrField, k.via, strings.Join(vias, ", "))
	case !slices.Contains(tools, k.tool):
		return fmt.Errorf("%w: tool %q is none of %s", ErrField, k.tool, strings.Join(tools, ", "))
	case family(k.op) == "publish" && k.via != "local":
		return fmt.Errorf("%w: %s runs locally, not over %s", ErrField, k.op, k.via)
	case k.tool == "cp-al" && !strings.HasSuffix(k.op, "-1pct"):
		return fmt.Errorf("%w: cp-al (the hard-link floor) is timed on 1%% rows only, not %s", ErrField, k.op)
	}
	return nil
}

// printable reports whether s is valid UTF-8 of printable characters,
// not only spaces.
func printable(s string) bool {
	if !utf8.ValidString(s) || strings.TrimSpace(s) == "" {
		return false
	}
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}

// family is the part of op before the dash: publish or sync.
func family(op string) string {
	f, _, _ := strings.Cut(op, "-")
	return f
}

// aggregate groups runs by key: the median seconds and the peak RSS.
func aggregate(runs []sample) *results {
	res := &results{median: map[key]float64{}, peakRSS: map[key]int64{}}
	reps := map[key][]float64{}
	for _, ru := range runs {
		if !slices.Contains(res.fs, ru.fs) {
			res.fs = append(res.fs, ru.fs)
		}
		if !slices.Contains(res.files, ru.files) {
			res.files = append(res.files, ru.files)
		}
		reps[ru.key] = append(reps[ru.key], ru.seconds)
		if ru.tool == "seqmirror" && ru.rssKiB >= 0 {
			res.peakRSS[ru.key] = max(res.peakRSS[ru.key], ru.rssKiB)
		}
	}
	slices.Sort(res.files)
	for k, s := range reps {
		res.median[k] = median(s)
	}
	return res
}

// median of a non-empty s (the mean of the middle two for an even count);
// s is sorted in place.
func median(s []float64) float64 {
	slices.Sort(s)
	m := len(s) / 2
	if len(s)%2 == 1 {
		return s[m]
	}
	return (s[m-1] + s[m]) / 2
}
