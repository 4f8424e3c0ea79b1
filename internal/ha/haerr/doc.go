// Package haerr holds the sentinel errors and defaults of package ha
// without ha's etcd client, so that the CLI can map them to exit codes and
// hints in every binary: mirror-sync, which never publishes, does not link
// etcd's client (its init alone would add milliseconds to every no-op
// poll). Package ha returns these very values. It holds no state.
package haerr
