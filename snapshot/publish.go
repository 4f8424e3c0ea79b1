package snapshot

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/seqmirror/seqmirror/export"
	"github.com/seqmirror/seqmirror/fsys"
	"github.com/seqmirror/seqmirror/manifest"
	"github.com/seqmirror/seqmirror/seqfile"
)

// ErrSourceChanging means the source kept changing while it was copied and
// publish gave up after its retries without publishing.
var ErrSourceChanging = errors.New("source changed while it was being published")

// errChanged is one attempt's discovery that the source moved.
type errChanged struct{ what string }

func (e *errChanged) Error() string { return "source changed: " + e.what }

// PublishOptions tunes Publish. The zero value is usable.
type PublishOptions struct {
	Force   bool          // make a new snapshot even if nothing changed; re-hash every file
	Keep    int           // snapshots to keep (default 3)
	MinAge  time.Duration // never prune a snapshot superseded less than this ago
	Retries int           // attempts after the first when the source moves (0: default 3; negative: none)
	Backoff time.Duration // wait before the first retry, doubled each time (default 1s)
	Workers int           // parallel copy/hash/link workers (default Workers())
	Log     *slog.Logger
	Now     func() time.Time
	// BeforeFlip, if set, runs after the snapshot is renamed into place and
	// before current flips (tests use it to check crash points).
	BeforeFlip func(n uint64)
}

func (o *PublishOptions) defaults() {
	if o.Keep == 0 {
		o.Keep = 3
	}
	if o.Retries == 0 {
		o.Retries = 3
	} else if o.Retries < 0 {
		o.Retries = 0
	}
	if o.Backoff == 0 {
		o.Backoff = time.Second
	}
	if o.Workers == 0 {
		o.Workers = Workers()
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// PublishResult reports what Publish did.
type PublishResult struct {
	Snapshot  uint64   `json:"snapshot"`  // the snapshot now served
	Published bool     `json:"published"` // false: nothing changed, nothing written
	Entries   int      `json:"entries"`   // records in the manifest (dirs, files, symlinks)
	Linked    int      `json:"linked"`
	Copied    int      `json:"copied"`
	Bytes     int64    `json:"bytes_copied"`
	Pruned    []uint64 `json:"pruned,omitempty"`
}

// SourceSeqDir is where a source tree may carry its own seq/begin and
// seq/end. When both are valid, publish waits for begin == end, checks that
// they did not move while it copied, and leaves seq/ out of the snapshot.
const SourceSeqDir = "seq"

// Publish makes a new snapshot of source in root and serves it.
func Publish(ctx context.Context, root *export.Root, source string, opt PublishOptions) (PublishResult, error) {
	opt.defaults()
	var res PublishResult
	if err := root.Init(); err != nil {
		return res, err
	}
	lock, err := root.Lock()
	if err != nil {
		return res, err
	}
	defer lock.Unlock()
	if err := root.Cleanup(); err != nil {
		return res, err
	}
	cur, err := root.Current()
	if err != nil {
		return res, fmt.Errorf("%w: repair with `publish --force` after checking %s", err, root.Path(export.CurrentName))
	}
	var prev *manifest.Manifest
	if cur > 0 {
		if prev, err = root.ReadManifest(cur); err != nil {
			return res, fmt.Errorf("read served snapshot's manifest: %w (run `publish verify`)", err)
		}
	}
	res.Snapshot = cur
	var begin uint64
	backoff := opt.Backoff
	for attempt := 0; ; attempt++ {
		r, err := publishOnce(ctx, root, source, prev, &begin, opt)
		var ch *errChanged
		if errors.As(err, &ch) {
			if attempt >= opt.Retries {
				return res, fmt.Errorf("%w (%s; gave up after %d attempts): publish when the source is quiet, or have its writer bump seq/begin and seq/end", ErrSourceChanging, ch.what, attempt+1)
			}
			opt.Log.Warn("source changed during publish, retrying", "what", ch.what, "attempt", attempt+1, "wait", backoff)
			select {
			case <-ctx.Done():
				return res, ctx.Err()
			case <-time.After(backoff):
			}
			backoff *= 2
			continue
		}
		if err != nil {
			return res, err
		}
		res = r
		break
	}
	if !res.Published {
		// Nothing changed; still repair what a killed run (or a discarded
		// attempt of this one) left: work files and begin > end.
		if err := root.Cleanup(); err != nil {
			return res, err
		}
		if settled, err := root.Settle(); err != nil || !settled {
			return res, err
		}
		st, err := root.Status()
		if err == nil {
			err = root.WriteStatus(st)
		}
		if err != nil {
			return res, fmt.Errorf("write status: %w", err)
		}
		return res, nil
	}
	if err := seqfile.FinishUpdate(root.FS, root.SeqDir(), begin); err != nil {
		return res, err
	}
	st, err := root.Status()
	if err == nil {
		err = root.WriteStatus(st)
	}
	if err != nil {
		return res, fmt.Errorf("write status: %w", err)
	}
	res.Pruned, err = root.Prune(opt.Keep, opt.MinAge, opt.Now())
	if err != nil {
		return res, err
	}
	return res, nil
}

// sourceSeq reads the source's counters if it has a valid pair.
func sourceSeq(f fsys.FS, source string) (seqfile.Pair, bool, error) {
	dir := filepath.Join(source, SourceSeqDir)
	b, errB := seqfile.Read(f, filepath.Join(dir, seqfile.Begin))
	e, errE := seqfile.Read(f, filepath.Join(dir, seqfile.End))
	if errB != nil || errE != nil {
		if errors.Is(errB, seqfile.ErrCorrupt) || errors.Is(errE, seqfile.ErrCorrupt) {
			return seqfile.Pair{}, false, fmt.Errorf("source counters: %w", errors.Join(errB, errE))
		}
		return seqfile.Pair{}, false, nil
	}
	return seqfile.Pair{Begin: b, End: e}, true, nil
}

func publishOnce(ctx context.Context, root *export.Root, source string, prev *manifest.Manifest, begin *uint64, opt PublishOptions) (PublishResult, error) {
	f := root.FS
	res := PublishResult{}
	if prev != nil {
		res.Snapshot = prev.Snapshot
	}
	seqBefore, hasSeq, err := sourceSeq(f, source)
	if err != nil {
		return res, err
	}
	if hasSeq && !seqBefore.Idle() {
		return res, &errChanged{fmt.Sprintf("source seq/begin=%d != seq/end=%d: its writer is busy", seqBefore.Begin, seqBefore.End)}
	}
	var skip func(string) bool
	if hasSeq {
		skip = func(rel string) bool { return rel == SourceSeqDir }
	}
	entries, err := Walk(ctx, f, source, skip)
	if errors.Is(err, fs.ErrNotExist) && !errors.Is(err, errSourceMissing) {
		return res, &errChanged{err.Error()} // something vanished mid-walk
	}
	if err != nil {
		return res, err
	}
	res.Entries = len(entries)
	// Pair each source entry with the previous snapshot's record at the same path.
	prevAt := make([]int, len(entries))
	same := prev != nil && len(prev.Entries) == len(entries)
	{
		j := 0
		for i := range entries {
			prevAt[i] = -1
			for prev != nil && j < len(prev.Entries) && manifest.Compare(prev.Entries[j].Path, entries[i].Path) < 0 {
				j++
				same = false
			}
			if prev != nil && j < len(prev.Entries) && prev.Entries[j].Path == entries[i].Path {
				p := prev.Entries[j]
				e := entries[i]
				e.Hash = p.Hash
				if e.SameContent(p) {
					prevAt[i] = j
				} else {
					same = false
				}
				j++
			} else {
				same = false
			}
		}
	}
	if same && !opt.Force {
		opt.Log.Info("source unchanged since snapshot; nothing published", "snapshot", prev.Snapshot)
		return res, nil
	}
	if *begin == 0 {
		if *begin, err = seqfile.StartUpdate(f, root.SeqDir()); err != nil {
			return res, err
		}
	}
	hi, err := root.HighestNumber()
	if err != nil {
		return res, err
	}
	n := hi + 1
	work := filepath.Join(root.WorkDir(), strconv.FormatUint(n, 10))
	if err := fsys.RemoveAll(f, work); err != nil {
		return res, err
	}
	if err := f.Mkdir(work, 0o755); err != nil {
		return res, fmt.Errorf("make work dir: %w", err)
	}
	prevDir := ""
	if prev != nil {
		prevDir = root.SnapshotDir(prev.Snapshot)
	}
	var linked, copied atomic.Int64
	var bytes atomic.Int64
	pool := NewPool(ctx, opt.Workers)
	var dirs []manifest.Entry
	for i := range entries {
		e := &entries[i]
		dst := filepath.Join(work, filepath.FromSlash(e.Path))
		switch e.Type {
		case manifest.Dir:
			if err := f.Mkdir(dst, 0o700); err != nil {
				pool.Wait()
				return res, fmt.Errorf("mkdir %s: %w", dst, err)
			}
			dirs = append(dirs, *e)
			continue
		case manifest.Symlink:
			if err := f.SymlinkIfPossible(e.Target, dst); err != nil {
				pool.Wait()
				return res, fmt.Errorf("symlink %s: %w", dst, err)
			}
			continue
		}
		src := filepath.Join(source, filepath.FromSlash(e.Path))
		pi := prevAt[i]
		err := pool.Go(func(context.Context) error {
			if pi >= 0 {
				p := prev.Entries[pi]
				old := filepath.Join(prevDir, filepath.FromSlash(e.Path))
				if opt.Force {
					h, _, err := HashFile(f, src)
					if err != nil {
						return fmt.Errorf("hash %s: %w", src, err)
					}
					if h != p.Hash {
						goto copyIt
					}
				}
				if err := f.Link(old, dst); err == nil {
					e.Hash = p.Hash
					linked.Add(1)
					return nil
				}
				// Link failed (e.g. too many links): fall back to a copy.
			}
		copyIt:
			h, sz, err := CopyFile(f, src, f, dst, -1)
			if err != nil {
				return err
			}
			fi, err := fsys.Lstat(f, src)
			if err != nil {
				return &errChanged{fmt.Sprintf("%s: %v", e.Path, err)}
			}
			if sz != e.Size || fi.Size() != e.Size || fi.ModTime().UnixNano() != e.MTime {
				return &errChanged{e.Path + " was modified while copied"}
			}
			e.Hash = h
			copied.Add(1)
			bytes.Add(sz)
			return SetMeta(f, dst, *e)
		})
		if err != nil {
			break
		}
	}
	if err := pool.Wait(); err != nil {
		return res, err
	}
	if err := FinishDirs(f, work, dirs); err != nil {
		return res, err
	}
	// The whole source must still look as it did when it was listed.
	again, err := Walk(ctx, f, source, skip)
	if err != nil {
		return res, &errChanged{err.Error()}
	}
	if len(again) != len(entries) {
		return res, &errChanged{"files were added or removed while copying"}
	}
	for i := range again {
		a, e := again[i], entries[i]
		a.Hash = e.Hash
		if a.Path != e.Path || !a.SameContent(e) {
			return res, &errChanged{a.Path + " changed while copying"}
		}
	}
	if hasSeq {
		after, _, err := sourceSeq(f, source)
		if err != nil {
			return res, err
		}
		if after.Begin != seqBefore.End {
			return res, &errChanged{fmt.Sprintf("source seq/begin moved from %d to %d", seqBefore.End, after.Begin)}
		}
	}
	// Durable: data and directory entries of the whole tree, then manifest,
	// then the rename that makes the snapshot exist.
	if err := f.SyncFS(work); err != nil {
		return res, fmt.Errorf("flush snapshot %d: %w", n, err)
	}
	m := &manifest.Manifest{Snapshot: n, Entries: entries}
	if err := fsys.WriteStream(f, root.ManifestPath(n), 0o644, func(w io.Writer) error { return m.Encode(w) }); err != nil {
		return res, fmt.Errorf("write manifest of snapshot %d: %w", n, err)
	}
	if err := f.Rename(work, root.SnapshotDir(n)); err != nil {
		return res, fmt.Errorf("move snapshot %d into place: %w", n, err)
	}
	if err := fsys.SyncDir(f, root.Path(export.SnapshotsName)); err != nil {
		return res, err
	}
	if opt.BeforeFlip != nil {
		opt.BeforeFlip(n)
	}
	if err := root.Flip(n); err != nil {
		return res, err
	}
	res.Snapshot, res.Published = n, true
	res.Linked, res.Copied, res.Bytes = int(linked.Load()), int(copied.Load()), bytes.Load()
	opt.Log.Info("published", "snapshot", n, "entries", len(entries), "linked", res.Linked, "copied", res.Copied, "bytes", res.Bytes)
	return res, nil
}
