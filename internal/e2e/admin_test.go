package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/seqmirror/seqmirror/testutil"
)

// TestAdminWalkthrough follows docs/operating.md and docs/classic.md as a
// new mirror admin would: a master of git repositories behind the rsync
// daemon `publish rsyncd-conf` configures, a tier-1 and a tier-2 mirror, a
// volunteer mirror, a classic in-place git master with the documented
// hooks, all run from the documented crontab lines after `make install`.
// Every line is quiet under cron, every tier verifies, and every served
// repository passes git fsck --full.
func TestAdminWalkthrough(t *testing.T) {
	w := newWalk(t)
	names := []string{"linux", "git", "tools"}
	scm := filepath.Join(w.path("data"), "scm")
	master := newRepos(t, scm, filepath.Join(w.tmp, "work"), names...)
	var rels []string
	for _, n := range names {
		rels = append(rels, "scm/"+n+".git")
	}

	// The master: the documented crontab line, then its daemon.
	pubLine := w.cronLine("docs/operating.md", "/usr/local/bin/publish --root /srv/export")
	w.cron(pubLine)
	w.set("rsync://master.example.org/pub", w.serve(w.path("export"), "pub"))

	// Tier 1 and its daemon; tier 2 from tier 1; a volunteer from the master.
	tier1Line := w.cronLine("docs/operating.md", "--upstream rsync://master.example.org/pub --root /srv/mirror ")
	w.cron(tier1Line)
	w.set("rsync://mirror1.example.org/pub", w.serve(w.path("mirror"), "pub"))
	tier2Line := w.cronLine("docs/operating.md", "--root /srv/mirror2")
	volLine := w.cronLine("docs/operating.md", "seqmirror-volunteer-mirror")

	// The classic master: bare repositories with the documented setup and
	// hooks (auto gc made likely), served by `rsyncd-conf --classic`.
	classic := newClassicMaster(t, w, "proj", 2)
	w.set("rsync://git.example.org/git", w.serve(w.path("git"), "git", "--classic"))
	classicLine := w.cronLine("docs/classic.md", "--classic --upstream")

	for round := 1; round <= 3; round++ {
		if round > 1 {
			master.push(t, round)
			classic.push(t, round)
			w.cron(pubLine)
			w.cron(tier1Line)
		}
		w.cron(volLine)
		w.cron(tier2Line)
		w.cron(classicLine)
		for _, root := range []string{w.path("export"), w.path("mirror"), w.path("mirror2"), w.path("volunteer")} {
			w.mustTool("mirror-sync", "verify", "--root", root)
			fsckServed(t, root, rels...)
		}
		w.mustTool("mirror-sync", "verify", "--root", w.path("gitmirror"))
		fsckServed(t, w.path("gitmirror"), "proj.git")
		requireSameSnapshot(t, w.path("export"), w.path("mirror"), w.path("mirror2"), w.path("volunteer"))
	}
	// A no-op round is quiet too.
	for _, l := range []string{pubLine, tier1Line, volLine, tier2Line, classicLine} {
		w.cron(l)
	}
	// Bit rot on the master, size and mtime kept: verify finds it, a forced
	// republish serves a snapshot that verifies, and the documented repair
	// mends the older snapshots that share the damaged file; the tiers follow.
	rotten := filepath.Join(w.path("export"), "current", "scm", "linux.git", "description")
	testutil.CorruptInPlace(t, rotten)
	if code, out := w.tool("publish", "verify", "--root", w.path("export")); code != 3 {
		t.Fatalf("publish verify of a damaged snapshot: exit %d\n%s", code, out)
	}
	if out := w.mustTool("publish", "--root", w.path("export"), "--source", w.path("data"), "--force", "--quiet"); out != "" {
		t.Fatalf("publish --force --quiet printed %q", out)
	}
	w.mustTool("publish", "verify", "--root", w.path("export"))
	if code, _ := w.tool("publish", "verify", "--root", w.path("export"), "--all"); code != 3 {
		t.Fatalf("older snapshots sharing the damaged file: verify --all exit %d, want 3", code)
	}
	w.mustTool("publish", "verify", "--root", w.path("export"), "--all", "--repair", "--source", w.path("data"))
	w.mustTool("publish", "verify", "--root", w.path("export"), "--all")
	for _, l := range []string{tier1Line, volLine, tier2Line} {
		w.cron(l)
	}
	requireSameSnapshot(t, w.path("export"), w.path("mirror"), w.path("mirror2"), w.path("volunteer"))

	// Bit rot on tier 1: its repair re-fetches from the master into every
	// retained snapshot holding the damaged file.
	testutil.CorruptInPlace(t, filepath.Join(w.path("mirror"), "current", "scm", "git.git", "description"))
	if code, _ := w.tool("mirror-sync", "verify", "--root", w.path("mirror"), "--all"); code != 3 {
		t.Fatalf("mirror-sync verify --all of a damaged tier 1: exit %d, want 3", code)
	}
	w.mustTool("mirror-sync", "verify", "--root", w.path("mirror"), "--all", "--repair", "--upstream", w.srv["rsync://master.example.org/pub"])
	for _, root := range []string{w.path("export"), w.path("mirror"), w.path("mirror2"), w.path("volunteer")} {
		w.mustTool("mirror-sync", "verify", "--root", root, "--all")
		fsckServed(t, root, rels...)
	}

	// A client checks every tier, by path and over rsync, against its upstream.
	master1 := w.srv["rsync://master.example.org/pub"]
	for _, c := range []struct{ addr, against string }{
		{w.path("export"), ""},
		{master1, ""},
		{w.path("mirror"), master1},
		{w.srv["rsync://mirror1.example.org/pub"], master1},
		{w.path("mirror2"), w.srv["rsync://mirror1.example.org/pub"]},
		{w.path("volunteer"), master1},
		{w.path("gitmirror"), ""},
	} {
		args := []string{"check", c.addr}
		if c.against != "" {
			args = append(args, "--against", c.against)
		}
		if out := w.mustTool("mirror-sync", args...); !strings.HasPrefix(out, "SEQMIRROR OK - ") {
			t.Errorf("check %v: %q", args, out)
		}
	}
}

// requireSameSnapshot checks that every root serves the first root's
// snapshot number.
func requireSameSnapshot(tb testing.TB, roots ...string) {
	tb.Helper()
	want, err := os.Readlink(filepath.Join(roots[0], "current"))
	if err != nil {
		tb.Fatal(err)
	}
	for _, r := range roots[1:] {
		if got, err := os.Readlink(filepath.Join(r, "current")); err != nil || got != want {
			tb.Errorf("%s serves %q (%v), the master %q", r, got, err, want)
		}
	}
}

// classicMaster is a directory of bare repositories updated in place, set
// up as docs/classic.md says.
type classicMaster struct {
	*repos
}

func newClassicMaster(t *testing.T, w *walk, name string, autoPackLimit int) *classicMaster {
	t.Helper()
	dir := w.path("git")
	bin := filepath.Join(w.tmp, "git-bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bin, "seq-update"), []byte(testutil.DocBlock(t, "docs/classic.md", "seq-update")), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH")) // the hooks call seq-update
	if err := os.MkdirAll(filepath.Join(dir, "seq"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, c := range []string{"begin", "end"} {
		if err := os.WriteFile(filepath.Join(dir, "seq", c), []byte("0\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	r := &repos{}
	bare, wt := filepath.Join(dir, name+".git"), filepath.Join(w.tmp, "classic-work", name)
	if err := os.MkdirAll(bare, 0o755); err != nil {
		t.Fatal(err)
	}
	git(t, bare, "init", "-q", "--bare", "-b", "main")
	setup := strings.ReplaceAll(testutil.DocBlock(t, "docs/classic.md", "repository setup"), "/srv/git/seq", filepath.Join(dir, "seq"))
	for _, l := range strings.Split(strings.TrimSpace(setup), "\n") {
		f := strings.Fields(l)
		if len(f) != 4 || f[0] != "git" || f[1] != "config" {
			t.Fatalf("docs/classic.md repository setup: unexpected line %q", l)
		}
		git(t, bare, f[1:]...)
	}
	git(t, bare, "config", "gc.autoPackLimit", "2")
	git(t, bare, "config", "gc.auto", "1")
	for _, h := range []string{"pre-receive", "post-receive"} {
		if err := os.WriteFile(filepath.Join(bare, "hooks", h), []byte(testutil.DocBlock(t, "docs/classic.md", "hooks/"+h)), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	testutil.GitRepo(t, wt, 3)
	git(t, wt, "remote", "add", "origin-bare", bare)
	git(t, wt, "push", "-q", "origin-bare", "main")
	r.bares, r.works = []string{bare}, []string{wt}
	return &classicMaster{r}
}
