// Command scaleplot is the reporting half of `make bench-scale`
// (scripts/bench-scale.sh): it reads the CSV of timed runs the script
// writes and prints one Markdown table per filesystem on stdout and, with
// -svg, writes a plot of time against the number of files on log-log axes.
//
//	scaleplot -csv FILE [-svg OUT.svg] [-title TEXT]
//
// The CSV has the header line `fs,files,op,via,tool,seconds,rss_kib` and
// one line per timed run:
//
//   - fs: the filesystem of the run (ext4, btrfs, ...; any text), kept in
//     the order of first appearance;
//   - files: the number of files of the tree, a positive integer;
//   - op: publish-initial, publish-1pct, publish-noop, sync-initial,
//     sync-1pct or sync-noop;
//   - via: local, rsync or http (publish is always local);
//   - tool: seqmirror, rsync or cp-al (the hard-link floor `cp -al` of the
//     same tree, timed on 1% rows only);
//   - seconds: the run's wall time, a finite number >= 0;
//   - rss_kib: the peak RSS of a seqmirror run in KiB, or empty.
//
// Every run of a key (fs, files, op, via, tool) is one repetition; a key's
// value is the median of its repetitions (the mean of the middle two for
// an even count), its peak RSS the largest of them. Any malformed line is
// an error naming its line number; nothing is printed or written then.
//
// The table has a row per op and via (in the order above) and a column per
// number of files; a cell reads `S s / R s = X.Yx (cp -al F s)`: seqmirror's
// and rsync's median seconds (3 significant digits, at most 4 decimals),
// rsync's time over seqmirror's, and the hard-link floor where it was
// timed. A second table per filesystem gives seqmirror's peak RSS in MiB
// when the CSV has any.
//
// The SVG is standalone (stdlib only): a grid of panels, a row per
// filesystem and a column per operation family (publish, sync), each with
// log10 axes shared by all panels, one polyline per op, via and tool (color
// by op and via, dash by tool) and a legend. The file is written whole
// (to a temporary name, then renamed), so a reader never sees half a plot.
//
// Exit status: 0 on success, 1 on any error (the message on stderr).
package main
