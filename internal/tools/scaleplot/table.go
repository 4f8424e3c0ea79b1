package main

import (
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
)

// row is one row of a table: an op and the way it ran.
type row struct{ op, via string }

// label is the row's first cell: the op, and the way for sync.
func (r row) label() string {
	if family(r.op) == "publish" {
		return r.op
	}
	return r.op + " over " + r.via
}

// writeTables writes, for every filesystem, the timing table and, when
// there is any RSS, the peak RSS table.
func writeTables(w io.Writer, res *results) error {
	var sb strings.Builder
	for i, fs := range res.fs {
		if i > 0 {
			sb.WriteString("\n")
		}
		fmt.Fprintf(&sb, "#### %s\n\n", fs)
		files := res.filesOf(fs)
		writeTable(&sb, "operation", res.rowsOf(fs, nil), files, func(r row, n int) string { return res.timeCell(key{fs, n, r.op, r.via, ""}) })
		rss := res.rowsOf(fs, res.peakRSS)
		if len(rss) == 0 {
			continue
		}
		sb.WriteString("\nPeak RSS of seqmirror (MiB, largest of the repetitions):\n\n")
		writeTable(&sb, "operation", rss, files, func(r row, n int) string {
			kib, ok := res.peakRSS[key{fs, n, r.op, r.via, "seqmirror"}]
			if !ok {
				return "-"
			}
			return seconds(float64(kib) / 1024)
		})
	}
	_, err := io.WriteString(w, sb.String())
	return err
}

// writeTable writes one Markdown table: a row per r, a column per number of files.
func writeTable(sb *strings.Builder, corner string, rows []row, files []int, cell func(row, int) string) {
	sb.WriteString("| " + corner + " |")
	for _, n := range files {
		sb.WriteString(" " + filesLabel(n) + " |")
	}
	sb.WriteString("\n| --- |" + strings.Repeat(" ---: |", len(files)) + "\n")
	for _, r := range rows {
		sb.WriteString("| " + r.label() + " |")
		for _, n := range files {
			sb.WriteString(" " + cell(r, n) + " |")
		}
		sb.WriteString("\n")
	}
}

// filesOf is every number of files timed on fs, ascending.
func (res *results) filesOf(fs string) []int {
	var out []int
	for _, n := range res.files {
		for k := range res.median {
			if k.fs == fs && k.files == n {
				out = append(out, n)
				break
			}
		}
	}
	return out
}

// rowsOf is the rows of fs in table order: those with a key in m (nil:
// in the medians).
func (res *results) rowsOf(fs string, m map[key]int64) []row {
	has := map[row]bool{}
	for k := range res.median {
		if _, ok := m[k]; k.fs == fs && (m == nil || ok) {
			has[row{k.op, k.via}] = true
		}
	}
	var out []row
	for _, op := range ops {
		for _, via := range vias {
			if has[row{op, via}] {
				out = append(out, row{op, via})
			}
		}
	}
	return out
}

// timeCell is `S s / R s = X.Yx (cp -al F s)` for k (its tool ignored);
// a missing time is `-`, and so is the whole cell with nothing timed.
func (res *results) timeCell(k key) string {
	get := func(tool string) (float64, bool) {
		k.tool = tool
		v, ok := res.median[k]
		return v, ok
	}
	s, okS := get("seqmirror")
	r, okR := get("rsync")
	f, okF := get("cp-al")
	if !okS && !okR && !okF {
		return "-"
	}
	part := func(v float64, ok bool) string {
		if !ok {
			return "-"
		}
		return seconds(v) + " s"
	}
	out := part(s, okS) + " / " + part(r, okR)
	if okS && okR {
		out += " = " + ratio(r, s)
	}
	if okF {
		out += " (cp -al " + seconds(f) + " s)"
	}
	return out
}

// ratio is r/s with one decimal, none from 100 on, and "n/a" when s is 0.
func ratio(r, s float64) string {
	if s <= 0 {
		return "n/a"
	}
	x := math.Round(r/s*10) / 10
	if x >= 100 {
		return strconv.FormatFloat(x, 'f', 0, 64) + "x"
	}
	return strconv.FormatFloat(x, 'f', 1, 64) + "x"
}

// seconds formats v with 3 significant digits and at most 4 decimals
// (0.0051, 0.623, 2.00, 12.3, 136, 1230); below 0.1 ms and from
// 100000 on in e-notation (4.32e-05, 1.23e+05).
func seconds(v float64) string {
	if v == 0 {
		return "0"
	}
	r, _ := strconv.ParseFloat(strconv.FormatFloat(v, 'e', 2, 64), 64)
	if r < 0.0001 || r >= 1e5 {
		return strconv.FormatFloat(r, 'g', 3, 64)
	}
	dec := min(max(2-int(math.Floor(math.Log10(r))), 0), 4)
	if dec == 0 {
		return strconv.FormatFloat(r, 'f', 0, 64)
	}
	return strconv.FormatFloat(v, 'f', dec, 64) // from v: rounded once
}

// filesLabel is n as 10k, 100k, 500k, 1M, 2.5M, 750.
func filesLabel(n int) string {
	switch {
	case n >= 1_000_000:
		return strconv.FormatFloat(float64(n)/1e6, 'f', -1, 64) + "M"
	case n >= 1000:
		return strconv.FormatFloat(float64(n)/1e3, 'f', -1, 64) + "k"
	}
	return strconv.Itoa(n)
}
