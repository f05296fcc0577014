package app

import (
	"slices"
	"testing"
	"time"

	"dht/app/state"
)

// A whole host suspended (a laptop's lid closed): the server and every
// peer stopped for 30 s and continued together. Nothing came on the
// server's socket meanwhile, so the first datagram read after the late
// Tick came after it; the members continued a few milliseconds after the
// server (the order a host's processes run in again is anyone's), and the
// first alive read is alice's. bob and carol were stopped as long as the
// server: they are not offline (a chaos review: the server continued
// 40 ms before its peers healed a live 5-node ring to 3).
func TestAllStoppedTogetherIsNoSilence(t *testing.T) {
	ring := []string{"alice", "bob", "carol"}
	h := newLiveH(t, srvDHT(state.PhaseReady, ring))
	h.s.Tick(srvT0)
	alive := h.aliveCame
	for _, n := range ring {
		alive(n, h.now)
	}
	before := h.s.Snapshot()
	h.now = srvT0.Add(30 * time.Second) // everything stopped; the server's Tick comes first
	late := h.now
	h.s.Tick(h.now)
	// The peers run again 40 ms after the server; alice's alive is read first.
	for h.now.Sub(late) < 40*time.Millisecond {
		h.now = h.now.Add(5 * time.Millisecond)
		h.tickIfDue()
	}
	alive("alice", h.now)
	// bob's and carol's first alives come 100 ms later: the Ticks meanwhile
	// judge, the backlog read.
	for resumed := h.now; h.now.Sub(resumed) < 100*time.Millisecond; {
		h.now = h.now.Add(time.Millisecond)
		h.tickIfDue()
	}
	alive("bob", h.now)
	alive("carol", h.now)
	if d, same := h.sameRing(before); !same {
		t.Fatalf("every process was stopped as long as the server, yet the DHT is %+v", d)
	}
}

// The same host stop, carol dead a second before it: she is healed out
// once her --dead-after has passed counting the time the host ran, not
// at once, and not never.
func TestAllStoppedTogetherStillHealsOutTheDead(t *testing.T) {
	ring := []string{"alice", "bob", "carol"}
	h := newLiveH(t, srvDHT(state.PhaseReady, ring))
	h.s.Tick(srvT0)
	alive := func(name string) { h.aliveCame(name, h.now) }
	for _, n := range ring {
		alive(n)
	}
	h.now = srvT0.Add(time.Second)
	alive("alice")
	alive("bob") // carol has died
	stopped := h.now
	h.now = h.now.Add(time.Minute) // the host stopped for a minute
	resumed := h.now
	var healed time.Duration
	for h.now.Sub(resumed) < 2*DefaultDeadAfter && healed == 0 {
		h.tickIfDue()
		if h.now.Sub(resumed) > 40*time.Millisecond && h.now.Sub(resumed)%h.s.Pace() < 5*time.Millisecond {
			alive("alice")
			alive("bob")
		}
		if d := h.s.Snapshot().DHT; d.Phase == state.PhaseHealing {
			if slices.Contains(d.Members, "carol") || len(d.Members) != 2 {
				t.Fatalf("healed to %v", d.Members)
			}
			healed = h.now.Sub(resumed)
		}
		h.now = h.now.Add(5 * time.Millisecond)
	}
	// She was silent 1 s when the host stopped: DeadAfter less that second
	// after it ran again.
	if want := DefaultDeadAfter - stopped.Sub(srvT0); healed < want-time.Second || healed > want+time.Second {
		t.Fatalf("carol healed out %v after the host ran again, want about %v", healed, want)
	}
}
