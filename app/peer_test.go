package app

import (
	"testing"

	"dht/dataset"
)

// The local table keeps every record of a colliding slot and finds each by
// its whole Long Name; storing one again replaces it instead of adding a
// second copy.
func TestLocalTableCollisions(t *testing.T) {
	bySlot := map[int][]dataset.Record{}
	for _, r := range records(t) {
		bySlot[r.Pos()] = append(bySlot[r.Pos()], r)
	}
	deepest := 0
	for pos, rs := range bySlot {
		if len(rs) > len(bySlot[deepest]) {
			deepest = pos
		}
	}
	slot := bySlot[deepest]
	if len(slot) != 5 {
		t.Fatalf("deepest slot holds %d records, the dataset has 5", len(slot))
	}
	p := NewPeer(PeerConfig{})
	for _, r := range slot {
		if !p.insert(r) {
			t.Fatalf("%q not added", r.LongName)
		}
	}
	if p.insert(slot[0]) {
		t.Fatal("storing a record twice added a copy")
	}
	if p.Count() != 5 || len(p.table[deepest]) != 5 {
		t.Fatalf("count %d, slot %d", p.Count(), len(p.table[deepest]))
	}
	for _, r := range slot {
		got, ok := p.Lookup(r.LongName)
		if !ok || got != r {
			t.Fatalf("%q not found intact", r.LongName)
		}
	}
	// Same slot, different name: not found, even as a prefix.
	if _, ok := p.Lookup(slot[0].LongName[:len(slot[0].LongName)-1]); ok {
		t.Fatal("a prefix of a Long Name was found")
	}
}
