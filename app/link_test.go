package app

import (
	"net/netip"
	"testing"
	"time"

	"dht/wire"
)

// An Ack that acknowledges several messages is one round-trip sample, the
// longest: the messages a commit covers were sent over the time it took,
// and a sample for each would weigh that one commit many times over.
func TestOneRTTSampleAnAck(t *testing.T) {
	var st Stats
	l := newLink(LinkConfig{}, 1, &st)
	to := netip.MustParseAddrPort("10.0.0.2:5000")
	t0 := time.Unix(1_700_000_000, 0)
	var ids []uint32
	for i := range 3 {
		for _, o := range l.send(t0.Add(time.Duration(i)*time.Millisecond), to, wire.Store{N: 2}, tagNone, false) {
			ids = append(ids, o.(Send).ID)
		}
	}
	if len(ids) != 3 {
		t.Fatalf("sent %d of 3", len(ids))
	}
	ackAt := t0.Add(10 * time.Millisecond)
	for _, id := range ids {
		if _, ok, _ := l.acked(ackAt, to, id); !ok {
			t.Fatalf("ack of %d matched nothing", id)
		}
	}
	if l.srtt != 0 {
		t.Fatalf("sampled before the Ack was handled: srtt %v", l.srtt)
	}
	l.endAck()
	if l.srtt != 10*time.Millisecond || l.rttvar != 5*time.Millisecond {
		t.Fatalf("srtt %v rttvar %v; want one sample of 10ms (srtt 10ms, rttvar 5ms)", l.srtt, l.rttvar)
	}
	l.endAck() // nothing acknowledged since: no sample
	if l.srtt != 10*time.Millisecond {
		t.Fatalf("an empty endAck sampled: srtt %v", l.srtt)
	}
}
