package app_test

// join-dht end to end in the simulation (SPEC §4 join, docs/DESIGN.md §7):
// the ring grows from n to n+1 with the joiner as node n, every record
// exactly once at the node pos mod (n+1) names, every table committed
// before the joiner reports; over a lossy network too; and a join
// interrupted by a dead node is rolled back, never wedged.

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"dht/app"
	"dht/app/state"
	"dht/dataset"
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
		s.mustDo(names[i], fmt.Sprintf("register %s %s %d", names[i], p.Addr.Addr(), p.Addr.Port()), "register SUCCESS")
	}
	return names
}

// join has user join the DHT and checks what it prints: join-dht SUCCESS,
// then dht-rebuilt SUCCESS naming the leader, which stays the leader; then
// the grown ring, with user last. The ring is checked the moment the
// server takes the joiner's dht-rebuilt: every table is committed by then.
func join(t *testing.T, s *simNet, user string, data []dataset.Record) {
	t.Helper()
	before := s.Server().Snapshot().DHT
	p := s.Process(user)
	printed := len(p.Printed)
	failed := func(r app.Result) bool { return strings.Contains(r.String(), "FAILURE") }
	s.input(user, "join-dht "+user)
	for _, phase := range []state.Phase{state.PhaseJoining, state.PhaseReady} {
		for s.Server().Snapshot().DHT.Phase != phase {
			if !s.step() || slices.ContainsFunc(p.Printed[printed:], failed) {
				t.Fatalf("seed %d: join-dht %s: the server never went %s; %s printed %q", s.Seed(), user, phase, user, texts(p.Printed[printed:]))
			}
		}
	}
	s.checkRing(data)
	for i := 0; !p.Core.Idle() || s.Busy(); i++ {
		if i == 1_000_000 || !s.step() {
			t.Fatalf("seed %d: join-dht %s never finished; it printed %q", s.Seed(), user, texts(p.Printed[printed:]))
		}
	}
	out := texts(p.Printed[printed:])
	want := []string{"join-dht SUCCESS", fmt.Sprintf("dht-rebuilt SUCCESS: joined as id %d of a ring of %d, led by %s", len(before.Members), len(before.Members)+1, before.Leader)}
	if strings.Join(out, "\n") != strings.Join(want, "\n") {
		t.Fatalf("seed %d: join-dht %s printed %q, want %q", s.Seed(), user, out, want)
	}
	s.checkRing(data)
	if id := app.Identity(s.Process(user).Core); id.ID != len(before.Members) || id.N != len(before.Members)+1 {
		t.Fatalf("seed %d: %s joined as id %d of %d, want %d of %d", s.Seed(), user, id.ID, id.N, len(before.Members), len(before.Members)+1)
	}
	if st := s.Server().Snapshot().DHT; st.Leader != before.Leader || st.Members[len(st.Members)-1] != user {
		t.Fatalf("seed %d: after %s joined the server has %+v", s.Seed(), user, st)
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
	for _, name := range s.Server().Snapshot().DHT.Members {
		_, recs, err := s.Process(name).Table.Load()
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
			ring := s.Server().Snapshot().DHT
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
			if got := s.Server().Snapshot().DHT; fmt.Sprint(got.Members) != fmt.Sprint(ring.Members) || got.Leader != ring.Leader {
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
			for len(s.Server().Snapshot().DHT.Members) > 1 {
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
		t.Fatalf("seed %d: setup printed %q", s.Seed(), out)
	}
	s.checkRing(data)
	first := freeUser(s)
	join(t, s, first, data)
	queryAll(t, s, freeUser(s), data, 4)

	out = s.mustDo(first, "leave-dht "+first, "leave-dht SUCCESS")
	if len(out) != 2 || !strings.HasPrefix(out[1], "dht-rebuilt SUCCESS") {
		t.Fatalf("seed %d: leave printed %q", s.Seed(), out)
	}
	s.checkRing(data)
	second := ""
	for _, u := range users {
		if u != first && !app.Identity(s.Process(u).Core).InRing && second == "" {
			second = u
		}
	}
	join(t, s, second, data)
	queryAll(t, s, first, data, 4)

	leader := leaderName(s)
	out = s.mustDo(leader, "teardown-dht "+leader, "teardown-dht SUCCESS")
	if len(out) != 2 || out[1] != "teardown-complete SUCCESS" {
		t.Fatalf("seed %d: teardown printed %q", s.Seed(), out)
	}
	for _, name := range s.Names() {
		p := s.Process(name)
		if id, recs, _ := p.Table.Load(); app.Identity(p.Core).InRing || id.InRing || len(recs) != 0 {
			t.Fatalf("seed %d: %s still holds a DHT after teardown", s.Seed(), name)
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
// teardown must pass, the joiner itself) is never wedged: the server
// refuses other requests saying it waits for the joiner until the dead node
// is offline, then heals the ring without it (the joiner Free, holding no
// place), and the healed ring answers every query. Once the node is back,
// it is a Free user among others.
func TestJoinInterruptedByADeadNode(t *testing.T) {
	data := records(t)
	cases := []struct {
		name string
		dies func(s *simNet, joiner string) string
	}{
		{"the leader", func(s *simNet, _ string) string { return leaderName(s) }},
		{"a member", func(s *simNet, _ string) string { return memberWithID(s, 1) }},
		{"the joiner", func(_ *simNet, joiner string) string { return joiner }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := newSim(t, 1)
			users := joinUsers(t, s, 5)
			s.mustDo(users[0], "setup-dht 3 "+users[0], "setup-dht SUCCESS")
			joiner := freeUser(s)
			s.input(joiner, "join-dht "+joiner)
			for !slices.Contains(texts(s.Process(joiner).Printed), "join-dht SUCCESS") {
				if !s.step() {
					t.Fatal("join-dht never answered")
				}
			}
			victim := c.dies(s, joiner)
			dead := s.Process(victim)
			s.Down(dead.Addr)
			s.Remove(victim) // no more timers: the process is gone

			querier := ""
			for _, u := range users {
				if p := s.Process(u); p != nil && u != joiner && !app.Identity(p.Core).InRing {
					querier = u
				}
			}
			s.mustDo(querier, "query-dht "+querier+" Aruba", "query-dht FAILURE: server is waiting for dht-rebuilt from "+joiner+" (join-dht in progress)")
			settleHeal(t, s, victim)
			d := s.Server().Snapshot().DHT
			want := 2
			if victim == joiner {
				want = 3 // the join is ended, the ring as it was
			}
			if len(d.Members) != want || slices.Contains(d.Members, joiner) {
				t.Fatalf("healed ring %v, want %d members without %s and %s", d.Members, want, victim, joiner)
			}
			if p := s.Process(joiner); p != nil {
				if place, err := s.Place(joiner); err != nil || place.InRing || app.Identity(p.Core).InRing || !p.Core.Idle() {
					t.Errorf("the joiner after the failed join: place %+v (%v), in ring %v, idle %v", place, err, app.Identity(p.Core).InRing, p.Core.Idle())
				}
			}
			s.checkRing(data)
			queryAll(t, s, querier, data, want)
			s.Restore(dead)
			s.Up(dead.Addr)
		})
	}
}

// settleHeal runs the simulation until the server has healed the ring
// without gone (ready, gone not a member), and the network has settled.
func settleHeal(t *testing.T, s *simNet, gone string) {
	t.Helper()
	for i := 0; ; i++ {
		d := s.Server().Snapshot().DHT
		if d.Phase == state.PhaseReady && !slices.Contains(d.Members, gone) && !s.Busy() {
			return
		}
		if d.Phase == state.PhaseNone && !s.Busy() {
			t.Fatalf("seed %d: the DHT was dissolved, not healed (%s)", s.Seed(), app.ServerNote(s.Server()))
		}
		if i == 2_000_000 || !s.step() {
			t.Fatalf("seed %d: the ring never healed without %s (DHT %+v)", s.Seed(), gone, d)
		}
	}
}
