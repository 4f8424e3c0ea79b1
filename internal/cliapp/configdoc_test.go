package cliapp

import (
	"os"
	"strings"
	"testing"

	"github.com/seqmirror/seqmirror/internal/config"
	"github.com/seqmirror/seqmirror/testutil"
	"github.com/urfave/cli/v2"
)

// The configuration files docs/operating.md shows parse, and every key in
// them is a flag of the tool that reads them.
func TestConfigDocExamples(t *testing.T) {
	b, err := os.ReadFile(testutil.RepoFile("docs/operating.md"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		label string
		app   *cli.App
		want  []string // keys the example must show
	}{
		{name: "master", label: "`/etc/seqmirror/pub.conf`", app: PublishApp(nil, nil), want: []string{"root", "source", "notify", "quorum"}},
		{name: "publish --watch", label: "`/etc/seqmirror/watch.conf`", app: PublishApp(nil, nil), want: []string{"root", "source", "watch-quiet", "watch-max-delay"}},
		{name: "mirror daemon", label: "`/etc/seqmirror/debian.conf`", app: MirrorApp(nil, nil), want: []string{"root", "upstream", "listen", "secret-file", "downstream"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, rest, ok := strings.Cut(string(b), tt.label)
			_, rest, ok2 := strings.Cut(rest, "```conf\n")
			block, _, ok3 := strings.Cut(rest, "```")
			if !ok || !ok2 || !ok3 {
				t.Fatalf("docs/operating.md: no conf block after %s", tt.label)
			}
			entries, err := config.Parse(strings.NewReader(block))
			if err != nil {
				t.Fatal(err)
			}
			known := toolFlags(tt.app)
			seen := map[string]bool{}
			for _, e := range entries {
				seen[e.Key] = true
				if !known[e.Key] {
					t.Errorf("line %d: %s is no flag of %s", e.Line, e.Key, tt.app.Name)
				}
			}
			for _, k := range tt.want {
				if !seen[k] {
					t.Errorf("the example has no %s", k)
				}
			}
		})
	}
}
