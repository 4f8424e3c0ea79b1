// Package statuspage renders one export root's status as an HTML page for
// people: this server (what it serves and since when), its lineage (the
// path its snapshot took from the master, hop by hop, with the lag of each
// hop), the downstream mirrors it knows of with their state as last seen,
// and a plot of how long recent snapshots took to reach each mirror.
//
// # Contract
//
//   - The page is rendered from a [Page] value and nothing else: [Render]
//     and [Handler] read no file and open no connection. Whoever serves it
//     (the daemon) fills a Page from its root, its status.json lineage and
//     what it last saw of its downstream mirrors.
//   - [Probe] reads one downstream over an Upstream the caller opened (any
//     transport), as `check` reads a root: seq/end, seq/begin, current,
//     whether that snapshot is complete, status.json (last_error, lineage).
//     [ClassifyDownstream] turns what was read into the state
//     (export.ClassifyState: the rules of docs/protocol.md section 6, in
//     one function), compared with the snapshot this server serves.
//     [Merge] keeps what was last seen of a mirror now unreachable, and
//     [AddArrival] records in the propagation history the arrival a
//     lineage tells (its last hop's since; the master's flip is its first
//     hop's). They keep no state: the caller holds the rows and history
//     between probes, and guards them if it probes concurrently.
//   - Every string of a Page is treated as hostile: names, addresses and
//     errors come from other servers' status.json. [Render] escapes all of
//     them (html/template), in the HTML and in the SVG plot alike; the page
//     holds no script, loads nothing (no external asset, no font, no CDN),
//     and [Handler] sends it with a Content-Security-Policy that forbids
//     scripts and every load.
//   - Lags are computed here: [HopLags] (each hop's since minus the
//     previous hop's; the last hop's age at Page.Now) and the propagation
//     delay of each arrival (its time minus the master's flip). A negative
//     difference (clocks that disagree) is shown as it is, marked, never
//     hidden.
//   - The page refreshes itself (a meta refresh, Page.Refresh, 30 s by
//     default) and works without JavaScript; every state is written out as
//     a word, with a CSS class per state (state-fresh, state-updating,
//     state-stale, state-torn, state-unreachable, state-empty; anything
//     else is state-unknown), not told by colour alone.
//   - [Render] writes the page in one piece or returns an error having
//     written nothing useful; [Handler] renders into memory first, so a
//     failed render is a 500, never half a page. Render, WritePlot and
//     Handler are safe for concurrent use; a Page is only read.
package statuspage
