// Package ha makes two or more publish hosts (masters) of one export
// tree a highly available group through etcd: one leader at a time,
// chosen by an election on a lease (go.etcd.io/etcd/client/v3/concurrency),
// and one record per snapshot number in etcd, so that no number is ever
// used for two different manifests anywhere in the network.
// docs/protocol.md ("Highly available masters: the etcd record") is
// normative for the keys and values.
//
// # Contract
//
//   - A master publishes only as the leader, and records snapshot N with
//     the SHA-256 of its manifest file ([Node.Claim]) in one etcd
//     transaction before current flips to N (export.UpdateOptions.Claim).
//     The transaction is atomic: it succeeds only if this master's
//     election key is still the one it won with (its lease has not
//     expired), no record for N exists, and the head record (the highest
//     N) has not changed since it was read, and N is above it; it then
//     writes the record of N and the head together. A refused claim
//     (ErrNotLeader, ErrNumberTaken) flips nothing: the snapshot is
//     removed and never served. A claim whose transaction got no answer
//     (etcd unreachable: it may have been committed) flips nothing either,
//     but keeps the snapshot complete and unserved until etcd answers
//     ([Node.Resolve]): recorded with this manifest, this master flips to
//     it when it leads ([Node.Hold]); otherwise it is removed.
//   - What survives a crash: etcd's records (durable in etcd's raft log);
//     a master's lease, election key and master record die with its
//     process after the lease TTL. A master killed between its claim and
//     its flip leaves N recorded and at worst complete but not served on
//     its own disk: when it comes back it flips to it if the manifest is
//     the recorded one ([Node.Hold]); until then the other masters refuse
//     to publish (ErrBehind) rather than skip the record, and an admin
//     may force the record back to a master's state ([Clobber]).
//   - At lease expiry (the leader died, hung, or lost etcd for longer than
//     the TTL) etcd deletes its election key: the next candidate in line
//     becomes leader, and the old leader's next claim fails (its key is
//     gone), so it cannot flip a snapshot after it lost leadership. Its
//     session's Done channel closes; [Run] then drops back to following.
//   - A new leader first holds the head snapshot ([Node.Hold]): it has it
//     already, or it syncs it from a live master that serves it, or it
//     refuses to publish (ErrBehind) and says which master holds it.
//   - [Clobber] is the one operation that deletes records: an admin's
//     forced return of the group to one master's snapshot.
//
// A Node is safe for use by one goroutine at a time, except Lost, which
// any goroutine may wait on. Values are taken as given: the CLI holds the
// defaults.
package ha
