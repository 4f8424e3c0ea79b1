package cliapp_test

import (
	"io"
	"strings"
	"testing"

	"github.com/seqmirror/seqmirror/internal/cliapp"
	"github.com/urfave/cli/v2"
)

// The man pages make install writes are generated from the CLI
// definitions: every flag and subcommand of each tool is in its page.
func TestManPagesCoverTheCLI(t *testing.T) {
	for _, app := range []*cli.App{cliapp.PublishApp(io.Discard, io.Discard), cliapp.MirrorApp(io.Discard, io.Discard)} {
		t.Run(app.Name, func(t *testing.T) {
			man, err := app.ToManWithSection(1)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(man, ".TH "+app.Name+" 1") {
				t.Errorf("no section-1 title:\n%.200s", man)
			}
			for _, f := range app.Flags {
				if name := f.Names()[0]; !strings.Contains(man, "--"+name) {
					t.Errorf("flag --%s missing", name)
				}
			}
			for _, c := range app.Commands {
				if !strings.Contains(man, c.Name) {
					t.Errorf("command %s missing", c.Name)
				}
			}
		})
	}
}
