// Package mirror implements one mirror-sync run: the kernel.org begin/end loop
// on top of immutable snapshots. A run is an export.Update (Begin, Start,
// Install, Done): the lock, the cleanup of what a killed run left, the
// counters, the one commit sequence and the status record are export's; this
// package decides what to copy and checks it.
//
//  1. Begin (lock ROOT, clean up). Read the upstream's seq/end (E1) and the
//     snapshot N its current serves. If ROOT already serves N, stop: a no-op
//     poll reads two small files and one symlink, whatever the size of the
//     tree.
//  2. Start: bump ROOT's own seq/begin.
//  3. Fetch and check the manifest of N; diff it against ROOT's served
//     manifest (or, if current is torn, the newest retained complete one);
//     build ROOT/.work/N with unchanged files hard-linked from it, files it
//     lacks hard-linked from another retained complete snapshot with an
//     identical record (older, when that is cheaper than fetching), and only
//     the rest fetched, each verified against its manifest hash. The build
//     is a struct whose phases run in order: plan (pass 1), lay (pass 2:
//     links and fetches), commit. On btrfs (cow.go) the tree is a
//     subvolume: a writable snapshot of the base, with only the diff of the
//     two manifests applied (deletions, new and changed entries, the
//     changed files fetched and verified alike), or a new subvolume for a
//     first copy; Install makes it read-only. From an upstream on the
//     same btrfs (clone.go) it is a snapshot of the upstream's snapshot,
//     checked against the manifest (whole the first time, then only what
//     btrfs says changed since the served snapshot's origin).
//  4. Re-read the upstream's seq/begin. If it moved since E1 and snapshot N is
//     no longer served or listed upstream, discard and go back to 3 (bounded,
//     with backoff: retry.Do). A copy whose every file verified against an
//     intact manifest is coherent even if the upstream has since published
//     N+1.
//  5. Install (flush, move the manifest and the tree into snapshots/, flip
//     current); if the upstream has moved on, go round again at once
//     (bounded); then Done sets ROOT's seq/end, writes status.json and
//     prunes, or records the run's failure.
//
// A crash at any point leaves ROOT serving its previous snapshot, with
// begin > end until the next run, which cleans up and completes. Runs on one
// ROOT are serialised by its lock; readers are never blocked.
//
// [SyncFrom] takes several upstreams in priority order (failover): the first
// round polls them all, in parallel, and the failover rule (chooser.choose,
// failover.go; docs/protocol.md section 4, "Several upstreams") picks the one
// serving the newest snapshot, the first among equals, leaving out those
// whose snapshot of the same number has another manifest (ErrDiverged); the
// run then follows that one alone. With one upstream it is [Sync], request
// for request. The poll record (seq/checked) lists what each upstream was
// found in; ROOT/.upstream also records the identities of the upstreams
// level with the chosen one, so a stable no-op poll fetches no manifest.
//
// A run that installed a snapshot reads its upstream's status.json once
// (Upstream.FetchStatus) and hands its lineage to the update, which
// extends it (export.ExtendLineage); nothing in that file can fail the run.
//
// A partial mirror (Options.Filter, or an upstream whose snapshot is
// partial; partial.go, docs/protocol.md section 11) builds from the subset
// its filter keeps of the upstream's manifest, keeping the master's full
// manifest (N.full) and its filter chain (N.filter) beside it; a changed
// filter, or a changed subset upstream, builds the served snapshot again
// (linked from itself) and replaces it at once (export.Built.Replace).
//
// [SyncClassic] follows an upstream with no snapshots, a tree updated in
// place with only seq/begin and seq/end (docs/classic.md): it copies the
// whole tree with link-dest (transport.TreeFetcher), discards the copy if
// the upstream's begin moved, then numbers, hashes and installs it as above.
//
// Options are taken as given (start from [DefaultOptions]); errors name no
// command-line flags (the CLI adds its hints, keyed by the sentinels here).
package mirror
