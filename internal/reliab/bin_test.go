package reliab

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/seqmirror/seqmirror/testutil"
)

// binDir holds the publish and mirror-sync binaries built by TestMain.
var binDir string

func TestMain(m *testing.M) {
	d, err := os.MkdirTemp("", "seqmirror-reliab-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	out, err := exec.Command("go", "build", "-o", d+"/", "github.com/seqmirror/seqmirror/cmd/...").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "go build: %v\n%s", err, out)
		os.RemoveAll(d)
		os.Exit(1)
	}
	binDir = d
	code := m.Run()
	os.RemoveAll(d)
	os.Exit(code)
}

func bin(name string) string { return filepath.Join(binDir, name) }

// run runs a binary to completion and returns stdout, stderr and exit code.
func run(tb testing.TB, name string, args ...string) (string, string, int) {
	tb.Helper()
	var out, errb bytes.Buffer
	cmd := exec.Command(bin(name), args...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return out.String(), errb.String(), 0
	case errors.As(err, &ee):
		return out.String(), errb.String(), ee.ExitCode()
	}
	tb.Fatalf("%s %v: %v", name, args, err)
	return "", "", -1
}

// mustRun is run that fails the test unless the exit code is 0.
func mustRun(tb testing.TB, name string, args ...string) string {
	tb.Helper()
	out, errs, code := run(tb, name, args...)
	if code != 0 {
		tb.Fatalf("%s %v: exit %d\n%s", name, args, code, errs)
	}
	return out
}

// mutator changes a generated source tree a little each step: it rewrites
// some files, adds one and deletes an older addition.
type mutator struct {
	dir   string
	paths []string
	rng   *rand.Rand
	step  int
}

func newMutator(tb testing.TB, dir string, files int, seed uint64) *mutator {
	tb.Helper()
	return &mutator{dir: dir, paths: testutil.GenTree(tb, dir, files, seed), rng: rand.New(rand.NewPCG(seed, 1))}
}

func (m *mutator) mutate(tb testing.TB, changes int) {
	tb.Helper()
	m.step++
	for i := 0; i < changes; i++ {
		p := m.paths[m.rng.IntN(len(m.paths))]
		testutil.Touch(tb, m.dir, p, fmt.Sprintf("step %d change %d %x\n", m.step, i, m.rng.Uint64()))
		// A whole-second mtime unique to this step, so that rsync's quick
		// check (size and mtime to the second) sees every change too.
		mt := time.Unix(1_600_000_000+int64(m.step), 0)
		if err := os.Chtimes(filepath.Join(m.dir, p), mt, mt); err != nil {
			tb.Fatal(err)
		}
	}
	testutil.Touch(tb, m.dir, fmt.Sprintf("added/%d/n%d", m.step%4, m.step), fmt.Sprintf("added in step %d\n", m.step))
	if m.step > 3 {
		os.Remove(filepath.Join(m.dir, fmt.Sprintf("added/%d/n%d", (m.step-3)%4, m.step-3)))
	}
}
