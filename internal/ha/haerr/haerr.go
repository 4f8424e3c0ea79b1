package haerr

import "errors"

var (
	// ErrNotLeader means this master may not publish: another master leads
	// the group, or this one lost its leadership (its lease expired, or
	// etcd did not answer in time). Nothing was flipped.
	ErrNotLeader = errors.New("not the leader of the masters' group")
	// ErrNumberTaken means the group already recorded the snapshot number
	// (for another manifest), or recorded a higher one since this master
	// read the head. Nothing was flipped.
	ErrNumberTaken = errors.New("snapshot number already recorded by the group")
	// ErrBehind means this master does not hold the group's newest recorded
	// snapshot and could not get it (no live master serves it), or serves
	// a snapshot the group's record does not have: it does not publish.
	ErrBehind = errors.New("this master does not hold the group's newest snapshot")
	// ErrConfig means a configuration value that means nothing.
	ErrConfig = errors.New("bad high-availability configuration")
)

// DefaultPrefix is where a group's keys live in etcd unless configured.
const DefaultPrefix = "/seqmirror/"
