package app

import (
	"net/netip"
	"slices"
	"testing"
	"time"

	"dht/dataset"
	"dht/wire"
)

// A heal that takes out this node's right neighbour (offline) ends the
// queries this node forwarded to it: the heal gave this node another
// right, the old one drops or never reads them, and each was retransmitted
// to it until the link's give-up, then warned 'gave up: no acknowledgement'
// once per query, naming a node the server had removed (a chaos run: 129
// warnings in one millisecond at the heal's leader, 10 s after the kill,
// 7 s after the heal ended). Their queriers send their copies again to the
// member the server named, which forwards them round the healed ring.
func TestAHealEndsTheQueriesForwardedToARemovedNeighbour(t *testing.T) {
	p := fuzzPeer() // bob, id 1 of 3, between fzLeft and fzRight
	now := time.Unix(1_700_000_000, 0)
	p.aliveAt = now.Add(time.Hour)
	forwardQuery(t, p, now)
	// fzRight went offline: the server has this node lead the heal of
	// the two left.
	heal := wire.Heal{Epoch: fzEpoch + 1, Members: []wire.Member{fzSelf, fzLeft}}
	h, m := signedWith(wire.Header{ID: 70}, heal, signer{seq: 1, key: p.cred.secret}, netip.AddrPort{}, p.self.Addr)
	if out := p.Step(now, fzServer, h, m); queryToRight(out) {
		t.Fatalf("the heal sent the query to the removed neighbour: %+v", out)
	}
	for range 100 {
		now = now.Add(200 * time.Millisecond)
		for _, o := range p.Tick(now) {
			if queryToRight([]Output{o}) {
				t.Fatalf("the query forwarded to %s sent again after the heal removed it", fzRight.Name)
			}
			if e, ok := o.(Event); ok && e.Msg == "gave up: no acknowledgement" && e.Attrs[len(e.Attrs)-1].Value.String() == "query" {
				t.Fatalf("after the heal: %+v", e)
			}
		}
	}
}

// A reset-right (a leave's, a join's) ends the queries this node forwarded
// to its old right: the leaver, out of the ring, drops them as "in no
// DHT"; at a join, the leader, whose left is the joiner now, as "from
// neither its querier nor the left neighbour". Each was sent again until
// the give-up, then warned (a chaos run with queries typed during leaves
// and joins: hundreds of drops and a warning a query at each end).
func TestAResetRightEndsTheQueriesForwardedToTheOldRight(t *testing.T) {
	p := fuzzPeer()
	now := time.Unix(1_700_000_000, 0)
	p.aliveAt = now.Add(time.Hour)
	forwardQuery(t, p, now)
	next := wire.Member{Name: "frank", Addr: netip.MustParseAddrPort("10.0.0.16:5000")}
	stepSigned(p, now, fzRight.Addr, wire.Header{ID: 61}, wire.ResetRight{Right: next, Epoch: fzEpoch})
	if p.right != next {
		t.Fatalf("the reset-right was not taken: right %v", p.right)
	}
	for range 60 {
		now = now.Add(200 * time.Millisecond)
		if queryToRight(p.Tick(now)) {
			t.Fatalf("the query forwarded to %s sent again after the reset-right", fzRight.Name)
		}
	}
}

// A teardown-dht that passes a member while a query it forwarded round the
// ring waits for its ack (lost) ends that query's retransmissions: its
// right neighbour, out of the ring, drops them unacknowledged, then as
// "for another ring" once set up anew, and the member warned "gave up: no
// acknowledgement" 10 s later, naming a live node (a chaos run at 30%
// loss). The querier asks again through the server.
func TestATeardownEndsTheQueriesItsMemberForwarded(t *testing.T) {
	p := fuzzPeer()
	now := time.Unix(1_700_000_000, 0)
	forwardQuery(t, p, now)
	stepSigned(p, now, fzLeft.Addr, wire.Header{ID: 61}, wire.Teardown{Origin: fzLeft.Name, OriginAddr: fzLeft.Addr})
	for range 20 {
		now = now.Add(200 * time.Millisecond)
		if out := p.Tick(now); queryToRight(out) {
			t.Fatalf("the query forwarded before the teardown sent again after it: %+v", out)
		}
	}
}

// forwardQuery has p (fuzzPeer: bob, id 1 of 3) take from its left a query
// for a Long Name another node owns, and checks that it forwards it to
// fzRight.
func forwardQuery(t *testing.T, p *Peer, now time.Time) {
	t.Helper()
	name := ""
	for _, n := range []string{"Aruba", "Republic of Yemen", "Kingdom of Spain", "Mongolia", "Republic of Chile"} {
		if dataset.ID(dataset.Pos(n), p.n) != p.id {
			name = n
			break
		}
	}
	querier := wire.Member{Name: "erin", Addr: netip.MustParseAddrPort("10.0.0.15:5000")}
	if out := stepSigned(p, now, fzLeft.Addr, wire.Header{ID: 60}, wire.Query{ReqID: 9, Querier: querier, LongName: name, Hops: 1}); !queryToRight(out) {
		t.Fatalf("the query for %q was not forwarded: %+v", name, out)
	}
}

// queryToRight reports whether out sends a query to fzRight.
func queryToRight(out []Output) bool {
	return slices.ContainsFunc(out, func(o Output) bool {
		s, ok := o.(Send)
		_, q := s.Msg.(wire.Query)
		return ok && q && s.To == fzRight.Addr
	})
}
