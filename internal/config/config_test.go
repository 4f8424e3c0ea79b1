package config_test

import (
	"errors"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/seqmirror/seqmirror/internal/config"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []config.Entry
	}{
		{name: "empty", in: "", want: nil},
		{name: "blank and comments", in: "\n  \n# a comment\n   # indented\n", want: nil},
		{name: "one", in: "root = /srv/mirror\n", want: []config.Entry{{Key: "root", Value: "/srv/mirror", Line: 1}}},
		{name: "no blanks, no final newline", in: "keep=5", want: []config.Entry{{Key: "keep", Value: "5", Line: 1}}},
		{name: "blanks and tabs around", in: "\t min-age \t=\t 12h \t\n", want: []config.Entry{{Key: "min-age", Value: "12h", Line: 1}}},
		{name: "crlf", in: "keep = 5\r\nquiet = true\r\n", want: []config.Entry{{Key: "keep", Value: "5", Line: 1}, {Key: "quiet", Value: "true", Line: 2}}},
		{name: "repeated key in order, line numbers", in: "# list\nupstream = a\n\nupstream = b\n",
			want: []config.Entry{{Key: "upstream", Value: "a", Line: 2}, {Key: "upstream", Value: "b", Line: 4}}},
		{name: "equals sign in the value", in: "rsync-opt = --port=8873\n", want: []config.Entry{{Key: "rsync-opt", Value: "--port=8873", Line: 1}}},
		{name: "end-of-line comment", in: "keep = 5   # a week\n", want: []config.Entry{{Key: "keep", Value: "5", Line: 1}}},
		{name: "hash inside a word stays", in: "rsync-opt = --filter=-_/#tmp\n", want: []config.Entry{{Key: "rsync-opt", Value: "--filter=-_/#tmp", Line: 1}}},
		{name: "empty value", in: "rsh =\n", want: []config.Entry{{Key: "rsh", Value: "", Line: 1}}},
		{name: "comment as the value: empty", in: "rsh = # none\n", want: []config.Entry{{Key: "rsh", Value: "", Line: 1}}},
		{name: "quoted keeps blanks and hash", in: `rsh = " ssh # x "  # comment` + "\n", want: []config.Entry{{Key: "rsh", Value: " ssh # x ", Line: 1}}},
		{name: "quoted escapes", in: `rsh = "a\"b\\c\td"`, want: []config.Entry{{Key: "rsh", Value: "a\"b\\c\td", Line: 1}}},
		{name: "inner blanks kept", in: "rsh = ssh -i /etc/key\n", want: []config.Entry{{Key: "rsh", Value: "ssh -i /etc/key", Line: 1}}},
		{name: "utf-8 value", in: "comment = Spiegel für Ü\n", want: []config.Entry{{Key: "comment", Value: "Spiegel für Ü", Line: 1}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := config.Parse(strings.NewReader(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("Parse(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string // in the message, with the line
	}{
		{name: "no equals sign", in: "root = /a\nkeep 5\n", want: "line 2: \"keep 5\" is not `key = value`"},
		{name: "no key", in: "= 5\n", want: "line 1: bad key \"\""},
		{name: "upper case key", in: "\n\nKeep = 5\n", want: "line 3: bad key \"Keep\""},
		{name: "flag dashes in the key", in: "--keep = 5\n", want: "line 1: bad key \"--keep\""},
		{name: "blank inside the key", in: "min age = 1h\n", want: "line 1: bad key \"min age\""},
		{name: "section header", in: "[daemon]\n", want: "line 1: \"[daemon]\" is not `key = value`"},
		{name: "unterminated quote", in: "rsh = \"ssh\n", want: "line 1: key rsh: bad quoted value"},
		{name: "text after the quote", in: "rsh = \"ssh\" -v\n", want: "line 1: key rsh: \"-v\" after the quoted value"},
		{name: "control character", in: "rsh = a\x01b\n", want: "line 1: key rsh: a control character"},
		{name: "escaped line break", in: `rsh = "a\nb"` + "\n", want: "line 1: key rsh: a line break or NUL in the quoted value"},
		{name: "not utf-8", in: "keep = 5\nrsh = \xff\n", want: "line 2: not UTF-8"},
		{name: "line too long", in: "keep = 5\nrsh = " + strings.Repeat("x", 1<<20) + "\n", want: "line 2: longer than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := config.Parse(strings.NewReader(tt.in))
			if err == nil {
				t.Fatalf("Parse = %+v, want an error", got)
			}
			if !errors.Is(err, config.ErrSyntax) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q: want ErrSyntax naming %q", err, tt.want)
			}
		})
	}
}

// A read error is returned with the line it stopped at, and is no syntax
// error.
func TestParseReadError(t *testing.T) {
	boom := errors.New("boom")
	_, err := config.Parse(io.MultiReader(strings.NewReader("keep = 5\n"), iotest.ErrReader(boom)))
	if !errors.Is(err, boom) || errors.Is(err, config.ErrSyntax) || !strings.Contains(err.Error(), "line 2") {
		t.Fatalf("error %v: want boom at line 2", err)
	}
}

// FuzzParse: Parse never panics; what it returns is well formed; and the
// entries written back (values quoted) parse to the same entries.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"", "root = /srv/m\n", "# c\nkeep=5 # x\nupstream = a\nupstream = b\n",
		"rsh = \"a # b\"\n", "x = \"\\u00e9\"\r\n", "k 5", "=", "a = #", "a = b#c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		entries, err := config.Parse(strings.NewReader(in))
		if err != nil {
			if !strings.HasPrefix(err.Error(), "line ") {
				t.Fatalf("error %q names no line", err)
			}
			return
		}
		var b strings.Builder
		last := 0
		for _, e := range entries {
			if e.Line <= last || strings.ContainsAny(e.Key, " =#\n") || strings.Contains(e.Value, "\n") {
				t.Fatalf("bad entry %+v after line %d", e, last)
			}
			last = e.Line
			fmt.Fprintf(&b, "%s = %s\n", e.Key, strconv.Quote(e.Value))
		}
		again, err := config.Parse(strings.NewReader(b.String()))
		if err != nil {
			t.Fatalf("written back %q: %v", b.String(), err)
		}
		if len(again) != len(entries) {
			t.Fatalf("written back: %d entries, want %d", len(again), len(entries))
		}
		for i := range again {
			if again[i].Key != entries[i].Key || again[i].Value != entries[i].Value {
				t.Fatalf("entry %d written back: %+v, want %+v", i, again[i], entries[i])
			}
		}
	})
}
