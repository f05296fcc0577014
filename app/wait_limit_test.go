package app

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"
)

// A wait whose limit has come says nothing more: its FAILURE follows at
// the next retransmission (a review: at --give-up 12s a register at a
// server that is down said "gives up in 1s, for 12s so far", 20 ms before
// its FAILURE said it had given up). Each Tick moves the peer's deadline
// past now.
func TestAWaitSaysNothingOnceItsLimitHasCome(t *testing.T) {
	server := netip.MustParseAddrPort("10.0.0.100:4000")
	self := netip.MustParseAddrPort("10.0.0.1:5000")
	p := NewPeer(PeerConfig{Server: server, RequestTimeout: 12 * time.Second})
	start := time.Unix(1e9, 0)
	p.Input(start, "register alice 10.0.0.1 5000")
	p.Bound(start, self, nil)
	var notes, results []string
	for ticks := 0; len(results) == 0; ticks++ {
		at, ok := p.NextDeadline()
		if !ok || ticks > 10000 {
			t.Fatalf("after %d ticks the register waits for nothing (%v) or never ends", ticks, ok)
		}
		for _, o := range p.Tick(at) {
			switch o := o.(type) {
			case Notice:
				notes = append(notes, o.Line)
			case Result:
				results = append(results, o.String())
			}
		}
		if next, ok := p.Pending(); ok && !next.After(at) && len(results) == 0 {
			t.Fatalf("a Tick at %v left the deadline at %v", at.Sub(start), next.Sub(start))
		}
	}
	want := []string{"register: waiting for the server at 10.0.0.100:4000 to answer register (this peer gives up in 10s), for 2s so far"}
	if !slices.Equal(notes, want) {
		t.Errorf("notes %q, want %q", notes, want)
	}
	if len(results) != 1 || !strings.HasPrefix(results[0], "register FAILURE: no answer from the server") {
		t.Errorf("results %q", results)
	}
}
