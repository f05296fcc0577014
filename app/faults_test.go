package app_test

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"dht/app"
	"dht/app/state"
	"dht/dataset"
)

// The server crashes and restarts on its file every few hundred events,
// at whatever point of whatever command that falls on, over a lossy
// network: the scenario still completes with every record exactly once.
func TestScenarioServerCrashesAnywhere(t *testing.T) {
	data := records(t)
	for _, seed := range seeds(t, 3) {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) {
			s := newSim(t, seed)
			s.Loss, s.Dup, s.Delay = 0.1, 0.02, 2e6
			s.RestartEvery = 61 + int(seed%37) // a crash every 61-97 events, wherever that falls
			runScenario(t, s, data)
			if restarts := s.Stats().Restarts; restarts < 20 {
				t.Fatalf("only %d restarts: the test did not exercise crashes", restarts)
			}
			t.Logf("seed %d: %d server restarts", seed, s.Stats().Restarts)
		})
	}
}

func setupFive(t *testing.T, s *simNet) {
	t.Helper()
	data := records(t)
	for _, u := range []string{"alice", "bob", "carol", "dave", "erin"} {
		s.addPeer(u, data)
	}
	for _, u := range s.Names() {
		p := s.Process(u)
		s.mustDo(u, fmt.Sprintf("register %s %s %d", u, p.Addr.Addr(), p.Addr.Port()), "register SUCCESS")
	}
}

// ringOfFour is five registered users and alice's ring of four, set up
// and checked, on the real dataset.
func ringOfFour(t *testing.T, seed uint64) (*simNet, []dataset.Record) {
	t.Helper()
	data := records(t)
	s := newSim(t, seed)
	setupFive(t, s)
	s.mustDo("alice", "setup-dht 4 alice", "setup-dht SUCCESS")
	s.checkRing(data)
	return s, data
}

// A member that dies is given up on after a bounded time, and the user
// gets a FAILURE naming it, never a hang.
func TestDeadMemberFailsQueryAndTeardown(t *testing.T) {
	s, data := ringOfFour(t, 1)
	dead := memberWithID(s, 1)
	s.Down(s.Process(dead).Addr)
	free := freeUser(s)
	// A record held by the dead node, or behind it on the ring, cannot be
	// answered; some entry point the server picks forwards through it.
	failures := 0
	for _, r := range data[:40] {
		out := s.do(free, "query-dht "+free+" "+r.LongName)
		if strings.HasPrefix(out[0], "query-dht FAILURE") {
			failures++
			if !strings.Contains(out[0], "not acknowledged") && !strings.Contains(out[0], "no answer") {
				t.Fatalf("unclear failure: %q", out[0])
			}
		}
	}
	if failures == 0 {
		t.Fatal("no query failed although a member is dead")
	}
	out := s.do("alice", "teardown-dht alice")
	if len(out) != 2 || out[0] != "teardown-dht SUCCESS" || !strings.HasPrefix(out[1], "teardown-complete FAILURE") {
		t.Fatalf("teardown with a dead member printed %q", out)
	}
}

// A request to a server that is gone fails after RequestTimeout.
func TestServerGoneFailsRequest(t *testing.T) {
	s := newSim(t, 1)
	setupFive(t, s)
	s.Down(simServer)
	s.mustDo("alice", "setup-dht 3 alice", "setup-dht FAILURE: no answer from the server at 10.0.0.1:4000 within 10s")
}

// A leader that dies between setup-dht and dht-complete does not wedge the
// server: after --op-timeout the setup is rolled back and said to be.
func TestOpTimeoutRollsBackDeadLeader(t *testing.T) {
	data := records(t)
	s := newSim(t, 1)
	setupFive(t, s)
	// The leader's stores never get through: it dies right after setup-dht.
	s.input("alice", "setup-dht 4 alice")
	for len(s.Process("alice").Printed) < 2 {
		if !s.step() {
			t.Fatal("setup-dht never answered")
		}
	}
	if got := s.Process("alice").Printed[1].String(); !strings.HasPrefix(got, "setup-dht SUCCESS") {
		t.Fatalf("alice printed %q", got)
	}
	// Its process is gone: nothing reaches it, and it drops its command
	// (its link goes on retransmitting until it gives up).
	s.Down(s.Process("alice").Addr)
	app.Abandon(s.Process("alice").Core)
	free := ""
	for _, u := range s.Names() {
		if u != "alice" && !app.Identity(s.Process(u).Core).InRing {
			free = u
		}
	}
	s.mustDo(free, "query-dht "+free+" Aruba", "query-dht FAILURE: server is waiting for dht-complete from alice")
	// Let the op-timeout pass.
	for s.Server().Snapshot().DHT.Phase != state.PhaseNone {
		if !s.step() {
			t.Fatal("the server never rolled back")
		}
	}
	s.mustDo(free, "query-dht "+free+" Aruba", "query-dht FAILURE: no DHT exists (setup-dht led by alice got no dht-complete within --op-timeout 1m0s and was rolled back")
	for _, u := range s.Server().Snapshot().Users {
		if u.State != state.Free {
			t.Fatalf("%s is %s after the rollback", u.Name, u.State)
		}
	}
	// The leader's partition heals; members that got a set-id accept a new
	// one: a new DHT can be built.
	s.Up(s.Process("alice").Addr)
	s.mustDo("bob", "setup-dht 4 bob", "setup-dht SUCCESS")
	s.checkRing(data)
}

// A querier far from the server and the ring (200 ms each way, more than
// the retry time of an unmeasured link) gets every answer: the replies to
// the ids its query-dht went with before it was asked again answer it, and
// its round trips, measured, set its timeouts (an operator's review: from
// 160 ms of round trip every query failed, 'no answer from the server').
// Typed ahead too.
func TestQueriesFromAFarHost(t *testing.T) {
	s, data := ringOfFour(t, 3)
	free := freeUser(s)
	s.Slow = map[netip.AddrPort]time.Duration{s.Process(free).Addr: 200 * time.Millisecond}
	s.mustDo(free, "query-dht "+free+" Aruba", "query-dht SUCCESS")
	var lines []string
	for _, r := range data[:40] {
		lines = append(lines, "query-dht "+free+" "+r.LongName)
	}
	for i, got := range typeAtOnce(t, s, free, lines) {
		if !strings.HasPrefix(got, "query-dht SUCCESS") {
			t.Fatalf("query %d typed ahead from the far host: %q", i, got)
		}
	}
}
