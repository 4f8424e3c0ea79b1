package main

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRun(t *testing.T) {
	dir := t.TempDir()
	good, bad := filepath.Join(dir, "good.csv"), filepath.Join(dir, "bad.csv")
	for p, s := range map[string]string{good: small, bad: small + "ext4,10000,sync-1pct,ftp,rsync,1,\n"} {
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name    string
		args    []string
		wantErr string // "": success
		wantOut string
		svg     bool // the plot exists afterwards
	}{
		{name: "tables and plot", args: []string{"-csv", good, "-svg", filepath.Join(dir, "a.svg"), "-title", "T"}, wantOut: "| publish-1pct | 2.00 s / 8.50 s = 4.3x", svg: true},
		{name: "tables only", args: []string{"-csv", good}, wantOut: "#### btrfs\n"},
		{name: "no csv", args: []string{"-svg", filepath.Join(dir, "b.svg")}, wantErr: "usage: scaleplot -csv FILE"},
		{name: "stray argument", args: []string{"-csv", good, "x"}, wantErr: "usage:"},
		{name: "missing file", args: []string{"-csv", filepath.Join(dir, "none.csv")}, wantErr: "none.csv: no such file"},
		{name: "malformed line: nothing written", args: []string{"-csv", bad, "-svg", filepath.Join(dir, "c.svg")}, wantErr: "bad.csv: line 13: malformed field: via \"ftp\""},
		{name: "unwritable plot: no tables", args: []string{"-csv", good, "-svg", filepath.Join(dir, "no", "d.svg")}, wantErr: "writing the plot"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr strings.Builder
			err := run(tt.args, &stdout, &stderr)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("run: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("run = %v, want an error containing %q", err, tt.wantErr)
			case tt.wantErr != "" && stdout.Len() > 0:
				t.Errorf("wrote %q to stdout on error", stdout.String())
			}
			if !strings.Contains(stdout.String(), tt.wantOut) {
				t.Errorf("stdout lacks %q:\n%s", tt.wantOut, stdout.String())
			}
			for _, a := range tt.args {
				if strings.HasSuffix(a, ".svg") {
					if _, err := os.Stat(a); (err == nil) != tt.svg {
						t.Errorf("plot %s: %v, want it to exist: %v", a, err, tt.svg)
					}
				}
			}
		})
	}
}

func TestRunHelp(t *testing.T) {
	var stdout, stderr strings.Builder
	if err := run([]string{"-h"}, &stdout, &stderr); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("run -h = %v", err)
	}
	if !strings.Contains(stderr.String(), "-csv") {
		t.Errorf("help lacks -csv: %q", stderr.String())
	}
}
