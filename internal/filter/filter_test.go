package filter_test

import (
	"bytes"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/seqmirror/seqmirror/internal/filter"
	"github.com/seqmirror/seqmirror/manifest"
)

func rules(t testing.TB, rs ...string) *filter.Filter {
	t.Helper()
	f, err := filter.Parse(rs)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestKeep(t *testing.T) {
	tests := []struct {
		name  string
		rules []string
		path  string
		dir   bool
		want  bool
	}{
		{name: "no rule keeps", path: "a/b", want: true},
		{name: "no match keeps", rules: []string{"- *.iso"}, path: "a/b.txt", want: true},
		{name: "exclude a name anywhere", rules: []string{"- *.iso"}, path: "pub/x.iso", want: false},
		{name: "first match wins: include first", rules: []string{"+ keep.iso", "- *.iso"}, path: "d/keep.iso", want: true},
		{name: "first match wins: exclude first", rules: []string{"- *.iso", "+ keep.iso"}, path: "d/keep.iso", want: false},
		{name: "excluded dir excludes its contents", rules: []string{"- /tmp/"}, path: "tmp/a/b", want: false},
		{name: "include below an excluded dir is too late", rules: []string{"- /tmp/", "+ /tmp/a/b"}, path: "tmp/a/b", want: false},
		{name: "dir-only pattern skips a file", rules: []string{"- tmp/"}, path: "tmp", want: true},
		{name: "dir-only pattern takes a dir", rules: []string{"- tmp/"}, path: "tmp", dir: true, want: false},
		{name: "anchored: at the top", rules: []string{"- /a"}, path: "a", want: false},
		{name: "anchored: not deeper", rules: []string{"- /a"}, path: "x/a", want: true},
		{name: "unanchored tail", rules: []string{"- b/c"}, path: "a/b/c", want: false},
		{name: "star does not cross /", rules: []string{"- /a*"}, path: "ab/c", want: false},
		{name: "star does not cross /, deeper", rules: []string{"- /a*c"}, path: "ab/c", want: true},
		{name: "double star crosses /", rules: []string{"- /a/**/z"}, path: "a/b/c/z", want: false},
		{name: "subset of repositories: wanted", rules: []string{"+ /scm/", "+ /scm/a.git/", "+ /scm/a.git/**", "- *"}, path: "scm/a.git/objects/pack/p.pack", want: true},
		{name: "subset of repositories: other repo", rules: []string{"+ /scm/", "+ /scm/a.git/", "+ /scm/a.git/**", "- *"}, path: "scm/b.git/HEAD", want: false},
		{name: "subset of repositories: top file", rules: []string{"+ /scm/", "+ /scm/a.git/", "+ /scm/a.git/**", "- *"}, path: "README", want: false},
		{name: "include star-dirs then names", rules: []string{"+ */", "+ *.c", "- *"}, path: "src/x/main.c", want: true},
		{name: "include star-dirs then names: other", rules: []string{"+ */", "+ *.c", "- *"}, path: "src/x/main.h", want: false},
		{name: "exclude everything", rules: []string{"- *"}, path: "a", dir: true, want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := rules(t, tt.rules...)
			if got := f.Keep(tt.path, tt.dir); got != tt.want {
				t.Fatalf("%v keeps %q (dir %v) = %v, want %v", tt.rules, tt.path, tt.dir, got, tt.want)
			}
			if got := filter.Of(f).Keep(tt.path, tt.dir); got != tt.want {
				t.Fatalf("chain of %v keeps %q = %v, want %v", tt.rules, tt.path, got, tt.want)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		rule string
		want error
	}{
		{name: "no sign", rule: "*.iso", want: filter.ErrBadFilter},
		{name: "sign without space", rule: "+*.iso", want: filter.ErrBadFilter},
		{name: "empty pattern", rule: "+ ", want: filter.ErrBadPattern},
		{name: "empty component", rule: "- a//b", want: filter.ErrBadPattern},
		{name: "unterminated set", rule: "- [ab", want: filter.ErrBadPattern},
		{name: "lone backslash", rule: `- a\`, want: filter.ErrBadPattern},
		{name: "root alone", rule: "- /", want: filter.ErrBadPattern},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := filter.ParseRule(tt.rule); !errors.Is(err, tt.want) {
				t.Fatalf("ParseRule(%q) = %v, want %v", tt.rule, err, tt.want)
			}
		})
	}
}

func TestChain(t *testing.T) {
	up := rules(t, "+ /a/", "+ /a/**", "- *")
	own := rules(t, "- *.iso")
	c := filter.Of(up, nil, own, &filter.Filter{})
	tests := []struct {
		name string
		path string
		want bool
	}{
		{name: "both keep", path: "a/x.txt", want: true},
		{name: "own narrows", path: "a/x.iso", want: false},
		{name: "upstream's leaves out, own cannot widen", path: "b/x.txt", want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := c.Keep(tt.path, false); got != tt.want {
				t.Fatalf("Keep(%q) = %v, want %v", tt.path, got, tt.want)
			}
		})
	}
	if len(c) != 2 || !c.Partial() || filter.Of().Partial() {
		t.Fatalf("Of dropped the wrong filters: %v", c.Rules())
	}
	if got, want := c.String(), "(+ /a/, + /a/**, - *) and (- *.iso)"; got != want {
		t.Fatalf("String = %q, want %q", got, want)
	}
	back, err := filter.Decode(filter.Encode(c))
	if err != nil || !back.Equal(c) {
		t.Fatalf("Decode(Encode) = %v, %v; want %v", back.Rules(), err, c.Rules())
	}
	if c.Equal(filter.Of(up)) || !filter.Of().Equal(nil) {
		t.Fatal("Equal")
	}
}

func TestDecodeErrors(t *testing.T) {
	for _, s := range []string{"", "{", `{"version":2,"filters":[]}`, `{"version":1,"filters":[["x"]]}`, `{"version":1,"filters":[["- a//b"]]}`} {
		if _, err := filter.Decode([]byte(s)); !errors.Is(err, filter.ErrBadFilter) && !errors.Is(err, filter.ErrBadPattern) {
			t.Errorf("Decode(%q) = %v, want ErrBadFilter or ErrBadPattern", s, err)
		}
	}
}

// full is a small manifest: a tree of two repositories and a top file.
func full(t testing.TB, n uint64) []byte {
	t.Helper()
	var es []manifest.Entry
	add := func(typ manifest.Type, p string) {
		e := manifest.Entry{Path: p, Type: typ, Mode: 0o755, MTime: 1}
		if typ == manifest.File {
			e.Mode, e.Size = 0o644, 3
			e.SetSum(sumOf(p))
		}
		es = append(es, e)
	}
	add(manifest.File, "README")
	add(manifest.Dir, "scm")
	add(manifest.Dir, "scm/a.git")
	add(manifest.File, "scm/a.git/HEAD")
	add(manifest.Dir, "scm/a.git/objects")
	add(manifest.File, "scm/a.git/objects/x.iso")
	add(manifest.Dir, "scm/b.git")
	add(manifest.File, "scm/b.git/HEAD")
	slices.SortFunc(es, func(a, b manifest.Entry) int { return manifest.Compare(a.Path, b.Path) })
	var buf bytes.Buffer
	w := manifest.NewWriter(&buf, n)
	for _, e := range es {
		if err := w.Add(e); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func paths(t testing.TB, b []byte) []string {
	t.Helper()
	m, err := manifest.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range m.Entries {
		out = append(out, e.Path)
	}
	return out
}

func subsetOf(t testing.TB, b []byte, c filter.Chain) []byte {
	t.Helper()
	r, err := manifest.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if _, err := filter.WriteSubset(&out, r, r.Snapshot(), c); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

func TestSubsetAndCheck(t *testing.T) {
	fb := full(t, 7)
	c := filter.Of(rules(t, "+ /scm/", "+ /scm/a.git/", "+ /scm/a.git/**", "- *"), rules(t, "- *.iso"))
	sb := subsetOf(t, fb, c)
	if got, want := strings.Join(paths(t, sb), " "), "scm scm/a.git scm/a.git/HEAD scm/a.git/objects"; got != want {
		t.Fatalf("subset %q, want %q", got, want)
	}
	if err := filter.CheckSubset(bytes.NewReader(fb), bytes.NewReader(sb)); err != nil {
		t.Fatalf("CheckSubset: %v", err)
	}
	if err := filter.CheckExact(bytes.NewReader(fb), bytes.NewReader(sb), c); err != nil {
		t.Fatalf("CheckExact: %v", err)
	}
	if err := filter.CheckExact(bytes.NewReader(fb), bytes.NewReader(sb), c[:1]); !errors.Is(err, filter.ErrNotSubset) {
		t.Fatalf("CheckExact with a wider filter = %v, want ErrNotSubset (x.iso missing)", err)
	}
	// A record changed in the subset, or another snapshot's manifest.
	other := subsetOf(t, full(t, 8), c)
	if err := filter.CheckSubset(bytes.NewReader(fb), bytes.NewReader(other)); !errors.Is(err, filter.ErrNotSubset) {
		t.Fatalf("CheckSubset of snapshot 8 against 7 = %v, want ErrNotSubset", err)
	}
	var buf bytes.Buffer
	w := manifest.NewWriter(&buf, 7)
	changed := manifest.Entry{Path: "README", Type: manifest.File, Mode: 0o644, Size: 4, MTime: 1}
	changed.SetSum(sumOf("changed"))
	if err := w.Add(changed); err != nil {
		t.Fatal(err)
	}
	testMust(t, w.Close())
	if err := filter.CheckSubset(bytes.NewReader(fb), &buf); !errors.Is(err, filter.ErrNotSubset) {
		t.Fatalf("CheckSubset of a changed record = %v, want ErrNotSubset", err)
	}
	if err := filter.CheckSubset(strings.NewReader("junk"), bytes.NewReader(sb)); err == nil || errors.Is(err, filter.ErrNotSubset) {
		t.Fatalf("CheckSubset of a corrupt full manifest = %v, want a manifest error", err)
	}
}

func TestMissing(t *testing.T) {
	fb := full(t, 7)
	up := filter.Of(rules(t, "- /scm/b.git/", "- README"))
	have := subsetOf(t, fb, up)
	fr, _ := manifest.NewReader(bytes.NewReader(fb))
	hr, _ := manifest.NewReader(bytes.NewReader(have))
	n, first, err := filter.Missing(fr, hr, filter.Of(rules(t, "- *.iso")), 10)
	if err != nil || n != 3 || strings.Join(first, " ") != "README scm/b.git scm/b.git/HEAD" {
		t.Fatalf("Missing = %d %v %v", n, first, err)
	}
}

func testMust(t testing.TB, err error) {
	t.Helper()
	if err != nil && err != io.EOF {
		t.Fatal(err)
	}
}

// FuzzParseRule: any rule either parses (and round-trips through its
// canonical form) or is refused with one of the package's sentinels; and
// matching never panics.
func FuzzParseRule(f *testing.F) {
	for _, s := range []string{"+ core", "- /tmp/", "+ a/**/b", "- *.iso", "+ v[0-9]", "- [!a-z]x", `+ a\*`, "- **", "+ /**/", "- [", "+ a//b", "- é?", "x", "+ "} {
		f.Add(s, "a/b/core")
	}
	f.Fuzz(func(t *testing.T, rule, path string) {
		r, err := filter.ParseRule(rule)
		if err != nil {
			if !errors.Is(err, filter.ErrBadPattern) && !errors.Is(err, filter.ErrBadFilter) {
				t.Fatalf("ParseRule(%q) = %v, not a sentinel", rule, err)
			}
			return
		}
		if r.String() != rule {
			t.Fatalf("ParseRule(%q).String() = %q", rule, r.String())
		}
		fl, err := filter.New(r)
		if err != nil {
			t.Fatal(err)
		}
		if len(path) > 512 {
			path = path[:512]
		}
		fl.Keep(path, true)
		fl.Keep(path, false)
	})
}

// sumOf is a version 2 record's content hash of s.
func sumOf(s string) manifest.Sum {
	h := manifest.NewHasher(manifest.Version2)
	h.Write([]byte(s))
	return h.Sum()
}
