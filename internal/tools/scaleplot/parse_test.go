package main

import (
	"encoding/xml"
	"errors"
	"io"
	"math"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// small is a CSV with three repetitions of one key, a cp -al floor, a
// row with no rsync run and a filesystem first seen after another.
const small = `fs,files,op,via,tool,seconds,rss_kib
ext4,10000,publish-1pct,local,seqmirror,2,10240
ext4,10000,publish-1pct,local,seqmirror,1,20480
ext4,10000,publish-1pct,local,seqmirror,3,
ext4,10000,publish-1pct,local,rsync,8,
ext4,10000,publish-1pct,local,rsync,9,
ext4,10000,publish-1pct,local,cp-al,0.5,
btrfs,1000000,sync-1pct,rsync,rsync,12.34,
ext4,1000000,publish-1pct,local,seqmirror,100,
ext4,1000000,publish-1pct,local,rsync,250,
ext4,10000,sync-noop,http,seqmirror,0.01,
ext4,10000,sync-noop,http,rsync,1.5,
`

// mustParse parses csv or fails tb.
func mustParse(tb testing.TB, csv string) *results {
	tb.Helper()
	res, err := parse(strings.NewReader(csv))
	if err != nil {
		tb.Fatalf("parse: %v", err)
	}
	return res
}

func TestParseAggregates(t *testing.T) {
	res := mustParse(t, small)
	if want := []string{"ext4", "btrfs"}; !slices.Equal(res.fs, want) {
		t.Errorf("fs = %q, want %q (order of first appearance)", res.fs, want)
	}
	if want := []int{10000, 1000000}; !slices.Equal(res.files, want) {
		t.Errorf("files = %v, want %v", res.files, want)
	}
	tests := []struct {
		name string
		k    key
		want float64
	}{
		{name: "odd count: the middle one", k: key{"ext4", 10000, "publish-1pct", "local", "seqmirror"}, want: 2},
		{name: "even count: the mean of the middle two", k: key{"ext4", 10000, "publish-1pct", "local", "rsync"}, want: 8.5},
		{name: "one run", k: key{"btrfs", 1000000, "sync-1pct", "rsync", "rsync"}, want: 12.34},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, ok := res.median[tt.k]; !ok || got != tt.want {
				t.Errorf("median[%v] = %v, %v; want %v", tt.k, got, ok, tt.want)
			}
		})
	}
	if len(res.median) != 8 {
		t.Errorf("%d keys, want 8", len(res.median))
	}
	rss := map[key]int64{{"ext4", 10000, "publish-1pct", "local", "seqmirror"}: 20480}
	if !mapsEqual(res.peakRSS, rss) {
		t.Errorf("peakRSS = %v, want %v (the largest, runs without one ignored)", res.peakRSS, rss)
	}
}

func mapsEqual(a, b map[key]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func TestMedian(t *testing.T) {
	tests := []struct {
		name string
		in   []float64
		want float64
	}{
		{name: "one", in: []float64{7}, want: 7},
		{name: "two", in: []float64{1, 4}, want: 2.5},
		{name: "odd, unsorted", in: []float64{9, 1, 5, 3, 7}, want: 5},
		{name: "even, unsorted", in: []float64{4, 1, 3, 2}, want: 2.5},
		{name: "an outlier does not move it", in: []float64{1, 1.1, 1000}, want: 1.1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := median(slices.Clone(tt.in)); got != tt.want {
				t.Errorf("median(%v) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

func TestParseRejects(t *testing.T) {
	const h = header + "\n"
	const ok = "ext4,10000,sync-1pct,http,seqmirror,1.5,1024\n"
	tests := []struct {
		name   string
		in     string
		want   error
		wantIn string // in the message
	}{
		{name: "empty input", in: "", want: ErrHeader, wantIn: "line 1:"},
		{name: "another header", in: "fs,files,op,via,tool,seconds\n" + ok, want: ErrHeader, wantIn: "line 1:"},
		{name: "header only", in: h, want: ErrEmpty},
		{name: "too few fields", in: h + ok + "ext4,10000,sync-1pct,http,seqmirror,1.5\n", want: ErrField, wantIn: "line 3: malformed field: 6 fields"},
		{name: "too many fields", in: h + "ext4,10000,sync-1pct,http,seqmirror,1.5,,x\n", want: ErrField, wantIn: "line 2:"},
		{name: "blank lines still count", in: h + "\n" + ok + "\n" + "ext4,10k,sync-1pct,http,seqmirror,1,\n", want: ErrField, wantIn: "line 5: malformed field: files \"10k\""},
		{name: "bare quote", in: h + ok + "ext\"4,10000,sync-1pct,http,seqmirror,1,\n", want: ErrField, wantIn: "line 3:"},
		{name: "empty fs", in: h + ",10000,sync-1pct,http,seqmirror,1,\n", want: ErrField, wantIn: "fs"},
		{name: "control character in fs", in: h + "ext\x014,10000,sync-1pct,http,seqmirror,1,\n", want: ErrField, wantIn: "fs"},
		{name: "zero files", in: h + "ext4,0,sync-1pct,http,seqmirror,1,\n", want: ErrField, wantIn: "files \"0\""},
		{name: "negative files", in: h + "ext4,-5,sync-1pct,http,seqmirror,1,\n", want: ErrField, wantIn: "files"},
		{name: "unknown op", in: h + "ext4,10000,sync-2pct,http,seqmirror,1,\n", want: ErrField, wantIn: "op \"sync-2pct\""},
		{name: "unknown via", in: h + "ext4,10000,sync-1pct,ssh,seqmirror,1,\n", want: ErrField, wantIn: "via \"ssh\""},
		{name: "unknown tool", in: h + "ext4,10000,sync-1pct,http,cp,1,\n", want: ErrField, wantIn: "tool \"cp\""},
		{name: "publish not local", in: h + "ext4,10000,publish-1pct,http,seqmirror,1,\n", want: ErrField, wantIn: "publish-1pct runs locally"},
		{name: "cp -al off a 1% row", in: h + "ext4,10000,sync-noop,local,cp-al,1,\n", want: ErrField, wantIn: "1% rows only"},
		{name: "seconds not a number", in: h + "ext4,10000,sync-1pct,http,seqmirror,abc,\n", want: ErrField, wantIn: "seconds \"abc\""},
		{name: "seconds empty", in: h + "ext4,10000,sync-1pct,http,seqmirror,,\n", want: ErrField, wantIn: "seconds"},
		{name: "negative seconds", in: h + "ext4,10000,sync-1pct,http,seqmirror,-1,\n", want: ErrField, wantIn: "seconds"},
		{name: "NaN seconds", in: h + "ext4,10000,sync-1pct,http,seqmirror,NaN,\n", want: ErrField, wantIn: "seconds"},
		{name: "infinite seconds", in: h + "ext4,10000,sync-1pct,http,seqmirror,+Inf,\n", want: ErrField, wantIn: "seconds"},
		{name: "fractional rss", in: h + "ext4,10000,sync-1pct,http,seqmirror,1,12.5\n", want: ErrField, wantIn: "rss_kib \"12.5\""},
		{name: "negative rss", in: h + "ext4,10000,sync-1pct,http,seqmirror,1,-3\n", want: ErrField, wantIn: "rss_kib"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := parse(strings.NewReader(tt.in))
			if !errors.Is(err, tt.want) {
				t.Fatalf("parse = %v, %v; want %v", res, err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.wantIn) {
				t.Errorf("error %q does not contain %q", err, tt.wantIn)
			}
		})
	}
}

// A parse error names its line; whatever parses renders a well-formed
// SVG and a table with a heading per filesystem.
func FuzzParse(f *testing.F) {
	f.Add(small)
	f.Add(header + "\next4,10000,sync-1pct,http,seqmirror,1.5,1024\n")
	f.Add(header + "\r\nx<&>,1,sync-noop,local,rsync,0,\r\n")
	f.Add(header + "\n\"a,b\",20000,publish-noop,local,seqmirror,1e-9,0\n")
	f.Add(header + "\next4,10000,sync-1pct,http,seqmirror,1.5\n")
	f.Add("fs,files\n")
	lineErr := regexp.MustCompile(`^line [0-9]+: `)
	f.Fuzz(func(t *testing.T, in string) {
		res, err := parse(strings.NewReader(in))
		if err != nil {
			if !errors.Is(err, ErrHeader) && !errors.Is(err, ErrField) && !errors.Is(err, ErrEmpty) {
				t.Fatalf("error %v is none of the sentinels", err)
			}
			if !errors.Is(err, ErrEmpty) && !lineErr.MatchString(err.Error()) {
				t.Fatalf("error %q names no line", err)
			}
			return
		}
		for k, s := range res.median {
			if s < 0 || math.IsNaN(s) || math.IsInf(s, 0) || k.files <= 0 {
				t.Fatalf("median[%v] = %v", k, s)
			}
		}
		var md strings.Builder
		if err := writeTables(&md, res); err != nil {
			t.Fatal(err)
		}
		if got := strings.Count(md.String(), "#### "); got < len(res.fs) {
			t.Fatalf("%d headings for %d filesystems", got, len(res.fs))
		}
		if err := wellFormed(renderSVG(res, in)); err != nil {
			t.Fatalf("SVG: %v", err)
		}
	})
}

// wellFormed decodes doc as XML to its end.
func wellFormed(doc string) error {
	d := xml.NewDecoder(strings.NewReader(doc))
	for {
		_, err := d.Token()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}
