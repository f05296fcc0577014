package app

import (
	"net/netip"
	"slices"
	"testing"
	"time"

	"dht/app/state"
	"dht/wire"
)

// A server that did not run for longer than DeadAfter, while a flood of
// forged datagrams (a few MB/s of junk, which it reads with no loss while
// it runs) filled its socket's queue: the alives its members sent during
// the stall were dropped by the system, not queued, and the backlog holds
// junk. A datagram of the flood that came after the late Tick ends the
// wait for the backlog at once, and the server healed every member whose
// alive was not among the first queued out of a live ring (on loopback: a
// 5 s stop, --dead-after 3s, 8 KB junk at 8,000/s: 3 or 4 of 5 live
// members healed out, 3 runs of 3; none without the flood). A member alive
// through the stall sends again within its alive period (Pace) after the
// server runs again: the judgement waits that long after a stall longer
// than Pace. One that sent nothing is offline all the same, Pace later.
func TestAStallWhoseAlivesWereDroppedHealsNoLiveMember(t *testing.T) {
	ring := []string{"alice", "bob", "carol"}
	for _, dead := range []string{"", "bob"} {
		h := newLiveH(t, srvDHT(state.PhaseReady, ring))
		h.s.Tick(srvT0)
		h.alive(ring...)
		before := h.s.Snapshot()
		stop := srvT0.Add(time.Second)
		h.now = srvT0.Add(time.Minute) // stopped; its Tick comes first
		late := h.now
		h.s.Tick(h.now)
		step, alive := h.stepCame, h.aliveCame
		forged := netip.MustParseAddrPort("10.66.0.1:4000")
		// The backlog: alice's first alive of the stall, then junk; the
		// rest of the stall's datagrams were dropped. Then the flood goes
		// on: a forged datagram that came after the late Tick.
		alive("alice", stop.Add(time.Second))
		step(forged, wire.QueryDHT{Name: "alice"}, wire.Key{1}, stop.Add(2*time.Second))
		h.now = h.now.Add(time.Millisecond)
		step(forged, wire.QueryDHT{Name: "alice"}, wire.Key{1}, late.Add(time.Millisecond))
		// The members' next alives come within their period.
		sent := false
		for h.now.Before(late.Add(h.s.Pace() + 2*drainWait)) {
			h.now = h.now.Add(drainWait)
			if !sent && !h.now.Before(late.Add(h.s.Pace()*9/10)) {
				for _, n := range ring {
					if n != dead {
						alive(n, h.now)
					}
				}
				sent = true
			}
			h.tickIfDue()
			if dead == "" {
				if st := h.s.Snapshot(); st.DHT.Epoch != before.DHT.Epoch {
					t.Fatalf("healed %v after the late Tick, every member alive: DHT %+v", h.now.Sub(late), st.DHT)
				}
			}
		}
		if dead != "" {
			if st := h.s.Snapshot(); st.DHT.Phase != state.PhaseHealing || slices.Contains(st.DHT.Members, dead) {
				t.Fatalf("%s sent nothing: DHT %+v, want a heal without it", dead, st.DHT)
			}
		}
	}
}
