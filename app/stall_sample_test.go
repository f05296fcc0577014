package app

import (
	"strings"
	"testing"
	"time"

	"dht/wire"
)

// A query's answer that came at once but was read after the querier's own
// stall (SIGSTOP 4 s) is no round trip of the ring's: sampled, it set the
// query's first timeout to 12 s, and the next query's first attempt, lost,
// was never sent again before its 10 s limit (a code review; the link's
// acks were spared so already: TestARoundTripOverOwnStallIsNoSample).
func TestAQueryAnswerReadAfterOwnStallIsNoSample(t *testing.T) {
	q := newQuerier(t)
	asks, _ := q.sent(q.p.Input(q.now, "query-dht erin Aruba"))
	_, walks := q.replyAll(asks)
	q.now = q.now.Add(4 * time.Second) // stopped; the answer waited in the socket
	q.answer(walks["Aruba"], "Aruba", true)
	asks, _ = q.sent(q.p.Input(q.now, "query-dht erin Bahamas"))
	if _, walks = q.replyAll(asks); len(walks) != 1 {
		t.Fatalf("walks %v", walks)
	}
	start := q.now // its first attempt is lost
	var resent time.Duration
	got := q.tickUntilPrinted(func(s Send) {
		if _, ok := s.Msg.(wire.Query); ok && resent == 0 {
			resent = q.now.Sub(start)
		}
	})
	if resent == 0 || resent > 2*time.Second {
		t.Fatalf("a lost first attempt was sent again after %v (printed %q after %v); the ring's estimate: srtt %v, rttvar %v",
			resent, strings.Join(got, "; "), q.now.Sub(start), q.p.queryRTT.srtt, q.p.queryRTT.rttvar)
	}
}

// The same for the server's round trip: a reply read after a 4 s stall of
// the peer's own set the server's timeout to 12 s, and the next request
// (not a walk's, whose wait is held to a second), lost, was not sent
// again before the server's give-up (a code review).
func TestAServerReplyReadAfterOwnStallIsNoSample(t *testing.T) {
	q := newQuerier(t)
	asks, _ := q.sent(q.p.Input(q.now, "query-dht erin"))
	if len(asks) != 1 {
		t.Fatalf("asks %v", asks)
	}
	q.now = q.now.Add(4 * time.Second) // stopped; the reply waited in the socket
	q.reply(asks[0])
	q.p.Input(q.now, "Aruba")
	q.answer(q.p.walks[0].q.reqID, "Aruba", true)
	asks, _ = q.sent(q.p.Input(q.now, "query-dht erin"))
	if len(asks) != 1 {
		t.Fatalf("asks %v", asks)
	}
	start := q.now // lost
	for {
		at, ok := q.p.Pending()
		if !ok {
			t.Fatal("no deadline while a request waits")
		}
		q.now = at
		out := q.p.Tick(q.now)
		if a, _ := q.sent(out); len(a) > 0 {
			if d := q.now.Sub(start); d > 2*time.Second {
				t.Fatalf("a lost request was sent again after %v; the server's estimate: srtt %v, rttvar %v", d, q.p.serverRTT.srtt, q.p.serverRTT.rttvar)
			}
			return
		}
		if got := printed(out); len(got) > 0 {
			t.Fatalf("after %v, not asked again: %v", q.now.Sub(start), got)
		}
	}
}
