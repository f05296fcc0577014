package app_test

// An operation its initiator gave up is ended by the server at once (the
// initiator's alive says so, Server.quit), not at --op-timeout.

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"dht/app"
	"dht/app/state"
	"dht/wire"
)

// quitEnds is how long, in simulated time, the server may take to end an
// operation once its initiator gave it up: the alive that says so is sent
// at once. The simulation's --op-timeout is a minute.
const quitEnds = time.Second

// TestAGivenUpOperationEndsAtOnce cuts one user off for the ring (what
// arrives at its address is lost, while its alives still reach the server,
// as behind a one-way partition), so that the initiator of a setup,
// teardown, leave or join gives up at its neighbour's give-up (10 s); the
// server, which hears from everyone, would wait for its --op-timeout. It
// ends the operation as the initiator's next alive arrives: a setup or a
// teardown is dissolved, a leave or a join heals the ring round the leaver
// or the joiner. Once the cut is mended, the users go on at once.
func TestAGivenUpOperationEndsAtOnce(t *testing.T) {
	type testCase struct {
		name string
		ring bool // a ring of 4 of the 5 users is set up first
		// who types line; cut is the user cut off once the server took
		// it (members: the ring the server set up, the leader first).
		who, line func(users, members []string) string
		cut       func(users, members []string) string
		waiting   state.Phase // the server's, while the operation runs
		ended     state.Phase // once the server ended it
	}
	free := func(users, members []string) string {
		return users[slices.IndexFunc(users, func(u string) bool { return !slices.Contains(members, u) })]
	}
	cases := []testCase{
		{name: "setup", who: func(u, _ []string) string { return u[0] },
			line:    func(u, _ []string) string { return "setup-dht 4 " + u[0] },
			cut:     func(_, m []string) string { return m[2] },
			waiting: state.PhaseBuilding, ended: state.PhaseNone},
		{name: "teardown", ring: true, who: func(_, m []string) string { return m[0] },
			line:    func(_, m []string) string { return "teardown-dht " + m[0] },
			cut:     func(_, m []string) string { return m[2] },
			waiting: state.PhaseTearing, ended: state.PhaseNone},
		{name: "leave", ring: true, who: func(_, m []string) string { return m[1] },
			line:    func(_, m []string) string { return "leave-dht " + m[1] },
			cut:     func(_, m []string) string { return m[2] },
			waiting: state.PhaseLeaving, ended: state.PhaseHealing},
		{name: "join", ring: true, who: free,
			line:    func(u, m []string) string { return "join-dht " + free(u, m) },
			cut:     func(_, m []string) string { return m[0] },
			waiting: state.PhaseJoining, ended: state.PhaseHealing},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for _, seed := range seeds(t, 3) {
				s := newSim(t, seed)
				users := joinUsers(t, s, 5)
				var members []string
				if c.ring {
					s.mustDo(users[0], "setup-dht 4 "+users[0], "setup-dht SUCCESS")
					members = s.Server().Snapshot().DHT.Members
				}
				who := c.who(users, members)
				p := s.Process(who)
				var quits []time.Time // when who's alives naming a quit were sent
				s.Tap = func(from, to netip.AddrPort, b []byte) {
					if _, m, err := wire.Decode(b); err == nil && from == p.Addr && to == simServer {
						if a, ok := m.(wire.Alive); ok && a.Quit != 0 {
							quits = append(quits, s.Now())
						}
					}
				}
				printed := len(p.Printed)
				s.input(who, c.line(users, members))
				for len(p.Printed) == printed {
					if !s.step() {
						t.Fatalf("seed %d: %s never answered", seed, c.line(users, members))
					}
				}
				if !p.Printed[printed].OK {
					t.Fatalf("seed %d: %s: %s", seed, c.line(users, members), p.Printed[printed])
				}
				members = s.Server().Snapshot().DHT.Members
				cut := s.Process(c.cut(users, members))
				s.Down(cut.Addr)
				for !p.Core.Idle() {
					if !s.step() {
						t.Fatalf("seed %d: %s never ended", seed, c.line(users, members))
					}
				}
				last := p.Printed[len(p.Printed)-1].String()
				// The failure names the user cut off, as well as its address.
				if !strings.Contains(last, "FAILURE") || !strings.Contains(last, cut.Name+" ("+cut.Addr.String()+")") {
					t.Fatalf("seed %d: with %s cut off, %s ended %q, want a FAILURE naming it", seed, cut.Name, who, last)
				}
				// A setup's says what becomes of the DHT.
				if c.name == "setup" && !strings.HasSuffix(last, "; this setup is given up, and the server rolls it back as it hears so (at its --op-timeout at the latest): every member Free") {
					t.Fatalf("seed %d: the setup ended %q, want it to say the server rolls it back", seed, last)
				}
				gaveUp := s.Now()
				if ph := s.Server().Snapshot().DHT.Phase; ph != c.waiting {
					t.Fatalf("seed %d: the server is %s when %s gave up, want still %s", seed, ph, who, c.waiting)
				}
				s.Up(cut.Addr)
				for s.Server().Snapshot().DHT.Phase == c.waiting && s.Now().Sub(gaveUp) < 5*quitEnds {
					if !s.step() {
						t.Fatalf("seed %d: nothing left to run", seed)
					}
				}
				st := s.Server().Snapshot()
				if took := s.Now().Sub(gaveUp); st.DHT.Phase != c.ended || took > quitEnds {
					t.Fatalf("seed %d: %v after %s gave up (%q) the server is %s, want %s within %v", seed, took, who, last, st.DHT.Phase, c.ended, quitEnds)
				}
				if i := slices.IndexFunc(st.Users, func(u state.User) bool { return u.Name == who }); c.ended == state.PhaseHealing && st.Users[i].State != state.Free {
					t.Fatalf("seed %d: %s is %s after the server ended its %s, want Free", seed, who, st.Users[i].State, c.name)
				}
				// The users go on: a healed ring is whole again, and a
				// dissolved one can be set up anew at once.
				if c.ended == state.PhaseHealing {
					for s.Server().Snapshot().DHT.Phase != state.PhaseReady {
						if !s.step() {
							t.Fatalf("seed %d: the heal never ended", seed)
						}
					}
					s.checkRing(records(t))
					if slices.Contains(s.Server().Snapshot().DHT.Members, who) {
						t.Fatalf("seed %d: %s is in the healed ring %v", seed, who, s.Server().Snapshot().DHT.Members)
					}
				} else {
					s.mustDo(users[4], "setup-dht 4 "+users[4], "setup-dht SUCCESS")
					s.checkRing(records(t))
				}
				// The quit went in the alive sent at once, and goes in the
				// next, in case one was lost or the server was down.
				idle(t, s, 2*app.DefaultDeadAfter/10)
				if len(quits) != 3 || !quits[0].Equal(gaveUp) {
					t.Fatalf("seed %d: %s's alives named its quit at %v, want each of them, the first at %v", seed, who, quits, gaveUp)
				}
			}
		})
	}
}

// A leave given up while the server cannot be reached (down, or cut off)
// for longer than a few alive periods: the alives that follow still name
// it, so the server ends it (the ring heals round the leaver) once it
// hears one, not at its --op-timeout, when it would have rolled the DHT
// back and dissolved it.
func TestAQuitReachesAServerBackLater(t *testing.T) {
	const down = 10 * time.Second // under --dead-after: no one is offline for it
	s := newSim(t, 11)
	users := joinUsers(t, s, 5)
	s.mustDo(users[0], "setup-dht 4 "+users[0], "setup-dht SUCCESS")
	members := s.Server().Snapshot().DHT.Members
	who := members[1]
	p := s.Process(who)
	printed := len(p.Printed)
	s.input(who, "leave-dht "+who)
	for len(p.Printed) == printed {
		if !s.step() {
			t.Fatal("leave-dht never answered")
		}
	}
	cut := s.Process(members[2])
	s.Down(cut.Addr)
	for !p.Core.Idle() {
		if !s.step() {
			t.Fatal("the leave never ended")
		}
	}
	gaveUp := s.Now()
	s.Down(simServer)
	for s.Now().Sub(gaveUp) < down {
		if !s.step() {
			t.Fatal("nothing left to run")
		}
	}
	s.Up(simServer)
	s.Up(cut.Addr)
	for s.Server().Snapshot().DHT.Phase == state.PhaseLeaving && s.Now().Sub(gaveUp) < app.DefaultOpTimeout {
		if !s.step() {
			t.Fatal("nothing left to run")
		}
	}
	if took, ph := s.Now().Sub(gaveUp), s.Server().Snapshot().DHT.Phase; ph != state.PhaseHealing || took > down+2*app.DefaultDeadAfter/10 {
		t.Fatalf("%v after %s gave up its leave, with the server unreachable for the first %v, the server is %s; want it healing within two alive periods of coming back", took, who, down, ph)
	}
}

// A setup-dht whose answers never reach its peer (the server took it; its
// disk stalled, or its replies were lost, past the peer's give-up) fails at
// the peer, which names the request's sequence number in its next alive:
// the server ends the setup at once, and the users go on, where the server
// refused everything until --op-timeout (an operator's review).
func TestASetupGivenUpUnansweredEndsAtOnce(t *testing.T) {
	for _, seed := range seeds(t, 3) {
		s := newSim(t, seed)
		users := joinUsers(t, s, 5)
		p := s.Process(users[0])
		s.Down(p.Addr) // the server's answers are lost; what it sends goes
		printed := len(p.Printed)
		s.input(users[0], "setup-dht 4 "+users[0])
		for len(p.Printed) == printed {
			if !s.step() {
				t.Fatalf("seed %d: the setup never ended", seed)
			}
		}
		if last := p.Printed[printed].String(); !strings.HasPrefix(last, "setup-dht FAILURE: no answer from the server") {
			t.Fatalf("seed %d: the setup printed %q, want it given up for want of an answer", seed, last)
		}
		gaveUp := s.Now()
		if ph := s.Server().Snapshot().DHT.Phase; ph != state.PhaseBuilding {
			t.Fatalf("seed %d: the server is %s when the setup was given up, want building (it took the request)", seed, ph)
		}
		for s.Server().Snapshot().DHT.Phase == state.PhaseBuilding && s.Now().Sub(gaveUp) < 5*quitEnds {
			if !s.step() {
				t.Fatalf("seed %d: nothing left to run", seed)
			}
		}
		if took := s.Now().Sub(gaveUp); s.Server().Snapshot().DHT.Phase != state.PhaseNone || took > quitEnds {
			t.Fatalf("seed %d: %v after the setup was given up the server is %s, want none within %v", seed, took, s.Server().Snapshot().DHT.Phase, quitEnds)
		}
		s.Up(p.Addr)
		s.mustDo(users[0], "setup-dht 4 "+users[0], "setup-dht SUCCESS")
		s.checkRing(records(t))
	}
}

// A setup, leave, join or teardown the server refused is nothing it waits
// for: the peer's alives name no operation given up. They named the
// refused request's number for --op-timeout (a new user's review read
// 'quit=teardown-dht' in two minutes of alives after a teardown-dht by a
// member); the server ignored it.
func TestARefusedOperationIsNotNamedGivenUp(t *testing.T) {
	s := newSim(t, 1)
	users := joinUsers(t, s, 5)
	s.mustDo(users[0], "setup-dht 3 "+users[0], "setup-dht SUCCESS")
	member := s.Server().Snapshot().DHT.Members[1]
	free := users[0]
	for _, u := range users {
		if !slices.Contains(s.Server().Snapshot().DHT.Members, u) {
			free = u
		}
	}
	for _, c := range []struct{ who, line string }{
		{member, "teardown-dht " + member},
		{free, "leave-dht " + free},
		{member, "join-dht " + member},
		{free, "setup-dht 2 " + free},
	} {
		p := s.Process(c.who)
		quits := 0
		s.Tap = func(from, to netip.AddrPort, b []byte) {
			if _, m, err := wire.Decode(b); err == nil && from == p.Addr && to == simServer {
				if a, ok := m.(wire.Alive); ok && a.Quit != 0 {
					quits++
				}
			}
		}
		s.mustDo(c.who, c.line, strings.Fields(c.line)[0]+" FAILURE")
		runFor(t, s, 10*time.Second)
		s.Tap = nil
		if quits != 0 {
			t.Errorf("%s: %d alives named an operation given up", c.line, quits)
		}
	}
}

// A dht-complete the server does not answer within the give-up (the
// server stopped, or stalled, after the setup began) fails saying that a
// server only stalled may still take it: the ring's part is done, and a
// stalled server reads it from its socket when it runs again (one
// restarted instead has the peer's alive, naming the setup given up, end
// it). Only the line is checked here.
func TestAReportUnansweredMayStillBeTaken(t *testing.T) {
	s := newSim(t, 1)
	users := joinUsers(t, s, 4)
	p := s.Process(users[0])
	printed := len(p.Printed)
	s.input(users[0], "setup-dht 3 "+users[0])
	for len(p.Printed) == printed {
		if !s.step() {
			t.Fatal("the setup never began")
		}
	}
	s.KillServer()
	for len(p.Printed) == printed+1 {
		if !s.step() {
			t.Fatal("the setup never ended")
		}
	}
	want := "dht-complete FAILURE: no answer from the server at " + simServer.String() + " within 10s; a server only stalled may still take it (its answer to this peer's next request, such as query-dht " + users[0] + ", tells what became of the DHT)"
	if got := p.Printed[printed+1].String(); got != want {
		t.Fatalf("printed %q, want %q", got, want)
	}
}

// A leave-dht or a teardown-dht the server does not answer within the
// give-up fails saying that a server only stalled may still take it, and
// then do what was asked (its peer's alives say it gave the operation up,
// which ends it at once: the ring heals without the leaver, the DHT is
// dissolved). Only the line is checked here.
func TestALeaveOrTeardownUnansweredMayStillHappen(t *testing.T) {
	for _, c := range []struct{ cmd, what string }{
		{"leave-dht", "heal the ring without "},
		{"teardown-dht", "dissolve the DHT"},
	} {
		t.Run(c.cmd, func(t *testing.T) {
			s := newSim(t, 1)
			users := joinUsers(t, s, 4)
			s.mustDo(users[0], "setup-dht 3 "+users[0], "setup-dht SUCCESS")
			settle(t, s)
			who := users[0]
			if c.cmd == "leave-dht" {
				who = s.Server().Snapshot().DHT.Members[1]
			}
			s.KillServer()
			out := s.do(who, c.cmd+" "+who)
			what := c.what
			if c.cmd == "leave-dht" {
				what += who
			}
			want := c.cmd + " FAILURE: no answer from the server at " + simServer.String() + " within 10s; a server only stalled may still take it, and then " + what + ", this peer having given it up (its answer to this peer's next request, such as query-dht " + who + ", tells what became of the DHT)"
			if len(out) != 1 || out[0] != want {
				t.Fatalf("printed %q, want %q", out, want)
			}
		})
	}
}

// A command typed behind one the server ends (a member of the ring went
// offline while a leave-dht or a setup-dht ran) runs once the change is
// made, as itself: its own result line, and the one ended gets one. The
// server's news ended the leave, whose end started the next line, a
// join-dht, and then failed that join with the leave's reason: the leave's
// FAILURE printed twice, the join's line never, and the join's request,
// sent and answered, given up (a chaos review, real processes).
func TestACommandTypedBehindOneTheServerEndsRunsAsItself(t *testing.T) {
	for _, c := range []struct{ first, result string }{
		{"leave-dht", "dht-rebuilt FAILURE: the server ended the leave"},
		{"setup-dht", "dht-complete FAILURE: the server ended the setup"},
	} {
		t.Run(c.first, func(t *testing.T) {
			s := newSim(t, 1)
			s.SetDeadAfter(2 * time.Second)
			users := joinUsers(t, s, 4)
			who, first := users[1], ""
			switch c.first {
			case "leave-dht":
				s.mustDo(users[0], "setup-dht 3 "+users[0], "setup-dht SUCCESS")
				members := s.Server().Snapshot().DHT.Members
				who = members[1]
				kill(s, members[2]) // offline 2 s after its last alive
				first = "leave-dht " + who
			case "setup-dht":
				for _, u := range users[1:] {
					kill(s, u)
				}
				who = users[0]
				// Taken while the others are not yet offline; the setup
				// ends when they are.
				first = "setup-dht 2 " + who
			}
			p := s.Process(who)
			s.input(who, first)
			s.input(who, "join-dht "+who)
			for i := 0; !p.Core.Idle() || s.Busy(); i++ {
				if i == 1_000_000 || !s.step() {
					t.Fatalf("%s never went idle: printed %q", who, texts(p.Printed))
				}
			}
			got := texts(p.Printed)
			ended, joins := 0, 0
			for _, l := range got {
				if strings.HasPrefix(l, c.result) {
					ended++
				}
				if strings.HasPrefix(l, "join-dht ") {
					joins++
				}
			}
			if ended != 1 || joins != 1 {
				t.Fatalf("printed %q: want one %q and one join-dht line", got, c.result)
			}
		})
	}
}
