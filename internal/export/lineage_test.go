package export_test

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/seqmirror/seqmirror/internal/export"
)

var t0 = time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)

func hop(name string, n uint64, after time.Duration) export.Hop {
	return export.Hop{Name: name, Snapshot: n, Since: t0.Add(after)}
}

func names(hops []export.Hop) []string {
	var out []string
	for _, h := range hops {
		out = append(out, h.Name)
	}
	return out
}

// The lineage rule: keep the upstream's lineage only if it is about the
// snapshot installed and does not hold this server; bound the length,
// keeping the master.
func TestExtendLineage(t *testing.T) {
	long := []export.Hop{hop("m", 5, 0)}
	for i := 1; i < export.MaxHops; i++ {
		long = append(long, hop(fmt.Sprint("t", i), 5, time.Duration(i)*time.Second))
	}
	self := hop("self", 5, time.Minute)
	tests := []struct {
		name     string
		up       []export.Hop
		upstream string
		want     []string
		note     string // a substring of the note ("" : none)
	}{
		{name: "master", up: nil, upstream: "", want: []string{"self"}},
		{name: "master ignores any upstream lineage", up: []export.Hop{hop("m", 5, 0)}, upstream: "", want: []string{"self"}},
		{name: "mirror of a master", up: []export.Hop{hop("m", 5, 0)}, upstream: "/srv/m", want: []string{"m", "self"}},
		{name: "third hop", up: []export.Hop{hop("m", 5, 0), hop("a", 5, time.Second)}, upstream: "rsync://a/pub", want: []string{"m", "a", "self"}},
		{name: "unknown upstream lineage", up: nil, upstream: "/srv/m", want: []string{"self"}, note: "reported no lineage"},
		{name: "upstream moved on", up: []export.Hop{hop("m", 6, 0)}, upstream: "/srv/m", want: []string{"self"}, note: "snapshot 6, not 5"},
		{name: "loop", up: []export.Hop{hop("m", 5, 0), hop("self", 5, time.Second)}, upstream: "/srv/m", want: []string{"self"}, note: "a loop"},
		{name: "bounded, the master kept", up: long, upstream: "/srv/t", want: append(append([]string{"m"}, names(long[2:])...), "self"), note: "1 hops between the master and t2 left out"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, note := export.ExtendLineage(slices.Clone(tt.up), self, tt.upstream)
			if !slices.Equal(names(got), tt.want) || len(got) > export.MaxHops {
				t.Fatalf("lineage %v, want %v", names(got), tt.want)
			}
			if (tt.note == "") != (note == "") || !strings.Contains(note, tt.note) {
				t.Fatalf("note %q, want one containing %q", note, tt.note)
			}
			if !reflect.DeepEqual(got[len(got)-1], self) {
				t.Fatalf("last hop %+v, want %+v", got[len(got)-1], self)
			}
		})
	}
	got, _ := export.ExtendLineage([]export.Hop{hop("m", 5, 0)}, self, "/srv/m")
	if got[0].Address != "/srv/m" {
		t.Fatalf("the upstream's hop without an address got %q, want the address synced from", got[0].Address)
	}
	got, _ = export.ExtendLineage([]export.Hop{{Name: "m", Address: "rsync://m/pub", Snapshot: 5, Since: t0}}, self, "/srv/m")
	if got[0].Address != "rsync://m/pub" {
		t.Fatalf("the upstream's own address was replaced by %q", got[0].Address)
	}
}

// FuzzDecodeLineage: any bytes decode without panic to an error or to a
// lineage within the bounds (at most MaxHops hops, one snapshot number,
// printable bounded names and addresses, a since time), which re-encodes
// and decodes to itself; extending it stays within the bounds.
func FuzzDecodeLineage(f *testing.F) {
	f.Add([]byte(`{"lineage":[{"name":"m","address":"rsync://m/pub","snapshot":3,"since":"2026-11-28T10:00:00Z"}]}`))
	f.Add([]byte(`{"lineage":[{"name":"m","snapshot":3,"since":"2026-11-28T10:00:00Z"},{"name":"a","snapshot":3,"since":"2026-11-28T10:00:01.5+01:00"}]}`))
	f.Add([]byte(`{"lineage":[{"name":"\u0007","snapshot":3,"since":"2026-11-28T10:00:00Z"}]}`))
	f.Add([]byte(`{"lineage":[{"name":"m","snapshot":0,"since":"0001-01-01T00:00:00Z"}]}`))
	f.Add([]byte(`{"lineage":null}`))
	f.Add([]byte(`{"lineage":5}`))
	f.Add([]byte(`[]`))
	f.Add([]byte("{\"lineage\":[{\"name\":\"\xff\",\"snapshot\":1,\"since\":\"2026-01-02T03:04:05Z\"}]}"))
	f.Fuzz(func(t *testing.T, b []byte) {
		hops, err := export.DecodeLineage(b)
		if err != nil {
			if hops != nil {
				t.Fatalf("error %v with hops %v", err, hops)
			}
			return
		}
		if len(hops) > export.MaxHops {
			t.Fatalf("%d hops", len(hops))
		}
		for _, h := range hops {
			if h.Snapshot == 0 || h.Snapshot != hops[0].Snapshot || h.Since.IsZero() || h.Since.Location() != time.UTC ||
				len(h.Name) > export.MaxHopName || len(h.Address) > export.MaxHopAddress ||
				!utf8.ValidString(h.Name+h.Address) || strings.ContainsFunc(h.Name+h.Address, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
				t.Fatalf("hop out of bounds: %#v", h)
			}
		}
		enc, err := json.Marshal(map[string]any{"lineage": hops})
		if err != nil {
			t.Fatal(err)
		}
		again, err := export.DecodeLineage(enc)
		if err != nil || len(again) != len(hops) {
			t.Fatalf("re-decode: %v, %d hops, want %d", err, len(again), len(hops))
		}
		for i := range hops {
			if again[i].Name != hops[i].Name || again[i].Address != hops[i].Address || !again[i].Since.Equal(hops[i].Since) || again[i].Snapshot != hops[i].Snapshot {
				t.Fatalf("hop %d: %+v re-decodes as %+v", i, hops[i], again[i])
			}
		}
		if len(hops) > 0 {
			ext, _ := export.ExtendLineage(hops, export.Hop{Name: "self", Snapshot: hops[0].Snapshot, Since: t0}, "/srv/up")
			if len(ext) > export.MaxHops || ext[len(ext)-1].Name != "self" {
				t.Fatalf("extended to %d hops: %v", len(ext), names(ext))
			}
		}
	})
}
