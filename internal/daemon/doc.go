// Package daemon is `mirror-sync daemon`: one long-running mirror of one
// export root. It syncs the root from its upstream (the sync function is
// injected: the CLI passes the same mirror.Sync a cron run makes), on a poll
// timer with jitter and at once on a trigger, and serves the root over HTTP
// (internal/server's handler, /metrics included) so that it can be the
// next tier's upstream; after a flip it forwards the trigger downstream.
// At /status (StatusPath, GET and HEAD) it serves the status page
// (internal/statuspage): this server, its lineage, its downstream mirrors
// as last probed and the propagation of recent snapshots.
//
// # What runs concurrently
//
//   - One loop goroutine runs the syncs, one at a time, never two at once.
//     It sleeps until the next sync is due: the poll interval plus a random
//     jitter, or at once when a trigger raises the target.
//   - The HTTP server (server.Serve) answers readers and POST /trigger from
//     its own goroutines; readers take no lock and see the snapshot the
//     root serves, whole (export's contract).
//   - A trigger for snapshot N (POST /trigger, verified by
//     trigger.Verifier with the secret of the settings, then
//     Daemon.Trigger, safe for concurrent use) only updates the schedule
//     under a mutex and wakes the loop. Triggers coalesce: the pending
//     target is the highest N received; a trigger for N <= the served
//     snapshot or <= the pending target is a no-op. Any number of triggers
//     arriving during a sync cause one more sync, right after it. A
//     trigger naming no snapshot (N = 0) asks for one sync. Without a
//     secret there is no trigger endpoint: /trigger is 404.
//   - While a target is not reached the loop keeps syncing, with a backoff
//     doubling from Timing.Backoff to Timing.MaxBackoff, until the root
//     serves >= N or Timing.GiveUp has passed; then it records why
//     (Status.GaveUp, one error line, and status.json's last_error, written
//     under the run lock) and falls back to polling.
//   - After a sync that flipped to N, a trigger for N signed with the
//     secret (trigger.Send) goes to every downstream URL in parallel, one
//     goroutine each, not waited for by the loop; a failure is logged,
//     never fatal. Without a secret nothing is forwarded.
//   - One probing goroutine reads the downstream mirrors for the status
//     page: after every sync the loop asks it for a round (a non-blocking
//     send; asks made during a round coalesce into one more), and after a
//     flip one more round follows Timing.ProbeAgain later, to see the
//     mirrors the forwarded trigger brought level. A round probes every
//     downstream in parallel (statuspage.Probe over transport.Open of its
//     read address, ReadAddress), all bounded by Timing.ProbeTimeout, and
//     never holds up the loop: a sync never waits for a probe, a hung
//     downstream costs its row "unreachable" at the timeout. The rows and
//     the propagation history (statuspage.Merge and AddArrival, the newest
//     statuspage.MaxPlotted snapshots) are guarded by a mutex: the round
//     writes them once it has ended, a page request copies them. They
//     live in memory only and start empty ("not probed yet") at each
//     start. A page request reads the root's status itself (the served
//     snapshot, state and lineage are always current) and opens no
//     connection.
//   - Settings (the downstream list, the secret and the trigger endpoint
//     made from it) are one value replaced atomically by Reload (SIGHUP in
//     the CLI): a request or a forward sees the old settings or the new,
//     never a mix. The trigger.Verifier is the daemon's for its life (a
//     new secret is set into it just before the new settings are stored),
//     so its memory of the nonces seen survives a reload.
//
// # Stopping, crashes, the lock
//
// New takes ROOT/.daemon.lock (export.Root.DaemonLock, an flock held for
// the daemon's life): one daemon per root; a second one fails at once with
// an error wrapping ErrRunning and export.ErrLocked. Each sync takes the
// root's run lock (ROOT/.lock) as any cron run does, so a cron run on the
// same root waits or is skipped as it always was, and the daemon's sync
// is refused (and retried) while a cron run holds it.
//
// When Run's context is done (SIGTERM or SIGINT in the CLI) the sync in
// progress is stopped through its context, exactly as a cron run is
// stopped (it installs nothing more; one that had already flipped
// completes), the HTTP server stops accepting and drains its requests,
// forwards and a round of probes in flight are cancelled, and Run
// returns nil. Nothing the daemon holds needs saving: a SIGKILL or a crash leaves what a killed
// cron run leaves (the served snapshot whole, at worst begin > end, settled
// by the next sync) and the kernel drops both flocks. The pending target,
// Status and what the status page last saw of the downstream mirrors live
// in memory only; after a restart the first sync, at once,
// brings the root level with its upstream.
package daemon
