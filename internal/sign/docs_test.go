package sign_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/seqmirror/seqmirror/internal/sign"
	"github.com/seqmirror/seqmirror/testutil"
	"github.com/spf13/afero"
)

// TestVerifyRecipe runs docs/clients.md's `verify signature` recipe as
// written, with the stock minisign, on files signed here: it accepts a
// signed snapshot and refuses another key, a signature of another
// snapshot and an expired timestamp; shellcheck passes it.
func TestVerifyRecipe(t *testing.T) {
	minisignBin(t)
	script := testutil.DocBlock(t, "docs/clients.md", "verify signature")
	f := newFixture(t, nil)
	other := newFixture(t, nil)
	s := f.signer(t, nil)
	dir := t.TempDir()
	man := filepath.Join(dir, "snapshots", "42.manifest")
	write := func(p string, b []byte) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b, _ := os.ReadFile(f.file)
	write(man, b)
	d, err := sign.DigestFile(afero.NewOsFs(), man)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tests := []struct {
		name     string
		n        uint64        // the snapshot the signature names
		validity time.Duration // of the timestamp
		key      string
		says     string // "": accepted
	}{
		{name: "signed", n: 42, validity: time.Hour, key: f.prefix + ".pub", says: "snapshot 42: signed by the master"},
		{name: "another key", n: 42, validity: time.Hour, key: other.prefix + ".pub", says: "does not verify with"},
		{name: "another snapshot's statement", n: 41, validity: time.Hour, key: f.prefix + ".pub", says: "is for something else"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sig, ts := s.SignSnapshot(tt.n, d, now, tt.validity)
			write(man+".minisig", sig)
			write(filepath.Join(dir, "seq", "timestamp.minisig"), ts)
			out, err := exec.Command("sh", "-c", script, "recipe", dir, tt.key, "42").CombinedOutput()
			if !strings.Contains(string(out), tt.says) || (err == nil) != strings.HasPrefix(tt.says, "snapshot 42: signed") {
				t.Errorf("recipe: %v\n%s\nwant it to say %q", err, out, tt.says)
			}
		})
	}
	t.Run("expired timestamp", func(t *testing.T) {
		sig, _ := s.SignSnapshot(42, d, now, time.Hour)
		write(man+".minisig", sig)
		write(filepath.Join(dir, "seq", "timestamp.minisig"), s.SignTimestamp(42, d, now.Add(-2*time.Hour), time.Hour))
		out, err := exec.Command("sh", "-c", script, "recipe", dir, f.prefix+".pub", "42").CombinedOutput()
		if err == nil || !strings.Contains(string(out), "frozen: the newest timestamp expired at") {
			t.Errorf("recipe: %v\n%s\nwant frozen", err, out)
		}
	})
	sc := testutil.RequireBinary(t, "shellcheck")
	p := filepath.Join(t.TempDir(), "recipe.sh")
	write(p, []byte("#!/bin/sh\n"+script))
	if out, err := exec.Command(sc, p).CombinedOutput(); err != nil {
		t.Errorf("shellcheck: %v\n%s", err, out)
	}
}
