// Package upstream is the contract every transport implements: the
// [Upstream] interface and its optional capabilities ([TreeFetcher],
// [SnapshotFetcher], [Prober]), the errors they return ([ErrVanished],
// [ErrUnavailable], ...) and the [Options] they are opened with.
//
// It is a leaf: transport packages (transport/rsync, transport/web) import it to implement the contract, and package transport
// imports them to open one by address (transport.Open). Everyone else uses
// package transport, which re-exports these names; nothing here does I/O.
//
// What the contract promises (see each method): an Upstream never writes
// outside the directories it is given (but for a staging directory beside
// one, removed before it returns) and its Options.ScratchDir, and makes
// every write it makes itself through the fsys.FS it was opened with
// (a subprocess such as rsync writes where it is told, into directories
// made through that FS); the files Upstream.Fetch leaves have been checked
// against their manifest records (a mismatch wraps tree.ErrHashMismatch);
// ErrVanished means the snapshot disappeared upstream mid-transfer (start
// over from the seq files); ErrUnavailable marks transient failures worth
// a retry. Upstreams are not safe for concurrent use.
package upstream
