package app_test

// Ring messages of an earlier phase of the same ring (its key outlives
// its leaves, joins and heals), and requests, sent again by an attacker
// who captured them, from the address the receiver expects them from now;
// and a flood. SPEC §7: none of it is acted on.

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"dht/app"
	"dht/app/state"
	"dht/dataset"
	"dht/wire"
)

// tapped is a datagram captured on the simulated network.
type tapped struct {
	from, to netip.AddrPort
	b        []byte
}

// tapTypes captures, from now on, every datagram of the given types.
func tapTypes(s *simNet, types ...wire.Type) *[]tapped {
	var caught []tapped
	s.Tap = func(from, to netip.AddrPort, b []byte) {
		if _, m, err := wire.Decode(b); err == nil && slices.Contains(types, m.Type()) {
			caught = append(caught, tapped{from, to, slices.Clone(b)})
		}
	}
	return &caught
}

// The reset-left and the rebuild-dht of a leave that is over, captured
// (as the leaver, or anyone on the path, saw them) and sent again to the
// new leader with its left neighbour's address as their source (the tag
// names the receiver, not the sender; the duplicate filter holds the pair
// (leaver, id), not (left, id)): the new leader takes neither. Taken,
// the reset-left made the left its "leaver", the rebuild-dht from there
// passed, and the new leader emptied its table and spread the whole
// dataset round the ring again, two datagrams from an off-path attacker.
func TestALeavesRebuildReplayedFromTheNewLeadersLeftRebuildsNothing(t *testing.T) {
	s, data := ringOfFour(t, 3)
	leaver := memberWithID(s, 2)
	caught := tapTypes(s, wire.TypeResetLeft, wire.TypeRebuildDHT)
	s.mustDo(leaver, "leave-dht "+leaver, "leave-dht SUCCESS")
	settle(t, s)
	s.Tap = nil
	var resetLeft, rebuild tapped
	for _, c := range *caught {
		_, m, _ := wire.Decode(c.b)
		switch m.(type) {
		case wire.ResetLeft:
			resetLeft = c
		case wire.RebuildDHT:
			rebuild = c
		}
	}
	if resetLeft.b == nil || rebuild.b == nil || resetLeft.to != rebuild.to {
		t.Fatalf("captured %d; no reset-left and rebuild-dht to one node", len(*caught))
	}
	target := s.nameOf(rebuild.to)
	left := app.Identity(s.Process(target).Core).Left.Addr
	t.Logf("the leaver %s, the new leader %s, its left %s", leaver, target, s.nameOf(left))
	stores := 0
	s.Tap = func(from, to netip.AddrPort, b []byte) {
		if _, m, err := wire.Decode(b); err == nil && (m.Type() == wire.TypeStore || m.Type() == wire.TypeFlush || m.Type() == wire.TypeRebuilt) {
			stores++
		}
	}
	printed := map[string]int{}
	for _, n := range s.Names() {
		printed[n] = len(s.Process(n).Printed)
	}
	s.Inject(left, resetLeft.to, resetLeft.b)
	runFor(t, s, time.Second)
	s.Inject(left, rebuild.to, rebuild.b)
	// Meanwhile, the new leader answers for every record it holds.
	var own []string
	for _, r := range data {
		if dataset.ID(r.Pos(), 3) == 0 {
			own = append(own, r.LongName)
		}
	}
	for i := 0; i < 50 && s.step(); i++ {
		for _, name := range own {
			if _, ok, _ := app.Lookup(s.Process(target).Core, name); !ok {
				t.Errorf("step %d: %s has lost %q", i, target, name)
				i = 50
				break
			}
		}
	}
	runFor(t, s, time.Minute)
	s.Tap = nil
	for _, n := range s.Names() {
		if p := s.Process(n); len(p.Printed) > printed[n] {
			t.Errorf("%s printed %q", n, texts(p.Printed[printed[n]:]))
		}
	}
	if stores != 0 {
		t.Errorf("the two copies made the ring send %d stores, flushes and rebuilts", stores)
	}
	s.checkRing(data)
}

// brokenOfAFailedJoin is a ring of four set up by the first of six users
// whose member of id 2 died while a join went round: the join failed,
// naming it, and the ring healed round it, led by the same leader. It
// returns the broken the node before the dead one sent the leader, and the
// user still Free.
func brokenOfAFailedJoin(t *testing.T, seed uint64) (s *simNet, broken []byte, leader, free string) {
	t.Helper()
	s = newSim(t, seed)
	users := joinUsers(t, s, 6)
	s.mustDo(users[0], "setup-dht 4 "+users[0], "setup-dht SUCCESS")
	leader = leaderName(s)
	dead := memberWithID(s, 2)
	caught := tapTypes(s, wire.TypeBroken)
	kill(s, dead)
	joiner := freeUser(s)
	out := s.mustDo(joiner, "join-dht "+joiner, "join-dht SUCCESS")
	if len(out) != 2 || !strings.Contains(out[1], "the ring is broken at "+dead) {
		t.Fatalf("the join printed %q, want a FAILURE naming %s", out, dead)
	}
	s.Tap = nil
	if len(*caught) == 0 || (*caught)[0].to != s.Process(leader).Addr {
		t.Fatalf("no broken to %s captured (%d)", leader, len(*caught))
	}
	settleHeal(t, s, dead)
	if l := leaderName(s); l != leader {
		t.Fatalf("the healed ring is led by %s, not %s", l, leader)
	}
	for _, u := range users {
		if u != joiner && u != dead && !slices.Contains(s.Server().Snapshot().DHT.Members, u) {
			free = u
		}
	}
	return s, (*caught)[0].b, leader, free
}

// injectAtEachTeardown sends b to the leader, from a stranger and from
// each member's address, every time the leader sends a teardown.
func injectAtEachTeardown(s *simNet, leader string, b []byte) *int {
	n := new(int)
	from := []netip.AddrPort{stranger}
	for _, m := range s.Server().Snapshot().DHT.Members {
		from = append(from, s.Process(m).Addr)
	}
	addr := s.Process(leader).Addr
	s.Tap = func(f, to netip.AddrPort, d []byte) {
		if _, m, err := wire.Decode(d); err == nil && m.Type() == wire.TypeTeardown && f == addr {
			for _, src := range from {
				if src != addr {
					s.Inject(src, addr, b)
					*n++
				}
			}
		}
	}
	return n
}

// The broken captured when a join failed at a dead node (naming the
// ring's epoch of then), sent again to the same node, from a stranger and
// from every member's address, all along a later teardown-dht, a leave
// and a join that node leads in the healed ring (its key the same): each
// succeeds. TestABrokenOfAnEarlierPhaseFailsNoLaterOne covers a join from
// a stranger's address.
func TestABrokenOfAFailedJoinFailsNoLaterTeardownLeaveOrJoin(t *testing.T) {
	data := records(t)
	t.Run("teardown", func(t *testing.T) {
		s, broken, leader, _ := brokenOfAFailedJoin(t, 5)
		n := injectAtEachTeardown(s, leader, broken)
		out := s.mustDo(leader, "teardown-dht "+leader, "teardown-dht SUCCESS")
		s.Tap = nil
		if *n == 0 || len(out) != 2 || !strings.HasPrefix(out[1], "teardown-complete SUCCESS") {
			t.Fatalf("the teardown (%d copies of the broken sent) printed %q, want teardown-complete SUCCESS", *n, out)
		}
	})
	t.Run("leave", func(t *testing.T) {
		s, broken, leader, _ := brokenOfAFailedJoin(t, 5)
		n := injectAtEachTeardown(s, leader, broken)
		out := s.mustDo(leader, "leave-dht "+leader, "leave-dht SUCCESS")
		s.Tap = nil
		if *n == 0 || len(out) != 2 || !strings.HasPrefix(out[1], "dht-rebuilt SUCCESS") {
			t.Fatalf("the leave (%d copies of the broken sent) printed %q, want dht-rebuilt SUCCESS", *n, out)
		}
		s.checkRing(data)
	})
	t.Run("join", func(t *testing.T) {
		s, broken, leader, free := brokenOfAFailedJoin(t, 5)
		n := injectAtEachTeardown(s, leader, broken)
		out := s.mustDo(free, "join-dht "+free, "join-dht SUCCESS")
		s.Tap = nil
		if *n == 0 || len(out) != 2 || !strings.HasPrefix(out[1], "dht-rebuilt SUCCESS") {
			t.Fatalf("the join (%d copies of the broken sent) printed %q, want dht-rebuilt SUCCESS", *n, out)
		}
		s.checkRing(data)
	})
}

// serverView is the server's state but for the times users were last seen
// and the numbers of their last alives (the alives of the live go on).
func serverView(s *simNet) state.ServerState {
	st := s.Server().Snapshot()
	st.Users = slices.Clone(st.Users)
	for i := range st.Users {
		st.Users[i].LastSeen, st.Users[i].AliveSeq = 0, 0
	}
	return st
}

// A user that lost its file rejoins from its address (a new process, an
// empty file: the server challenges it and gives it a new secret). While
// its register waits for the challenge's answer, an attacker sends it
// challenges and FAILUREs forged from the server's address with any id,
// sends the server a register of the name from a stranger's address, and
// sends it again every request captured so far from where it came: the
// rejoin ends as it would, with a new secret. Then everything the users
// ever sent the server (first registers, cookies, a setup-dht, queries, a
// teardown-dht and its teardown-complete, a second setup-dht, the rejoin's
// own) is sent again from where it came, before and after a
// restart of the server on its file: the server acts on none of it (its
// state unchanged, the old secret of no use), and the rejoined user's
// queries are answered.
func TestRequestsReplayedAroundARejoinWithANewSecret(t *testing.T) {
	data := records(t)
	s := newSim(t, 7)
	var toServer []tapped
	capture := func(from, to netip.AddrPort, b []byte) {
		if to == simServer {
			toServer = append(toServer, tapped{from, to, slices.Clone(b)})
		}
	}
	s.Tap = capture
	users := joinUsers(t, s, 5)
	s.mustDo(users[0], "setup-dht 3 "+users[0], "setup-dht SUCCESS")
	queryAll(t, s, freeUser(s), data[:5], 3)
	s.mustDo(users[0], "teardown-dht "+users[0], "teardown-dht SUCCESS")
	s.mustDo(users[0], "setup-dht 3 "+users[0], "setup-dht SUCCESS")
	free := freeUser(s)
	queryAll(t, s, free, data[:5], 3)
	addr := s.Process(free).Addr
	u, _ := srvUser(s, free)
	old := u.Secret

	kill(s, free)
	s.Up(addr)
	s.AddPeer(free, addr, data)
	p := s.Process(free)
	challenged := false
	s.Tap = func(from, to netip.AddrPort, b []byte) {
		capture(from, to, b)
		if _, m, err := wire.Decode(b); err == nil && m.Type() == wire.TypeChallenge && to == addr {
			challenged = true
		}
	}
	s.input(free, fmt.Sprintf("register %s %s %d", free, addr.Addr(), addr.Port()))
	for !challenged {
		if !s.step() {
			t.Fatal("the rejoin was never challenged")
		}
	}
	for id := uint32(1); id <= 64; id++ {
		for _, m := range []wire.Message{wire.Challenge{Cookie: wire.Tag{byte(id)}}, wire.Reply{Reason: "forged"}} {
			b, err := wire.Append(nil, id*0x9e3779b1, 0, m)
			if err != nil {
				t.Fatal(err)
			}
			s.Inject(simServer, addr, b)
		}
	}
	s.Inject(stranger, simServer, forged(t, wire.Register{Name: free, Addr: addr}, 0, nil))
	for _, c := range toServer {
		s.Inject(c.from, c.to, c.b)
	}
	before := len(p.Printed)
	for i := 0; !p.Core.Idle() || s.Busy(); i++ {
		if i == 1_000_000 || !s.step() {
			t.Fatal("the rejoin never ended")
		}
	}
	if out := texts(p.Printed[before:]); len(out) != 1 || !strings.HasPrefix(out[0], "register SUCCESS") {
		t.Fatalf("the rejoin, attacked, printed %q", out)
	}
	if u, _ := srvUser(s, free); u.Secret == old || u.Addr != addr {
		t.Fatalf("after the rejoin: %s at %s, its secret new: %v", free, u.Addr, u.Secret != old)
	}
	s.Tap = nil
	settle(t, s)
	want := serverView(s)
	replay := func(when string) {
		t.Helper()
		printed := len(p.Printed)
		for _, c := range toServer {
			s.Inject(c.from, c.to, c.b)
		}
		runFor(t, s, 5*time.Second)
		if got := serverView(s); !reflect.DeepEqual(got, want) {
			t.Fatalf("%s: the replay changed the server's state:\n%+v\n->\n%+v", when, want, got)
		}
		if out := texts(p.Printed[printed:]); len(out) != 0 {
			t.Fatalf("%s: the replay made %s print %q", when, free, out)
		}
		queryAll(t, s, free, data[:10], 3)
	}
	replay("after the rejoin")
	s.RestartServer()
	settle(t, s)
	replay("after a restart of the server")
	t.Logf("%d datagrams to the server captured and sent again", len(toServer))
}

// srvUser is the server's record of user name.
func srvUser(s *simNet, name string) (state.User, bool) {
	for _, u := range s.Server().Snapshot().Users {
		if u.Name == name {
			return u, true
		}
	}
	return state.User{}, false
}

// levelTrace keeps each trace record's level and message but the
// datagrams' (send, recv), which the simulation traces as every datagram
// comes and goes.
type levelTrace struct{ recs *[]slog.Record }

func (h levelTrace) Enabled(context.Context, slog.Level) bool { return true }
func (h levelTrace) Handle(_ context.Context, r slog.Record) error {
	if r.Message != "send" && r.Message != "recv" {
		*h.recs = append(*h.recs, r)
	}
	return nil
}
func (h levelTrace) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h levelTrace) WithGroup(string) slog.Handler      { return h }

// A flood at a member, 200 sources: a ring message of every kind forged
// (unsigned, or signed with a key of the attacker's own, for the ring's
// epoch), and every ring datagram of the ring's setup, a leave and a join
// sent again, from the stranger's addresses and from the member's
// neighbours'. The member acts on none of it (its place and table stay,
// and the ring answers), sends the strangers no more bytes than they sent,
// sends no ring message of its own, and traces every datagram of it as a
// drop (or below INFO): the runner summarises drops, so the flood costs
// the trace a few lines a second, not one a datagram (SPEC §7).
func TestAFloodAtAMemberIsTracedAsDrops(t *testing.T) {
	s, data := ringOfFour(t, 9)
	ring := tapTypes(s, wire.TypeSetID, wire.TypeStore, wire.TypeFlush, wire.TypeCommitted, wire.TypeTeardown,
		wire.TypeResetID, wire.TypeResetLeft, wire.TypeResetRight, wire.TypeRebuildDHT, wire.TypeRebuilt,
		wire.TypeJoin, wire.TypeBroken, wire.TypeAck, wire.TypeQuery, wire.TypeQueryResult)
	leaver := memberWithID(s, 2)
	s.mustDo(leaver, "leave-dht "+leaver, "leave-dht SUCCESS")
	join(t, s, freeUser(s), data)
	settle(t, s)
	s.Tap = nil
	target := memberWithID(s, 2)
	p := s.Process(target)
	id := app.Identity(p.Core)
	_, recs, err := p.Table.Load()
	if err != nil {
		t.Fatal(err)
	}
	self := wire.Member{Name: target, Addr: p.Addr}
	forgeries := []wire.Message{
		wire.SetID{ID: 1, N: 2, Left: self, Right: self, Epoch: id.Epoch + 1, Ticket: wire.Tag{1}},
		wire.Store{N: uint16(id.N), Records: []wire.Record{data[0].Fields()}},
		wire.Flush{Leader: "mallory", N: uint16(id.N), Round: 9, Epoch: id.Epoch},
		wire.Committed{Leader: "mallory", Round: 9, Epoch: id.Epoch},
		wire.Teardown{Origin: "mallory", Epoch: id.Epoch},
		wire.ResetID{Origin: "mallory", ID: 1, N: 2, Epoch: id.Epoch},
		wire.ResetLeft{Left: wire.Member{Name: "mallory", Addr: stranger}, Epoch: id.Epoch},
		wire.ResetRight{Right: wire.Member{Name: "mallory", Addr: stranger}, Epoch: id.Epoch},
		wire.RebuildDHT{Leaver: wire.Member{Name: "mallory", Addr: stranger}},
		wire.Join{Joiner: wire.Member{Name: "mallory", Addr: stranger}, N: uint16(id.N), Epoch: id.Epoch + 1},
		wire.Broken{Node: id.Right, What: wire.TypeTeardown, Epoch: id.Epoch},
		wire.Heal{Epoch: id.Epoch + 1, Members: []wire.Member{self}},
		wire.Pace{},
	}
	var copies [][]byte
	for _, f := range forgeries {
		for _, k := range attackerKeys {
			copies = append(copies, forged(t, f, id.Epoch, k))
		}
	}
	for _, c := range *ring {
		if c.to == p.Addr {
			copies = append(copies, c.b)
		}
	}
	copies = append(copies, []byte("not a datagram of ours"), []byte{0x44, 0x48, 0x05, 17, 0, 0, 0, 1, 0})
	toStrangers, fromStrangers, ringSent := 0, 0, 0
	strangerAt := func(i int) netip.AddrPort {
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 9, byte(i / 200), byte(i%200 + 1)}), 666)
	}
	isStranger := func(a netip.AddrPort) bool { return a.Addr().As4()[1] == 9 }
	s.Tap = func(from, to netip.AddrPort, b []byte) {
		if isStranger(to) {
			toStrangers += len(b)
		}
		if _, m, err := wire.Decode(b); err == nil && from == p.Addr && m.Type() != wire.TypeAck && m.Type() != wire.TypeAlive {
			ringSent++
		}
	}
	var trace []slog.Record
	s.SetTrace(levelTrace{&trace})
	sources := append([]netip.AddrPort{id.Left.Addr, id.Right.Addr, simServer}, stranger)
	const rounds = 20
	for r := range rounds {
		for i, c := range copies {
			from := strangerAt((r*len(copies) + i) % 200)
			if i%4 == 0 {
				from = sources[(r+i)%len(sources)]
			}
			if isStranger(from) {
				fromStrangers += len(c)
			}
			s.Inject(from, p.Addr, c)
		}
		runFor(t, s, 100*time.Millisecond)
	}
	runFor(t, s, time.Minute)
	s.SetTrace(nil)
	s.Tap = nil
	lines := 0
	for _, r := range trace {
		if r.Level >= slog.LevelInfo && !strings.HasPrefix(r.Message, "dropped") {
			t.Errorf("traced as more than a drop: %s %q", r.Level, r.Message)
			if lines++; lines == 10 {
				break
			}
		}
	}
	if toStrangers > fromStrangers {
		t.Errorf("%s sent the strangers %d bytes for %d", target, toStrangers, fromStrangers)
	}
	if ringSent != 0 {
		t.Errorf("%s sent %d ring messages during the flood", target, ringSent)
	}
	_, after, err := p.Table.Load()
	if err != nil {
		t.Fatal(err)
	}
	if got := app.Identity(p.Core); !reflect.DeepEqual(got, id) || len(after) != len(recs) {
		t.Errorf("the flood changed %s: %+v with %d records -> %+v with %d", target, id, len(recs), got, len(after))
	}
	s.checkRing(data)
	queryAll(t, s, freeUser(s), data[:10], id.N)
	t.Logf("%d datagrams (%d kinds) at %s: %d trace records but the datagrams'", rounds*len(copies), len(copies), target, len(trace))
}

// leftAndBack sets up a ring of 4 and has its member of id 2 leave, then
// join again; it returns that member, its address and the rebuilt that
// ended its leave, captured.
func leftAndBack(t *testing.T, s *simNet, data []dataset.Record) (x string, addr netip.AddrPort, old tapped) {
	t.Helper()
	users := joinUsers(t, s, 6)
	s.mustDo(users[0], "setup-dht 4 "+users[0], "setup-dht SUCCESS")
	x = memberWithID(s, 2)
	addr = s.Process(x).Addr
	caught := tapTypes(s, wire.TypeRebuilt)
	s.mustDo(x, "leave-dht "+x, "leave-dht SUCCESS")
	settle(t, s)
	s.Tap = nil
	for _, c := range *caught {
		if c.to == addr {
			old = c
		}
	}
	if old.b == nil {
		t.Fatalf("no rebuilt to %s captured", x)
	}
	join(t, s, x, data)
	return x, addr, old
}

// rebuiltAgain has user (at addr) type line, and each time it sends a
// message of type typ, has b sent to it from src (after before, if set);
// the command must end in dht-rebuilt SUCCESS all the same.
func rebuiltAgain(t *testing.T, s *simNet, user string, addr netip.AddrPort, line string, typ wire.Type, src netip.AddrPort, b []byte, before func()) {
	t.Helper()
	sent := 0
	s.Tap = func(from, to netip.AddrPort, d []byte) {
		if _, m, err := wire.Decode(d); err == nil && m.Type() == typ && from == addr {
			if before != nil {
				before()
			}
			s.Inject(src, addr, b)
			sent++
		}
	}
	out := s.do(user, line)
	s.Tap = nil
	if sent == 0 || len(out) != 2 || !strings.HasSuffix(out[0], " SUCCESS") || !strings.HasPrefix(out[1], "dht-rebuilt SUCCESS") {
		t.Fatalf("%q (%d copies of an earlier rebuilt sent from %s) printed %q, want dht-rebuilt SUCCESS", line, sent, s.nameOf(src), out)
	}
}

// The rebuilt that ended a member's leave, captured, sent again to the
// same user when it leaves once more (it joined again in between, and the
// node that sent it left, the ring's key the same), with its new right
// neighbour's address as the source, once the user waits for that
// neighbour's rebuilt: the leave succeeds. Taken, it ended the leave with the old new leader's proof,
// which the server refused.
func TestARebuiltOfAnEarlierLeaveEndsNoLaterOne(t *testing.T) {
	data := records(t)
	s := newSim(t, 4)
	x, addr, old := leftAndBack(t, s, data)
	// The leader, the node that sent that rebuilt and x's right
	// neighbour now, leaves: x's right is another node.
	leader := leaderName(s)
	s.mustDo(leader, "leave-dht "+leader, "leave-dht SUCCESS")
	settle(t, s)
	right := app.Identity(s.Process(x).Core).Right.Addr
	if right == s.Process(leader).Addr {
		t.Fatalf("%s's right is still %s", x, leader)
	}
	rebuiltAgain(t, s, x, addr, "leave-dht "+x, wire.TypeRebuildDHT, right, old.b, nil)
	settle(t, s)
	s.checkRing(data)
}

// The rebuilt that failed a user's join (at a dead node), captured, sent
// again to the same user while it joins once more, the ring healed and its
// leader gone since (a leave: the key the same), with the new leader's
// address as its source, once the user waits for that leader: the join
// succeeds.
func TestARebuiltOfAnEarlierJoinEndsNoLaterOne(t *testing.T) {
	data := records(t)
	s := newSim(t, 5)
	users := joinUsers(t, s, 6)
	s.mustDo(users[0], "setup-dht 4 "+users[0], "setup-dht SUCCESS")
	dead := memberWithID(s, 2)
	joiner := freeUser(s)
	addr := s.Process(joiner).Addr
	caught := tapTypes(s, wire.TypeRebuilt)
	kill(s, dead)
	out := s.mustDo(joiner, "join-dht "+joiner, "join-dht SUCCESS")
	if len(out) != 2 || !strings.Contains(out[1], "FAILURE") {
		t.Fatalf("the join printed %q, want a FAILURE", out)
	}
	s.Tap = nil
	var old []byte
	for _, c := range *caught {
		if c.to == addr {
			old = c.b
		}
	}
	if old == nil {
		t.Fatalf("no rebuilt to %s captured", joiner)
	}
	settleHeal(t, s, dead)
	leader := leaderName(s)
	s.mustDo(leader, "leave-dht "+leader, "leave-dht SUCCESS")
	settle(t, s)
	next := s.Process(leaderName(s)).Addr
	rebuiltAgain(t, s, joiner, addr, "join-dht "+joiner, wire.TypeJoin, next, old, nil)
	settle(t, s)
	s.checkRing(data)
}

// The rebuilt that ended a member's leave, captured, sent again from the
// node that sent it when the same user leaves once more (it joined again
// in between, as the last node, whose right neighbour is that same new
// leader), to a user whose record of the messages it took is gone (as
// after a restart): the tag holds (same sender, same receiver) and the
// duplicate filter no longer does, but the rebuilt names the epoch of the
// first leave, and the second leave succeeds. Taken, it ended the leave
// with the first leave's proof, which the server refused, and the ring
// healed without the user.
func TestARebuiltOfAnEarlierLeaveFromItsOwnSenderEndsNoLaterOne(t *testing.T) {
	data := records(t)
	s := newSim(t, 6)
	x, addr, old := leftAndBack(t, s, data)
	if right := app.Identity(s.Process(x).Core).Right.Addr; right != old.from {
		t.Fatalf("%s's right is %s, not %s, which sent the first leave's rebuilt", x, s.nameOf(right), s.nameOf(old.from))
	}
	rebuiltAgain(t, s, x, addr, "leave-dht "+x, wire.TypeRebuildDHT, old.from, old.b, func() { app.ForgetCopies(s.Process(x).Core) })
	settle(t, s)
	s.checkRing(data)
}
