package app

import (
	"net/netip"
	"testing"
	"time"

	"dht/dataset"
	"dht/wire"
)

// A node renumbered by a leave's (or a join's) reset-id holds the table of
// its old place until the rebuild's records come: a query in the ring
// since before the leave, for a Long Name the new place owns, was answered
// "not found" (a chaos run with three users querying through leaves,
// joins and heals: 37 shipped Long Names so answered at 15% loss). It is
// not answered until the round's records are committed here; the querier
// sends it again.
func TestARenumberedNodeDoesNotAnswerNotFoundBeforeItsRecordsCome(t *testing.T) {
	p := fuzzPeer() // id 1 of 3
	now := time.Unix(1_700_000_000, 0)
	p.aliveAt = now.Add(time.Hour)
	name := ""
	for _, n := range []string{"Aruba", "Republic of Yemen", "Kingdom of Spain", "Mongolia", "Republic of Chile", "Hungary", "Ukraine"} {
		if dataset.ID(dataset.Pos(n), 2) == 0 {
			name = n
			break
		}
	}
	if name == "" {
		t.Fatal("no Long Name for id 0 of 2")
	}
	stepSigned(p, now, fzLeft.Addr, wire.Header{ID: 60}, wire.ResetID{Origin: fzRight.Name, OriginAddr: fzRight.Addr, ID: 0, N: 2, Epoch: fzEpoch})
	if p.id != 0 || p.n != 2 {
		t.Fatalf("the reset-id was not taken: id %d of %d", p.id, p.n)
	}
	querier := wire.Member{Name: "erin", Addr: netip.MustParseAddrPort("10.0.0.15:5000")}
	out := stepSigned(p, now, fzLeft.Addr, wire.Header{ID: 61}, wire.Query{ReqID: 9, Querier: querier, LongName: name, Hops: 1})
	for _, o := range out {
		if s, ok := o.(Send); ok {
			if r, ok := s.Msg.(wire.QueryResult); ok && !r.Found {
				t.Fatalf("%q answered not found before the rebuild's records came: %+v", name, r)
			}
		}
	}
}
