package export

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/seqmirror/seqmirror/internal/filter"
)

// A Hop is one server on the path a served snapshot took from its master
// (status.json's lineage, docs/protocol.md section 9).
type Hop struct {
	Name     string    `json:"name"`    // the server's name (publish/mirror-sync --name)
	Address  string    `json:"address"` // where its downstream reach it ("" if unknown)
	Snapshot uint64    `json:"snapshot"`
	Since    time.Time `json:"since"` // when that server started serving Snapshot (UTC)
	// Filter is the server's own filter (filter.Filter.Rules) if it is a
	// partial mirror: what it kept of what its upstream served.
	Filter []string `json:"filter,omitempty"`
}

// Bounds of a lineage: MaxHops hops (the master and the MaxHops-1 hops
// nearest the server that writes it), names and addresses of at most
// MaxHopName and MaxHopAddress bytes.
const (
	MaxHops       = 16
	MaxHopName    = 255
	MaxHopAddress = 1024
)

// ErrBadLineage means a lineage read from an upstream breaks the rules of
// DecodeLineage: it is ignored, never copied.
var ErrBadLineage = errors.New("bad lineage")

// DecodeLineage reads the lineage of a status.json (an upstream's: any
// bytes): nil if it has none. Accepted only if it is a list of at most
// MaxHops hops, each with a name and an address within bounds and without
// control characters, valid UTF-8, a snapshot number above 0 that is the
// same for every hop, and a since time; otherwise ErrBadLineage.
func DecodeLineage(b []byte) ([]Hop, error) {
	var st struct {
		Lineage []json.RawMessage `json:"lineage"`
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("%w: status.json is not a JSON object: %v", ErrBadLineage, err)
	}
	if len(st.Lineage) > MaxHops {
		return nil, fmt.Errorf("%w: %d hops, more than %d", ErrBadLineage, len(st.Lineage), MaxHops)
	}
	var hops []Hop
	for i, raw := range st.Lineage {
		var h Hop
		if err := json.Unmarshal(raw, &h); err != nil {
			return nil, fmt.Errorf("%w: hop %d: %v", ErrBadLineage, i+1, err)
		}
		if err := h.check(); err != nil {
			return nil, fmt.Errorf("%w: hop %d: %v", ErrBadLineage, i+1, err)
		}
		if i > 0 && h.Snapshot != hops[0].Snapshot {
			return nil, fmt.Errorf("%w: hop %d is about snapshot %d, hop 1 about %d", ErrBadLineage, i+1, h.Snapshot, hops[0].Snapshot)
		}
		h.Since = h.Since.UTC()
		hops = append(hops, h)
	}
	return hops, nil
}

// check applies DecodeLineage's rules to one hop.
func (h Hop) check() error {
	switch {
	case h.Snapshot == 0:
		return errors.New("no snapshot")
	case h.Since.IsZero():
		return errors.New("no since time")
	case h.Since.UTC().Year() < 1 || h.Since.UTC().Year() > 9999:
		return errors.New("since time out of range (RFC 3339 years 1 to 9999, in UTC)") // could not be written back
	}
	if _, err := filter.Parse(h.Filter); err != nil {
		return err
	}
	return CheckHopText(h.Name, h.Address)
}

// CheckHopText checks a hop's name and address: within MaxHopName and
// MaxHopAddress bytes, valid UTF-8, no control characters.
func CheckHopText(name, addr string) error {
	switch {
	case len(name) > MaxHopName || len(addr) > MaxHopAddress:
		return fmt.Errorf("name or address too long (at most %d and %d bytes)", MaxHopName, MaxHopAddress)
	case !printable(name) || !printable(addr):
		return errors.New("control character or invalid UTF-8 in name or address")
	}
	return nil
}

// printable reports whether s is valid UTF-8 without control characters.
func printable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	return !strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) })
}

// ExtendLineage is the lineage rule: the lineage of a server (self) that
// has just started serving self.Snapshot, given the lineage its upstream
// reported (up, already decoded; nil if unknown) and the address it synced
// from (upstream; "" for a master, which starts a lineage). It keeps up
// only if up's last hop serves the same snapshot and self's name is not in
// it (a loop); it fills the address of up's last hop, if empty, with
// upstream; it keeps the master and the hops nearest self within MaxHops.
// note says why the lineage starts at self, or that hops were left out
// ("" if neither).
func ExtendLineage(up []Hop, self Hop, upstream string) (hops []Hop, note string) {
	self.Since = self.Since.UTC()
	switch {
	case upstream == "":
		return []Hop{self}, ""
	case len(up) == 0:
		return []Hop{self}, "the upstream " + upstream + " reported no lineage; it starts here"
	case up[len(up)-1].Snapshot != self.Snapshot:
		return []Hop{self}, fmt.Sprintf("the upstream %s reported the lineage of snapshot %d, not %d (it moved on); it starts here", upstream, up[len(up)-1].Snapshot, self.Snapshot)
	}
	for _, h := range up {
		if self.Name != "" && h.Name == self.Name {
			return []Hop{self}, fmt.Sprintf("the upstream %s's lineage already holds %q (a loop); it starts here", upstream, self.Name)
		}
	}
	hops = append(append(make([]Hop, 0, len(up)+1), up...), self)
	if last := &hops[len(hops)-2]; last.Address == "" {
		last.Address = upstream
	}
	if drop := len(hops) - MaxHops; drop > 0 {
		hops = append(hops[:1], hops[1+drop:]...)
		note = fmt.Sprintf("%d hops between the master and %s left out", drop, hops[1].Name)
	}
	return hops, note
}

// recordedLineage returns the lineage status.json records for snapshot n
// (nil if it records none, or one about another snapshot).
func (r *Root) recordedLineage(n uint64) ([]Hop, string) {
	rec, ok := r.recordedStatus()
	if !ok || len(rec.Lineage) == 0 || rec.Lineage[len(rec.Lineage)-1].Snapshot != n {
		return nil, ""
	}
	return rec.Lineage, rec.LineageNote
}
