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
	name := longNameOf(t, func(id int) bool { return id == 0 }, 2)
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

// A query that comes in the same read as the flush that ends its node's
// filling is looked up before the round's records are written: the
// commit is an output, run once the whole read is handled (a chaos run,
// 10% loss, a member killed: "Republic of Cuba" answered not found by the
// node that owned it in the healed ring, its query read right behind the
// store, flush and committed of the heal).
func TestAQueryReadWithTheFlushIsNotAnsweredNotFound(t *testing.T) {
	p := fuzzPeer() // id 1 of 3
	now := time.Unix(1_700_000_000, 0)
	p.aliveAt = now.Add(time.Hour)
	name := longNameOf(t, func(id int) bool { return id == 1 }, 2)
	stepSigned(p, now, fzLeft.Addr, wire.Header{ID: 60}, wire.ResetID{Origin: fzRight.Name, OriginAddr: fzRight.Addr, ID: 1, N: 2, Epoch: fzEpoch})
	if p.id != 1 || p.n != 2 || !p.filling {
		t.Fatalf("the reset-id was not taken: id %d of %d, filling %v", p.id, p.n, p.filling)
	}
	querier := wire.Member{Name: "erin", Addr: netip.MustParseAddrPort("10.0.0.15:5000")}
	var rec wire.Record
	rec[3], rec[0] = name, "XXX"
	var batch []Datagram
	add := func(id uint32, m wire.Message) {
		h, mm := signedWith(wire.Header{ID: id}, m, p.link.sg, fzLeft.Addr, p.self.Addr)
		batch = append(batch, Datagram{From: fzLeft.Addr, Header: h, Msg: mm})
	}
	add(61, wire.Store{N: 2, Records: []wire.Record{rec}})
	add(62, wire.Flush{Leader: fzRight.Name, N: 2, Round: 7, Epoch: fzEpoch})
	add(63, wire.Query{ReqID: 9, Querier: querier, LongName: name, Hops: 1})
	out := p.Receive(now, batch)
	stored := false
	for _, o := range out {
		switch o := o.(type) {
		case PersistPeer:
			for _, r := range o.Batch.Put {
				stored = stored || r.LongName == name
			}
		case Send:
			if r, ok := o.Msg.(wire.QueryResult); ok && !r.Found {
				for _, o := range out {
					t.Logf("%T %+v", o, o)
				}
				t.Fatalf("%q answered not found in the read whose flush commits it (stored by this read: %v): %+v", name, stored, r)
			}
		}
	}
	if !stored {
		t.Fatalf("the store's record was not committed by the flush: %v", out)
	}
}

// longNameOf is a shipped Long Name whose id in a ring of n the test wants.
func longNameOf(t *testing.T, want func(id int) bool, n int) string {
	t.Helper()
	for _, name := range []string{"Aruba", "Republic of Yemen", "Kingdom of Spain", "Mongolia", "Republic of Chile", "Hungary", "Ukraine"} {
		if want(dataset.ID(dataset.Pos(name), n)) {
			return name
		}
	}
	t.Fatalf("no Long Name for the id wanted in a ring of %d", n)
	return ""
}

// A node whose flush ends its filling and that is renumbered in the same
// read (a rebuild's reset-id right behind the round it ends) is filling
// the new ring's table: the next read's query for a Long Name of its new
// place is not answered "not found" before the new ring's records come (a
// code review: nothing showed that a re-placement starts filling anew).
func TestARenumberingReadWithTheFlushKeepsFilling(t *testing.T) {
	p := fuzzPeer() // id 1 of 3
	now := time.Unix(1_700_000_000, 0)
	p.aliveAt = now.Add(time.Hour)
	stepSigned(p, now, fzLeft.Addr, wire.Header{ID: 60}, wire.ResetID{Origin: fzRight.Name, OriginAddr: fzRight.Addr, ID: 1, N: 2, Epoch: fzEpoch})
	if p.id != 1 || p.n != 2 || !p.filling {
		t.Fatalf("the reset-id was not taken: id %d of %d, filling %v", p.id, p.n, p.filling)
	}
	name := longNameOf(t, func(id int) bool { return id == 2 }, 3)
	var batch []Datagram
	add := func(id uint32, m wire.Message) {
		h, mm := signedWith(wire.Header{ID: id}, m, p.link.sg, fzLeft.Addr, p.self.Addr)
		batch = append(batch, Datagram{From: fzLeft.Addr, Header: h, Msg: mm})
	}
	add(62, wire.Flush{Leader: fzRight.Name, N: 2, Round: 7, Epoch: fzEpoch})
	add(63, wire.ResetID{Origin: fzRight.Name, OriginAddr: fzRight.Addr, ID: 2, N: 3, Epoch: fzEpoch})
	p.StepBatch(now, batch)
	if p.id != 2 || p.n != 3 {
		t.Fatalf("not renumbered: id %d of %d", p.id, p.n)
	}
	if !p.filling {
		t.Errorf("renumbered in the read of the flush, the node is not filling")
	}
	querier := wire.Member{Name: "erin", Addr: netip.MustParseAddrPort("10.0.0.15:5000")}
	h, m := signedWith(wire.Header{ID: 64}, wire.Query{ReqID: 9, Querier: querier, LongName: name, Hops: 1}, p.link.sg, fzLeft.Addr, p.self.Addr)
	for _, o := range p.StepBatch(now, []Datagram{{From: fzLeft.Addr, Header: h, Msg: m}}) {
		if s, ok := o.(Send); ok {
			if r, ok := s.Msg.(wire.QueryResult); ok && !r.Found {
				t.Fatalf("%q answered not found by a node whose records for its new place have not come", name)
			}
		}
	}
}
