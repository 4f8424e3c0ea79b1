package export

import (
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strconv"
	"strings"

	"github.com/seqmirror/seqmirror/internal/filter"
	"github.com/seqmirror/seqmirror/internal/fsys"
	"github.com/seqmirror/seqmirror/manifest"
	"github.com/spf13/afero"
	"golang.org/x/sys/unix"
)

// The files beside the manifest of a partial mirror's snapshot N
// (docs/protocol.md section 11): the master's manifest of N, byte for
// byte, and the filter chain N.manifest was made from it with.
const (
	FullExt   = ".full"
	FilterExt = ".filter"
)

// sidecarExts are the files of a snapshot beside its manifest: Prune and
// Cleanup remove them with it. partialExts are a partial snapshot's.
var (
	partialExts = []string{FullExt, FilterExt}
	sidecarExts = append(slices.Clone(partialExts), SignatureExt)
)

// FullPath is ROOT/snapshots/N.full.
func (r *Root) FullPath(n uint64) string {
	return r.Path(SnapshotsName, strconv.FormatUint(n, 10)+FullExt)
}

// FilterPath is ROOT/snapshots/N.filter.
func (r *Root) FilterPath(n uint64) string {
	return r.Path(SnapshotsName, strconv.FormatUint(n, 10)+FilterExt)
}

// Partial is what status.json says of a partial snapshot: the filter chain
// its manifest was made with, upstream first (filter.Chain.Rules), and as
// one line (filter.Chain.String).
type Partial struct {
	Filters [][]string `json:"filters"`
	Filter  string     `json:"filter"`
}

// SnapshotFilter reads the filter chain of snapshot n: nil and no error
// for a snapshot that is whole (no N.filter); an error for one that cannot
// be read or parsed.
func (r *Root) SnapshotFilter(n uint64) (filter.Chain, bool, error) {
	b, err := afero.ReadFile(r.FS, r.FilterPath(n))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("read filter of snapshot %d: %w", n, err)
	}
	c, err := filter.Decode(b)
	if err != nil {
		return nil, false, fmt.Errorf("filter of snapshot %d: %w", n, err)
	}
	return c, true, nil
}

// partial is the Partial of snapshot n for status (nil if it is whole or
// its filter cannot be read).
func (r *Root) partial(n uint64) *Partial {
	if n == 0 {
		return nil
	}
	c, ok, err := r.SnapshotFilter(n)
	if err != nil || !ok {
		return nil
	}
	return &Partial{Filters: c.Rules(), Filter: c.String()}
}

// FullManifestPath is the manifest of the whole snapshot n: N.full on a
// partial mirror, N.manifest elsewhere.
func (r *Root) FullManifestPath(n uint64) string {
	if fi, err := r.FS.Stat(r.FullPath(n)); err == nil && fi.Mode().IsRegular() {
		return r.FullPath(n)
	}
	return r.ManifestPath(n)
}

// removeSidecars removes snapshot n's files beside its manifest (exts: of
// these only; none given: all of them, sidecarExts).
func (r *Root) removeSidecars(n uint64, exts ...string) error {
	if len(exts) == 0 {
		exts = sidecarExts
	}
	for _, ext := range exts {
		p := r.Path(SnapshotsName, strconv.FormatUint(n, 10)+ext)
		if err := r.FS.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove %s: %w", p, err)
		}
	}
	return nil
}

// exchange swaps the directories a and b at once (renameat2(2) with
// RENAME_EXCHANGE): a reader that resolves either path sees one tree or
// the other, never neither.
func exchange(f fsys.FS, a, b string) error {
	if !fsys.IsOS(f) {
		return fmt.Errorf("exchange %s and %s: %w", a, b, errors.ErrUnsupported)
	}
	if err := unix.Renameat2(unix.AT_FDCWD, a, unix.AT_FDCWD, b, unix.RENAME_EXCHANGE); err != nil {
		return &fs.PathError{Op: "exchange", Path: a, Err: err}
	}
	return nil
}

// placeManifest moves b's manifest, and first the files beside it, into
// snapshots/: the signature (b.Signature, written durably: a complete
// signed snapshot always has it), then N.full and N.filter (none: those
// of an earlier snapshot N are removed), then the manifest.
func (r *Root) placeManifest(b Built) error {
	if err := r.placeSignature(b.N, b.Signature); err != nil {
		return err
	}
	if err := r.removeSidecars(b.N, partialExts...); err != nil {
		return err
	}
	for _, m := range []struct{ from, to string }{{b.Full, r.FullPath(b.N)}, {b.Filter, r.FilterPath(b.N)}} {
		if m.from == "" {
			continue
		}
		// Served as the manifest is: readable by every user (a fetched
		// file is the mirror's own, 0600).
		if err := r.FS.Chmod(m.from, 0o644); err != nil {
			return fmt.Errorf("chmod %s: %w", m.from, err)
		}
		if err := r.FS.Rename(m.from, m.to); err != nil {
			return fmt.Errorf("move %s into place: %w", m.to, err)
		}
	}
	if err := r.FS.Rename(b.Manifest, r.ManifestPath(b.N)); err != nil {
		return fmt.Errorf("move manifest of snapshot %d into place: %w", b.N, err)
	}
	return nil
}

// ReplacingName is ROOT/.replacing: present while Install replaces the
// served snapshot's tree and manifest (Built.Replace), holding its number.
// A crash in between leaves it, and the snapshot it names may have the one
// without the other: it is not linked from, and a mirror builds it again.
const ReplacingName = ".replacing"

// Replacing returns the snapshot a killed replace left half done (0: none).
func (r *Root) Replacing() uint64 {
	b, err := afero.ReadFile(r.FS, r.Path(ReplacingName))
	if err != nil || len(b) > 32 {
		return 0
	}
	n, err := strconv.ParseUint(string(b), 10, 64)
	if err != nil {
		return 0
	}
	return n
}

// replace is Install's steps 2 to 4 for a rebuilt served snapshot: the
// .replacing mark, then the trees swapped at once (exchange; the old one
// goes to b.Tree), the files beside the manifest and the manifest
// renamed over the old ones, and the mark removed. A reader resolving a
// path below snapshots/N sees the old tree or the new one: every file of
// either is the file of the master's snapshot N.
func (u *Update) replace(b Built) error {
	r := u.root
	if err := u.durable(&b); err != nil {
		return err
	}
	if err := fsys.WriteFile(r.FS, r.Path(ReplacingName), []byte(strconv.FormatUint(b.N, 10)), 0o644); err != nil {
		return fmt.Errorf("mark the replace of snapshot %d: %w", b.N, err)
	}
	if err := exchange(r.FS, b.Tree, r.SnapshotDir(b.N)); err != nil {
		// No atomic swap here (a test's filesystem): two renames.
		old := b.Tree + ".old"
		if err := r.FS.Rename(r.SnapshotDir(b.N), old); err != nil {
			return fmt.Errorf("replace snapshot %d: %w", b.N, err)
		}
		if err := r.FS.Rename(b.Tree, r.SnapshotDir(b.N)); err != nil {
			return fmt.Errorf("replace snapshot %d: %w", b.N, err)
		}
		b.Tree = old
	}
	if err := r.placeManifest(b); err != nil {
		return err
	}
	if err := fsys.SyncDir(r.FS, r.Path(SnapshotsName)); err != nil {
		return err
	}
	if err := r.FS.Remove(r.Path(ReplacingName)); err != nil {
		return fmt.Errorf("replace snapshot %d: %w", b.N, err)
	}
	return fsys.RemoveAll(r.FS, b.Tree)
}

// sidecar reports whether name is N.full, N.filter or N.manifest.minisig,
// and N.
func sidecar(name string) (uint64, bool) {
	for _, ext := range sidecarExts {
		if num, ok := strings.CutSuffix(name, ext); ok {
			n, err := strconv.ParseUint(num, 10, 64)
			return n, err == nil && n != 0 && strconv.FormatUint(n, 10) == num
		}
	}
	return 0, false
}

// CheckPartial checks a partial snapshot n's files beside its manifest
// (nothing for a whole one): N.manifest holds exactly what N.filter's chain
// keeps of N.full, every record identical (filter.CheckExact). A failure
// wraps manifest.ErrCorrupt.
func (r *Root) CheckPartial(n uint64) error {
	c, ok, err := r.SnapshotFilter(n)
	if err != nil || !ok {
		return corrupt(err)
	}
	full, err := r.FS.Open(r.FullPath(n))
	if err != nil {
		return fmt.Errorf("%w: partial snapshot %d: %w", manifest.ErrCorrupt, n, err)
	}
	defer full.Close()
	sub, err := r.FS.Open(r.ManifestPath(n))
	if err != nil {
		return fmt.Errorf("open manifest of snapshot %d: %w", n, err)
	}
	defer sub.Close()
	if err := filter.CheckExact(full, sub, c); err != nil {
		return fmt.Errorf("%w: partial snapshot %d: %s and %s: %w", manifest.ErrCorrupt, n, r.ManifestPath(n), r.FullPath(n), err)
	}
	return nil
}

// corrupt wraps a non-nil err in manifest.ErrCorrupt.
func corrupt(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%w: %w", manifest.ErrCorrupt, err)
}
