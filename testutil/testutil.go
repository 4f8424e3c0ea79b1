package testutil

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// RequireBinary returns the path of a real peer program (rsync, git). If it
// is missing the test skips with the reason, unless SEQMIRROR_REQUIRE_PEERS
// is set (as `make test` and CI do), in which case it fails.
func RequireBinary(tb testing.TB, name string) string {
	tb.Helper()
	return RequireBinaryOf(tb, name, name)
}

// RequireBinaryOf is RequireBinary for a program whose Debian package has
// another name (chromedriver: chromium-driver).
func RequireBinaryOf(tb testing.TB, name, pkg string) string {
	tb.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("SEQMIRROR_REQUIRE_PEERS") != "" {
			tb.Fatalf("%s is required (SEQMIRROR_REQUIRE_PEERS is set) but not found: %v; install it (apt-get install -y %s)", name, err, pkg)
		}
		tb.Skipf("%s not installed (apt-get install -y %s); `make test` requires it", name, pkg)
	}
	return p
}

// WriteTree writes files (relative path -> content) below dir. A value
// starting with "->" makes a symlink to the rest of the value.
func WriteTree(tb testing.TB, dir string, files map[string]string) {
	tb.Helper()
	for rel, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			tb.Fatal(err)
		}
		if len(content) >= 2 && content[:2] == "->" {
			os.Remove(p)
			if err := os.Symlink(content[2:], p); err != nil {
				tb.Fatal(err)
			}
			continue
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			tb.Fatal(err)
		}
	}
}

// GenTree makes n small files of random content (deterministic for seed)
// spread over nested directories below dir, and returns their relative paths.
func GenTree(tb testing.TB, dir string, n int, seed uint64) []string {
	tb.Helper()
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	var paths []string
	for i := 0; i < n; i++ {
		rel := fmt.Sprintf("d%02d/s%02d/f%05d.dat", i%7, (i/7)%5, i)
		p := filepath.Join(dir, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			tb.Fatal(err)
		}
		b := make([]byte, 64+r.IntN(4096))
		for j := range b {
			b[j] = byte(r.Uint32())
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			tb.Fatal(err)
		}
		paths = append(paths, rel)
	}
	return paths
}

// Touch changes the content of dir/rel and moves its mtime forward so the
// quick check sees the change even within one clock tick.
func Touch(tb testing.TB, dir, rel, content string) {
	tb.Helper()
	p := filepath.Join(dir, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		tb.Fatal(err)
	}
	var old time.Time
	if fi, err := os.Stat(p); err == nil {
		old = fi.ModTime()
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		tb.Fatal(err)
	}
	if fi, err := os.Stat(p); err == nil && !fi.ModTime().After(old) {
		t := old.Add(time.Millisecond)
		os.Chtimes(p, t, t)
	}
}

// GitRepo makes a git repository at dir with a few commits and returns dir.
func GitRepo(tb testing.TB, dir string, commits int) string {
	tb.Helper()
	git := RequireBinary(tb, "git")
	run := func(args ...string) {
		cmd := exec.Command(git, args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.org",
			"GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.org", "GIT_CONFIG_NOSYSTEM=1", "HOME="+dir)
		if out, err := cmd.CombinedOutput(); err != nil {
			tb.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		tb.Fatal(err)
	}
	run("init", "-q", "-b", "main")
	for i := 0; i < commits; i++ {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("file%d.txt", i%3)), []byte(fmt.Sprintf("commit %d\n", i)), 0o644); err != nil {
			tb.Fatal(err)
		}
		run("add", "-A")
		run("commit", "-q", "-m", fmt.Sprintf("commit %d", i))
	}
	return dir
}

// GitFsck runs `git fsck --full` in the repository at dir (a work tree or a
// bare repository) and fails the test if it reports a problem.
func GitFsck(tb testing.TB, dir string) {
	tb.Helper()
	git := RequireBinary(tb, "git")
	cmd := exec.Command(git, "-c", "safe.directory=*", "fsck", "--full", "--strict")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("git fsck in %s: %v\n%s", dir, err, out)
	}
}

// SyncBuffer is a bytes.Buffer safe for concurrent writers (a log handler's
// output read by the test while the code under test still writes).
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TakeLines returns the lines written since the last call (none: nil) and
// forgets them.
func (s *SyncBuffer) TakeLines() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := strings.TrimSpace(s.b.String())
	s.b.Reset()
	if t == "" {
		return nil
	}
	return strings.Split(t, "\n")
}

// Must fails the test at once if err is not nil.
func Must(tb testing.TB, err error) {
	tb.Helper()
	if err != nil {
		tb.Fatal(err)
	}
}

// SameFile reports whether a and b (not followed if symlinks) are the same inode.
func SameFile(tb testing.TB, a, b string) bool {
	tb.Helper()
	fa, err := os.Lstat(a)
	Must(tb, err)
	fb, err := os.Lstat(b)
	Must(tb, err)
	return os.SameFile(fa, fb)
}

// LastLine is the last line of s (a log, say) that holds sub, or "" if
// none does.
func LastLine(s, sub string) string {
	lines := strings.Split(s, "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.Contains(lines[i], sub) {
			return lines[i]
		}
	}
	return ""
}
