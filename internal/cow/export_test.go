package cow

import "golang.org/x/sys/unix"

// ParentsOf runs only the search of the names of inos in the subvolume
// path, as ChangedInodes does for changed inodes whose names the changed
// leaves did not hold, and returns their directories.
func ParentsOf(path string, inos []uint64) (map[uint64]bool, error) {
	fd, err := openDir(path)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	s := newChangeSearch(0)
	for _, ino := range inos {
		s.c.Inodes[ino] = true
	}
	err = s.nameRest(fd)
	return s.c.Parents, err
}
