package app

import (
	"net/netip"
	"slices"
	"testing"
	"time"

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
	noQueryToRight(t, p, now, 60, "the query forwarded to the right neighbour sent again after the reset-right")
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
	noQueryToRight(t, p, now, 20, "the query forwarded before the teardown sent again after it")
}

// forwardQuery has p (fuzzPeer: bob, id 1 of 3) take from its left a query
// for a Long Name another node owns, and checks that it forwards it to
// fzRight.
func forwardQuery(t *testing.T, p *Peer, now time.Time) {
	t.Helper()
	name := longNameOf(t, func(id int) bool { return id != p.id }, p.n)
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

// A member the server healed out of its ring (stopped past --dead-after),
// told so by a pace, ends the queries it forwarded round that ring: its
// old right drops them unacknowledged ("from neither its querier nor the
// left neighbour"), and their retransmissions went on to the link's
// give-up, which then failed the join-dht typed meanwhile as "join sent
// to NAME was not acknowledged within 10s", 3.7 s after the join went (a
// chaos run: a member SIGSTOPped for 4.5 s, then joined again).
func TestAMemberHealedOutEndsTheQueriesItForwarded(t *testing.T) {
	p := fuzzPeer()
	p.epoch = fzEpoch // its ring's, which the server counts it in no more
	now := time.Unix(1_700_000_000, 0)
	p.aliveAt = now.Add(time.Hour)
	forwardQuery(t, p, now)
	goneOut := stepSigned(p, now, fzServer, wire.Header{ID: 1}, wire.Pace{PeriodMS: 5000, Gone: fzEpoch})
	if p.inRing {
		t.Fatalf("the pace's gone was not taken (epoch %d): %+v", p.placeEpoch(), goneOut)
	}
	for range 60 {
		now = now.Add(200 * time.Millisecond)
		for _, o := range p.Tick(now) {
			if queryToRight([]Output{o}) {
				t.Fatalf("the query forwarded round the ring it was healed out of sent again: %+v", o)
			}
			if e, ok := o.(Event); ok && e.Msg == "gave up: no acknowledgement" {
				t.Fatalf("after the ring was gone: %+v", e)
			}
		}
	}
}

// A join's leader, its teardown back, ends the queries it forwarded to its
// right meanwhile: the right, torn down, drops them unacknowledged ("this
// peer is in no DHT"), and 32 of them (the window) held the reset-id back
// behind them until the link gave up: the join failed as "query sent to
// NAME was not acknowledged within 10s" (a chaos run at 25% loss, queries
// typed throughout; the right warned 2,682 drops in 32 s).
func TestAJoinLeaderEndsTheQueriesItForwardedRoundTheTornDownRing(t *testing.T) {
	p, now := joinStarted(t)
	forwardQuery(t, p, now) // while the teardown goes round
	out := stepSigned(p, now, fzLeft.Addr, wire.Header{ID: 62}, wire.Teardown{Origin: p.self.Name, KeepNeighbours: true, OriginAddr: p.self.Addr, Epoch: p.epoch})
	if _, sent := outcome(out); !slices.ContainsFunc(sent[fzRight.Addr], func(m wire.Message) bool { return m.Type() == wire.TypeResetID }) {
		t.Fatalf("the teardown back sent %+v; want a reset-id to the right", sent)
	}
	noQueryToRight(t, p, now, 20, "the query forwarded while the join's teardown went round sent again after it came back")
}

// A leaver, its teardown back, ends the queries it forwarded meanwhile, as
// a join's leader does: its right, torn down, drops them unacknowledged,
// and a window of them would hold the reset-id back until the give-up.
func TestALeaverEndsTheQueriesItForwardedRoundTheTornDownRing(t *testing.T) {
	p := fuzzPeer()
	giveCredentials(p)
	now := time.Unix(1_700_000_000, 0)
	p.aliveAt = now.Add(time.Hour)
	o := &leaveOp{stage: leaveTearing, left: fzLeft, right: fzRight, n: 3, epoch: fzEpoch}
	o.ringPhase.until = now.Add(time.Minute)
	p.op = o
	forwardQuery(t, p, now) // while the teardown goes round
	if _, sent := outcome(p.teardownReturned(now, wire.Teardown{Origin: p.self.Name, KeepNeighbours: true})); !slices.ContainsFunc(sent[fzRight.Addr], func(m wire.Message) bool { return m.Type() == wire.TypeResetID }) {
		t.Fatalf("the teardown back sent %+v; want a reset-id to the right", sent)
	}
	noQueryToRight(t, p, now, 20, "the query forwarded while the leave's teardown went round sent again after it came back")
}

// A leave's or a join's teardown (keeping neighbours) that passes a member
// ends the queries it forwarded round the ring before it: its right, torn
// down, drops them unacknowledged ("this peer is in no DHT") until its
// reset-id, then takes a copy sent again and forwards it round the
// renumbered ring with the hops it made round the old one, and the node
// before the one that holds the Long Name dropped it as "a query would
// loop" (a chaos run at 15% loss: leave-dht of the leader; grace sent a
// query forwarded at hops 2 again after its reset-id, frank forwarded it,
// heidi, id 3 of 4, dropped it at hops 3).
func TestALeaveTeardownEndsTheQueriesItsMemberForwarded(t *testing.T) {
	p := fuzzPeer()
	now := time.Unix(1_700_000_000, 0)
	p.aliveAt = now.Add(time.Hour)
	forwardQuery(t, p, now)
	stepSigned(p, now, fzLeft.Addr, wire.Header{ID: 61}, wire.Teardown{Origin: fzLeft.Name, OriginAddr: fzLeft.Addr, KeepNeighbours: true, Epoch: p.epoch})
	if p.inRing {
		t.Fatalf("the teardown was not taken")
	}
	stepSigned(p, now, fzLeft.Addr, wire.Header{ID: 62}, wire.ResetID{Origin: fzLeft.Name, OriginAddr: fzLeft.Addr, ID: 1, N: 2, Epoch: p.epoch + 1})
	if !p.inRing || p.n != 2 {
		t.Fatalf("the reset-id was not taken: in ring %v, n %d", p.inRing, p.n)
	}
	noQueryToRight(t, p, now, 20, "the query forwarded before the leave's teardown sent again after it, into the renumbered ring")
}

// A heal's set-id that keeps this node's right but renumbers the ring ends
// the queries this node forwarded round the old one: sent again, each went
// on round the healed ring with the hops it made round the old one, and
// the node before the one that holds the Long Name dropped it as "a query
// would loop" (a chaos run at 15% loss, kill -9 of a member of 5: ivan
// sent a query forwarded at hops 2 again right after its set-id, judy
// forwarded it, alice, id 3 of 4, dropped it at hops 3).
func TestAHealSetIDEndsTheQueriesForwardedRoundTheOldRing(t *testing.T) {
	p := fuzzPeer() // bob, id 1 of 3
	now := time.Unix(1_700_000_000, 0)
	p.aliveAt = now.Add(time.Hour)
	forwardQuery(t, p, now)
	stepSigned(p, now, fzLeft.Addr, wire.Header{ID: 61}, wire.SetID{ID: 1, N: 4, Left: fzLeft, Right: fzRight, Epoch: p.epoch + 1})
	if p.n != 4 || p.epoch == 0 {
		t.Fatalf("the set-id was not taken: n %d epoch %d", p.n, p.epoch)
	}
	noQueryToRight(t, p, now, 20, "the query forwarded round the old ring sent again after the heal's set-id")
}

// A join's leader that the server asks to heal the ring (a member stopped
// while the join's teardown went round, which never came back) ends the
// queries it forwarded meanwhile to its right, which stays its right in
// the healed ring: torn down, the right drops them unacknowledged ("this
// peer is in no DHT"), and a window of them held the heal's set-id to it
// back until the link gave up: the heal failed as "set-id sent to dave
// was not acknowledged within 10s", dave live, and 86 "gave up" warnings
// with it (a chaos run at 10% loss: grace stopped 4.5 s during join-dht
// judy; erin, the join's leader, sent 3,154 query copies to dave in 10 s).
func TestAHealLeaderEndsTheQueriesItForwardedToItsTornDownRight(t *testing.T) {
	p, now := joinStarted(t)
	// The right, torn down, acknowledges the teardown and drops the
	// queries that follow: more than a window of them.
	querier := wire.Member{Name: "erin", Addr: netip.MustParseAddrPort("10.0.0.15:5000")}
	name := longNameOf(t, func(id int) bool { return id != p.id }, p.n)
	for i := range 2 * p.link.cfg.Window {
		stepSigned(p, now, fzLeft.Addr, wire.Header{ID: uint32(100 + i)}, wire.Query{ReqID: uint32(9 + i), Querier: querier, LongName: name, Hops: 1})
	}
	// The server heals the ring round a stopped member, this node leading,
	// fzRight still its right.
	heal := wire.Heal{Epoch: p.epoch + 2, Members: []wire.Member{fzSelf, fzRight, fzLeft}}
	h, m := signedWith(wire.Header{ID: 70}, heal, signer{seq: 1, key: p.cred.secret}, netip.AddrPort{}, p.self.Addr)
	out := p.Step(now, fzServer, h, m)
	for range 10 {
		if _, sent := outcome(out); slices.ContainsFunc(sent[fzRight.Addr], func(m wire.Message) bool { return m.Type() == wire.TypeSetID }) {
			return
		}
		now = now.Add(200 * time.Millisecond)
		out = p.Tick(now)
	}
	t.Fatalf("the heal's set-id to %s not sent within 2s: it waits behind the queries forwarded to it after the join's teardown", fzRight.Name)
}

// noQueryToRight runs p's timers for ticks turns of 200 ms and fails the
// test, saying after what, if a query goes to fzRight meanwhile.
func noQueryToRight(t *testing.T, p *Peer, now time.Time, ticks int, after string) {
	t.Helper()
	for range ticks {
		now = now.Add(200 * time.Millisecond)
		if out := p.Tick(now); queryToRight(out) {
			t.Fatalf("%s: %+v", after, out)
		}
	}
}

// joinStarted is a join's leader (joinLeader) that took a joiner in: its
// teardown, keeping neighbours, has gone to its right.
func joinStarted(t *testing.T) (*Peer, time.Time) {
	t.Helper()
	p := joinLeader()
	now := time.Unix(1_700_000_000, 0)
	p.aliveAt = now.Add(time.Hour)
	_, sent := outcome(stepSigned(p, now, fzJoiner.Addr, wire.Header{ID: 9}, wire.Join{Joiner: fzJoiner, N: 3, Epoch: p.epoch + 1}))
	if len(sent[fzRight.Addr]) != 1 || sent[fzRight.Addr][0].Type() != wire.TypeTeardown {
		t.Fatalf("the join sent %+v; want a teardown to the right", sent)
	}
	return p, now
}
