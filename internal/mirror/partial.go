package mirror

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strconv"

	"github.com/seqmirror/seqmirror/internal/export"
	"github.com/seqmirror/seqmirror/internal/filter"
	"github.com/seqmirror/seqmirror/internal/fsys"
	"github.com/seqmirror/seqmirror/internal/transport"
	"github.com/seqmirror/seqmirror/manifest"
)

// Partial mirrors (docs/protocol.md section 11). A mirror with a filter
// (Options.Filter), or below a partial upstream, serves the subset of
// each snapshot that its filter chain keeps: the upstream's chain (its
// snapshots/N.filter) followed by its own. Beside the subset manifest it
// keeps the master's manifest of N, byte for byte (snapshots/N.full,
// copied down from a partial upstream, or the manifest of a whole one),
// and its chain (snapshots/N.filter). Every file is fetched and checked
// against its record in the subset manifest, which is the full
// manifest's record (filter.CheckSubset).

// maxMissingNamed bounds the paths a run names of those its filter wants
// and its upstream lacks.
const maxMissingNamed = 5

// partialCopy is what the partial step of a build made in ROOT/.work: the
// full manifest and the filter file (both "" for a whole snapshot), the
// chain, and how many records the own filter wants that the upstream lacks.
type partialCopy struct {
	full, filter string
	chain        filter.Chain
	missing      int
}

// filterReadMax is the most of an upstream's filter file read: more than
// filter.MaxFileSize, so that a larger one is refused (filter.Decode)
// rather than taken for none.
const filterReadMax = 64 * filter.MaxFileSize

// upstreamFilter is the upstream's filter file of the snapshot built, if
// read already with its manifest (transport.FilterFetcher): nil data for
// none.
type upstreamFilter struct {
	data []byte
	read bool
}

// chain is the upstream's filter chain of snapshot n, from f if it was
// read, else as upstreamChain reads it.
func (f upstreamFilter) chain(ctx context.Context, up transport.Upstream, n uint64) (filter.Chain, bool, error) {
	if !f.read {
		return upstreamChain(ctx, up, n)
	}
	if f.data == nil {
		return nil, false, nil
	}
	c, err := filter.Decode(f.data)
	if err != nil {
		return nil, false, fmt.Errorf("upstream %s: %w: %w", up, manifest.ErrCorrupt, err)
	}
	return c, true, nil
}

// upstreamChain reads the upstream's filter chain of snapshot n: nil for
// a whole snapshot (no N.filter, or an upstream that cannot tell).
func upstreamChain(ctx context.Context, up transport.Upstream, n uint64) (filter.Chain, bool, error) {
	p, ok := up.(transport.Prober)
	if !ok {
		return nil, false, nil
	}
	name := transport.FilterName(n)
	files, err := p.ReadSmall(ctx, []string{name}, filterReadMax)
	if err != nil {
		return nil, false, fmt.Errorf("read the filter of snapshot %d from %s: %w", n, up, err)
	}
	f, ok := files[name]
	if !ok {
		return nil, false, nil
	}
	c, err := filter.Decode(f.Data)
	if err != nil {
		return nil, false, fmt.Errorf("upstream %s: %w: %w", up, manifest.ErrCorrupt, err)
	}
	return c, true, nil
}

// partial is the partial step of a build, right after the upstream's
// manifest of n was fetched to b.manPath: if the upstream's snapshot is
// partial or this mirror has a filter, the upstream's manifest is kept
// aside, the full manifest fetched (or, from a whole upstream, the
// upstream's manifest is it), checked against it, and b.manPath becomes
// the subset this mirror's chain keeps. Otherwise nothing changes.
func (b *build) partial(ctx context.Context, f upstreamFilter) error {
	s, root := b.s, b.s.root
	upChain, upPartial, err := f.chain(ctx, s.up, b.n)
	if err != nil || !upPartial && s.opt.Filter.Empty() {
		return err
	}
	name := strconv.FormatUint(b.n, 10)
	pc := partialCopy{full: filepath.Join(root.WorkDir(), name+export.FullExt), filter: filepath.Join(root.WorkDir(), name+export.FilterExt)}
	theirs := filepath.Join(root.WorkDir(), name+".upstream")
	if err := root.FS.Rename(b.manPath, theirs); err != nil {
		return fmt.Errorf("keep the upstream's manifest: %w", err)
	}
	if !upPartial {
		if err := root.FS.Rename(theirs, pc.full); err != nil {
			return fmt.Errorf("keep the upstream's manifest: %w", err)
		}
		theirs = pc.full
	} else if err := fetchFull(ctx, root, s.up, b.n, pc.full, theirs); err != nil {
		return err
	}
	pc.chain = append(slices.Clone(upChain), filter.Of(s.opt.Filter)...)
	enc := filter.Encode(pc.chain)
	if len(pc.chain) > filter.MaxFilters || len(enc) > filter.MaxFileSize {
		return fmt.Errorf("%w: the filter of snapshot %d would have %d tiers and %d bytes (at most %d and %d)", ErrOptions, b.n, len(pc.chain), len(enc), filter.MaxFilters, filter.MaxFileSize)
	}
	if err := fsys.WriteFile(root.FS, pc.filter, enc, 0o644); err != nil {
		return fmt.Errorf("write the filter of snapshot %d: %w", b.n, err)
	}
	if err := b.writeSubset(theirs); err != nil {
		return err
	}
	if upPartial && !s.opt.Filter.Empty() {
		if pc.missing, err = b.missing(pc.full, theirs); err != nil {
			return err
		}
	}
	b.pc = &pc
	return nil
}

// fetchFull fetches up's full manifest of partial snapshot n to full and
// checks that up's manifest of n (at theirs) is a subset of it.
func fetchFull(ctx context.Context, root *export.Root, up transport.Upstream, n uint64, full, theirs string) error {
	ff, ok := up.(transport.FullFetcher)
	if !ok {
		return fmt.Errorf("upstream %s serves a partial snapshot %d and this transport cannot fetch its full manifest", up, n)
	}
	if err := ff.FetchFull(ctx, n, full); err != nil {
		return err
	}
	fr, err := root.FS.Open(full)
	if err != nil {
		return err
	}
	defer fr.Close()
	sr, err := root.FS.Open(theirs)
	if err != nil {
		return err
	}
	defer sr.Close()
	if err := filter.CheckSubset(fr, sr); err != nil {
		return fmt.Errorf("upstream %s, snapshot %d: %w: %w", up, n, manifest.ErrCorrupt, err)
	}
	return nil
}

// writeSubset writes b.manPath: what the own filter keeps of the manifest
// at theirs (validated as it streams).
func (b *build) writeSubset(theirs string) error {
	root := b.s.root
	in, err := openFetched(root.FS, theirs, b.n)
	if err != nil {
		return b.upErr(err)
	}
	defer in.Close()
	werr := fsys.WriteStream(root.FS, b.manPath, 0o644, func(w io.Writer) error {
		_, err := filter.WriteSubset(w, in, b.n, filter.Of(b.s.opt.Filter))
		return err
	})
	if werr != nil {
		return b.upErr(werr)
	}
	return b.upErr0(in.Finish())
}

func (b *build) upErr0(err error) error {
	if err == nil {
		return nil
	}
	return b.upErr(err)
}

// missing counts (and logs) the records of the full manifest that the own
// filter wants and the upstream's subset lacks: not an error, a report.
func (b *build) missing(full, theirs string) (int, error) {
	f := b.s.root.FS
	fm, err := openFetched(f, full, b.n)
	if err != nil {
		return 0, err
	}
	defer fm.Close()
	tm, err := openFetched(f, theirs, b.n)
	if err != nil {
		return 0, err
	}
	defer tm.Close()
	count, first, err := filter.Missing(fm, tm, filter.Of(b.s.opt.Filter), maxMissingNamed)
	if err != nil {
		return 0, b.upErr(err)
	}
	if count > 0 {
		b.s.opt.Log.Warn("the filter wants entries the upstream does not carry (its filter leaves them out); they are not mirrored here",
			"snapshot", b.n, "missing", count, "first", first, "upstream", b.s.up.String())
	}
	return count, nil
}

// sameSnapshot compares the upstream's manifest of n, fetched to theirs,
// with ROOT's snapshot n: the same snapshot of the master if theirs is
// ROOT's full manifest (by identity) or, when either side is partial, a
// subset of it. rebuild says that ROOT's copy is not what its chain keeps
// of theirs now (the own filter, or the upstream's subset, changed).
func (s *syncRun) sameSnapshot(ctx context.Context, n uint64, theirs string) (same, rebuild bool, err error) {
	root := s.root
	fullPath := root.FullManifestPath(n)
	ours, err := export.ManifestID(root.FS, fullPath)
	if err != nil {
		return false, false, fmt.Errorf("served snapshot %d: %w", n, err)
	}
	id, err := export.ManifestID(root.FS, theirs)
	if err != nil {
		return false, false, fmt.Errorf("upstream %s: %w", s.up, err)
	}
	_, partialRoot, err := root.SnapshotFilter(n)
	if err != nil {
		return false, false, fmt.Errorf("served snapshot %d: %w", n, err)
	}
	if id == ours && !partialRoot && s.opt.Filter.Empty() {
		return true, false, nil // whole on both sides: as ever
	}
	if id != ours && !subsetOf(root.FS, fullPath, theirs) {
		return false, false, nil
	}
	rebuild, err = s.partialChanged(ctx, n, theirs)
	return true, rebuild, err
}

// subsetOf reports whether the manifest at sub is a subset of the one at full.
func subsetOf(f fsys.FS, full, sub string) bool {
	fr, err := f.Open(full)
	if err != nil {
		return false
	}
	defer fr.Close()
	sr, err := f.Open(sub)
	if err != nil {
		return false
	}
	defer sr.Close()
	return filter.CheckSubset(fr, sr) == nil
}

// partialChanged reports whether ROOT's snapshot n (the upstream's too,
// whose manifest is at theirs) must be built again: its filter file is not
// the upstream's chain followed by the own filter, or its manifest is not
// what the own filter keeps of theirs.
func (s *syncRun) partialChanged(ctx context.Context, n uint64, theirs string) (bool, error) {
	root := s.root
	upChain, _, err := upstreamChain(ctx, s.up, n)
	if err != nil {
		return false, err
	}
	have, _, err := root.SnapshotFilter(n)
	if err != nil {
		return false, err
	}
	if want := append(slices.Clone(upChain), filter.Of(s.opt.Filter)...); !want.Equal(have) {
		return true, nil
	}
	tmp := filepath.Join(root.WorkDir(), "want.manifest")
	defer root.FS.Remove(tmp)
	in, err := openFetched(root.FS, theirs, n)
	if err != nil {
		return false, err
	}
	defer in.Close()
	err = fsys.WriteStream(root.FS, tmp, 0o644, func(w io.Writer) error {
		_, err := filter.WriteSubset(w, in, n, filter.Of(s.opt.Filter))
		return err
	})
	if err != nil {
		return false, fmt.Errorf("upstream %s: %w", s.up, err)
	}
	want, err := export.ManifestID(root.FS, tmp)
	if err != nil {
		return false, err
	}
	have2, err := export.ManifestID(root.FS, root.ManifestPath(n))
	return want != have2, err
}

// filterChanged reports whether the own filter is not the one ROOT/.upstream
// recorded at the last sync or check, or a replace of the served snapshot
// n was cut short: either way n must be built again.
func filterChanged(root *export.Root, st upstreamState, ok bool, n uint64, own *filter.Filter) bool {
	if root.Replacing() == n && n != 0 {
		return true
	}
	return ok && !slices.Equal(st.Filter, own.Rules()) || !ok && !own.Empty()
}
