package app

import (
	"net/netip"
	"testing"
	"time"

	"dht/app/state"
	"dht/wire"
)

// A stall long enough for a member's silence to pass DeadAfter (longer
// than DeadAfter less an alive period) but whose late Tick is late by less
// than an alive period: the hold is keyed on how late the Tick is, not on
// how long the server did not run, and nothing holds the judgement past
// the first datagram read that came after the late Tick. Two ways the
// members' alives of the stall are not on the socket:
//   - flood: a flood of junk filled the queue (the attacker's review of
//     b489ca4, with a 15.5 s stop instead of a minute);
//   - host: the whole host stopped; alice's peer ran again a millisecond
//     before the server (so something came during the stall: no mute),
//     bob's 40 ms after it, carol's 140 ms after it.
//
// Every member is live, and was stopped as long as the server or had its
// alives dropped: none may be healed out.
func TestAStallInTheWindowBelowPaceHealsNoLiveMember(t *testing.T) {
	ring := []string{"alice", "bob", "carol"}
	for _, how := range []string{"flood", "host"} {
		t.Run(how, func(t *testing.T) {
			h := newLiveH(t, srvDHT(state.PhaseReady, ring))
			h.s.Tick(srvT0)
			h.alive(ring...)
			before := h.s.Snapshot()
			stop := h.now // the server runs no more from here
			h.now = stop.Add(DefaultDeadAfter + 500*time.Millisecond)
			late := h.now
			alive := func(name string, came time.Time) {
				h.stepCame(srvAddr(name), wire.Alive{Name: name, PeriodMS: uint32(h.s.Pace().Milliseconds())}, srvSecret(name), came)
			}
			forged := netip.MustParseAddrPort("10.66.0.1:4000")
			h.s.Tick(h.now) // late by 0.5 s, under Pace (1.5 s); stopped 15.5 s
			sent := map[string]time.Time{}
			switch how {
			case "flood":
				step := func(came time.Time) {
					h.stepCame(forged, wire.QueryDHT{Name: "alice"}, wire.Key{1}, came)
				}
				step(stop.Add(time.Second)) // the backlog: junk only
				h.now = h.now.Add(time.Millisecond)
				step(late.Add(time.Millisecond)) // the flood goes on
				for _, n := range ring {
					sent[n] = late.Add(h.s.Pace() * 9 / 10)
				}
			case "host":
				alive("alice", late.Add(-time.Millisecond)) // came during the stall
				sent["bob"] = late.Add(40 * time.Millisecond)
				sent["carol"] = late.Add(140 * time.Millisecond)
			}
			for h.now.Before(late.Add(h.s.Pace() + 4*drainWait)) {
				h.now = h.now.Add(5 * time.Millisecond)
				for _, n := range ring {
					if at, ok := sent[n]; ok && !h.now.Before(at) {
						alive(n, at)
						delete(sent, n)
					}
				}
				h.tickIfDue()
				if d, same := h.sameRing(before); !same {
					t.Fatalf("%v after the late Tick (stopped %v, late %v), every member live: DHT %v %v", h.now.Sub(late), late.Sub(stop), late.Sub(srvT0.Add(DefaultDeadAfter)), d.Phase, d.Members)
				}
			}
		})
	}
}

// Every member of the ring dies at once (their host lost power); the
// server runs on, idle: nothing comes on its socket. Its Tick at the
// members' DeadAfter comes 30 ms late (a loaded machine: lateEvent calls
// tens of milliseconds the usual), and the late guard takes the whole
// quiet time since the server last did anything (its LastSeen flush, 5 s
// after the last alive) for a stall nothing came in, and spares it: the
// dead ring is dissolved about 10 s later than --dead-after. It must be
// within about --dead-after + Pace + 1 s of the deaths: the server ran
// all along.
func TestAnIdleServersLateTickDoesNotSpareTheDead(t *testing.T) {
	ring := []string{"alice", "bob", "carol"}
	h := newLiveH(t, srvDHT(state.PhaseReady, ring))
	h.s.Tick(srvT0)
	for _, n := range ring { // stamped: the server's socket says when each came
		h.stepCame(srvAddr(n), wire.Alive{Name: n, PeriodMS: uint32(h.s.Pace().Milliseconds())}, srvSecret(n), h.now)
	}
	died := h.now
	due, _ := h.s.judgementDue()
	lateOnce := true
	for h.now.Sub(died) < 3*DefaultDeadAfter {
		at, ok := h.s.NextDeadline()
		if !ok {
			t.Fatal("no deadline with a ring")
		}
		h.now = at
		if lateOnce && !at.Before(due) {
			h.now = at.Add(30 * time.Millisecond) // the one late Tick
			lateOnce = false
		}
		h.s.Tick(h.now)
		if h.s.Snapshot().DHT.Phase == state.PhaseNone {
			break
		}
	}
	got := h.now.Sub(died)
	if limit := DefaultDeadAfter + h.s.Pace() + time.Second; got > limit {
		t.Fatalf("the dead ring was dissolved %v after its members died, want within %v", got, limit)
	}
}

// The flood case of TestAStallInTheWindowBelowPaceHealsNoLiveMember, with
// the runner's reader taking the lock before its timer once the server
// runs again (two goroutines: either may come first): a lot of the
// backlog is read before the late Tick.
func TestAStallInTheWindowReadBeforeTheLateTick(t *testing.T) {
	ring := []string{"alice", "bob", "carol"}
	h := newLiveH(t, srvDHT(state.PhaseReady, ring))
	h.s.Tick(srvT0)
	h.alive(ring...)
	before := h.s.Snapshot()
	stop := h.now
	h.now = stop.Add(DefaultDeadAfter + 500*time.Millisecond)
	late := h.now
	forged := netip.MustParseAddrPort("10.66.0.1:4000")
	junk := func(came time.Time) {
		h.stepCame(forged, wire.QueryDHT{Name: "alice"}, wire.Key{1}, came)
	}
	junk(stop.Add(time.Second)) // read before the late Tick
	h.s.Tick(h.now)
	junk(stop.Add(2 * time.Second))
	h.now = h.now.Add(time.Millisecond)
	junk(late.Add(time.Millisecond))
	sent := false
	for h.now.Before(late.Add(h.s.Pace() + 4*drainWait)) {
		h.now = h.now.Add(5 * time.Millisecond)
		if !sent && !h.now.Before(late.Add(h.s.Pace()*9/10)) {
			for _, n := range ring {
				h.stepCame(srvAddr(n), wire.Alive{Name: n, PeriodMS: uint32(h.s.Pace().Milliseconds())}, srvSecret(n), h.now)
			}
			sent = true
		}
		h.tickIfDue()
		if d, same := h.sameRing(before); !same {
			t.Fatalf("%v after the late Tick, every member live: DHT %v %v", h.now.Sub(late), d.Phase, d.Members)
		}
	}
}

// The whole host stopped three times in a row for 30 s, running 200 ms in
// between (a stop-and-continue cycle): every member runs as long as the
// server and sends its alive 5 ms after each continue. The third late
// Tick comes while the second wait is on: maxDrains, it judges at once,
// before the alives of the third continue are read.
func TestThreeHostStopsInARow(t *testing.T) {
	ring := []string{"alice", "bob", "carol"}
	h := newLiveH(t, srvDHT(state.PhaseReady, ring))
	h.s.Tick(srvT0)
	alives := func() {
		for _, n := range ring {
			h.stepCame(srvAddr(n), wire.Alive{Name: n, PeriodMS: uint32(h.s.Pace().Milliseconds())}, srvSecret(n), h.now)
		}
	}
	alives()
	before := h.s.Snapshot()
	for i := range 3 {
		h.now = h.now.Add(30 * time.Second)
		h.s.Tick(h.now) // the server first
		for end := h.now.Add(200 * time.Millisecond); h.now.Before(end); {
			h.now = h.now.Add(5 * time.Millisecond)
			if h.now.Equal(end.Add(-195 * time.Millisecond)) {
				alives()
			}
			h.tickIfDue()
			if d, same := h.sameRing(before); !same {
				t.Fatalf("stop %d: the ring, live, is %v %v", i+1, d.Phase, d.Members)
			}
		}
	}
}
