package app

import (
	"testing"
	"time"

	"dht/wire"
)

// A store for another ring size, signed with the ring key from the left
// neighbour (a copy captured in an earlier ring of the same key, which a
// leave, a join and a heal keep, sent again at a member restarted since, or
// a former member's forgery), is dropped, and traced as the drops are:
// summarised, not a warning line for each (SPEC §7: bounded trace).
func TestAStoreForAnotherRingSizeIsTracedAsADrop(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	p := fuzzPeer()
	for id := uint32(1); id <= 50; id++ {
		out := stepSigned(p, now, fzLeft.Addr, wire.Header{ID: id}, wire.Store{N: 5, Records: []wire.Record{{"ABW", "", "", "Aruba", "", "", "", "", ""}}})
		for _, o := range out {
			if e, ok := o.(Event); ok && !e.Drop {
				t.Fatalf("store %d for a ring of 5 at a node of a ring of 3: traced as %q, not as a drop", id, e.Msg)
			}
		}
	}
	if n := tableRecords(t, p); n != 1 {
		t.Errorf("table holds %d records, want 1", n)
	}
}

// As TestAStoreForAnotherRingSizeIsTracedAsADrop, counting the acks: each
// store for another ring size, with a new id (a former member's forgery,
// with the ring key), is acknowledged with a quiet send, not a line each
// for ever (SPEC §7).
func TestAStoreForAnotherRingSizeIsAckedQuietly(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	p := fuzzPeer()
	loud := 0
	for id := uint32(1); id <= 50; id++ {
		out := stepSigned(p, now, fzLeft.Addr, wire.Header{ID: id}, wire.Store{N: 5, Records: []wire.Record{{"ABW", "", "", "Aruba", "", "", "", "", ""}}})
		for _, o := range out {
			if s, ok := o.(Send); ok && !s.Quiet {
				loud++
			}
		}
	}
	if loud > 0 {
		t.Errorf("50 stores for a ring of 5 at a node of a ring of 3: %d acks traced one by one; want quiet sends", loud)
	}
}
