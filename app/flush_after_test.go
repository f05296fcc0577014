package app

import (
	"net/netip"
	"testing"
	"time"

	"dht/wire"
)

// A flush names only the stores in flight ahead of it, not a query on the
// same link: a querier taken into a ring by the setup-dht typed right
// after a teardown still had its own query in flight to the node that
// became its right neighbour, which, in the new ring, dropped it
// unacknowledged ("query for another ring"). The flush named the query and
// was dropped as ahead of it at every copy, until the link gave the query
// and the flush up, 10 s later: the setup waited its two minutes and
// failed (a chaos run at 15% loss).
func TestAFlushNamesOnlyTheStoresAheadOfIt(t *testing.T) {
	var st Stats
	l := newLink(LinkConfig{}, 1, &st)
	to := netip.MustParseAddrPort("10.0.0.2:5000")
	now := time.Unix(1_700_000_000, 0)
	ids := map[uint32]string{}
	for _, m := range []wire.Message{wire.Query{ReqID: 9, LongName: "Aruba"}, wire.Store{N: 2}} {
		for _, o := range l.send(now, to, m, tagNone, false) {
			ids[o.(Send).ID] = m.Type().String()
		}
	}
	var f wire.Flush
	for _, o := range l.send(now, to, wire.Flush{Leader: "alice", N: 2, Round: 7}, tagNone, true) {
		if s, ok := o.(Send); ok {
			f, _ = s.Msg.(wire.Flush)
		}
	}
	if len(f.After) != 1 || ids[f.After[0]] != "store" {
		names := []string{}
		for _, id := range f.After {
			names = append(names, ids[id])
		}
		t.Fatalf("the flush names %v ahead of it; want the store alone", names)
	}
}
