package export_test

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/seqmirror/seqmirror/internal/export"
)

// FuzzStatusJSON decodes arbitrary bytes as a status.json and checks that
// whatever decodes re-encodes to a fixed point: encode, decode, encode gives
// the same bytes, so a status written by one run reads back unchanged.
// (FuzzParseCurrent lives in export_test.go.)
func FuzzStatusJSON(f *testing.F) {
	up, lag, secs := uint64(9), uint64(2), 1.5
	now := time.Date(2026, 1, 2, 3, 4, 5, 6, time.FixedZone("x", 3600))
	full := export.Status{Version: 1, Root: "/srv/m", Snapshot: 7, Begin: 8, End: 7, State: export.StateUpdating,
		Snapshots: []uint64{5, 6, 7}, Updated: &now, Upstream: "/srv/up", UpstreamSnapshot: &up,
		LagSnapshots: &lag, LagSeconds: &secs, Problem: "p\u00e9"}
	b, err := json.MarshalIndent(full, "", "  ")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add([]byte(`{"version":1,"root":"","snapshot":0,"begin":0,"end":0,"state":"empty","snapshots":[]}`))
	f.Add([]byte(`{"snapshot":18446744073709551615,"lag_seconds":1e308,"updated":"0001-01-01T00:00:00Z"}`))
	f.Add([]byte(`{"root":"\xff\u0000","snapshots":null,"problem":"\ud800"}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, in []byte) {
		var s1 export.Status
		if err := json.Unmarshal(in, &s1); err != nil {
			return
		}
		enc1, err := json.Marshal(s1)
		if err != nil {
			t.Fatalf("decoded %q but cannot re-encode: %v", in, err)
		}
		var s2 export.Status
		if err := json.Unmarshal(enc1, &s2); err != nil {
			t.Fatalf("re-encoded status %s does not decode: %v", enc1, err)
		}
		enc2, err := json.Marshal(s2)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(enc1, enc2) {
			t.Fatalf("status JSON is not a fixed point:\n%s\n%s", enc1, enc2)
		}
		if s1.Snapshot != s2.Snapshot || s1.Begin != s2.Begin || s1.End != s2.End || s1.State != s2.State || len(s1.Snapshots) != len(s2.Snapshots) {
			t.Fatalf("round trip changed counters: %+v -> %+v", s1, s2)
		}
	})
}
