package app_test

// Liveness in the simulation (SPEC §7 "Members that die"): a registered
// peer that dies is offline once silent for --dead-after, and setup-dht
// neither counts nor picks it; the living keep themselves online by their
// alives alone.

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

// idle runs the simulation, alives and all, for d of virtual time.
func idle(t *testing.T, s *simNet, d time.Duration) {
	t.Helper()
	until := s.Now().Add(d)
	for s.Now().Before(until) {
		if !s.step() {
			t.Fatalf("seed %d: nothing left to run %v before %v", s.Seed(), until.Sub(s.Now()), until)
		}
	}
}

func TestSetupNeverPicksADeadPeer(t *testing.T) {
	for _, seed := range seeds(t, 12) {
		s := newSim(t, seed)
		names := joinUsers(t, s, 5)
		dead := names[2]
		s.Remove(dead) // killed: it sends nothing more, and gets nothing
		idle(t, s, app.DefaultDeadAfter+2*time.Second)
		if d, off := s.Server().Silent(s.Now(), dead); !off {
			t.Fatalf("seed %d: %s dead for %v is not offline", seed, dead, d)
		}
		for _, n := range names {
			if _, off := s.Server().Silent(s.Now(), n); off && n != dead {
				t.Fatalf("seed %d: %s, alive and idle, is offline", seed, n)
			}
		}
		out := s.mustDo(names[0], "setup-dht 5 "+names[0], "setup-dht FAILURE")
		if !strings.Contains(out[0], "only 4 of the 5 registered users are live") {
			t.Fatalf("seed %d: %q, want it to say only 4 of 5 are live", seed, out[0])
		}
		s.mustDo(names[0], "setup-dht 4 "+names[0], "setup-dht SUCCESS")
		st := s.Server().Snapshot()
		if st.DHT.Phase != state.PhaseReady || len(st.DHT.Members) != 4 || slices.Contains(st.DHT.Members, dead) {
			t.Fatalf("seed %d: DHT %+v, want the 4 live users, ready, without %s", seed, st.DHT, dead)
		}
		if u := st.Users[slices.IndexFunc(st.Users, func(u state.User) bool { return u.Name == dead })]; u.State != state.Free {
			t.Fatalf("seed %d: %s is %s, want Free: an offline user keeps its registration", seed, dead, u.State)
		}
	}
}

// A member that goes silent while its ring is set up makes the server roll
// the setup back at --dead-after (3 s here, below the peers' give-up of
// 10 s): the leader, still spreading the records, learns it from the pace
// that answers its next alive and ends its command at once, instead of
// at its give-up.
func TestSetupRolledBackEndsTheLeadersCommand(t *testing.T) {
	for _, seed := range seeds(t, 3) {
		s := newSim(t, seed)
		s.SetDeadAfter(3 * time.Second)
		users := joinUsers(t, s, 5)
		leader := users[0]
		s.input(leader, "setup-dht 4 "+leader)
		p := s.Process(leader)
		for len(p.Printed) < 2 { // register, then setup-dht
			if !s.step() {
				t.Fatalf("seed %d: setup-dht never answered", seed)
			}
		}
		silent := s.Server().Snapshot().DHT.Members[1] // a member the setup picked
		s.Remove(silent)
		stopped := s.Now()
		for !p.Core.Idle() {
			if !s.step() {
				t.Fatalf("seed %d: the leader's command never ended", seed)
			}
		}
		last := texts(p.Printed)[len(p.Printed)-1]
		if took := s.Now().Sub(stopped); took > 5*time.Second || !strings.HasPrefix(last, "dht-complete FAILURE: the server ended the setup (epoch 1)") {
			t.Fatalf("seed %d: %v after %s went silent the leader printed %q", seed, took, silent, last)
		}
		// The failure says where to learn why, and that is so (a new
		// user's review: the leader heard that its setup ended, not why).
		if !strings.Contains(last, "such as query-dht "+leader+", tells why") {
			t.Fatalf("seed %d: the leader printed %q, not where to learn why", seed, last)
		}
		why := s.do(leader, "query-dht "+leader+" Aruba")
		if len(why) == 0 || !strings.Contains(why[0], "rolled back: "+silent+" offline") {
			t.Fatalf("seed %d: query-dht at the leader printed %q; want why the setup ended", seed, why)
		}
	}
}

// A server restarted with a much shorter --dead-after than before paces
// every registered user as it starts: their peers, which sent alives at
// the old server's pace (a tenth of its --dead-after), send at the new one
// from then on, and no live member is taken for offline and healed out of
// the ring (an operator's review: 1m then 5s healed a ring of 6 to 2, with
// every peer running). Without the start's paces the first alive of each
// came 6 s apart, after the 5 s a start gives.
func TestServerRestartedWithAShorterDeadAfterKeepsLiveMembers(t *testing.T) {
	for _, seed := range seeds(t, 3) {
		s := newSim(t, seed)
		s.SetDeadAfter(time.Minute)
		users := joinUsers(t, s, 5)
		s.mustDo(users[0], "setup-dht 4 "+users[0], "setup-dht SUCCESS")
		members := s.Server().Snapshot().DHT.Members
		// Right after a round of alives, so that the next comes a whole
		// old period (6 s) after the restart.
		alives := 0
		s.Tap = func(_, to netip.AddrPort, b []byte) {
			if _, m, err := wire.Decode(b); err == nil && to == simServer {
				if _, ok := m.(wire.Alive); ok {
					alives++
				}
			}
		}
		for start := s.Now(); s.Now().Sub(start) < 10*time.Second || alives < len(users); {
			if s.Now().Sub(start) < 10*time.Second {
				alives = 0
			}
			if !s.step() {
				t.Fatalf("seed %d: nothing left to run", seed)
			}
		}
		s.Tap = nil
		s.RestartServerWith(5 * time.Second)
		for start := s.Now(); s.Now().Sub(start) < 30*time.Second; {
			if !s.step() {
				t.Fatalf("seed %d: nothing left to run", seed)
			}
		}
		st := s.Server().Snapshot()
		if st.DHT.Phase != state.PhaseReady || !slices.Equal(st.DHT.Members, members) {
			t.Fatalf("seed %d: 30 s after the restart the DHT is %s with %v; want ready with %v, every peer running", seed, st.DHT.Phase, st.DHT.Members, members)
		}
		for _, u := range users {
			if _, off := s.Server().Silent(s.Now(), u); off {
				t.Fatalf("seed %d: %s is offline, its peer running", seed, u)
			}
		}
	}
}

// A leave that the server ends (a member went silent during it: the ring
// heals round the leaver) fails at the leaver saying that the ring heals
// without it; the server's answers say why while it heals, not once it has
// healed, and the line says so (a liveness review: it promised that a
// request's answer would tell why, which after the heal none did).
func TestALeaveTheServerEndedSaysTheRingHeals(t *testing.T) {
	s := newSim(t, 2)
	s.SetDeadAfter(3 * time.Second)
	users := joinUsers(t, s, 5)
	s.mustDo(users[0], "setup-dht 4 "+users[0], "setup-dht SUCCESS")
	leaver, silent := memberWithID(s, 1), memberWithID(s, 3)
	p := s.Process(leaver)
	printed := len(p.Printed)
	s.input(leaver, "leave-dht "+leaver)
	for len(p.Printed) == printed {
		if !s.step() {
			t.Fatal("leave-dht never answered")
		}
	}
	s.Remove(silent)
	for !p.Core.Idle() {
		if !s.step() {
			t.Fatal("the leave never ended")
		}
	}
	last := texts(p.Printed)[len(p.Printed)-1]
	if want := "dht-rebuilt FAILURE: the server ended the leave (epoch "; !strings.HasPrefix(last, want) ||
		!strings.Contains(last, leaver+" is Free, outside the ring, which the server heals without it (a member went offline or restarted, or the leave passed --op-timeout; while it heals, the server's answers say why)") {
		t.Fatalf("the leaver printed %q", last)
	}
}
