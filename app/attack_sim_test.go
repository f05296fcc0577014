package app_test

// The attacks of SPEC §7 "Who may command whom", each run against a
// simulated ring: an off-path attacker sends any datagram, from its own
// socket or with any source address, and may replay what it captured
// earlier (as a former member could). None of it is acted on.

import (
	"encoding/binary"
	"net/netip"
	"slices"
	"testing"
	"time"

	"dht/app"
	"dht/app/state"
	"dht/wire"
)

var (
	stranger = netip.MustParseAddrPort("10.6.6.6:666")
	victim   = netip.MustParseAddrPort("10.7.7.7:7")
)

// forged encodes m as an attacker can: unsigned, or signed with a key of
// its own and the given seq (an epoch, a sequence number).
func forged(t *testing.T, m wire.Message, seq uint64, key *wire.Key) []byte {
	t.Helper()
	var b []byte
	var err error
	if key == nil {
		b, err = wire.Append(nil, 0xbad, 0, m)
	} else {
		b, err = wire.AppendSigned(nil, 0xbad, 0, m, seq, *key)
	}
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// attackerKeys: no key, and one of the attacker's own.
var attackerKeys = []*wire.Key{nil, {0xee, 0xee}}

// countTo counts the datagrams the simulation sends to addr from now on.
func countTo(s *simNet, addr netip.AddrPort) *int {
	n := new(int)
	s.Tap = func(_, to netip.AddrPort, _ []byte) {
		if to == addr {
			*n++
		}
	}
	return n
}

// A stranger's set-id (a place and neighbours of its choosing), store
// (a forged record), teardown, reset-id, pace (saying the member's ring
// is gone) and heal (naming the member the leader of a ring with the
// stranger), from its own socket or from a neighbour's or the server's
// address, unsigned or signed with a key of its own, for this ring's
// epoch or the next: the member takes none of it. Its place and its
// table are unchanged, every record is found as the dataset has it, and
// nothing is sent to the stranger.
func TestStrangerCannotTakeOverAMember(t *testing.T) {
	s, data := ringOfFour(t, 1)
	targetName := memberWithID(s, 1)
	target := s.Process(targetName)
	before := app.Identity(target.Core)
	epoch := s.Server().Snapshot().DHT.Epoch
	eve := wire.Member{Name: "eve", Addr: stranger}
	aruba := data[0].Fields()
	aruba[1] = "FORGED"
	msgs := []wire.Message{
		wire.SetID{ID: 3, N: 4, Left: eve, Right: eve, Ticket: wire.Tag{1, 2, 3}},
		wire.SetID{ID: 3, N: 64, Left: before.Left, Right: before.Right},
		wire.Store{N: 4, Records: []wire.Record{aruba}},
		wire.Teardown{Origin: "eve"},
		wire.ResetID{Origin: "eve", ID: 0, N: 1},
		// The server's word that the member's ring is gone (forged).
		wire.Pace{PeriodMS: 100, Gone: epoch},
		// The server's word that the member is to heal the ring into a
		// ring of two with the stranger (forged).
		wire.Heal{Epoch: epoch + 2, Members: []wire.Member{{Name: targetName, Addr: target.Addr}, eve}},
	}
	sent := countTo(s, stranger)
	for _, from := range []netip.AddrPort{stranger, before.Left.Addr, simServer} {
		for _, key := range attackerKeys {
			for _, seq := range []uint64{epoch, epoch + 1} {
				for _, m := range msgs {
					s.Inject(from, target.Addr, forged(t, m, seq, key))
				}
			}
		}
	}
	free := freeUser(s)
	queryAll(t, s, free, data, 4)
	if after := app.Identity(target.Core); after != before {
		t.Fatalf("the member's place changed: %+v -> %+v", before, after)
	}
	s.checkRing(data)
	if *sent != 0 {
		t.Fatalf("%d datagrams sent to the stranger", *sent)
	}
}

// Set-ids, stores, flushes, resets and teardowns captured from an earlier
// ring, replayed to the members of the next and to the user the next left
// out, who still holds the earlier ring's key: from the address they were
// sent from and from a stranger's, as they were and with another message
// id. Refused: the new ring answers every query, the user outside it takes
// no place in the ring it left (neither with a setup's set-id, which
// carries a ticket, nor with a joiner's, which does not), and nothing but
// acks goes to the stranger.
func TestReplayedRingMessagesOfAnEarlierRing(t *testing.T) {
	for _, tc := range []struct {
		name string
		seed uint64
		join bool // the user left out joined the earlier ring
	}{
		{"a member of the setup", 2, false},
		{"the joiner", 8, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSim(t, tc.seed)
			data := records(t)
			setupFive(t, s)
			type capture struct {
				from, to netip.AddrPort
				b        []byte
			}
			var captured []capture
			s.Tap = func(from, to netip.AddrPort, b []byte) {
				if _, m, err := wire.Decode(b); err == nil {
					switch m.(type) {
					case wire.SetID, wire.Store, wire.Flush, wire.Committed, wire.Teardown, wire.ResetID, wire.ResetLeft, wire.ResetRight:
						captured = append(captured, capture{from, to, b})
					}
				}
			}
			s.mustDo("alice", "setup-dht 3 alice", "setup-dht SUCCESS")
			earlier := s.Server().Snapshot().DHT.Members
			var out string // the joiner, whom the next ring is to leave out
			if tc.join {
				out = freeUser(s)
				s.mustDo(out, "join-dht "+out, "join-dht SUCCESS")
			}
			s.mustDo("alice", "teardown-dht alice", "teardown-dht SUCCESS")
			s.Tap = nil
			s.mustDo("erin", "setup-dht 4 erin", "setup-dht SUCCESS")
			s.checkRing(data)
			left := freeUser(s)
			if tc.join && left != out || !tc.join && !slices.Contains(earlier, left) {
				t.Fatalf("seed %d leaves %s out of the ring of 4; the test needs another seed", tc.seed, left)
			}
			before := app.Identity(s.Process(left).Core)
			// What goes to the stranger: the acks of what a node can never
			// act on, dropped and acknowledged so that a sender stops (a
			// node restarted after a ring phase passed it knows no one to
			// take it from), and nothing else.
			sent := 0
			s.Tap = func(_, to netip.AddrPort, b []byte) {
				if _, m, err := wire.Decode(b); to == stranger && (err != nil || m.Type() != wire.TypeAck) {
					sent++
				}
			}
			for _, c := range captured {
				for _, from := range []netip.AddrPort{c.from, stranger} {
					s.Inject(from, c.to, c.b)
					// With another message id too, so that no duplicate
					// suppression hides it: the id is signed, like
					// everything else.
					b := append([]byte(nil), c.b...)
					b[7] ^= 0x55
					s.Inject(from, c.to, b)
				}
			}
			for s.Busy() {
				s.step()
			}
			if after := app.Identity(s.Process(left).Core); after != before {
				t.Errorf("%s, outside the ring, took a replayed place: %+v -> %+v", left, before, after)
			}
			if sent != 0 {
				t.Errorf("%d datagrams other than acks sent to the stranger", sent)
			}
			s.Tap = nil
			queryAll(t, s, left, data, 4)
			s.checkRing(data)
		})
	}
}

// Requests captured and replayed, from the address they came from: an old
// teardown-dht and teardown-complete do not dissolve a later ring, before
// or after a server restart; an old deregister does not remove the user's
// later registration.
func TestReplayedRequestsAreNotRunAgain(t *testing.T) {
	s := newSim(t, 3)
	data := records(t)
	setupFive(t, s)
	type capture struct {
		from netip.AddrPort
		b    []byte
	}
	var captured []capture
	s.Tap = func(from, to netip.AddrPort, b []byte) {
		if _, m, err := wire.Decode(b); err == nil && to == simServer {
			switch m.(type) {
			case wire.TeardownDHT, wire.TeardownComplete, wire.Deregister:
				captured = append(captured, capture{from, b})
			}
		}
	}
	s.mustDo("alice", "setup-dht 3 alice", "setup-dht SUCCESS")
	s.mustDo("alice", "teardown-dht alice", "teardown-dht SUCCESS")
	erin := s.Process("erin").Addr
	s.mustDo("erin", "deregister erin", "deregister SUCCESS")
	s.Tap = nil
	if len(captured) != 3 {
		t.Fatalf("captured %d requests", len(captured))
	}
	// erin again, from a new process at the same address; a new ring.
	s.AddPeer("erin", erin, data)
	s.mustDo("erin", "register erin "+erin.Addr().String()+" 5000", "register SUCCESS")
	s.mustDo("alice", "setup-dht 4 alice", "setup-dht SUCCESS")
	ready := s.Server().Snapshot()
	replay := func() {
		for _, c := range captured {
			s.Inject(c.from, simServer, c.b)
		}
		queryAll(t, s, freeUser(s), data[:20], 4)
		now := s.Server().Snapshot()
		if now.DHT.Phase != state.PhaseReady || now.DHT.Epoch != ready.DHT.Epoch || len(now.Users) != 5 {
			t.Fatalf("after the replay: DHT %+v, %d users", now.DHT, len(now.Users))
		}
	}
	replay()
	s.RestartServer()
	replay()
}

// A query naming a third party as the querier, unsigned or signed with a
// key of the attacker's own, sent to every member from the attacker's
// socket or with the third party's address as its source: no member sends
// the third party anything.
func TestForgedQueryCannotAimTheRingAtAThirdParty(t *testing.T) {
	s, data := ringOfFour(t, 4)
	epoch := s.Server().Snapshot().DHT.Epoch
	sent := countTo(s, victim)
	q := wire.Query{ReqID: 1, Querier: wire.Member{Name: "victim", Addr: victim}, LongName: data[0].LongName}
	for _, name := range s.Server().Snapshot().DHT.Members {
		for _, from := range []netip.AddrPort{stranger, victim} {
			for _, key := range attackerKeys {
				s.Inject(from, s.Process(name).Addr, forged(t, q, epoch, key))
			}
		}
	}
	queryAll(t, s, freeUser(s), data[:10], 4)
	if *sent != 0 {
		t.Fatalf("%d datagrams sent to the third party", *sent)
	}
}

// Requests with a forged source address: an unsigned deregister of a Free
// user, teardown-dht and teardown-complete naming the leader, a register
// squatting an address the attacker does not receive at (its challenge
// goes there, and is lost), a register with a guessed cookie. The server
// acts on none of them.
func TestForgedSourceRequestsAreRefused(t *testing.T) {
	s, data := ringOfFour(t, 5)
	before := s.Server().Snapshot()
	free := freeUser(s)
	leader := leaderName(s)
	squat := netip.MustParseAddrPort("10.0.0.99:5000")
	for _, key := range attackerKeys {
		s.Inject(s.Process(free).Addr, simServer, forged(t, wire.Deregister{Name: free}, 1<<62, key))
		s.Inject(s.Process(leader).Addr, simServer, forged(t, wire.TeardownDHT{Name: leader}, 1<<62, key))
		s.Inject(s.Process(leader).Addr, simServer, forged(t, wire.TeardownComplete{Name: leader}, 1<<62, key))
	}
	s.Inject(squat, simServer, forged(t, wire.Register{Name: "mallory", Addr: squat}, 0, nil))
	s.Inject(squat, simServer, forged(t, wire.Register{Name: "mallory", Addr: squat, Cookie: wire.Tag{1}}, 0, nil))
	queryAll(t, s, free, data[:10], 4)
	after := s.Server().Snapshot()
	if after.DHT.Phase != state.PhaseReady || after.DHT.Epoch != before.DHT.Epoch || len(after.Users) != len(before.Users) {
		t.Fatalf("the server acted on forged requests: %+v, %d users (was %d)", after.DHT, len(after.Users), len(before.Users))
	}
}

// A member's message ids are read by whoever it sends a ring message to (a
// querier reads its query-result's header). A FAILURE forged from the
// server's address, unsigned (all a server that does not know the user can
// send), with the ids that follow them, sent while the member's
// teardown-dht is in flight: the member must not take it for the server's
// answer (it would print the attacker's words while the server waits for
// its teardown-complete), so its request ids follow nothing it sent.
func TestForgedFailureCannotGuessARequestID(t *testing.T) {
	s, data := ringOfFour(t, 1)
	leader := s.Server().Snapshot().DHT.Leader
	free := freeUser(s)
	from, to := s.Process(leader).Addr, s.Process(free).Addr
	var seen []uint32 // the ids of what the leader sent the querier
	s.Tap = func(src, dst netip.AddrPort, b []byte) {
		if src == from && dst == to {
			if h, _, err := wire.Decode(b); err == nil {
				seen = append(seen, h.ID)
			}
		}
	}
	queryAll(t, s, free, data, 4)
	s.Tap = nil
	if len(seen) == 0 {
		t.Fatal("the leader answered no query")
	}
	last := seen[len(seen)-1]
	p := s.Process(leader)
	before := len(p.Printed)
	s.input(leader, "teardown-dht "+leader)
	for id := last - 64; id != last+4096; id++ {
		b := forged(t, wire.Reply{OK: false, Reason: "FORGED"}, 0, nil)
		binary.BigEndian.PutUint32(b[4:8], id)
		s.Inject(simServer, from, b)
	}
	for !p.Core.Idle() {
		if !s.step() {
			t.Fatal("the network stopped before the teardown ended")
		}
	}
	got := texts(p.Printed[before:])
	if want := []string{"teardown-dht SUCCESS", "teardown-complete SUCCESS"}; !slices.Equal(got, want) {
		t.Fatalf("the leader printed %q, want %q", got, want)
	}
}

// A user forging its own requests: signed with its own secret (which the
// attacker holds, as any registered user does), with new sequence numbers,
// from a third party's address. The server acts on none and answers none
// (an answer, larger than the request, would go where the user aimed it);
// and replays of a request the user sent, from its own address, get at
// most ten answers a second.
func TestAUserCannotAimTheServerAtAThirdParty(t *testing.T) {
	s, data := ringOfFour(t, 7)
	before := s.Server().Snapshot()
	mallory := freeUser(s)
	own := s.Process(mallory).Addr
	secret := app.Identity(s.Process(mallory).Core).Secret
	sent := countTo(s, victim)
	seq := uint64(1 << 62)
	for range 50 {
		for _, m := range []wire.Message{wire.QueryDHT{Name: mallory}, wire.JoinDHT{Name: mallory}, wire.Deregister{Name: mallory}, wire.SetupDHT{N: 2, Name: mallory}} {
			seq++
			s.Inject(victim, simServer, forged(t, m, seq, &secret))
		}
	}
	queryAll(t, s, mallory, data[:10], 4)
	if *sent != 0 {
		t.Fatalf("%d datagrams sent to the third party", *sent)
	}
	after := s.Server().Snapshot()
	if after.DHT.Phase != state.PhaseReady || after.DHT.Epoch != before.DHT.Epoch || len(after.Users) != len(before.Users) {
		t.Fatalf("the server acted on forged requests: %+v, %d users (was %d)", after.DHT, len(after.Users), len(before.Users))
	}
	// A request behind the user's sequence numbers, replayed at once from
	// its own address.
	answers := 0
	s.Tap = func(from, to netip.AddrPort, b []byte) {
		if h, _, err := wire.Decode(b); err == nil && from == simServer && to == own && h.ID == 0xbad {
			answers++
		}
	}
	for range 100 {
		s.Inject(own, simServer, forged(t, wire.QueryDHT{Name: mallory}, 1, &secret))
	}
	for s.Busy() {
		s.step()
	}
	if answers < 1 || answers > 10 {
		t.Fatalf("100 replays at once got %d answers; want one at least (the user's clock may be behind) and ten at most", answers)
	}
}

// Alives captured from a member, replayed after it died and the server
// restarted: the server wrote each user's last alive's number down with
// its signs of life, so the replays are refused as such, and the dead
// member shows no sign of life.
func TestAlivesReplayedAfterAServerRestart(t *testing.T) {
	s, _ := ringOfFour(t, 8)
	name := memberWithID(s, 2)
	addr := s.Process(name).Addr
	var captured [][]byte
	s.Tap = func(from, to netip.AddrPort, b []byte) {
		if _, m, err := wire.Decode(b); err == nil && from == addr && to == simServer {
			if _, ok := m.(wire.Alive); ok {
				captured = append(captured, b)
			}
		}
	}
	runFor := func(d time.Duration) {
		for end := s.Now().Add(d); s.Now().Before(end); {
			if !s.step() {
				t.Fatal("the simulation stopped")
			}
		}
	}
	runFor(10 * time.Second)
	s.Tap = nil
	if len(captured) < 3 {
		t.Fatalf("captured %d alives", len(captured))
	}
	runFor(6 * time.Second) // the server writes its signs of life within 5 s
	s.Remove(name)
	runFor(3 * time.Second)
	s.RestartServer()
	seen := func() int64 {
		for _, u := range s.Server().Snapshot().Users {
			if u.Name == name {
				return u.LastSeen
			}
		}
		t.Fatalf("%s is not registered", name)
		return 0
	}
	was := seen()
	for _, b := range captured {
		s.Inject(addr, simServer, b)
	}
	runFor(2 * time.Second)
	if now := seen(); now != was {
		t.Fatalf("replayed alives counted as signs of life: %s last seen %v, was %v", name, time.Unix(0, now), time.Unix(0, was))
	}
}

// A querier holding its token sends its own query, acked (a retry's
// flags), with a third party's address as the source: the member takes a
// query only from its querier or from its left neighbour, so nothing goes
// to the third party (its ack would), and the querier's queries are
// answered as before.
func TestTokenHolderCannotAimAcksAtAThirdParty(t *testing.T) {
	s, data := ringOfFour(t, 9)
	epoch := s.Server().Snapshot().DHT.Epoch
	mallory := freeUser(s)
	sent := countTo(s, victim)
	for _, name := range s.Server().Snapshot().DHT.Members {
		to := s.Process(name).Addr
		token := app.QueryToken(s.Process(name).Core, s.Process(mallory).Addr)
		m := wire.Query{ReqID: 7, Querier: wire.Member{Name: mallory, Addr: s.Process(mallory).Addr}, LongName: data[0].LongName}
		// Signed as the token's holder can: from the source it forges.
		b, err := wire.AppendSignedBetween(nil, 0xbad, wire.FlagRetransmit, m, epoch, token, victim, to)
		if err != nil {
			t.Fatal(err)
		}
		for range 20 {
			s.Inject(victim, to, b)
		}
	}
	queryAll(t, s, mallory, data[:10], 4)
	if *sent != 0 {
		t.Fatalf("%d datagrams sent to the third party", *sent)
	}
}

// A token holder's query, sent reliably with a member's left neighbour as
// its source and the ids that neighbour sends next (which its answers
// show), is not taken as the neighbour's forward: that is signed with the
// ring's key. Taken, each id went into the member's duplicate filter as
// one of the neighbour's, and the neighbour's real messages with those ids
// (the teardown and stores of the next join) were acknowledged and
// dropped as copies: records lost with every command printing SUCCESS, or
// a join that never ended. mallory then joins; every record is where the
// hash says.
func TestTokenHolderCannotPoisonTheDuplicateFilter(t *testing.T) {
	s, data := ringOfFour(t, 9)
	epoch := s.Server().Snapshot().DHT.KeyEpoch
	mallory := freeUser(s)
	querier := wire.Member{Name: mallory, Addr: s.Process(mallory).Addr}
	target := s.Process(memberWithID(s, 2))
	left := s.Process(app.Identity(target.Core).Left.Name)
	token := app.QueryToken(target.Core, querier.Addr)
	next := app.NextID(left.Core)
	for id := next + 1; id <= next+400; id++ {
		m := wire.Query{ReqID: 7, Querier: querier, Hops: 1, LongName: data[0].LongName}
		// Signed as the token's holder can: from the neighbour's address.
		b, err := wire.AppendSignedBetween(nil, id, 0, m, epoch, token, left.Addr, target.Addr)
		if err != nil {
			t.Fatal(err)
		}
		s.Inject(left.Addr, target.Addr, b)
	}
	s.mustDo(mallory, "join-dht "+mallory, "join-dht SUCCESS")
	s.checkRing(data)
}

// A dead member's captured request, or a dead heal leader's captured
// healed, sent again from its address once a second after it died, kept it
// in the ring for ever: the server counted the copy a sign of life (the
// request answered from the reply cache; the healed verified, then found
// stale). Only the user's alives, and a request or healed acted on, are.
// A red team's replays; the reply cache lives in the server's file, so a
// server restart did not end it.
func TestReplaysKeepNoDeadMemberInTheRing(t *testing.T) {
	runReplaying := func(t *testing.T, s *simNet, from netip.AddrPort, b []byte, dead string) {
		t.Helper()
		next := s.Now()
		for end := s.Now().Add(5 * app.DefaultDeadAfter); s.Now().Before(end); {
			if !s.Now().Before(next) {
				s.Inject(from, simServer, b)
				next = s.Now().Add(time.Second)
			}
			if !s.step() {
				t.Fatal("the simulation stopped")
			}
		}
		if d := s.Server().Snapshot().DHT; slices.Contains(d.Members, dead) {
			t.Fatalf("%s, dead for %v (--dead-after %v), is still a member (%v, %v): the ring never healed", dead, 5*app.DefaultDeadAfter, app.DefaultDeadAfter, d.Phase, d.Members)
		}
	}
	t.Run("a request", func(t *testing.T) {
		s, data := ringOfFour(t, 1)
		victim := memberWithID(s, 2)
		addr := s.Process(victim).Addr
		var captured []byte
		s.Tap = func(from, to netip.AddrPort, b []byte) {
			if _, m, err := wire.Decode(b); err == nil && from == addr && to == simServer && m.Type() == wire.TypeQueryDHT {
				captured = slices.Clone(b)
			}
		}
		s.mustDo(victim, "query-dht "+victim+" "+data[0].LongName, "query-dht FAILURE")
		s.Tap = nil
		if captured == nil {
			t.Fatal("no query-dht seen")
		}
		kill(s, victim)
		s.RestartServer()
		runReplaying(t, s, addr, captured, victim)
	})
	t.Run("a healed", func(t *testing.T) {
		s, _ := ringOfFour(t, 1)
		dead := memberWithID(s, 3)
		var healed []byte
		var from netip.AddrPort
		s.Tap = func(f, to netip.AddrPort, b []byte) {
			if _, m, err := wire.Decode(b); err == nil && to == simServer && m.Type() == wire.TypeHealed {
				healed, from = slices.Clone(b), f
			}
		}
		kill(s, dead)
		settleHeal(t, s, dead)
		s.Tap = nil
		if healed == nil {
			t.Fatal("no healed seen")
		}
		leader := leaderName(s)
		kill(s, leader)
		runReplaying(t, s, from, healed, leader)
	})
}

// Every query datagram of a querier's walks (its first attempts, sent
// without acknowledgement, to the member the server named, and their
// forwards round the ring), captured and sent again 50 times each from
// where it came: no copy is answered. Answered (an attacker's review),
// each copy sent the querier the whole record, 2.4 times the bytes of the
// copy, for as long as the ring's key lasted, with two trace lines each.
func TestACapturedQueryReplayedIsAnsweredOnce(t *testing.T) {
	s, data := ringOfFour(t, 5)
	querier := freeUser(s)
	qaddr := s.Process(querier).Addr
	type capture struct {
		from, to netip.AddrPort
		b        []byte
	}
	var caught []capture
	forwards := 0
	s.Tap = func(from, to netip.AddrPort, b []byte) {
		if h, m, err := wire.Decode(b); err == nil && m.Type() == wire.TypeQuery && h.Flags&wire.FlagNoAck != 0 {
			caught = append(caught, capture{from, to, slices.Clone(b)})
			if m.(wire.Query).Hops > 0 {
				forwards++
			}
		}
	}
	queryAll(t, s, querier, data[:10], 4)
	s.Tap = nil
	if len(caught) < 10 || forwards == 0 {
		t.Fatalf("captured %d queries, %d of them forwards", len(caught), forwards)
	}
	answers := 0
	s.Tap = func(_, to netip.AddrPort, b []byte) {
		if _, m, err := wire.Decode(b); err == nil && to == qaddr && m.Type() == wire.TypeQueryResult {
			answers++
		}
	}
	for range 50 {
		for _, c := range caught {
			s.Inject(c.from, c.to, c.b)
		}
	}
	settle(t, s)
	s.Tap = nil
	if answers != 0 {
		t.Fatalf("%d copies of %d captured queries were answered", answers, len(caught))
	}
	queryAll(t, s, querier, data[10:20], 4)
}

// A set-id of a ring a member has left, captured by a former member (or
// copied by the network) and replayed after the leaver's process
// restarted, its duplicate filter empty: the leaver still holds that
// ring's key and epoch (the floor of the set-ids it takes), but takes no
// place in a ring that is gone. Replayed from its sender's address, a
// setup's set-id (with a ticket) or a join's (without one, signed with the
// ring's key) leaves the user Free and outside any ring.
func TestASetIDReplayedAtALeaverRestarted(t *testing.T) {
	for _, join := range []bool{false, true} {
		name := "a member of the setup"
		if join {
			name = "the joiner"
		}
		t.Run(name, func(t *testing.T) {
			s := newSim(t, 3)
			data := records(t)
			setupFive(t, s)
			type capture struct {
				from, to netip.AddrPort
				b        []byte
			}
			var setIDs []capture
			tap := func(from, to netip.AddrPort, b []byte) {
				if _, m, err := wire.Decode(b); err == nil && m.Type() == wire.TypeSetID {
					setIDs = append(setIDs, capture{from, to, b})
				}
			}
			if !join {
				s.Tap = tap
			}
			s.mustDo("alice", "setup-dht 3 alice", "setup-dht SUCCESS")
			leaver := memberWithID(s, 1)
			if join {
				leaver = freeUser(s)
				s.Tap = tap
				s.mustDo(leaver, "join-dht "+leaver, "join-dht SUCCESS")
			}
			s.Tap = nil
			s.mustDo(leaver, "leave-dht "+leaver, "leave-dht SUCCESS")
			for s.Busy() {
				s.step()
			}
			if !s.Restart(leaver) {
				t.Fatalf("%s's process did not restart", leaver)
			}
			for s.Busy() {
				s.step()
			}
			before := app.Identity(s.Process(leaver).Core)
			if before.InRing {
				t.Fatalf("%s is in a ring after its leave and restart: %+v", leaver, before)
			}
			replayed := 0
			for _, c := range setIDs {
				if c.to == s.Process(leaver).Addr {
					s.Inject(c.from, c.to, c.b)
					replayed++
				}
			}
			if replayed == 0 {
				t.Fatalf("no set-id to %s captured", leaver)
			}
			for s.Busy() {
				s.step()
			}
			if after := app.Identity(s.Process(leaver).Core); after != before {
				t.Fatalf("%s took a place in a ring it left: %+v -> %+v", leaver, before, after)
			}
			queryAll(t, s, leaver, data, len(s.Server().Snapshot().DHT.Members))
			s.checkRing(data)
		})
	}
}
