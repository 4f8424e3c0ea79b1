// Package mirror implements one mirror-sync run: the kernel.org begin/end loop
// on top of immutable snapshots.
//
//  1. Lock ROOT. Read the upstream's seq/end (E1) and the snapshot N its
//     current serves. If ROOT already serves N, stop: a no-op poll reads two
//     small files and one symlink, whatever the size of the tree.
//  2. Bump ROOT's own seq/begin.
//  3. Fetch and check the manifest of N; diff it against ROOT's served
//     manifest (or, if current is torn, the newest retained complete one);
//     build ROOT/.work/N with unchanged files hard-linked from it, files it
//     lacks hard-linked from another retained complete snapshot with an
//     identical record (older, when that is cheaper than fetching), and only
//     the rest fetched, each verified against its manifest hash.
//  4. Re-read the upstream's seq/begin. If it moved since E1 and snapshot N is
//     no longer served or listed upstream, discard and go back to 3 (bounded,
//     with backoff). A copy whose every file verified against an intact
//     manifest is coherent even if the upstream has since published N+1.
//  5. Flush, move the manifest and the tree into snapshots/, flip current; if
//     the upstream has moved on, go round again at once (bounded); then set
//     ROOT's seq/end, write status.json and prune.
//
// A crash at any point leaves ROOT serving its previous snapshot, with
// begin > end until the next run, which cleans up and completes. Runs on one
// ROOT are serialised by its lock; readers are never blocked.
//
// [SyncClassic] follows an upstream with no snapshots, a tree updated in
// place with only seq/begin and seq/end (docs/classic.md): it copies the
// whole tree with link-dest (transport.TreeFetcher), discards the copy if
// the upstream's begin moved, then numbers, hashes and flips it as above.
package mirror
