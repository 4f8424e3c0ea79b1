package statuspage

import (
	"slices"
	"strings"
)

// The longest strings shown, in characters: longer ones are cut with "…".
const (
	maxName = 200  // names, addresses, states
	maxText = 1000 // errors
)

// clean makes a string from another server fit to be shown: valid UTF-8;
// no control character (XML refuses most, a terminal or a log too), no
// noncharacter and no bidirectional override (which could make a name
// read as another); at most limit characters. html/template escapes the
// rest.
func clean(s string, limit int) string {
	s = strings.Map(func(r rune) rune {
		switch {
		case r < 0x20, r >= 0x7f && r <= 0x9f, r == 0xfffe, r == 0xffff,
			r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069:
			return '\uFFFD'
		}
		return r
	}, strings.ToValidUTF8(s, "\uFFFD"))
	if r := []rune(s); len(r) > limit {
		s = string(r[:limit]) + "…"
	}
	return s
}

// cleanPage is a copy of p with every string cleaned (p's slices are not
// touched).
func cleanPage(p Page) Page {
	p.Server.Name, p.Server.Root, p.Server.State = clean(p.Server.Name, maxName), clean(p.Server.Root, maxName), clean(p.Server.State, maxName)
	p.Lineage = slices.Clone(p.Lineage)
	for i := range p.Lineage {
		h := &p.Lineage[i]
		h.Name, h.Address = clean(h.Name, maxName), clean(h.Address, maxName)
	}
	p.Downstreams = slices.Clone(p.Downstreams)
	for i := range p.Downstreams {
		d := &p.Downstreams[i]
		d.Name, d.URL, d.State, d.Error = clean(d.Name, maxName), clean(d.URL, maxName), clean(d.State, maxName), clean(d.Error, maxText)
	}
	p.History = cleanHistory(p.History)
	return p
}

func cleanHistory(history []Propagation) []Propagation {
	history = slices.Clone(history)
	for i := range history {
		history[i].Arrivals = slices.Clone(history[i].Arrivals)
		for j := range history[i].Arrivals {
			a := &history[i].Arrivals[j]
			a.Mirror = clean(a.Mirror, maxName)
		}
	}
	return history
}
