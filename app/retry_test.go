package app

import (
	"net/netip"
	"testing"
	"time"

	"dht/wire"
)

// TestRetrySchedule: a first timeout from the policy until a round trip is
// measured, RFC 6298 after; doubling up to the ceiling; give-up after
// GiveUp; Karn's rule for samples.
func TestRetrySchedule(t *testing.T) {
	p := Retry{}.withDefaults()
	var e rttEstimator
	if got := e.first(&p); got != DefaultRTO {
		t.Fatalf("first timeout before any sample: %v, want %v", got, DefaultRTO)
	}
	t0 := time.Unix(0, 0)
	var tr tries
	tr.start(t0, e.first(&p))
	if tr.due(t0.Add(DefaultRTO-1)) || !tr.due(t0.Add(DefaultRTO)) {
		t.Fatal("due before or not at the timeout")
	}
	now := t0.Add(DefaultRTO)
	var rtos []time.Duration
	for tr.again(now, &p, &e) {
		rtos = append(rtos, tr.rto)
		now = tr.next
	}
	// Nothing measured: the cap is four times the initial timeout.
	if cap := 4 * DefaultRTO; rtos[0] != 2*DefaultRTO || rtos[1] != cap || rtos[len(rtos)-1] != cap {
		t.Errorf("timeouts %v: want 60ms, then the 120ms cap", rtos[:3])
	}
	if now.Sub(t0) < DefaultGiveUp || now.Sub(t0) > DefaultGiveUp+4*DefaultRTO {
		t.Errorf("gave up after %v, want %v", now.Sub(t0), DefaultGiveUp)
	}
	if _, ok := tr.roundTrip(now); ok {
		t.Error("a retransmitted exchange gave a round-trip sample")
	}
	// A timeout backs the next first transmission off, until a sample.
	if got := e.first(&p); got != 4*DefaultRTO {
		t.Errorf("first timeout after timeouts: %v, want the bounded backoff %v", got, 4*DefaultRTO)
	}
	e.sample(20 * time.Microsecond)
	if got := e.first(&p); got != DefaultMinRTO {
		t.Errorf("first timeout after a 20us sample: %v, want the floor %v", got, DefaultMinRTO)
	}
	// On a long path the cap follows the measurement.
	var slow rttEstimator
	slow.sample(300 * time.Millisecond)
	if got, want := slow.ceiling(&p), 4*slow.measured(&p); got != want || got <= DefaultMaxRTO {
		t.Errorf("ceiling on a 300ms path: %v, want %v", got, want)
	}
}

// The backoff a timeout leaves a first transmission is bounded by four
// times the measured timeout, not by the ceiling: on a fast path whose
// timeouts doubled up to MaxRTO, the next message starts at 4x its RTO
// (an unbounded backoff stays near the cap and slows every recovery).
func TestFirstTimeoutBackoffBoundedByTheMeasurement(t *testing.T) {
	p := Retry{}.withDefaults()
	var e rttEstimator
	e.sample(2 * time.Millisecond)
	rto := e.measured(&p)
	if c := e.ceiling(&p); c != DefaultMaxRTO || 4*rto >= c {
		t.Fatalf("measured %v, ceiling %v: want 4x the measurement below MaxRTO %v", rto, c, DefaultMaxRTO)
	}
	t0 := time.Unix(0, 0)
	var tr tries
	tr.start(t0, e.first(&p))
	for now := tr.next; tr.rto < e.ceiling(&p); now = tr.next {
		if !tr.again(now, &p, &e) {
			t.Fatal("gave up before the timeout reached the ceiling")
		}
	}
	if got := e.first(&p); got != 4*rto {
		t.Errorf("first timeout after backing off to %v: %v, want 4x the measured %v", e.ceiling(&p), got, rto)
	}
}

// A retransmission that comes late (the process stopped or starved of CPU)
// does not count the stall as the destination's silence: the message is
// sent again, and given up only after GiveUp of retransmissions on time
// (a chaos review: a leader paused longer than the give-up time gave up
// on a live member as soon as it ran again).
func TestRetryStallIsNoSilence(t *testing.T) {
	p := Retry{}.withDefaults()
	var e rttEstimator
	t0 := time.Unix(0, 0)
	var tr tries
	tr.start(t0, e.first(&p))
	now := tr.next
	for now.Sub(t0) < 4*time.Second {
		if !tr.again(now, &p, &e) {
			t.Fatalf("gave up after %v", now.Sub(t0))
		}
		now = tr.next
	}
	before := now.Sub(t0)
	stall := DefaultGiveUp + 2*time.Second // past the give-up, under --dead-after
	now = now.Add(stall)
	if !tr.again(now, &p, &e) {
		t.Fatalf("gave up on the first retransmission after a stall of %v", stall)
	}
	for now = tr.next; tr.again(now, &p, &e); now = tr.next {
	}
	// Silence while the process ran: before the stall, and after it; the
	// stall is spared up to GiveUp.
	spared := min(stall, DefaultGiveUp)
	if ran := now.Sub(t0) - spared; ran < DefaultGiveUp || ran > DefaultGiveUp+4*DefaultRTO+lateTick {
		t.Errorf("gave up after %v (%v before a stall of %v), want %v and the %v spared", now.Sub(t0), before, stall, DefaultGiveUp, spared)
	}

	// A process that stalls at every retransmission gives up within twice
	// GiveUp and a stall, not never (a code review: 1 s late each time
	// stretched 10 s to 95 s).
	tr.start(t0, e.first(&p))
	now = tr.next
	for late := time.Second; tr.again(now, &p, &e); now = tr.next.Add(late) {
		if now.Sub(t0) > 2*DefaultGiveUp+late+4*DefaultRTO {
			t.Fatalf("still no give-up after %v of stalls", now.Sub(t0))
		}
	}
}

// A request to the server is not sent again before the initial timeout,
// however quick the server's replies have been: the server commits before
// it answers, and one slow disk flush must not send a request twice.
func TestServerRequestFloor(t *testing.T) {
	server := netip.MustParseAddrPort("10.0.0.100:4000")
	self := netip.MustParseAddrPort("10.0.0.1:5000")
	p := NewPeer(PeerConfig{Server: server})
	t0 := time.Unix(1e9, 0)
	p.Input(t0, "register alice 10.0.0.1 5000")
	outs := p.Bound(t0, self, nil)
	send, ok := outs[len(outs)-1].(Send)
	if !ok {
		t.Fatalf("register sent %v", outs)
	}
	t1 := t0.Add(100 * time.Microsecond)
	stepSigned(p, t1, server, wire.Header{ID: send.ID}, wire.Reply{OK: true})
	if !p.Registered() {
		t.Fatal("not registered")
	}
	p.Input(t1, "deregister alice")
	at, ok := p.NextDeadline()
	if !ok || at.Sub(t1) < DefaultRTO {
		t.Errorf("after a 100us reply, the next request is sent again %v after it was sent, want no sooner than %v", at.Sub(t1), DefaultRTO)
	}
}

// A query is not sent again before 10ms, however quick answers have been:
// with many queriers an answer's time varies far more than its mean.
func TestQueryFloor(t *testing.T) {
	p := NewPeer(PeerConfig{})
	for range 20 {
		p.queryRTT.sample(70 * time.Microsecond)
	}
	if got := p.queryRTT.first(&p.queryRetry); got != 5*DefaultMinRTO {
		t.Errorf("after quick answers a query waits %v before it is sent again, want %v", got, 5*DefaultMinRTO)
	}
}
