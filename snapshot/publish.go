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
	"strings"
	"sync/atomic"
	"time"

	"github.com/seqmirror/seqmirror/internal/export"
	"github.com/seqmirror/seqmirror/internal/fsys"
	"github.com/seqmirror/seqmirror/internal/tree"
	"github.com/seqmirror/seqmirror/manifest"
	"github.com/seqmirror/seqmirror/seqfile"
)

// ErrSourceChanging means the source kept changing while it was copied and
// publish gave up after its retries without publishing.
var ErrSourceChanging = errors.New("source changed while it was being published")

// ErrTooManyDeletes means the new snapshot would delete more of the served
// snapshot's files than PublishOptions.MaxDelete allows; nothing was
// published.
var ErrTooManyDeletes = errors.New("new snapshot would delete too many files")

// ErrMirrorRoot means the root is written by mirror-sync (it records an
// upstream): a snapshot published there would carry a number its upstream
// will also use, for another tree. PublishOptions.TakeOver publishes anyway.
var ErrMirrorRoot = errors.New("root is a mirror's, written by mirror-sync")

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
	Workers int           // parallel copy/hash/link workers (default tree.Workers())
	// MaxDelete refuses (ErrTooManyDeletes) a snapshot that leaves out more
	// than this share of the served snapshot's files (0..1; 0: the default
	// 0.5; 1: no limit). Force lifts it.
	MaxDelete float64
	// TakeOver publishes into a root that mirror-sync writes (otherwise
	// ErrMirrorRoot), making it a master's: the first snapshot it publishes
	// there ends the root's record of its upstream.
	TakeOver bool
	// Exclude leaves the matching paths out of the snapshot (nil: none).
	// git's transient files inside git directories are always left out
	// (gitTransient), as is the source's seq/ if it has valid counters.
	Exclude *Excludes
	// LockWait is how long to wait for the root's lock while another run
	// holds it (0: fail at once with export.ErrLocked).
	LockWait time.Duration
	Log      *slog.Logger
	Now      func() time.Time
	// BeforeFlip, if set, runs after the snapshot is renamed into place and
	// before current flips (tests use it to check crash points).
	BeforeFlip func(n uint64)
	// AfterList, if set, runs in each attempt that will publish, once the
	// source is listed and before the listing's confirmation starts (tests
	// change the source there).
	AfterList func()
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
		o.Workers = tree.Workers()
	}
	if o.MaxDelete == 0 {
		o.MaxDelete = 0.5
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
	Deleted   int      `json:"deleted"` // the served snapshot's files the new one leaves out
	// Unreadable counts the published entries other users cannot read (a
	// file without o+r, a directory without o+rx): an rsync daemon running
	// as another user cannot serve them.
	Unreadable int `json:"unreadable,omitempty"`
}

// fileBatch bounds the files of one pool job.
const fileBatch = 64

// SourceSeqDir is where a source tree may carry its own seq/begin and
// seq/end. When both are valid, publish waits for begin == end, checks that
// they did not move while it copied, and leaves seq/ out of the snapshot.
const SourceSeqDir = "seq"

// Publish makes a new snapshot of source in root and serves it.
func Publish(ctx context.Context, root *export.Root, source string, opt PublishOptions) (res PublishResult, err error) {
	opt.defaults()
	if err := checkOverlap(root.FS, root.Dir, source); err != nil {
		return res, err
	}
	if err := root.Init(); err != nil {
		return res, err
	}
	lock, err := root.LockWait(ctx, opt.LockWait)
	if err != nil {
		return res, err
	}
	defer lock.Unlock()
	if up := root.MirroredFrom(); up != "" && !opt.TakeOver {
		return res, fmt.Errorf("%w: %s mirrors %s; a snapshot published here would differ from the upstream's snapshot of the same number; nothing was published", ErrMirrorRoot, root.Dir, up)
	}
	defer root.RecordOutcome("", &err, opt.Now, opt.Log)
	if err := root.Cleanup(); err != nil {
		return res, err
	}
	cur, err := root.Current()
	if err != nil {
		return res, fmt.Errorf("%w: repair with `publish --force` after checking %s", err, root.Path(export.CurrentName))
	}
	res.Snapshot = cur
	var begin uint64
	backoff := opt.Backoff
	for attempt := 0; ; attempt++ {
		r, err := publishOnce(ctx, root, source, cur, &begin, opt)
		var ch *errChanged
		if errors.As(err, &ch) {
			if attempt >= opt.Retries {
				return res, fmt.Errorf("%w (%s; gave up after %d attempts): publish when the source is quiet, or have its writer bump seq/begin and seq/end", ErrSourceChanging, ch.what, attempt+1)
			}
			opt.Log.Warn("source is changing; retrying after a wait", "what", ch.what, "attempt", attempt+1, "wait", backoff)
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
		settled, err := root.Settle()
		if err != nil {
			return res, err
		}
		if !settled {
			err = root.ClearFailure("")
		} else {
			err = root.RecordStatus("")
		}
		if err != nil {
			return res, err
		}
		res.Pruned, err = root.PruneIdle("", opt.Keep, opt.MinAge, opt.Now())
		return res, err
	}
	if opt.TakeOver {
		if err := root.FS.Remove(root.Path(export.UpstreamStateName)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return res, fmt.Errorf("take over %s: %w", root.Dir, err)
		}
	}
	res.Pruned, err = root.Finish(begin, "", opt.Keep, opt.MinAge, opt.Now())
	return res, err
}

// sourceSeq reads the source's counters if it has a valid pair. They are
// opened beneath the source (seqfile.ReadBeneath): a fifo, a device or a
// symlink there (seq/ itself included) is an error, not a hang or a read
// of another file.
func sourceSeq(f fsys.FS, source string) (seqfile.Pair, bool, error) {
	b, errB := seqfile.ReadBeneath(f, source, filepath.Join(SourceSeqDir, seqfile.Begin))
	e, errE := seqfile.ReadBeneath(f, source, filepath.Join(SourceSeqDir, seqfile.End))
	if errB != nil || errE != nil {
		if errors.Is(errB, seqfile.ErrCorrupt) || errors.Is(errE, seqfile.ErrCorrupt) {
			return seqfile.Pair{}, false, fmt.Errorf("source counters: %w", errors.Join(errB, errE))
		}
		return seqfile.Pair{}, false, nil
	}
	return seqfile.Pair{Begin: b, End: e}, true, nil
}

// pairer pairs the source's entries, handed to it in canonical order, with
// the records of the served snapshot's manifest, streamed (and decoded on
// its own goroutine) alongside: an entry at the same path with the same
// type, mode, size and mtime is linkable and gets the recorded hash. It
// reads the whole manifest and is what validates it: an error from finish
// comes before anything is written.
type pairer struct {
	ms    *export.ManifestStream // nil: no served snapshot
	ra    *manifest.Readahead
	p     manifest.Entry // the next record
	perr  error          // the error that ended the records (io.EOF)
	count int            // records read
	n     int            // entries paired
	same  bool           // every entry so far had its identical record
	files int            // regular files in the served snapshot
	del   int            // of which the new listing has no entry at the path
	unr   unreadable     // entries other users cannot read
}

func openPairer(root *export.Root, prev uint64) (*pairer, error) {
	if prev == 0 {
		return &pairer{perr: io.EOF}, nil
	}
	ms, err := root.OpenManifest(prev)
	if err != nil {
		return nil, fmt.Errorf("read served snapshot's manifest: %w (run `publish verify`)", err)
	}
	pr := &pairer{ms: ms, ra: manifest.NewReadahead(ms), same: true}
	pr.p, pr.perr = pr.ra.Next()
	return pr, nil
}

// pair reports whether e is linkable, setting its hash if so.
func (pr *pairer) pair(e *manifest.Entry) bool {
	pr.n++
	for pr.perr == nil && manifest.Compare(pr.p.Path, e.Path) < 0 {
		pr.deleted()
		pr.advance()
		pr.same = false
	}
	matched := pr.perr == nil && pr.p.Path == e.Path
	pr.unr.note(e, matched && pr.p.Type == e.Type && !othersCanRead(pr.p))
	if !matched {
		pr.same = false
		return false
	}
	if pr.p.Type == manifest.File {
		pr.files++
	}
	defer pr.advance()
	c := *e
	c.Hash = pr.p.Hash
	if !c.SameContent(pr.p) {
		pr.same = false
		return false
	}
	e.Hash = pr.p.Hash
	return true
}

// deleted counts the current record as left out of the new listing.
func (pr *pairer) deleted() {
	if pr.p.Type == manifest.File {
		pr.files++
		pr.del++
	}
}

func (pr *pairer) advance() {
	pr.count++
	pr.p, pr.perr = pr.ra.Next()
}

// finish reads the rest of the manifest and reports whether the entries
// paired were exactly the served snapshot.
func (pr *pairer) finish() (same bool, err error) {
	if pr.ms == nil {
		return false, nil
	}
	for pr.perr == nil {
		pr.deleted()
		pr.advance()
	}
	if pr.perr == io.EOF {
		pr.ra.Stop()
		pr.perr = pr.ms.Finish()
	}
	if pr.perr != nil {
		return false, fmt.Errorf("read served snapshot's manifest: %w (run `publish verify`)", pr.perr)
	}
	return pr.same && pr.count == pr.n, nil
}

func (pr *pairer) close() {
	if pr.ms != nil {
		pr.ra.Stop()
		pr.ms.Close()
	}
}

func publishOnce(ctx context.Context, root *export.Root, source string, cur uint64, begin *uint64, opt PublishOptions) (res PublishResult, err error) {
	f := root.FS
	res = PublishResult{Snapshot: cur}
	t0 := time.Now()
	phase := func(name string) {
		t := time.Now()
		opt.Log.Debug("publish phase", "phase", name, "took", t.Sub(t0).Round(time.Microsecond))
		t0 = t
	}
	seqBefore, hasSeq, err := sourceSeq(f, source)
	if err != nil {
		return res, err
	}
	if hasSeq && !seqBefore.Idle() {
		return res, &errChanged{fmt.Sprintf("source seq/begin=%d != seq/end=%d: its writer is busy", seqBefore.Begin, seqBefore.End)}
	}
	skip := sourceSkip(f, source, hasSeq, opt.Exclude)
	// Pair each source entry with the previous snapshot's record at the
	// same path as the listing hands them over, in order.
	pr, err := openPairer(root, cur)
	if err != nil {
		return res, err
	}
	defer pr.close()
	watch := newChangeWatch()
	defer watch.Close()
	watch.leaveOut(source, skip)
	var entries []manifest.Entry
	var linkable []bool
	err = tree.WalkWith(ctx, f, source, tree.WalkOptions{Skip: skip, Watch: watch, Size: func(n int) {
		entries, linkable = make([]manifest.Entry, 0, n), make([]bool, 0, n)
	}}, func(e *manifest.Entry) {
		entries = append(entries, *e)
		linkable = append(linkable, pr.pair(&entries[len(entries)-1]))
	})
	if errors.Is(err, fs.ErrNotExist) && !errors.Is(err, tree.ErrNoTree) {
		return res, &errChanged{err.Error()} // something vanished mid-walk
	}
	if err != nil {
		return res, err
	}
	res.Entries = len(entries)
	same, err := pr.finish()
	if err != nil {
		return res, err
	}
	phase("walk and pair")
	if same && !opt.Force {
		opt.Log.Info("source unchanged since snapshot; nothing published", "snapshot", cur)
		return res, nil
	}
	res.Deleted, res.Unreadable = pr.del, pr.unr.count
	if err := checkDeletes(pr, opt); err != nil {
		return res, err
	}
	// Files the served snapshot cannot give may be in an older one (moved
	// away and back, restored): link those from there.
	older := pairOlder(root, cur, entries, linkable, opt.Log)
	// The listing must be confirmed: if every entry (directories included,
	// whose mtimes move when entries come and go) stayed the same from the
	// moment it was listed until the copy is done, each was unchanged over
	// an interval containing the instant the listing ended, so the listing
	// is the tree as it was at that instant. Linked files come from the
	// served snapshot, never from the source, and each copied file is
	// checked on its own after its copy (fileJob), so the snapshot is then
	// exactly the source as of that instant.
	//
	// The inotify watch the walk set up confirms it for nothing (no event
	// queued by the end of the copy); where it cannot vouch (changeWatch),
	// a second listing started after the first ended does, beside the
	// linking (it needs nothing from the copy). Either cancels the attempt
	// at the first difference.
	if opt.AfterList != nil {
		opt.AfterList()
	}
	actx, cancelAttempt := context.WithCancelCause(ctx)
	var confirm func() error
	if watch.ok() {
		watch.notify(cancelAttempt)
		confirm = func() error { return watch.check(f, source) }
	} else {
		opt.Log.Debug("confirming the listing by listing the source again", "why", watch.why())
		confirmed := make(chan error, 1)
		go func() {
			err := confirmListing(actx, f, source, skip, entries)
			if err != nil {
				cancelAttempt(err)
			}
			confirmed <- err
		}()
		confirm = func() error { return <-confirmed }
	}
	var confirmErr error
	joined := false
	join := func() error {
		if !joined {
			joined, confirmErr = true, confirm()
		}
		return confirmErr
	}
	defer func() {
		cancelAttempt(context.Canceled)
		// A change in the source explains any failure it caused.
		var ch *errChanged
		if cerr := join(); err != nil && errors.As(cerr, &ch) {
			err = cerr
		}
	}()
	if *begin == 0 {
		if *begin, err = seqfile.StartUpdate(f, root.SeqDir()); err != nil {
			return res, err
		}
	}
	n, err := root.NextNumber()
	if err != nil {
		return res, err
	}
	work := filepath.Join(root.WorkDir(), strconv.FormatUint(n, 10))
	if err := fsys.RemoveAll(f, work); err != nil {
		return res, err
	}
	if err := f.Mkdir(work, 0o755); err != nil {
		return res, fmt.Errorf("make work dir: %w", err)
	}
	prevDir := ""
	if cur > 0 {
		prevDir = root.SnapshotDir(cur)
	}
	var linked, copied atomic.Int64
	var bytes atomic.Int64
	// fileJob links or copies entries[i] into the work tree.
	fileJob := func(i int) error {
		e := &entries[i]
		dst := filepath.Join(work, filepath.FromSlash(e.Path))
		src := filepath.Join(source, filepath.FromSlash(e.Path))
		if linkable[i] {
			from, ok := older[i]
			if !ok {
				from = prevDir
			}
			old := filepath.Join(from, filepath.FromSlash(e.Path))
			if opt.Force {
				ok, err := forceLinkable(f, src, old, *e)
				if err != nil {
					return err
				}
				if !ok {
					goto copyIt
				}
			}
			if err := f.Link(old, dst); err == nil {
				linked.Add(1)
				return nil
			}
			// Link failed (e.g. too many links): fall back to a copy.
		}
	copyIt:
		h, sz, err := tree.CopyFile(f, src, f, dst, -1)
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
		return tree.SetMeta(f, dst, *e)
	}
	var dirs []manifest.Entry
	for _, e := range entries {
		if e.Type == manifest.Dir {
			dirs = append(dirs, e)
		}
	}
	if err := tree.MakeDirs(actx, f, work, dirs, opt.Workers); err != nil {
		return res, err
	}
	phase("mkdirs")
	// Directories are made here, in canonical order (a directory comes
	// before everything in it), while the pool already links and copies the
	// files of the directories made before: mkdir on ext4 hardly scales
	// across cores, linking does. Files go to the pool in batches of one
	// directory's files, so workers work in different directories
	// (creations in one directory serialise on its lock) and a job costs one
	// channel send per batch.
	pool := tree.NewPool(actx, opt.Workers)
	var batch []int
	batchDir := ""
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		b, dir := batch, batchDir
		batch = make([]int, 0, fileBatch)
		return pool.Go(func(context.Context) error {
			// Unchanged files of this directory are linked in one go,
			// relative to the two directories (fsys.LinkAll); if that fails
			// part way (e.g. too many links), each file takes the slow path.
			var names []string
			var rest []int
			if !opt.Force && prevDir != "" {
				for _, i := range b {
					if _, o := older[i]; linkable[i] && !o {
						p := entries[i].Path
						names = append(names, p[strings.LastIndexByte(p, '/')+1:])
					} else {
						rest = append(rest, i)
					}
				}
				if err := fsys.LinkAll(f, filepath.Join(prevDir, filepath.FromSlash(dir)), filepath.Join(work, filepath.FromSlash(dir)), names); err == nil {
					linked.Add(int64(len(names)))
					b = rest
				}
			}
			for _, i := range b {
				if _, o := older[i]; linkable[i] && !o && !opt.Force {
					if _, err := fsys.Lstat(f, filepath.Join(work, filepath.FromSlash(entries[i].Path))); err == nil {
						linked.Add(1) // linked by the LinkAll that failed later
						continue
					}
				}
				if err := fileJob(i); err != nil {
					return err
				}
			}
			return nil
		})
	}
	for i := range entries {
		e := &entries[i]
		switch e.Type {
		case manifest.Dir:
			continue
		case manifest.Symlink:
			dst := filepath.Join(work, filepath.FromSlash(e.Path))
			if err := f.SymlinkIfPossible(e.Target, dst); err != nil {
				pool.Wait()
				return res, fmt.Errorf("symlink %s: %w", dst, err)
			}
			continue
		}
		d := e.Path[:max(strings.LastIndexByte(e.Path, '/'), 0)]
		if len(batch) >= fileBatch || (len(batch) > 0 && d != batchDir) {
			if flush() != nil {
				break
			}
		}
		batchDir = d
		batch = append(batch, i)
	}
	flush()
	if err := pool.Wait(); err != nil {
		return res, err
	}
	phase("files")
	if err := tree.FinishDirsParallel(actx, f, work, dirs, opt.Workers); err != nil {
		return res, err
	}
	phase("finish dirs")
	if err := join(); err != nil {
		return res, err
	}
	watch.Close()
	phase("confirm")
	if hasSeq {
		after, _, err := sourceSeq(f, source)
		if err != nil {
			return res, err
		}
		if after.Begin != seqBefore.End {
			return res, &errChanged{fmt.Sprintf("source seq/begin moved from %d to %d", seqBefore.End, after.Begin)}
		}
	}
	// Durable: data and directory entries of the whole tree, and the
	// manifest, both before the rename that makes the snapshot exist. The
	// two are independent, so the manifest is encoded and written while the
	// filesystem flushes (a crash in between leaves a manifest without its
	// snapshot, which Cleanup removes).
	synced := make(chan error, 1)
	go func() { synced <- f.SyncFS(work) }()
	m := &manifest.Manifest{Snapshot: n, Entries: entries}
	errM := fsys.WriteStream(f, root.ManifestPath(n), 0o644, func(w io.Writer) error { return m.Encode(w) })
	if err := <-synced; err != nil {
		return res, fmt.Errorf("flush snapshot %d: %w", n, err)
	}
	if errM != nil {
		return res, fmt.Errorf("write manifest of snapshot %d: %w", n, errM)
	}
	phase("manifest")
	// A run stopped (SIGTERM, SIGINT) after the checks above installs
	// nothing: the build is re-checked right before each commit step.
	if err := Stopped(ctx); err != nil {
		return res, err
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
	if err := Stopped(ctx); err != nil {
		return res, err
	}
	if err := root.Flip(n); err != nil {
		return res, err
	}
	phase("flip")
	res.Snapshot, res.Published = n, true
	res.Linked, res.Copied, res.Bytes = int(linked.Load()), int(copied.Load()), bytes.Load()
	opt.Log.Info("published", "snapshot", n, "entries", len(entries), "linked", res.Linked, "copied", res.Copied, "bytes", res.Bytes, "deleted", res.Deleted)
	pr.unr.log(opt.Log, n)
	return res, nil
}

// Stopped returns an error wrapping ctx's cause if ctx is done: the check
// a writer makes right before it commits (renames a built snapshot into
// snapshots/, flips current), so that a run stopped after its last check
// installs nothing.
func Stopped(ctx context.Context) error {
	if ctx.Err() == nil {
		return nil
	}
	return fmt.Errorf("stopped before the commit: %w", context.Cause(ctx))
}

// confirmListing lists source again, streaming, and reports an *errChanged
// if it differs from entries in anything the snapshot records.
func confirmListing(ctx context.Context, f fsys.FS, source string, skip func(string) bool, entries []manifest.Entry) error {
	again, changed := 0, ""
	err := tree.WalkEach(ctx, f, source, skip, func(a *manifest.Entry) {
		if again < len(entries) && changed == "" {
			e := &entries[again]
			if a.Path != e.Path || a.Type != e.Type || a.Mode != e.Mode || a.Size != e.Size ||
				a.MTime != e.MTime || a.Target != e.Target {
				changed = a.Path
			}
		}
		again++
	})
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return &errChanged{err.Error()}
	}
	if again != len(entries) {
		return &errChanged{"files were added or removed while copying"}
	}
	if changed != "" {
		return &errChanged{changed + " changed while copying"}
	}
	return nil
}
