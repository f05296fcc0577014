package app_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"dht/app"
	"dht/app/state"
)

// A peer refuses, before it sends anything, the leave-dht or teardown-dht
// of its own user when it holds no place in a ring: the server might agree
// and then wait for a ring part this peer cannot play. A process that lost
// its file and whose register was refused is not registered at all.
func TestRingCommandsWithoutARing(t *testing.T) {
	s, _ := ringOfFour(t, 5)
	free := freeUser(s)
	for _, line := range []string{"leave-dht " + free, "teardown-dht " + free} {
		sent := s.Stats().Sent
		name, _, _ := strings.Cut(line, " ")
		if got, want := s.do(free, line), []string{name + " FAILURE: " + free + " holds no place in a ring (leave-dht and teardown-dht are for a member of the DHT)"}; !slices.Equal(got, want) {
			t.Fatalf("%q printed %q, want %q", line, got, want)
		}
		if s.Stats().Sent != sent {
			t.Fatalf("%q sent %d datagrams", line, s.Stats().Sent-sent)
		}
	}
	// Naming another user, the command goes to the server, which decides.
	s.mustDo(free, "teardown-dht alice", "teardown-dht FAILURE: a request for alice must come from its registered address")

	// The leader's process starts again on a new, empty file, at the
	// same address: its register is a rejoin, and, its file holding no
	// place, the ring heals with it (it leads the heal, the first live
	// member in ring order), after which it can tear the ring down.
	leader := leaderName(s)
	addr := s.Process(leader).Addr
	s.AddPeer(leader, addr, records(t))
	s.mustDo(leader, fmt.Sprintf("register %s %s %d", leader, addr.Addr(), addr.Port()), "register SUCCESS")
	settleHeal(t, s, "")
	s.checkRing(records(t))
	if ph := s.Server().Snapshot().DHT.Phase; ph != state.PhaseReady {
		t.Fatalf("server phase %v, want the ring ready", ph)
	}
	s.mustDo(free, "query-dht "+free+" Aruba", "query-dht SUCCESS")
}

// While another member's leave-dht is rebuilding the ring (its teardown
// has passed this node, which keeps its neighbours but has cleared its
// place), the leader's own teardown-dht and a member's own leave-dht must
// not be refused with "holds no place in a ring": the node is a member the
// server counts, and the reason is the leave in progress.
func TestOwnRingCommandDuringAnotherLeave(t *testing.T) {
	s, _ := ringOfFour(t, 5)
	leader := leaderName(s)
	stalled := memberWithID(s, 2)
	leaver := memberWithID(s, 3) // its right neighbour is the leader
	other := memberWithID(s, 1)
	p := s.Stop(stalled)
	s.input(leaver, "leave-dht "+leaver)
	for app.Identity(s.Process(other).Core).InRing {
		if !s.step() {
			t.Fatal("the leave's teardown never reached id 1")
		}
	}
	for _, c := range []struct{ who, line string }{{leader, "teardown-dht " + leader}, {other, "leave-dht " + other}} {
		pr := s.Process(c.who)
		before := len(pr.Printed)
		s.input(c.who, c.line)
		out := texts(pr.Printed[before:])
		if len(out) == 0 || !strings.Contains(out[0], "FAILURE: a leave-dht or join-dht is rebuilding the ring "+c.who+" is in") {
			t.Errorf("%s: %q printed %q while a leave-dht is in progress, want a reason naming it", c.who, c.line, out)
		}
	}
	s.Cont(p)
}
