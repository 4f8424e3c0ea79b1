// Package filter is the path filter of partial mirrors (mirror-sync's
// include and exclude rules, docs/protocol.md section 11): an ordered list
// of rules, each an include or an exclude pattern in the syntax of
// publish's exclude patterns ('*' within a name, '**' across names, '?',
// "[...]", a leading '/' anchors at the snapshot's top, a trailing '/'
// matches directories only); the first rule whose pattern matches an entry
// decides, an entry no rule matches is kept, and a directory left out
// takes everything below it along.
//
// A Chain is the filter of a tier below partial tiers: the intersection of
// its upstreams' filters and its own (a tier can narrow, never widen).
// Subset and WriteSubset make a partial mirror's manifest from the full
// one, as a stream; CheckSubset and CheckExact are the verifier's rule: a
// subset manifest's every record is the full manifest's record of that
// path, so a signature over the full manifest's bytes covers the subset's
// files too. Encode and Decode are the snapshot's filter file.
//
// Everything here is pure computation over values and streams: no file is
// written, nothing survives a crash, and a Filter or Chain, once made, is
// safe for concurrent use (it is never changed).
package filter
