package app

import (
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	"dht/wire"
)

// loudEvents is every event of out at the warning level or above.
func loudEvents(out []Output) []string {
	var l []string
	for _, o := range out {
		if e, ok := o.(Event); ok && e.Level >= slog.LevelWarn {
			l = append(l, e.Msg)
		}
	}
	return l
}

// Bob, slow (not gone), answers the query asked before the querier
// asked the server again; the answer comes while the server is being asked.
// It is the answer to this very query, signed with its token: taken, not a
// warning and thrown away.
func TestAnAnswerToTheIDBeforeAReaskWhileAskingIsTaken(t *testing.T) {
	q := newQuerier(t)
	id, _ := q.reasked()
	old := q.p.walks[0].q.reqID
	out := q.answer(old, "Aruba", true)
	if l := loudEvents(out); len(l) > 0 {
		t.Errorf("the answer to the query's id before the re-ask warned: %q", l)
	}
	if got := printed(out); len(got) != 1 || got[0] != "query-dht found Aruba" {
		t.Errorf("the answer to the query's id before the re-ask printed %q; want it taken", got)
	}
	// The server's reply to the re-ask, which comes after, is a copy.
	if l := loudEvents(q.reply(id)); len(l) > 0 {
		t.Errorf("the server's reply to the re-ask, after the answer: %q", l)
	}
}

// The same answer, once the server named a node again and the query
// went there with a new id.
func TestAnAnswerToTheIDBeforeAReaskAfterTheResendIsTaken(t *testing.T) {
	q := newQuerier(t)
	id, _ := q.reasked()
	old := q.p.walks[0].q.reqID
	q.reply(id) // bob again
	if q.p.walks[0].q.reqID == old {
		t.Fatal("no new id")
	}
	out := q.answer(old, "Aruba", true)
	if l := loudEvents(out); len(l) > 0 {
		t.Errorf("the answer to the query's id before the re-ask warned: %q", l)
	}
}

// The server, asked again, answers after the query's limit ended the
// walk (its limit runs from the first attempt, so the server may have had
// as little as ~3 s): its late reply is a network's doing, no warning.
func TestTheReplyToAReaskAfterTheLimitIsQuiet(t *testing.T) {
	q := newQuerier(t)
	id, _ := q.reasked()
	got := q.tickUntilPrinted(func(s Send) {
		if _, ok := s.Msg.(wire.QueryDHT); ok {
			id = s.ID // the server's reply to the last request asked
		}
	})
	if len(got) != 1 || !strings.HasPrefix(got[0], "query-dht FAILURE") {
		t.Fatalf("printed %q", got)
	}
	q.now = q.now.Add(50 * time.Millisecond)
	out := q.reply(id)
	if l := loudEvents(out); len(l) > 0 {
		t.Errorf("the server's late reply to the re-ask warned: %q", l)
	}
}

// The wait note after a re-ask counts from the query's first attempt
// and says when the query gives up (its limit), not the server's give-up
// counted from the re-ask.
func TestTheWaitNoteAfterAReaskCountsFromTheFirstAttempt(t *testing.T) {
	q := newQuerier(t)
	q.p.queryRetry.GiveUp = 5 * time.Second
	start := q.now
	q.reasked()
	reaskAt := q.now
	var note string
	var at time.Time
	for note == "" {
		t0, ok := q.p.Pending()
		if !ok {
			t.Fatal("nothing pending")
		}
		q.now = t0
		out := q.p.Tick(q.now)
		for _, o := range out {
			if n, ok := o.(Notice); ok && note == "" {
				note, at = n.Line, q.now
			}
		}
		if got := printed(out); len(got) > 0 {
			t.Fatalf("printed %q before any note", got)
		}
	}
	t.Logf("re-asked %v after the start; note %v after the start: %s", reaskAt.Sub(start), at.Sub(start), note)
	so := roundWait(at.Sub(start))
	left := roundWait(start.Add(q.p.queryRetry.GiveUp).Sub(at))
	if !strings.Contains(note, "for "+so.String()+" so far") || !strings.Contains(note, "gives up in "+left.String()) {
		t.Fatalf("note %q; want 'for %v so far' and 'gives up in %v'", note, so, left)
	}
}

// The process stalls (SIGSTOP, starved of CPU) while it asks the server
// again: its own stall is not the server's silence, and the query's limit
// spares it as every other wait does (the query's retries, a request to
// the server). It failed at once, blaming the server, which never had a
// second chance (a code review).
func TestAStallWhileReaskingIsSpared(t *testing.T) {
	q := newQuerier(t)
	q.reasked()
	q.now = q.now.Add(15 * time.Second) // stopped for 15 s
	var printedAny []string
	asked := false
	for range 5 {
		out := q.p.Tick(q.now)
		printedAny = append(printedAny, printed(out)...)
		for _, o := range out {
			if s, ok := o.(Send); ok {
				if _, ok := s.Msg.(wire.QueryDHT); ok {
					asked = true
				}
			}
		}
		if t0, ok := q.p.Pending(); ok && t0.After(q.now) {
			q.now = t0
		} else {
			q.now = q.now.Add(30 * time.Millisecond)
		}
	}
	if len(printedAny) > 0 || !asked {
		t.Fatalf("after a stall of its own while asking the server again: printed %q, asked again %v; want nothing printed, the request sent again", printedAny, asked)
	}
}

// The same stall, with the server's reply to the new ask waiting in the
// socket: the late guard reads it before any Tick, and the stall is
// spared all the same. Read first, it was counted against the query's
// limit: the query failed 10 s after it began, 5 s of them stopped,
// against 15 s when a Tick came first (a code review).
func TestAStallWhileReaskingIsSparedWhenTheReplyIsReadFirst(t *testing.T) {
	failAt := func(replyFirst bool) time.Duration {
		q := newQuerier(t)
		start := q.now
		id, _ := q.reasked()
		q.now = q.now.Add(5 * time.Second) // stopped 5 s; the reply waited in the socket
		if !replyFirst {
			q.p.Tick(q.now) // held by the late guard
			q.now = q.now.Add(drainWait)
			q.p.Tick(q.now)
		}
		q.reply(id)
		q.tickUntilPrinted(func(Send) {}) // the node named stays silent
		return q.now.Sub(start)
	}
	first, after := failAt(true), failAt(false)
	if first < after-time.Second {
		t.Fatalf("the query failed %v after it began with the reply read first, %v with a Tick first: the stall was spared only after a Tick", first, after)
	}
}

// Past the query's limit the querier does not ask the server again: with
// a limit of about 1 s it did, and the failure that followed at once
// blamed the server, which had no time to answer (a code review).
func TestNoReaskPastTheLimit(t *testing.T) {
	q := newQuerier(t)
	q.p.queryRetry.GiveUp = time.Second
	start := q.now
	asks, _ := q.sent(q.p.Input(q.now, "query-dht erin Aruba"))
	q.reply(asks[0])
	got := q.tickUntilPrinted(func(s Send) {
		if _, ok := s.Msg.(wire.QueryDHT); ok {
			t.Errorf("asked the server again %v after the query went, past its limit %v", q.now.Sub(start), q.p.queryRetry.GiveUp)
		}
	})
	if len(got) != 1 || strings.Contains(got[0], "the server, asked again") {
		t.Fatalf("printed %q", got)
	}
}

// An ack that names first a message acknowledged before and then, in
// More, a fresh one is taken at a querier (which holds no ring key to
// check it with), checked with the fresh message's key: dropped whole as
// "ack again", the fresh ack was lost, and its query's copy went again (a
// code review).
func TestAnAckAgainWithAFreshIDInMoreIsTaken(t *testing.T) {
	q := newQuerier(t)
	tok := signer{seq: fzEpoch, key: q.token, from: q.p.self.Addr}
	q.p.setRing(0, wire.Key{}) // a Free querier: no ring key
	var ids []uint32
	for i, name := range []string{"Aruba", "Chile"} {
		for _, o := range q.p.link.sendSigned(q.now, q.member, wire.Query{ReqID: uint32(100 + i), Querier: q.p.self, LongName: name}, tagNone, false, tok) {
			if s, ok := o.(Send); ok {
				ids = append(ids, s.ID)
			}
		}
	}
	if len(ids) != 2 {
		t.Fatalf("sent %v", ids)
	}
	ack := func(id uint32, more ...uint32) []Output {
		h, m := signedWith(wire.Header{ID: id}, wire.Ack{More: more}, signer{seq: fzEpoch, key: q.token}, q.member, q.p.self.Addr)
		return q.p.Step(q.now, q.member, h, m)
	}
	ack(ids[0])
	out := ack(ids[0], ids[1]) // bob got a copy of the first again, and the second
	if q.p.link.pending(q.member, func(m wire.Message) bool { qq, ok := m.(wire.Query); return ok && qq.ReqID == 101 }) {
		t.Fatalf("the fresh ack in More was dropped with its copy's: %v", out)
	}
}

// A query asked again starts afresh at the node the server names next:
// none of its copies has gone there, so a failure before one does says
// that node never acknowledged it, not that it "took the query" (a code
// review: the count of copies sent to the silent node was kept).
func TestAFailureAfterAReaskDoesNotSayTheNewNodeTookIt(t *testing.T) {
	q := newQuerier(t)
	start := q.now
	id, _ := q.reasked()
	carol := netip.MustParseAddrPort("10.0.0.13:5000")
	q.now = q.now.Add(20 * time.Millisecond)
	q.p.queryRetry.GiveUp = q.now.Sub(start) + 5*time.Millisecond // the limit comes before a copy goes to carol
	r := wire.Reply{OK: true, Members: []wire.Member{{Name: "carol", Addr: carol}}, KeyEpoch: fzEpoch, Key: q.token}
	if got := printed(stepSigned(q.p, q.now, q.server, wire.Header{ID: id}, r)); len(got) > 0 {
		t.Fatalf("printed %q", got)
	}
	reliable := 0
	got := q.tickUntilPrinted(func(s Send) {
		if _, ok := s.Msg.(wire.Query); ok && s.To == carol && s.Flags&wire.FlagNoAck == 0 {
			reliable++
		}
	})
	if reliable != 0 {
		t.Fatalf("%d copies went to carol reliably: the test tests nothing", reliable)
	}
	if len(got) != 1 || strings.Contains(got[0], "which took the query") || !strings.Contains(got[0], "carol") {
		t.Fatalf("printed %q; want carol named as the node that did not answer, not as one that took the query", got)
	}
}

// A copy still queued behind a full window to the node (the querier is its
// left neighbour, busy with a store round) has not gone: it says nothing
// of the node, and the querier does not ask the server again for it.
func TestAQueuedCopyIsNoReasonToAskAgain(t *testing.T) {
	q := newQuerier(t)
	for i := range q.p.link.cfg.Window {
		q.p.link.send(q.now, q.member, wire.Query{ReqID: uint32(1000 + i), Querier: q.p.self, LongName: "Kingdom of Spain"}, tagNone, false)
	}
	asks, _ := q.sent(q.p.Input(q.now, "query-dht erin Aruba"))
	q.reply(asks[0])
	start := q.now
	for q.now.Sub(start) < 3*reaskAfter {
		at, ok := q.p.Pending()
		if !ok {
			t.Fatal("nothing pending")
		}
		q.now = at
		for _, o := range q.p.Tick(q.now) {
			if s, ok := o.(Send); ok {
				if _, ok := s.Msg.(wire.QueryDHT); ok {
					t.Fatalf("asked the server again %v after the query went, its copy queued behind a full window", q.now.Sub(start))
				}
			}
		}
	}
	if !q.p.link.pending(q.member, func(m wire.Message) bool { r, ok := m.(wire.Query); return ok && r.LongName == "Aruba" }) {
		t.Fatal("no copy of the query queued: the test tests nothing")
	}
}
