// Package metrics writes what one run of publish or mirror-sync did, and
// the state it left its root in, as a Prometheus metrics file for
// node_exporter's textfile collector.
//
// # Contract
//
//   - [WriteFile] builds a fresh prometheus.Registry for the run (no
//     hand-formatted exposition text) and writes it in the text format
//     with fsys.WriteStream: a temp file beside the target, fsynced, then
//     renamed over it. A reader (node_exporter) sees the previous file or
//     the new one, never part of one; a crash leaves at worst a stray
//     ".NAME.tmp-PID" file, which the collector ignores (it reads *.prom)
//     and the next write of NAME removes.
//   - Every series carries the labels tool ("publish", "mirror-sync")
//     and root (its absolute path): node_exporter merges all the files of
//     its directory, so the files of two roots on one host must differ by
//     a label. That is one series per metric, root and tool: the
//     cardinality does not grow with runs.
//   - Two values outlive a run: the last success time and the failure
//     counters. They are read back from the file being replaced with the
//     Prometheus text parser; a missing, unreadable or foreign file counts
//     as none (the counters restart at 0, which Prometheus reads as a
//     counter reset), and only the series of the same tool and root are
//     taken.
//   - Writers of one directory are serialised by an flock(2) on it, so a run that found the root locked and the run holding
//     the lock cannot lose each other's update of those two values.
//   - The root's state (served snapshot, seq/begin and seq/end, torn, lag)
//     is read from the root after the run ([export.Root.Status]); when the
//     root cannot be read those metrics are left out, the run's own are
//     always written.
//   - Errors name no command-line flag: the caller says which flag gave
//     the path.
package metrics
