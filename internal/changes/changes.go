package changes

import (
	"github.com/seqmirror/seqmirror/internal/cow"
)

// Set is what changed in a snapshot since an earlier one.
type Set struct {
	inodes map[uint64]bool // the changed inodes
	dirs   int             // of which directories
	// read are the directories a Walk reads: changed, holding a changed
	// inode, or changed in the earlier snapshot after it was taken (its
	// writer left entries out of them); the others are skimmed.
	read  map[uint64]bool
	since uint64 // the earlier snapshot's transaction
}

// Find returns what changed in the snapshot dir since transaction since,
// when the snapshot prev — the earlier one, of the same subvolume — was
// taken (its cow.Info OTransid, unless prev is a snapshot of that one):
// the inodes changed in dir since, and those changed in prev since (after
// it was taken, by its writer), which are not what they were in dir
// either. An error (cow.ErrUnsupported without CAP_SYS_ADMIN or off
// btrfs) means btrfs cannot tell.
func Find(dir, prev string, since uint64) (*Set, error) {
	c, err := cow.ChangedInodes(dir, since)
	if err != nil {
		return nil, err
	}
	after, err := cow.ChangedInodes(prev, since)
	if err != nil {
		return nil, err
	}
	s := &Set{inodes: c.Inodes, dirs: len(c.Dirs), read: c.Parents, since: since}
	for ino := range after.Inodes {
		s.inodes[ino] = true
	}
	for _, d := range append(c.Dirs, after.Dirs...) {
		s.read[d] = true
	}
	return s, nil
}

// Inodes is the number of changed inodes.
func (s *Set) Inodes() int { return len(s.inodes) }

// Dirs is the number of changed directories.
func (s *Set) Dirs() int { return s.dirs }

// Reads is the number of directories a Walk reads (at most: those below
// a directory it skims are not reached).
func (s *Set) Reads() int { return len(s.read) }
