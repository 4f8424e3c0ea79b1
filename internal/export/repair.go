package export

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"path/filepath"
	"syscall"

	"github.com/seqmirror/seqmirror/internal/fsys"
	"github.com/seqmirror/seqmirror/internal/tree"
	"github.com/seqmirror/seqmirror/manifest"
)

// RepairSource puts good copies of the regular files of snapshot n listed
// in files into dir, at their relative paths (whose directories exist). It
// may leave out a file it has no copy of: Repair checks every file it gets
// against its record and reports the others as not repaired.
type RepairSource func(ctx context.Context, n uint64, files []manifest.Entry, dir string) error

// RepairedPath is one copy of a file that Repair replaced, or could not.
type RepairedPath struct {
	Snapshot uint64 `json:"snapshot"`
	Path     string `json:"path"`
	Reason   string `json:"reason,omitempty"` // why it was not repaired
}

// RepairResult is what Repair did.
type RepairResult struct {
	// Repaired lists every copy replaced: those of the snapshot repaired
	// and those of other retained snapshots that held the same damage.
	Repaired []RepairedPath `json:"repaired"`
	// Failed lists the differences left as they were, with why.
	Failed []RepairedPath `json:"failed,omitempty"`
}

// repairWork is the staging directory below ROOT/.work (Cleanup removes
// it if a run dies).
const repairWork = "repair"

// damage is one file of the snapshot being repaired that differs from its
// record, and what it was before the repair.
type damage struct {
	rec    manifest.Entry
	fi     fs.FileInfo  // nil: missing, or not a regular file
	bad    manifest.Sum // its content hash, if fi is not nil
	good   string       // the repaired file, once renamed into place
	repair bool
}

// Repair replaces the damaged regular files of snapshot n, probs as tree.Verify
// reported them, by good copies from src; and in every other retained
// snapshot, the same path where it holds the same damaged file (the same
// inode, as hard links share it, or the same bad content). Call it only
// while holding the root's lock.
//
// It is the one exception to the immutability of snapshots (doc.go): it
// never writes into a file of a snapshot (the damaged inode may be shared
// with other snapshots). Each good copy is staged in ROOT/.work, checked
// against its record (size and hash), given its mode and mtime, flushed,
// then renamed over the damaged path, so a reader sees the damaged file or
// the good one, never a mix. Other snapshots get a hard link to the good
// copy when their record is the same, renamed into place the same way.
// A directory that differs only in its mode gets its recorded mode
// (directories are never shared). Other differences (extra entries,
// directories missing or of another type, symlinks) are not repaired: they
// are returned in Failed.
//
// Repair reads the records of probs' paths from the manifest (a streaming
// pass); RepairVerified takes them from the verification instead.
func Repair(ctx context.Context, root *Root, n uint64, probs []tree.Problem, src RepairSource) (RepairResult, error) {
	want := map[string]bool{}
	for _, p := range probs {
		want[p.Path] = true
	}
	recs, err := records(root, n, want)
	if err != nil {
		return RepairResult{}, err
	}
	return repair(ctx, root, n, probs, recs, src)
}

// RepairVerified is Repair of the differences v lists, where v is
// VerifyStream's verification of snapshot n against its manifest: the
// records of the damaged paths are those v kept, so the manifest is not
// read again. Differences v did not list (More) are left for the next
// verification.
func RepairVerified(ctx context.Context, root *Root, n uint64, v tree.Verification, src RepairSource) (RepairResult, error) {
	return repair(ctx, root, n, v.Problems, v.Records(), src)
}

// repair is Repair with the records recs of probs' paths (those that
// have one).
func repair(ctx context.Context, root *Root, n uint64, probs []tree.Problem, recs map[string]manifest.Entry, src RepairSource) (RepairResult, error) {
	var res RepairResult
	var dirs []manifest.Entry
	dmg := damaged(root, n, probs, recs, &dirs, &res)
	if len(dmg) == 0 {
		return res, repairDirs(root, n, dirs, &res)
	}
	tmp := filepath.Join(root.WorkDir(), repairWork)
	defer fsys.RemoveAll(root.FS, tmp)
	if err := stage(ctx, root.FS, tmp, n, dmg, src); err != nil {
		return res, err
	}
	if err := replaceStaged(root, n, tmp, dmg, &res); err != nil {
		return res, err
	}
	if err := repairShared(root, n, dmg, &res); err != nil {
		return res, err
	}
	return res, repairDirs(root, n, dirs, &res)
}

// replaceStaged renames each good copy staged in tmp over its damaged file
// in snapshot n, or says in res why it cannot.
func replaceStaged(root *Root, n uint64, tmp string, dmg []*damage, res *RepairResult) error {
	dir := root.SnapshotDir(n)
	for _, d := range dmg {
		staged := filepath.Join(tmp, filepath.FromSlash(d.rec.Path))
		why := checkStaged(root.FS, staged, d.rec)
		if why == "" && !realDirs(root.FS, dir, d.rec.Path) {
			why = "a directory above it is missing or not a directory"
		}
		if why != "" {
			res.Failed = append(res.Failed, RepairedPath{n, d.rec.Path, why})
			continue
		}
		d.good = filepath.Join(dir, filepath.FromSlash(d.rec.Path))
		if err := replace(root.FS, staged, d.good); err != nil {
			return err
		}
		d.repair = true
		res.Repaired = append(res.Repaired, RepairedPath{Snapshot: n, Path: d.rec.Path})
	}
	return nil
}

// isRealDir reports whether rel in snapshot n is a directory reached
// through directories only.
func isRealDir(root *Root, n uint64, rel string) bool {
	dir := root.SnapshotDir(n)
	fi, err := fsys.Lstat(root.FS, filepath.Join(dir, filepath.FromSlash(rel)))
	return err == nil && fi.IsDir() && realDirs(root.FS, dir, rel)
}

// damaged looks up the records of probs in recs (snapshot n's) and notes
// what is on disk at each file, adding directories whose mode differs to
// dirs and what cannot be repaired to res.
func damaged(root *Root, n uint64, probs []tree.Problem, recs map[string]manifest.Entry, dirs *[]manifest.Entry, res *RepairResult) []*damage {
	var dmg []*damage
	for _, p := range probs {
		rec, ok := recs[p.Path]
		if ok && rec.Type == manifest.Dir && isRealDir(root, n, rec.Path) {
			*dirs = append(*dirs, rec) // tree.Verify checks a directory's type, then its mode
			continue
		}
		if !ok || rec.Type != manifest.File {
			res.Failed = append(res.Failed, RepairedPath{n, p.Path, p.Reason + ": only regular files and the mode of directories can be repaired"})
			continue
		}
		d := &damage{rec: rec}
		full := filepath.Join(root.SnapshotDir(n), filepath.FromSlash(rec.Path))
		if fi, err := fsys.Lstat(root.FS, full); err == nil && fi.Mode().IsRegular() {
			if h, _, err := tree.HashFile(root.FS, full, rec.SumVersion()); err == nil {
				d.fi, d.bad = fi, h
			}
		}
		dmg = append(dmg, d)
	}
	return dmg
}

// records reads the records of snapshot n's manifest at the paths in want,
// streaming it whole (a corrupt manifest is an error).
func records(root *Root, n uint64, want map[string]bool) (map[string]manifest.Entry, error) {
	ms, err := root.OpenManifest(n)
	if err != nil {
		return nil, err
	}
	defer ms.Close()
	got := map[string]manifest.Entry{}
	for {
		e, err := ms.Next()
		if err == io.EOF {
			return got, ms.Finish()
		}
		if err != nil {
			return nil, err
		}
		if want[e.Path] {
			got[e.Path] = e
		}
	}
}

// stage has src put good copies of the damaged files into tmp and flushes
// them.
func stage(ctx context.Context, f fsys.FS, tmp string, n uint64, dmg []*damage, src RepairSource) error {
	if err := fsys.RemoveAll(f, tmp); err != nil {
		return err
	}
	files := make([]manifest.Entry, len(dmg))
	for i, d := range dmg {
		files[i] = d.rec
		if err := f.MkdirAll(filepath.Join(tmp, filepath.Dir(filepath.FromSlash(d.rec.Path))), 0o755); err != nil {
			return fmt.Errorf("stage repair: %w", err)
		}
	}
	if err := src(ctx, n, files, tmp); err != nil {
		return fmt.Errorf("fetch good copies: %w", err)
	}
	for _, d := range dmg {
		staged := filepath.Join(tmp, filepath.FromSlash(d.rec.Path))
		if err := tree.SetMeta(f, staged, d.rec); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	if err := f.SyncFS(tmp); err != nil {
		return fmt.Errorf("flush repaired files: %w", err)
	}
	return nil
}

// checkStaged says why the staged copy cannot replace a file recorded as
// rec ("" if it can).
func checkStaged(f fsys.FS, staged string, rec manifest.Entry) string {
	fi, err := fsys.Lstat(f, staged)
	if err != nil || !fi.Mode().IsRegular() {
		return "no copy with the recorded content to repair it from"
	}
	h, size, err := tree.HashFile(f, staged, rec.SumVersion())
	if err != nil {
		return fmt.Sprintf("reading the good copy: %v", err)
	}
	if tree.CheckHash(rec, size, h) != nil {
		return fmt.Sprintf("no copy with the recorded content to repair it from (the one found has %s, size %d)", tree.SumString(h), size)
	}
	return ""
}

// replace renames the file at from over to, in a snapshot directory that
// may be read-only, restoring the directory's mode and mtime after.
func replace(f fsys.FS, from, to string) (err error) {
	parent := filepath.Dir(to)
	fi, err := f.Stat(parent)
	if err != nil {
		return fmt.Errorf("repair %s: %w", to, err)
	}
	mode := fi.Mode().Perm()
	if mode&0o300 != 0o300 {
		if err := f.Chmod(parent, mode|0o700); err != nil {
			return fmt.Errorf("repair %s: %w", to, err)
		}
		defer func() {
			if cerr := f.Chmod(parent, mode); err == nil && cerr != nil {
				err = fmt.Errorf("repair %s: restore the directory's mode: %w", to, cerr)
			}
		}()
	}
	defer func() {
		if cerr := f.Chtimes(parent, fi.ModTime(), fi.ModTime()); err == nil && cerr != nil {
			err = fmt.Errorf("repair %s: restore the directory's mtime: %w", to, cerr)
		}
	}()
	if err := f.Rename(from, to); err != nil {
		return fmt.Errorf("repair %s: %w", to, err)
	}
	return fsys.SyncDir(f, parent)
}

// repairDirs gives the directories of dirs (records of snapshot n whose
// directory differs only in its mode) their recorded mode. Directories are
// never shared between snapshots, so this changes no other snapshot.
func repairDirs(root *Root, n uint64, dirs []manifest.Entry, res *RepairResult) error {
	for _, d := range dirs {
		full := filepath.Join(root.SnapshotDir(n), filepath.FromSlash(d.Path))
		if err := root.FS.Chmod(full, d.Mode); err != nil {
			return fmt.Errorf("repair %s: %w", full, err)
		}
		res.Repaired = append(res.Repaired, RepairedPath{Snapshot: n, Path: d.Path})
	}
	return nil
}

// repairShared repairs, in every other retained snapshot, the paths of dmg
// that hold the damaged file.
func repairShared(root *Root, n uint64, dmg []*damage, res *RepairResult) error {
	snaps, err := root.Snapshots()
	if err != nil {
		return err
	}
	for _, m := range snaps {
		if m == n {
			continue
		}
		if err := repairOther(root, m, dmg, res); err != nil {
			return fmt.Errorf("snapshot %d: %w", m, err)
		}
	}
	return nil
}

// repairOther repairs the damage dmg recorded in snapshot m.
func repairOther(root *Root, m uint64, dmg []*damage, res *RepairResult) error {
	dir := root.SnapshotDir(m)
	hit := map[string]*damage{}
	for _, d := range dmg {
		if d.repair && d.fi != nil && realDirs(root.FS, dir, d.rec.Path) && holdsDamage(root.FS, filepath.Join(dir, filepath.FromSlash(d.rec.Path)), d) {
			hit[d.rec.Path] = d
		}
	}
	if len(hit) == 0 {
		return nil
	}
	want := map[string]bool{}
	for p := range hit {
		want[p] = true
	}
	recs, err := records(root, m, want)
	if err != nil {
		return err
	}
	tmp := filepath.Join(root.WorkDir(), repairWork+"-link")
	if err := fsys.RemoveAll(root.FS, tmp); err != nil {
		return err
	}
	defer fsys.RemoveAll(root.FS, tmp)
	if err := root.FS.MkdirAll(tmp, 0o755); err != nil {
		return err
	}
	for p, d := range hit {
		rec, ok := recs[p]
		if !ok || !rec.SameContent(d.rec) {
			res.Failed = append(res.Failed, RepairedPath{m, p, "holds the damaged file but records other content than the repaired snapshot; repair this snapshot on its own"})
			continue
		}
		staged := filepath.Join(tmp, "f")
		if err := root.FS.Link(d.good, staged); err != nil {
			return fmt.Errorf("link repaired %s: %w", p, err)
		}
		if err := replace(root.FS, staged, filepath.Join(dir, filepath.FromSlash(p))); err != nil {
			return err
		}
		res.Repaired = append(res.Repaired, RepairedPath{Snapshot: m, Path: p})
	}
	return nil
}

// realDirs reports whether every directory between base and the file at
// rel (slash-separated) is a directory, not a symlink: a rename must not
// pass through a symlink that damage put in a snapshot.
func realDirs(f fsys.FS, base, rel string) bool {
	for d := path.Dir(rel); d != "."; d = path.Dir(d) {
		fi, err := fsys.Lstat(f, filepath.Join(base, filepath.FromSlash(d)))
		if err != nil || !fi.IsDir() {
			return false
		}
	}
	return true
}

// holdsDamage reports whether full is the damaged file of d: the same
// inode, or a regular file with the same size and bad content.
func holdsDamage(f fsys.FS, full string, d *damage) bool {
	fi, err := fsys.Lstat(f, full)
	if err != nil || !fi.Mode().IsRegular() {
		return false
	}
	if sameInode(fi, d.fi) {
		return true
	}
	if fi.Size() != d.fi.Size() {
		return false
	}
	h, _, err := tree.HashFile(f, full, d.rec.SumVersion())
	return err == nil && h == d.bad && h != d.rec.Sum()
}

// sameInode reports whether a and b are the same file (device and inode).
func sameInode(a, b fs.FileInfo) bool {
	sa, ok1 := a.Sys().(*syscall.Stat_t)
	sb, ok2 := b.Sys().(*syscall.Stat_t)
	return ok1 && ok2 && sa.Dev == sb.Dev && sa.Ino == sb.Ino
}

// FromSource is the RepairSource of a publishing root: it copies each file
// from the same path below source (never following a symlink at the file
// itself). The copy repairs only if it still has the recorded content.
func FromSource(f fsys.FS, source string) RepairSource {
	return func(ctx context.Context, _ uint64, files []manifest.Entry, dir string) error {
		for _, e := range files {
			if err := ctx.Err(); err != nil {
				return err
			}
			src := filepath.Join(source, filepath.FromSlash(e.Path))
			if fi, err := fsys.Lstat(f, src); err != nil || !fi.Mode().IsRegular() {
				continue // nothing to repair from; Repair reports it
			}
			dst := filepath.Join(dir, filepath.FromSlash(e.Path))
			if _, _, err := tree.CopyFile(f, src, f, dst, e.Size, e.SumVersion()); err != nil {
				if errors.Is(err, tree.ErrHashMismatch) {
					_ = f.Remove(dst) // longer than recorded: not the content
					continue
				}
				return err
			}
		}
		return nil
	}
}
