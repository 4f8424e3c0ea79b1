package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestStatsNearestRank(t *testing.T) {
	var ds []time.Duration
	for i := 100; i >= 1; i-- { // unsorted on purpose
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	tests := []struct {
		name string
		in   []time.Duration
		want stats
	}{
		{"hundred", ds, stats{n: 100, p50: 50 * time.Millisecond, p99: 99 * time.Millisecond, max: 100 * time.Millisecond}},
		{"one", ds[:1], stats{n: 1, p50: 100 * time.Millisecond, p99: 100 * time.Millisecond, max: 100 * time.Millisecond}},
		{"none", nil, stats{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := statsOf(tt.in); got != tt.want {
				t.Errorf("statsOf = %+v, want %+v", got, tt.want)
			}
		})
	}
	if ds[0] != 100*time.Millisecond {
		t.Error("statsOf sorted its argument in place")
	}
}

func TestParseLists(t *testing.T) {
	tests := []struct {
		name, fan, lat string
		wantErr        bool
	}{
		{"defaults", "3,2", "20ms,80ms", false},
		{"one latency", "3", "50ms", false},
		{"zero fanout", "0", "20ms", true},
		{"reversed latency", "3", "80ms,20ms", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, ferr := ints(tt.fan)
			_, lerr := durPair(tt.lat)
			if got := ferr != nil || lerr != nil; got != tt.wantErr {
				t.Errorf("error = %v / %v, want an error: %v", ferr, lerr, tt.wantErr)
			}
		})
	}
}

func TestSiblingAndSubtree(t *testing.T) {
	a, b := &node{name: "a"}, &node{name: "b"}
	c, d := &node{name: "c"}, &node{name: "d"}
	a.children = []*node{c}
	c.children = []*node{d}
	if s := siblingOf(b, []*node{a, b}); s != a {
		t.Errorf("siblingOf(b) = %v, want a (cyclic)", s)
	}
	if s := siblingOf(a, []*node{a}); s != nil {
		t.Errorf("siblingOf a lone node = %v, want nil", s)
	}
	if got := subtree(a); len(got) != 2 || got[0] != c || got[1] != d {
		t.Errorf("subtree(a) = %v, want c d", got)
	}
}

func TestWriteSVG(t *testing.T) {
	ph := &phase{name: "triggers on"}
	for i := range 30 {
		ph.samples = append(ph.samples, sample{tier: 1 + i%3, d: time.Duration(i) * 100 * time.Millisecond})
	}
	p := filepath.Join(t.TempDir(), "plot.svg")
	if err := writeSVG(p, ph); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	svg := string(b)
	for _, want := range []string{"<svg ", "tier 1: p50", "tier 3: p50", "goal 2 s", "</svg>"} {
		if !strings.Contains(svg, want) {
			t.Errorf("plot lacks %q", want)
		}
	}
	if n := strings.Count(svg, "<polyline"); n != 3 {
		t.Errorf("%d curves, want one per tier (3)", n)
	}
}
