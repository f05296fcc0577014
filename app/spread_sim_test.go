package app_test

import (
	"fmt"
	"slices"
	"testing"

	"dht/dataset"
	"dht/wire"
)

// A leader sends the records farthest owner first, grouped by owner, so
// that a store mostly carries one node's records and the nodes before it
// forward it whole: every datagram stays full round the ring. Without the
// grouping (the dataset's order) every hop keeps an eighth of each
// datagram of a ring of 8 and forwards the rest in as many datagrams, and
// a setup sends about 110 stores; grouped, each hop sends no more than
// the records that cross it need, plus one datagram for each owner whose
// records share one with the next owner's.
func TestLeaderSendsTheFarthestOwnersRecordsFirst(t *testing.T) {
	const n = 8
	s, names, events := tracedSetup(t, 5, n)

	// The leader's stores: their first records' owners go round the ring
	// backwards, from the farthest (id n-1) to the nearest (id 1).
	var owners []int
	perNode := map[string]int{}
	for _, e := range events {
		if e.what != "send" || e.typ != wire.TypeStore.String() || e.again {
			continue
		}
		perNode[e.node]++
		if e.node == names[0] {
			owners = append(owners, dataset.ID(dataset.Pos(e.first), n))
		}
	}
	if len(owners) == 0 || owners[0] != n-1 || owners[len(owners)-1] != 1 || !slices.IsSortedFunc(owners, func(a, b int) int { return b - a }) {
		t.Fatalf("the leader's stores start with records of owners %v, want from %d down to 1", owners, n-1)
	}

	// Every hop: at most the datagrams the bytes that cross it fill, and
	// one more for each owner past it whose records share a datagram.
	bytesPast := make([]int, n) // bytesPast[k]: of the records owned past node k
	for _, r := range records(t) {
		for k := range dataset.ID(r.Pos(), n) {
			bytesPast[k] += wire.RecordLen(r.Fields())
		}
	}
	room := wire.MaxMessage - wire.StoreOverhead
	total, bound := 0, 0
	for k := range n - 1 {
		node := nodeWithID(s, k)
		most := (bytesPast[k]+room-1)/room + (n - 2 - k)
		if got := perNode[node]; got > most {
			t.Errorf("node %d (%s) sent %d stores for %d bytes of records, want at most %d", k, node, got, bytesPast[k], most)
		}
		total += perNode[node]
		bound += most
	}
	t.Logf("stores sent in a setup of %d: %d (at most %d)", n, total, bound)
}

// tracedSetup registers n peers, usera, userb, …, has the first set up a
// ring of all n with the dataset, checks the ring, and returns the
// simulation, the names and the datagrams and commits of the setup.
func tracedSetup(t *testing.T, seed uint64, n int) (*simNet, []string, []roundEvent) {
	t.Helper()
	data := records(t)
	s := newSim(t, seed)
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("user%c", 'a'+i)
		p := s.addPeer(names[i], data)
		s.mustDo(names[i], fmt.Sprintf("register %s %s %d", names[i], p.Addr.Addr(), p.Addr.Port()), "register SUCCESS")
	}
	var events []roundEvent
	s.SetTrace(roundTrace{events: &events})
	s.mustDo(names[0], fmt.Sprintf("setup-dht %d %s", n, names[0]), "setup-dht SUCCESS")
	s.SetTrace(nil)
	s.checkRing(data)
	return s, names, events
}

// The leader of a setup sends its stores right behind its set-ids, in the
// same step, not once every set-id is acknowledged (a round trip to the
// slowest member): it receives nothing between its last set-id and its
// first store. A store that overtakes a member's set-id (a set-id lost) is
// dropped by the member, which cannot check the new ring's key yet, and
// sent again: the lossy simulations of setup cover that.
func TestStoresLeaveWithTheSetIDs(t *testing.T) {
	const n = 8
	_, names, events := tracedSetup(t, 3, n)
	leader := names[0]
	first := index(events, 0, "send", leader, wire.TypeSetID.String())
	store := index(events, first, "send", leader, wire.TypeStore.String())
	if first < 0 || store < 0 {
		t.Fatalf("the leader sent set-id at event %d, its first store at %d", first, store)
	}
	setIDs := 0
	for _, e := range events[first:store] {
		switch {
		case e.node != leader:
		case e.what == "recv":
			t.Fatalf("the leader received %s before its first store: it waited", e.typ)
		case e.what == "send" && e.typ == wire.TypeSetID.String():
			setIDs++
		}
	}
	if setIDs != n-1 {
		t.Fatalf("%d set-ids before the first store; want %d", setIDs, n-1)
	}
}

// nodeWithID is the name of the ring member with id.
func nodeWithID(s *simNet, id int) string {
	for _, name := range s.Server().Snapshot().DHT.Members {
		if place, err := s.Place(name); err == nil && place.ID == id {
			return name
		}
	}
	s.t.Fatalf("no member has id %d", id)
	return ""
}
