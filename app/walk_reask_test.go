package app

import (
	"log/slog"
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

// bob, slow (not gone), answers the query asked before the querier
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

// the same answer, once the server named a node again and the query
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

// the server, asked again, answers after the query's limit ended the
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

// the wait note after a re-ask counts from the query's first attempt
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

// the process stalls (SIGSTOP, starved of CPU) while it asks the
// server again: its own stall is not the server's silence. Every other
// wait (the query's retries, a request to the server) spares it; this one
// fails at once, blaming the server, which never had a second chance.
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

// with a query limit of about 1 s the querier asks the server again
// after the limit has passed, and the failure that follows at once blames
// the server, which had no time to answer.
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

// an ack that names first a message
// acknowledged before and then, in More, a fresh one is dropped whole at a
// querier (no ring key to check it with) as "ack again": the fresh ack is
// lost, and its query's copy goes again.
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
