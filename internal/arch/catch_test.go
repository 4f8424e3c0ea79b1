package arch

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const mod = "example.org/m"

// fixture is a module of one file per package: files[import path below
// mod] = that file's imports (below mod if they start with "."), the
// file's name says whether it is a test.
type fixture map[string]struct {
	name    string
	imports []string
	errText []string
}

func (fx fixture) module() *module {
	m := &module{path: mod, pkgs: map[string][]file{}}
	for dir, f := range fx {
		var imps []string
		for _, i := range f.imports {
			if rest, ok := strings.CutPrefix(i, "./"); ok {
				i = mod + "/" + rest
			}
			imps = append(imps, i)
		}
		var lits []lit
		for i, t := range f.errText {
			lits = append(lits, lit{i + 1, t})
		}
		m.pkgs[mod+"/"+dir] = append(m.pkgs[mod+"/"+dir], file{name: dir + "/" + f.name, test: strings.HasSuffix(f.name, "_test.go"), imports: imps, errText: lits})
	}
	return m
}

// Every rule finds what breaks it, in the file that does, and finds
// nothing in what it allows.
func TestRulesCatch(t *testing.T) {
	flags := []string{"force", "max-delete", "upstream"}
	byName := map[string]rule{}
	for _, r := range rules(flags) {
		byName[r.name] = r
	}
	type f = struct {
		name    string
		imports []string
		errText []string
	}
	tests := []struct {
		name string
		rule string
		fx   fixture
		want []string // the files with findings ("": none)
	}{
		{name: "a library imports urfave/cli", rule: "only the CLI imports urfave/cli",
			fx: fixture{"snapshot": f{"p.go", []string{"github.com/urfave/cli/v2"}, nil}}, want: []string{"snapshot/p.go"}},
		{name: "a library's test imports urfave/cli", rule: "only the CLI imports urfave/cli",
			fx: fixture{"internal/tree": f{"t_test.go", []string{"github.com/urfave/cli/v2"}, nil}}, want: []string{"internal/tree/t_test.go"}},
		{name: "the CLI imports urfave/cli", rule: "only the CLI imports urfave/cli",
			fx: fixture{"internal/cliapp": f{"a.go", []string{"github.com/urfave/cli/v2"}, nil},
				"cmd/publish":           f{"main.go", []string{"github.com/urfave/cli/v2"}, nil},
				"internal/tools/genman": f{"main.go", []string{"github.com/urfave/cli/v2"}, nil}}},
		{name: "a library imports testutil", rule: "test helpers only from tests",
			fx: fixture{"internal/export": f{"e.go", []string{"./testutil/faultfs"}, nil}}, want: []string{"internal/export/e.go"}},
		{name: "tests and testutil import testutil", rule: "test helpers only from tests",
			fx: fixture{"internal/export": f{"e_test.go", []string{"./testutil"}, nil},
				"testutil/faultfs": f{"faultfs.go", []string{"./testutil"}, nil}}},
		{name: "a public package reaches testutil through an internal one", rule: "public packages depend on no test helper and no CLI",
			fx: fixture{"seqfile": f{"s.go", []string{"./internal/x"}, nil},
				"internal/x": f{"x.go", []string{"./testutil"}, nil}}, want: []string{"internal/x/x.go"}},
		{name: "a public package imports the CLI", rule: "public packages depend on no test helper and no CLI",
			fx: fixture{"manifest": f{"m.go", []string{"./internal/cliapp"}, nil}}, want: []string{"manifest/m.go"}},
		{name: "a public package's test imports testutil", rule: "public packages depend on no test helper and no CLI",
			fx: fixture{"manifest": f{"m_test.go", []string{"./testutil"}, nil}}},
		{name: "tree imports export", rule: "tree and transport stay below the publisher and the mirror",
			fx: fixture{"internal/tree": f{"tree.go", []string{"./internal/export"}, nil}}, want: []string{"internal/tree/tree.go"}},
		{name: "tree reaches the mirror indirectly", rule: "tree and transport stay below the publisher and the mirror",
			fx: fixture{"internal/tree": f{"tree.go", []string{"./internal/fsys"}, nil},
				"internal/fsys": f{"fsys.go", []string{"./internal/mirror"}, nil}}, want: []string{"internal/fsys/fsys.go"}},
		{name: "rsync imports snapshot", rule: "tree and transport stay below the publisher and the mirror",
			fx: fixture{"internal/transport/rsync": f{"rsync.go", []string{"./snapshot"}, nil}}, want: []string{"internal/transport/rsync/rsync.go"}},
		{name: "transport imports export and tree", rule: "tree and transport stay below the publisher and the mirror",
			fx: fixture{"internal/transport": f{"t.go", []string{"./internal/export", "./internal/tree"}, nil}}},
		{name: "an error names a flag", rule: flagRule,
			fx: fixture{"internal/mirror": f{"m.go", nil, []string{"%w; pass --max-delete 100"}}}, want: []string{"internal/mirror/m.go"}},
		{name: "an error names a command", rule: flagRule,
			fx: fixture{"snapshot": f{"p.go", nil, []string{"run `mirror-sync verify`"}}}, want: []string{"snapshot/p.go"}},
		{name: "allowed: the CLI's errors, tests, other programs' flags, longer words", rule: flagRule,
			fx: fixture{"internal/cliapp": f{"c.go", nil, []string{"--force"}},
				"snapshot":      f{"p_test.go", nil, []string{"--force"}},
				"testutil":      f{"rsyncd.go", nil, []string{"rsync --daemon: %w"}},
				"internal/tree": f{"t.go", nil, []string{"--forceful", "a--b", "publish it"}}}},
		{name: "a flag after a command, no backticks", rule: flagRule,
			fx: fixture{"internal/tree": f{"t.go", nil, []string{"repair with publish --force"}}}, want: []string{"internal/tree/t.go"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, ok := byName[tt.rule]
			if !ok {
				t.Fatalf("no rule %q", tt.rule)
			}
			var got []string
			for _, fd := range r.check(tt.fx.module()) {
				got = append(got, fd.file)
			}
			got = slices.Compact(got)
			if !slices.Equal(got, tt.want) {
				t.Fatalf("findings in %q, want %q", got, tt.want)
			}
		})
	}
}

// The loader reads imports and the literals of error calls from real
// files, skips testdata, and names packages by the module path.
func TestLoadModule(t *testing.T) {
	root := t.TempDir()
	write := func(rel, text string) {
		p := filepath.Join(root, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("go.mod", "module "+mod+"\n\ngo 1.22\n")
	write("lib/lib.go", "package lib\n\nimport (\n\t\"errors\"\n\t\"fmt\"\n\n\t_ \""+mod+"/testutil\"\n)\n\n"+
		"func f(err error) error {\n\tif err != nil {\n\t\treturn fmt.Errorf(\"step: %w; pass \" + \"--force\", err)\n\t}\n\treturn errors.New(`run `+\"`publish verify`\")\n}\n\n"+
		"var s = fmt.Sprintf(\"--force\") // not an error\n")
	write("lib/lib_test.go", "package lib_test\n\nimport \"github.com/urfave/cli/v2\"\n")
	write("lib/testdata/bad.go", "package bad\n\nimport \"github.com/urfave/cli/v2\"\n")
	m := loadModule(t, root)
	files := m.pkgs[mod+"/lib"]
	if len(m.pkgs) != 1 || len(files) != 2 {
		t.Fatalf("packages %v", m.pkgs)
	}
	lib := files[slices.IndexFunc(files, func(f file) bool { return !f.test })]
	if !slices.Equal(lib.imports, []string{"errors", "fmt", mod + "/testutil"}) {
		t.Errorf("imports %q", lib.imports)
	}
	var texts []string
	for _, l := range lib.errText {
		texts = append(texts, l.text)
	}
	if !slices.Equal(texts, []string{"step: %w; pass ", "--force", "run ", "`publish verify`"}) {
		t.Errorf("error literals %q", texts)
	}
	if got := testHelperImports(m); len(got) != 1 || got[0].file != "lib/lib.go" {
		t.Errorf("test helper findings %v", got)
	}
	if got := cliImports(m); len(got) != 1 || got[0].file != "lib/lib_test.go" {
		t.Errorf("urfave/cli findings %v", got)
	}
}
