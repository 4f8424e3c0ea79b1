package trigger

import (
	"bytes"
	"fmt"
	"io"

	"github.com/seqmirror/seqmirror/internal/fsys"
)

// MinSecret and MaxSecret bound a secret's length in bytes.
const (
	MinSecret = 16
	MaxSecret = 1024
)

// ReadSecret reads the shared secret in the file at path: its bytes, less
// one trailing newline. Every error wraps ErrSecret (and the file system's
// error, if any). It refuses a file shorter than
// MinSecret or longer than MaxSecret bytes, not a regular file, or one that
// others (neither its owner nor its group) may read or write, or its group
// may write; a group may read it (a service's group).
func ReadSecret(f fsys.FS, path string) ([]byte, error) {
	fi, err := f.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSecret, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: %s is not a regular file", ErrSecret, path)
	}
	if perm := fi.Mode().Perm(); perm&0o027 != 0 {
		return nil, fmt.Errorf("%w: %s has mode %04o: others may read it or its group may write it (0600 or 0640 will do)", ErrSecret, path, perm)
	}
	file, err := f.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSecret, err)
	}
	defer file.Close()
	b, err := io.ReadAll(io.LimitReader(file, MaxSecret+2))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrSecret, path, err)
	}
	b = bytes.TrimSuffix(b, []byte("\n"))
	switch {
	case len(b) < MinSecret:
		return nil, fmt.Errorf("%w: %s holds %d bytes, at least %d needed", ErrSecret, path, len(b), MinSecret)
	case len(b) > MaxSecret:
		return nil, fmt.Errorf("%w: %s holds more than %d bytes: is it the secret?", ErrSecret, path, MaxSecret)
	}
	return b, nil
}
