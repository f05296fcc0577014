package app

import (
	"testing"
	"time"

	"dht/dataset"
	"dht/store"
	"dht/wire"
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

// set-id is acknowledged at once, without a commit of its own: the new
// place in the ring is written with the node's stores (here, one that
// brings a record of its own), in the same transaction, which clears what
// the file held before.
func TestSetIDWrittenWithTheStores(t *testing.T) {
	p := fuzzPeer()
	now := time.Unix(1_700_000_000, 0)
	step := func(id uint32, m wire.Message) []Output {
		outs := p.Receive(now, []Datagram{{From: fzLeft.Addr, Header: wire.Header{ID: id}, Msg: m}})
		return append(outs, p.Settle()...)
	}
	var persists []store.Batch
	acks := 0
	count := func(outs []Output) {
		for _, o := range outs {
			switch o := o.(type) {
			case PersistPeer:
				persists = append(persists, o.Batch)
			case Send:
				if _, ok := o.Msg.(wire.Ack); ok {
					acks++
				}
			}
		}
	}
	count(step(1, wire.SetID{ID: 2, N: 3, Left: fzLeft, Right: fzRight}))
	if len(persists) != 0 || acks != 1 {
		t.Fatalf("set-id: %d commits, %d acks; want 0 and 1", len(persists), acks)
	}
	// Pos("ab") = 195, id 195 mod 3 = 0: not ours; "ac" (196 mod 3 = 1)
	// neither; "aa" (194 mod 3 = 2) is.
	mine := wire.Record{3: "aa"}
	if got := dataset.ID(dataset.Pos("aa"), 3); got != 2 {
		t.Fatalf("test record hashes to id %d", got)
	}
	count(step(2, wire.Store{N: 3, Records: []wire.Record{mine, {3: "ab"}}}))
	if len(persists) != 1 || acks != 2 {
		t.Fatalf("store: %d commits, %d acks; want 1 and 2", len(persists), acks)
	}
	b := persists[0]
	if !b.Clear || b.Identity == nil || b.Identity.ID != 2 || b.Identity.N != 3 || len(b.Put) != 1 || b.Put[0].LongName != "aa" {
		t.Fatalf("the stores' commit is %+v; want the table cleared, id 2 of 3 and the record", b)
	}
}
