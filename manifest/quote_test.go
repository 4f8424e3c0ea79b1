package manifest_test

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/cespare/xxhash/v2"
	"github.com/seqmirror/seqmirror/manifest"
)

// A manifest's bytes come from an upstream, and what a run fails with goes
// to stderr and into status.json, which is served to the world: an error
// describes what is wrong, it never quotes a malformed line or field
// (only record paths, which name where the problem is).
func TestDecodeErrorsQuoteNoContent(t *testing.T) {
	const secret = "root:*:20228:0:99999:7"
	body := func(header string, recs ...string) []byte {
		var b bytes.Buffer
		b.WriteString(header)
		for _, r := range recs {
			b.WriteString(r + "\n")
		}
		return fmt.Appendf(b.Bytes(), "end %d %016x\n", len(recs), xxhash.Sum64(b.Bytes()))
	}
	good := manifest.Magic + "\nsnapshot 1\n"
	for _, tc := range []struct {
		name string
		in   []byte
	}{
		{name: "first line", in: []byte(secret + "\nsnapshot 1\n")},
		{name: "second line", in: []byte(manifest.Magic + "\n" + secret + "\n")},
		{name: "record", in: body(good, secret)},
		{name: "record fields", in: body(good, "f "+secret+" 1 2 0123456789abcdef a")},
		{name: "size field", in: body(good, "f 0644 "+secret+" 2 0123456789abcdef a")},
		{name: "mtime field", in: body(good, "f 0644 1 "+secret+" 0123456789abcdef a")},
		{name: "hash field", in: body(good, "f 0644 1 2 "+secret+" a")},
		{name: "footer", in: []byte(good + "end " + secret + "\n")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := manifest.Decode(bytes.NewReader(tc.in))
			if err == nil {
				t.Fatal("decoded")
			}
			if strings.Contains(err.Error(), "root:") || strings.Contains(err.Error(), "20228") {
				t.Fatalf("error quotes the manifest's bytes: %v", err)
			}
		})
	}
}
