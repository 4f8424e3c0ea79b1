package main

import (
	"strings"
	"testing"
)

func TestWriteTablesGolden(t *testing.T) {
	var out strings.Builder
	if err := writeTables(&out, mustParse(t, small)); err != nil {
		t.Fatal(err)
	}
	const want = `#### ext4

| operation | 10k | 1M |
| --- | ---: | ---: |
| publish-1pct | 2.00 s / 8.50 s = 4.3x (cp -al 0.500 s) | 100 s / 250 s = 2.5x |
| sync-noop over http | 0.0100 s / 1.50 s = 150x | - |

Peak RSS of seqmirror (MiB, largest of the repetitions):

| operation | 10k | 1M |
| --- | ---: | ---: |
| publish-1pct | 20.0 | - |

#### btrfs

| operation | 1M |
| --- | ---: |
| sync-1pct over rsync | - / 12.3 s |
`
	if out.String() != want {
		t.Errorf("got\n%s\nwant\n%s", out.String(), want)
	}
}

// The cells, rows and columns the table promises, one at a time.
func TestWriteTablesCells(t *testing.T) {
	csv := header + `
ext4,100000,sync-1pct,http,seqmirror,2,
ext4,100000,sync-1pct,http,rsync,8,
ext4,100000,sync-1pct,local,seqmirror,1,
ext4,100000,sync-1pct,local,rsync,3,
ext4,100000,sync-1pct,local,cp-al,0.25,
ext4,500000,sync-initial,rsync,seqmirror,0.623,
ext4,10000,publish-noop,local,seqmirror,0.0051,
ext4,10000,publish-noop,local,rsync,0.7,
ext4,10000,publish-initial,local,seqmirror,136.4,
ext4,10000,publish-initial,local,rsync,136.4,
`
	var out strings.Builder
	if err := writeTables(&out, mustParse(t, csv)); err != nil {
		t.Fatal(err)
	}
	md := out.String()
	tests := []struct {
		name string
		want string
	}{
		{name: "columns ascending, labelled", want: "| operation | 10k | 100k | 500k |\n"},
		{name: "ratio with one decimal", want: "| sync-1pct over http | - | 2.00 s / 8.00 s = 4.0x | - |"},
		{name: "cp -al floor appended", want: "| 1.00 s / 3.00 s = 3.0x (cp -al 0.250 s) |"},
		{name: "only seqmirror timed", want: "| sync-initial over rsync | - | - | 0.623 s / - |"},
		{name: "ratio from 100 without decimals", want: "| publish-noop | 0.0051 s / 0.700 s = 137x |"},
		{name: "equal times", want: "| publish-initial | 136 s / 136 s = 1.0x |"},
		{name: "no RSS, no RSS table", want: "#### ext4\n\n| operation |"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !strings.Contains(md, tt.want) {
				t.Errorf("table lacks %q:\n%s", tt.want, md)
			}
		})
	}
	if strings.Contains(md, "Peak RSS") {
		t.Errorf("an RSS table without any RSS:\n%s", md)
	}
	order := []string{"| publish-initial |", "| publish-noop |", "| sync-initial over rsync |", "| sync-1pct over local |", "| sync-1pct over http |"}
	last := -1
	for _, r := range order {
		i := strings.Index(md, r)
		if i <= last {
			t.Errorf("row %q at %d, not after the previous one (%d): op order, then local, rsync, http", r, i, last)
		}
		last = i
	}
}

func TestSeconds(t *testing.T) {
	tests := []struct {
		name string
		in   float64
		want string
	}{
		{name: "zero", in: 0, want: "0"},
		{name: "below 0.1 ms", in: 0.00004321, want: "4.32e-05"},
		{name: "milliseconds: at most 4 decimals", in: 0.0051, want: "0.0051"},
		{name: "milliseconds, rounded", in: 0.005149, want: "0.0051"},
		{name: "tens of ms", in: 0.01, want: "0.0100"},
		{name: "below 1", in: 0.6234, want: "0.623"},
		{name: "trailing zeros kept", in: 2, want: "2.00"},
		{name: "tens", in: 12.34, want: "12.3"},
		{name: "rounds up a decade", in: 9.996, want: "10.0"},
		{name: "hundreds", in: 136.4, want: "136"},
		{name: "thousands", in: 1234.5, want: "1230"},
		{name: "from 100000 on", in: 123456, want: "1.23e+05"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := seconds(tt.in); got != tt.want {
				t.Errorf("seconds(%v) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestRatio(t *testing.T) {
	tests := []struct {
		name string
		r, s float64
		want string
	}{
		{name: "one decimal", r: 8, s: 2, want: "4.0x"},
		{name: "slower than rsync", r: 0.83, s: 1, want: "0.8x"},
		{name: "rounds to 100", r: 99.96, s: 1, want: "100x"},
		{name: "no decimals from 100", r: 707.4, s: 1, want: "707x"},
		{name: "seqmirror took no time", r: 1, s: 0, want: "n/a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ratio(tt.r, tt.s); got != tt.want {
				t.Errorf("ratio(%v, %v) = %q, want %q", tt.r, tt.s, got, tt.want)
			}
		})
	}
}

func TestFilesLabel(t *testing.T) {
	tests := []struct {
		name string
		n    int
		want string
	}{
		{name: "10k", n: 10000, want: "10k"},
		{name: "100k", n: 100000, want: "100k"},
		{name: "500k", n: 500000, want: "500k"},
		{name: "1M", n: 1000000, want: "1M"},
		{name: "fractional millions", n: 2500000, want: "2.5M"},
		{name: "thousands", n: 20000, want: "20k"},
		{name: "below 1000", n: 750, want: "750"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := filesLabel(tt.n); got != tt.want {
				t.Errorf("filesLabel(%d) = %q, want %q", tt.n, got, tt.want)
			}
		})
	}
}
