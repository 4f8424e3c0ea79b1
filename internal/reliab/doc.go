// Package reliab holds seqmirror's reliability tests (issue 4): injected
// filesystem faults during publish and mirror-sync, SIGKILLed processes,
// hostile upstreams, delete safety, lock contention and a coherence torture
// test against concurrent readers; the hostile upstreams and the torture run
// over both the local and the rsync (daemon) transport. It has no non-test
// code besides this file.
//
// Short versions run in `go test` (and `make test`); the long versions run
// with SEQMIRROR_LONG=1 (`make soak`, `make crash`).
package reliab
