package app_test

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	"dht/app"
	"dht/app/state"
)

// The server restarted with a shorter, then a longer --dead-after, at loss
// and delay: no live member is healed out, and every peer's alive period
// converges to the new server's tenth. A user heard from since the start,
// at the old period, gets the start round's later paces too: with the
// first and the answer to its alive lost, it would send at the old period
// and be healed out (5 of 200 seeds, at 5% loss).
func TestDeadAfterChangedBothWaysAtLoss(t *testing.T) {
	for _, seed := range seeds(t, 200) {
		s := newSim(t, seed)
		s.SetDeadAfter(30 * time.Second)
		users := joinUsers(t, s, 5)
		s.mustDo(users[0], "setup-dht 4 "+users[0], "setup-dht SUCCESS")
		members := s.Server().Snapshot().DHT.Members
		s.Loss, s.Delay = 0.05, 80*time.Millisecond
		run := func(d time.Duration) {
			for start := s.Now(); s.Now().Sub(start) < d; {
				if !s.step() {
					t.Fatalf("seed %d: nothing left to run", seed)
				}
			}
		}
		check := func(when string, period time.Duration) bool {
			st := s.Server().Snapshot()
			if st.DHT.Phase != state.PhaseReady || !slices.Equal(st.DHT.Members, members) {
				t.Errorf("seed %d: %s: DHT %s with %v (%s); want ready with %v", seed, when, st.DHT.Phase, st.DHT.Members, app.ServerNote(s.Server()), members)
				return false
			}
			for _, u := range users {
				if got := app.AlivePeriod(s.Peer(u)); got != period {
					t.Errorf("seed %d: %s: %s sends alives every %v, want %v", seed, when, u, got, period)
				}
			}
			return true
		}
		run(20 * time.Second)
		if !check("before", 3*time.Second) {
			continue
		}
		from := 30 * time.Second
		for _, to := range []struct{ deadAfter, run time.Duration }{{3 * time.Second, 40 * time.Second}, {30 * time.Second, 60 * time.Second}, {2 * time.Second, 30 * time.Second}} {
			s.RestartServerWith(to.deadAfter)
			run(to.run)
			if !check(fmt.Sprintf("after %v->%v", from, to.deadAfter), to.deadAfter/10) {
				break
			}
			from = to.deadAfter
		}
	}
}

// A peer far away (2.1 s each way) takes the pace that lengthens its alive
// period, which answers an alive it sent 4.2 s before: a window of its last
// 16 alives (4 s at the untold 250 ms) would never take it.
func TestAFarPeerTakesTheServersPace(t *testing.T) {
	s := newSim(t, 1)
	users := joinUsers(t, s, 3)
	far := s.Process(users[2]).Addr
	s.Slow = map[netip.AddrPort]time.Duration{far: 2100 * time.Millisecond}
	for start := s.Now(); s.Now().Sub(start) < 60*time.Second; {
		if !s.step() {
			t.Fatal("nothing left to run")
		}
	}
	if got := app.AlivePeriod(s.Peer(users[2])); got != 1500*time.Millisecond {
		t.Fatalf("the far peer %s sends alives every %v after 60 s, want the server's 1.5s", users[2], got)
	}
}

// A server with a --dead-after over ten hours paces at an hour, the most a
// peer takes: its pace and the peer's period agree, and an alive is not
// answered. A pace of dead-after/10 (two hours, and past 2³² ms for the
// longest) was cut to an hour by every peer, whose every alive the server
// then answered with a pace, one datagram more each.
func TestALongDeadAfterPacesAtAnHour(t *testing.T) {
	s := newSim(t, 1)
	s.SetDeadAfter(20 * time.Hour)
	users := joinUsers(t, s, 3)
	run := func(d time.Duration) {
		for start := s.Now(); s.Now().Sub(start) < d; {
			if !s.step() {
				t.Fatal("nothing left to run")
			}
		}
	}
	run(90 * time.Minute)
	for _, u := range users {
		if got := app.AlivePeriod(s.Peer(u)); got != time.Hour {
			t.Errorf("%s sends alives every %v, want an hour", u, got)
		}
	}
	before := s.Stats().Sent
	run(3 * time.Hour)
	if sent := s.Stats().Sent - before; sent > len(users)*3 {
		t.Errorf("%d datagrams in 3 hours from %d users at an alive an hour; want the alives alone, no paces", sent, len(users))
	}
}
