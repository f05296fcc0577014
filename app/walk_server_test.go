package app

import (
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"

	"dht/wire"
)

// A server stopped for 5 s (SIGSTOP), then answering the query-dht
// requests that waited in its socket, does not leave the querier's timeout
// for the server at seconds: a new query-dht whose datagram is lost is
// sent again well within the query's 10 s, not only after 8 s (a chaos run
// at 15% loss, server stopped 4.5 s: eleven queries failed 'no answer from
// the server within 10s' though the server, running again, answered every
// other request within a millisecond).
func TestAServerStallDoesNotHoldANewAskBackForSeconds(t *testing.T) {
	q := newQuerier(t)
	var first []uint32
	for i := range 20 {
		asks, _ := q.sent(q.p.Input(q.now, fmt.Sprintf("query-dht erin Name%d", i)))
		first = append(first, asks...)
	}
	if len(first) != 20 {
		t.Fatalf("20 queries typed: %d asked", len(first))
	}
	start := q.now
	for { // the server is stopped: every ask goes unanswered for 5 s
		at, ok := q.p.Pending()
		if !ok || at.Sub(start) >= 5*time.Second {
			break
		}
		q.now = at
		a, _ := q.sent(q.p.Tick(q.now))
		first = append(first, a...)
	}
	q.now = start.Add(5 * time.Second)
	walks := map[string]uint32{}
	for _, id := range first { // running again, it answers every ask that waited, in order
		_, w := q.sent(q.reply(id))
		maps.Copy(walks, w)
	}
	if len(walks) != 20 {
		t.Fatalf("%d of 20 queries went into the ring", len(walks))
	}
	for name, id := range walks { // and the ring answers them all
		q.answer(id, name, true)
	}
	rto := q.p.serverRTT.first(&q.p.serverRetry)
	t.Logf("srtt %v rttvar %v: a new ask's timeout %v", q.p.serverRTT.srtt, q.p.serverRTT.rttvar, rto)
	// A new query, its ask lost: when is it asked again?
	if asks, _ := q.sent(q.p.Input(q.now, "query-dht erin Aruba")); len(asks) != 1 {
		t.Fatalf("the new query asked %d times", len(asks))
	}
	asked := q.now
	for {
		at, ok := q.p.Pending()
		if !ok {
			t.Fatal("no deadline")
		}
		q.now = at
		if q.now.Sub(asked) > 10*time.Second {
			t.Fatalf("not asked again within 10s")
		}
		out := q.p.Tick(q.now)
		for _, o := range out {
			if s, ok := o.(Send); ok {
				if _, ok := s.Msg.(wire.QueryDHT); ok {
					if d := q.now.Sub(asked); d > 2*time.Second {
						t.Fatalf("the lost ask was sent again only after %v (the server answers in ms now)", d)
					}
					return
				}
			}
		}
		for _, l := range printed(out) {
			if strings.Contains(l, "Aruba") {
				t.Fatalf("printed %q before asking again", l)
			}
		}
	}
}

// Queries typed ahead at a server that answers nothing (down, or stopped)
// back off as every request does, to ServerMaxRTO: 32 of them asked the
// server again every 100 ms each, a new id each time, and a server
// stopped for 8 s read 2,112 of them, all answered when it ran again (a
// chaos review).
func TestQueriesAtASilentServerBackOff(t *testing.T) {
	q := newQuerier(t)
	for i := range 32 {
		q.sent(q.p.Input(q.now, fmt.Sprintf("query-dht erin Name %d", i)))
	}
	start, asks := q.now, 0
	for {
		at, ok := q.p.Pending()
		if !ok || at.Sub(start) > 8*time.Second {
			break
		}
		q.now = at
		a, _ := q.sent(q.p.Tick(q.now))
		asks += len(a)
	}
	// Each: 30, 60, 120, 240, 480, 960 ms, then a second apart.
	if per := float64(asks) / 32; per > 14 {
		t.Fatalf("%d query-dhts in 8 s to a server that answers nothing, %.1f a query, want about 12", asks, per)
	}
}

// A walk's query-dht to a server that answers nothing fails at the
// server's limit, not up to maxWalkAskWait later: the hold of an ask's
// wait to a second put the retry given up at the limit back past it (a
// code review: "no answer within 10s" came at 10.6 s).
func TestAWalkAskIsGivenUpAtItsLimit(t *testing.T) {
	q := newQuerier(t)
	q.p.serverRTT.sample(200 * time.Millisecond) // a first timeout of 600 ms
	if asks, _ := q.sent(q.p.Input(q.now, "query-dht erin Aruba")); len(asks) != 1 {
		t.Fatalf("asked %d times", len(asks))
	}
	asked := q.now
	limit := q.p.serverRetry.GiveUp
	for q.now.Sub(asked) <= 3*limit {
		at, ok := q.p.Pending()
		if !ok {
			t.Fatal("no deadline, no failure")
		}
		q.now = at
		if got := printed(q.p.Tick(q.now)); len(got) > 0 {
			if d := q.now.Sub(asked); d != limit {
				t.Fatalf("the walk failed %v after its ask, want at the server's limit %v: %q", d, limit, got)
			}
			return
		}
	}
	t.Fatal("never failed")
}
