package app

import (
	"testing"
	"time"

	"dht/wire"
)

// A deregistered user leaves nothing keyed by its name behind, whatever
// its last alive said: a registry that sees names come and go for months
// must not keep one entry for each.
func TestDeregisterForgetsOffPace(t *testing.T) {
	h := newLiveH(t, srvFree("alice", "bob"))
	h.s.Tick(srvT0)
	h.now = srvT0.Add(time.Minute)
	h.alive("bob")
	// An alive with a period other than the server's (period 0): paced.
	h.s.stepTrusted(h.now, srvAddr("alice"), wire.Header{Type: wire.TypeAlive, ID: h.nextID()}, wire.Alive{Name: "alice"})
	if !h.s.offPace["alice"] {
		t.Fatal("alice not off pace after an alive of period 0")
	}
	h.ok(srvAddr("alice"), wire.Deregister{Name: "alice"})
	if len(h.s.offPace) != 0 || len(h.s.lastSeen) != 1 || len(h.s.places) != 1 {
		t.Fatalf("after alice's deregister: offPace %v, lastSeen %v, places %v; want only bob's", h.s.offPace, h.s.lastSeen, h.s.places)
	}
}
