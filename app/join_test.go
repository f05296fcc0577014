package app

// join-dht end to end in the simulation (SPEC §4 join, docs/DESIGN.md §7):
// the ring grows from n to n+1 with the joiner as node n, every record
// exactly once at the node pos mod (n+1) names, every table committed
// before the joiner reports; over a lossy network too; and a join
// interrupted by a dead node is rolled back, never wedged.

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"dht/app/state"
	"dht/dataset"
	"dht/store"
	"dht/wire"
)

// joinUsers registers users named u0, u1, … (as many as count) at the
// simulation, each with the real dataset.
func joinUsers(t *testing.T, s *simNet, count int) []string {
	t.Helper()
	data := records(t)
	names := make([]string, count)
	for i := range names {
		names[i] = "u" + string(rune('a'+i/26)) + string(rune('a'+i%26))
		p := s.addPeer(names[i], data)
		s.mustDo(names[i], fmt.Sprintf("register %s %s %d", names[i], p.addr.Addr(), p.addr.Port()), "register SUCCESS")
	}
	return names
}

// join has user join the DHT and checks what it prints: join-dht SUCCESS,
// then dht-rebuilt SUCCESS naming the leader, which stays the leader; then
// the grown ring, with user last. The ring is checked the moment the
// server takes the joiner's dht-rebuilt: every table is committed by then.
func join(t *testing.T, s *simNet, user string, data []dataset.Record) {
	t.Helper()
	before := s.server.Snapshot().DHT
	p := s.procs[user]
	printed := len(p.out)
	s.input(user, "join-dht "+user)
	for _, phase := range []state.Phase{state.PhaseJoining, state.PhaseReady} {
		for s.server.Snapshot().DHT.Phase != phase {
			if !s.step() || slices.ContainsFunc(p.out[printed:], func(l string) bool { return strings.Contains(l, "FAILURE") }) {
				t.Fatalf("seed %d: join-dht %s: the server never went %s; %s printed %q", s.seed, user, phase, user, p.out[printed:])
			}
		}
	}
	s.checkRing(data)
	for i := 0; !p.core.Idle() || s.busy(); i++ {
		if i == 1_000_000 || !s.step() {
			t.Fatalf("seed %d: join-dht %s never finished; it printed %q", s.seed, user, p.out[printed:])
		}
	}
	out := p.out[printed:]
	want := []string{"join-dht SUCCESS", "dht-rebuilt SUCCESS: new leader " + before.Leader}
	if strings.Join(out, "\n") != strings.Join(want, "\n") {
		t.Fatalf("seed %d: join-dht %s printed %q, want %q", s.seed, user, out, want)
	}
	s.checkRing(data)
	if p := s.procs[user].core; p.id != len(before.Members) || p.n != len(before.Members)+1 {
		t.Fatalf("seed %d: %s joined as id %d of %d, want %d of %d", s.seed, user, p.id, p.n, len(before.Members), len(before.Members)+1)
	}
	if st := s.server.Snapshot().DHT; st.Leader != before.Leader || st.Members[len(st.Members)-1] != user {
		t.Fatalf("seed %d: after %s joined the server has %+v", s.seed, user, st)
	}
}

// A ring of two takes a third node in; every record is found.
func TestJoinTwoToThree(t *testing.T) {
	data := records(t)
	for _, seed := range seeds(t, 2) {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) {
			s := newSim(t, seed)
			users := joinUsers(t, s, 4)
			s.mustDo(users[0], "setup-dht 2 "+users[0], "setup-dht SUCCESS")
			s.checkRing(data)
			joiner := freeUser(s)
			join(t, s, joiner, data)
			querier := freeUser(s)
			queryAll(t, s, querier, data, 3)
		})
	}
}

// A ring of 63 takes a 64th node in; a 65th user is refused.
func TestJoinToSixtyFourAndNoMore(t *testing.T) {
	data := records(t)
	s := newSim(t, 1)
	users := joinUsers(t, s, 66)
	s.mustDo(users[0], "setup-dht 63 "+users[0], "setup-dht SUCCESS")
	s.checkRing(data)
	join(t, s, freeUser(s), data)
	late := freeUser(s)
	out := s.do(late, "join-dht "+late)
	if want := "join-dht FAILURE: the DHT already has 64 members, the most a ring may have"; len(out) != 1 || out[0] != want {
		t.Fatalf("a 65th join printed %q, want %q", out, want)
	}
	s.checkRing(data)
	queryAll(t, s, late, data, 64)
}

// recordsByNode counts the records in each member's table, by name.
func recordsByNode(t *testing.T, s *simNet) map[string]int {
	t.Helper()
	counts := map[string]int{}
	for _, name := range s.server.Snapshot().DHT.Members {
		_, recs, err := s.procs[name].store.Load()
		if err != nil {
			t.Fatal(err)
		}
		counts[name] = len(recs)
	}
	return counts
}

// A user who joins and then leaves leaves the ring as it found it: the
// same members, the same leader, the same records at each.
func TestJoinThenLeaveRestoresTheRing(t *testing.T) {
	data := records(t)
	for _, seed := range seeds(t, 2) {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) {
			s := newSim(t, seed)
			users := joinUsers(t, s, 5)
			s.mustDo(users[0], "setup-dht 3 "+users[0], "setup-dht SUCCESS")
			before := recordsByNode(t, s)
			ring := s.server.Snapshot().DHT
			joiner := freeUser(s)
			join(t, s, joiner, data)
			out := s.mustDo(joiner, "leave-dht "+joiner, "leave-dht SUCCESS")
			if len(out) != 2 || out[1] != "dht-rebuilt SUCCESS: new leader "+ring.Leader {
				t.Fatalf("seed %d: the joiner's leave printed %q", seed, out)
			}
			s.checkRing(data)
			after := recordsByNode(t, s)
			if fmt.Sprint(after) != fmt.Sprint(before) {
				t.Fatalf("seed %d: records per node %v before the join, %v after the joiner left", seed, before, after)
			}
			if got := s.server.Snapshot().DHT; fmt.Sprint(got.Members) != fmt.Sprint(ring.Members) || got.Leader != ring.Leader {
				t.Fatalf("seed %d: the ring is %+v, was %+v", seed, got, ring)
			}
			queryAll(t, s, joiner, data, 3)
		})
	}
}

// A user who left may join again, and so may another; the leader of a
// ring a leave shrank to one takes a second node in.
func TestJoinAfterALeave(t *testing.T) {
	data := records(t)
	for _, seed := range seeds(t, 2) {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) {
			s := newSim(t, seed)
			users := joinUsers(t, s, 5)
			s.mustDo(users[0], "setup-dht 4 "+users[0], "setup-dht SUCCESS")
			leaver := memberWithID(s, 2)
			s.mustDo(leaver, "leave-dht "+leaver, "leave-dht SUCCESS")
			s.checkRing(data)
			join(t, s, leaver, data)
			queryAll(t, s, freeUser(s), data, 4)

			// The leader leaves, and the next, until one node is left.
			for len(s.server.Snapshot().DHT.Members) > 1 {
				leader := leaderName(s)
				s.mustDo(leader, "leave-dht "+leader, "leave-dht SUCCESS")
				s.checkRing(data)
			}
			join(t, s, freeUser(s), data)
			queryAll(t, s, freeUser(s), data, 2)
		})
	}
}

// The life of a DHT with joins, as examples/join.play runs it: set up,
// queries, a join, queries, the joiner leaves, another user joins, queries,
// teardown; every record found after each change.
func runJoinScenario(t *testing.T, s *simNet) {
	t.Helper()
	data := records(t)
	users := joinUsers(t, s, 6)
	out := s.mustDo(users[0], "setup-dht 3 "+users[0], "setup-dht SUCCESS")
	if len(out) != 2 || out[1] != "dht-complete SUCCESS" {
		t.Fatalf("seed %d: setup printed %q", s.seed, out)
	}
	s.checkRing(data)
	first := freeUser(s)
	join(t, s, first, data)
	queryAll(t, s, freeUser(s), data, 4)

	out = s.mustDo(first, "leave-dht "+first, "leave-dht SUCCESS")
	if len(out) != 2 || !strings.HasPrefix(out[1], "dht-rebuilt SUCCESS") {
		t.Fatalf("seed %d: leave printed %q", s.seed, out)
	}
	s.checkRing(data)
	second := ""
	for _, u := range users {
		if p := s.procs[u].core; u != first && !p.inRing && second == "" {
			second = u
		}
	}
	join(t, s, second, data)
	queryAll(t, s, first, data, 4)

	leader := leaderName(s)
	out = s.mustDo(leader, "teardown-dht "+leader, "teardown-dht SUCCESS")
	if len(out) != 2 || out[1] != "teardown-complete SUCCESS" {
		t.Fatalf("seed %d: teardown printed %q", s.seed, out)
	}
	for _, name := range s.names() {
		p := s.procs[name]
		if id, recs, _ := p.store.Load(); p.core.inRing || id.InRing || len(recs) != 0 {
			t.Fatalf("seed %d: %s still holds a DHT after teardown", s.seed, name)
		}
	}
}

func TestJoinScenario(t *testing.T) {
	for _, seed := range seeds(t, 2) {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) {
			runJoinScenario(t, newSim(t, seed))
		})
	}
}

// Joins over a network that loses, duplicates and reorders datagrams, many
// seeds (go test ./app -run TestJoinLossy -args -seed=N replays one), both
// batched and not: every record exactly once after each join and leave.
func TestJoinLossy(t *testing.T) {
	for _, seed := range seeds(t, 60) {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) {
			s := newSim(t, seed)
			s.Batch = seed%2 == 0
			s.Loss, s.Dup, s.Delay = 0.2, 0.05, 3e6
			runJoinScenario(t, s)
			st := s.Stats()
			t.Logf("seed %d (batch %v): %d datagrams, %d dropped, %d duplicated", seed, s.Batch, st.Sent, st.Dropped, st.Duplicated)
		})
	}
}

// The server crashes and restarts on its file every few dozen events of a
// lossy run with joins: a join survives it like every other command.
func TestJoinServerCrashesAnywhere(t *testing.T) {
	for _, seed := range seeds(t, 3) {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) {
			s := newSim(t, seed)
			s.Loss, s.Dup, s.Delay = 0.1, 0.02, 2e6
			s.RestartEvery = 61 + int(seed%37)
			runJoinScenario(t, s)
			if s.Stats().Restarts < 10 {
				t.Fatalf("seed %d: only %d restarts", seed, s.Stats().Restarts)
			}
		})
	}
}

// A join interrupted by a node that dies (the leader, a member the
// teardown must pass, the joiner itself) is never wedged: whoever is left
// to say so prints a FAILURE naming what went unanswered, the joiner holds
// no place, the server refuses other requests saying it waits for the
// joiner, then rolls the join back at its op timeout; once the node is
// back, a new DHT is built and answers every query.
func TestJoinInterruptedByADeadNode(t *testing.T) {
	data := records(t)
	cases := []struct {
		name       string
		dies       func(s *simNet, joiner string) string
		joinerSays string // the joiner's last line, when it lives
		leaderSays string // the leader's, when it lives and has anything to say
	}{
		{"the leader", func(s *simNet, _ string) string { return leaderName(s) },
			"dht-rebuilt FAILURE: join sent to", ""},
		{"a member", func(s *simNet, _ string) string { return memberWithID(s, 1) },
			"dht-rebuilt FAILURE: the join failed at the leader", "rebuild-dht FAILURE: teardown sent to"},
		{"the joiner", func(_ *simNet, joiner string) string { return joiner },
			"", "rebuild-dht FAILURE: set-id sent to"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := newSim(t, 1)
			users := joinUsers(t, s, 5)
			s.mustDo(users[0], "setup-dht 3 "+users[0], "setup-dht SUCCESS")
			leader := leaderName(s)
			joiner := freeUser(s)
			s.input(joiner, "join-dht "+joiner)
			for !slices.Contains(s.procs[joiner].out, "join-dht SUCCESS") {
				if !s.step() {
					t.Fatal("join-dht never answered")
				}
			}
			victim := c.dies(s, joiner)
			dead := s.procs[victim]
			s.Down(dead.addr)
			delete(s.procs, victim) // no more timers: the process is gone
			delete(s.byAddr, dead.addr)

			querier := ""
			for _, u := range users {
				if p := s.procs[u]; p != nil && u != joiner && !p.core.inRing {
					querier = u
				}
			}
			s.mustDo(querier, "query-dht "+querier+" Aruba", "query-dht FAILURE: server is waiting for dht-rebuilt from "+joiner+" (join-dht in progress)")
			for s.server.Snapshot().DHT.Phase != state.PhaseNone {
				if !s.step() {
					t.Fatal("the server never rolled the join back")
				}
			}
			for _, who := range []struct{ name, says string }{{joiner, c.joinerSays}, {leader, c.leaderSays}} {
				p := s.procs[who.name]
				if p != nil {
					t.Logf("%s printed %q", who.name, p.out[len(p.out)-1])
				}
				if p == nil || who.says == "" {
					continue
				}
				if !slices.ContainsFunc(p.out, func(l string) bool { return strings.HasPrefix(l, who.says) }) {
					t.Errorf("%s printed %q, want a line starting %q", who.name, p.out, who.says)
				}
			}
			if p := s.procs[joiner]; p != nil {
				if place, err := s.Place(joiner); err != nil || place.InRing || p.core.inRing || !p.core.Idle() {
					t.Errorf("the joiner after the failed join: place %+v (%v), in ring %v, idle %v", place, err, p.core.inRing, p.core.Idle())
				}
			}
			s.mustDo(querier, "query-dht "+querier+" Aruba", "query-dht FAILURE: no DHT exists (join-dht by "+joiner+" got no dht-rebuilt within --op-timeout")

			// The node comes back: everyone is Free, a new DHT is built.
			s.procs[victim], s.byAddr[dead.addr] = dead, dead
			s.Up(dead.addr)
			s.mustDo(querier, "setup-dht 4 "+querier, "setup-dht SUCCESS")
			s.checkRing(data)
			for _, u := range s.server.Snapshot().Users {
				if u.State == state.Free {
					queryAll(t, s, u.Name, data, 4) // the one the server left out
				}
			}
		})
	}
}

// joinLeader is fuzzPeer made the leader of its ring of 3: bob, id 0,
// alice (id 2) on its left, carol (id 1) on its right.
func joinLeader() *Peer {
	p := fuzzPeer()
	p.id = 0
	return p
}

var fzJoiner = wire.Member{Name: "dave", Addr: netip.MustParseAddrPort("10.0.0.4:5000")}

// outcome sorts a step's outputs: the lines printed, and the messages sent
// to each address.
func outcome(outs []Output) (printed []string, sent map[netip.AddrPort][]wire.Message) {
	sent = map[netip.AddrPort][]wire.Message{}
	for _, o := range outs {
		switch o := o.(type) {
		case Result:
			printed = append(printed, o.String())
		case Send:
			if _, ack := o.Msg.(wire.Ack); !ack {
				sent[o.To] = append(sent[o.To], o.Msg)
			}
		}
	}
	return printed, sent
}

// A join the leader cannot take on is answered at once with rebuilt
// FAILURE saying why, and changes nothing: the joiner is not left waiting.
func TestJoinRefusedByTheLeaderSaysWhy(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	cases := []struct {
		name string
		peer func() *Peer
		join wire.Join
		says string
	}{
		{"not the leader", fuzzPeer, wire.Join{Joiner: fzJoiner, N: 3}, "the join was refused: bob leads no ring"},
		{"another ring size", joinLeader, wire.Join{Joiner: fzJoiner, N: 2}, "the join was refused: bob leads a ring of 3, not 2"},
		{"a member joins", joinLeader, wire.Join{Joiner: fzRight, N: 3}, "the join was refused: carol is in the ring already"},
		{"a join in progress", func() *Peer {
			p := joinLeader()
			p.Step(now, fzOther, wire.Header{ID: 1}, wire.Join{Joiner: wire.Member{Name: "erin", Addr: fzOther}, N: 3})
			return p
		}, wire.Join{Joiner: fzJoiner, N: 3}, "the join was refused: bob is already taking erin in"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := c.peer()
			before := p.identity()
			printed, sent := outcome(p.Step(now, c.join.Joiner.Addr, wire.Header{ID: 9}, c.join))
			got := sent[c.join.Joiner.Addr]
			if len(got) != 1 {
				t.Fatalf("sent the joiner %+v, want one rebuilt", got)
			}
			if r, ok := got[0].(wire.Rebuilt); !ok || r.OK || r.Reason != c.says {
				t.Fatalf("sent the joiner %+v, want rebuilt FAILURE %q", got[0], c.says)
			}
			if len(printed) != 0 || p.identity() != before || len(sent) != 1 {
				t.Fatalf("a refused join printed %q, sent %+v, changed %+v -> %+v", printed, sent, before, p.identity())
			}
		})
	}
}

// A leader that cannot use its dataset says so itself, as well as telling
// the joiner, before it tears anything down.
func TestJoinLeaderWithoutDatasetSaysSo(t *testing.T) {
	p := joinLeader()
	p.cfg.LoadData = func() (dataset.Source, error) { return nil, errors.New("dataset: d.csv: line 7: bad") }
	before := p.identity()
	printed, sent := outcome(p.Step(time.Unix(1_700_000_000, 0), fzJoiner.Addr, wire.Header{ID: 1}, wire.Join{Joiner: fzJoiner, N: 3}))
	want := "rebuild-dht FAILURE: cannot use the dataset: dataset: d.csv: line 7: bad; the join-dht of dave fails with it"
	if len(printed) != 1 || printed[0] != want {
		t.Fatalf("the leader printed %q, want %q", printed, want)
	}
	r, ok := sent[fzJoiner.Addr][0].(wire.Rebuilt)
	if !ok || r.OK || !strings.Contains(r.Reason, "the join failed at the leader bob: cannot use the dataset") {
		t.Fatalf("the joiner was sent %+v", sent[fzJoiner.Addr])
	}
	if len(sent[fzRight.Addr]) != 0 || p.identity() != before || p.joining != nil {
		t.Fatalf("a join that failed at once sent %+v right and changed %+v -> %+v", sent[fzRight.Addr], before, p.identity())
	}
}

// The joiner takes rebuilt only from the leader it asked; the leader's
// rebuilt FAILURE ends the join with that reason, and any place the
// leader gave it is forgotten.
func TestJoinerHearsOnlyItsLeader(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	p := NewPeer(PeerConfig{Server: fzServer, Rand: rand.New(rand.NewPCG(1, 1))})
	p.self, p.bound, p.registered = fzJoiner, true, true
	table := store.NewMemPeer()
	p.SetTable(table)
	var req uint32
	for _, o := range p.Input(now, "join-dht dave") {
		if s, ok := o.(Send); ok && s.To == fzServer {
			req = s.ID
		}
	}
	ring := []wire.Member{fzSelf, fzRight, fzLeft} // bob leads
	printed, sent := outcome(p.Step(now, fzServer, wire.Header{ID: req}, wire.Reply{OK: true, Members: ring}))
	if len(printed) != 1 || printed[0] != "join-dht SUCCESS" {
		t.Fatalf("printed %q, want join-dht SUCCESS", printed)
	}
	if j, ok := sent[fzSelf.Addr][0].(wire.Join); !ok || j.Joiner != fzJoiner || j.N != 3 {
		t.Fatalf("sent the leader %+v, want join {dave, 3}", sent[fzSelf.Addr])
	}
	apply := func(outs []Output) []Output {
		for _, o := range outs {
			if b, ok := o.(PersistPeer); ok {
				if err := table.Apply(b.Batch); err != nil {
					t.Fatal(err)
				}
			}
		}
		return outs
	}
	// The leader places it: set-id, then a store round passes.
	apply(p.Step(now, fzSelf.Addr, wire.Header{ID: 1}, wire.SetID{ID: 3, N: 4, Left: fzLeft, Right: fzSelf}))
	apply(p.Step(now, fzLeft.Addr, wire.Header{ID: 2}, wire.Store{N: 4, Records: []wire.Record{{3: "ab"}}}))
	if id, recs, _ := table.Load(); !id.InRing || len(recs) != 1 {
		t.Fatalf("the joiner's file: %+v, %d records; want its place and ab (pos 195, id 3 of 4)", id, len(recs))
	}
	for _, from := range []netip.AddrPort{fzRight.Addr, fzOther} {
		outs := p.Step(now, from, wire.Header{ID: 3}, wire.Rebuilt{OK: true, NewLeader: "carol"})
		if printed, sent := outcome(outs); len(printed) != 0 || len(sent) != 0 {
			t.Fatalf("rebuilt from %s, not the leader: printed %q, sent %+v", from, printed, sent)
		}
	}
	printed, _ = outcome(apply(p.Step(now, fzSelf.Addr, wire.Header{ID: 4}, wire.Rebuilt{Reason: "the join failed at the leader bob: why", NewLeader: "bob"})))
	if len(printed) != 1 || printed[0] != "dht-rebuilt FAILURE: the join failed at the leader bob: why" {
		t.Fatalf("printed %q", printed)
	}
	if id, recs, _ := table.Load(); id.InRing || len(recs) != 0 || p.inRing || !p.Idle() {
		t.Fatalf("after the failed join the joiner's file holds %+v and %d records (in ring %v, idle %v)", id, len(recs), p.inRing, p.Idle())
	}
}
