package app

import (
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strconv"
	"time"

	"dht/wire"
)

// A walk is a query-dht typed with its Long Name, from its request to the
// server to the ring's answer. It is over for the input as soon as it is
// asked: the next line may start at once if it is such a query-dht too,
// while up to maxWalks walk, so a script that pipes queries has several
// asked of the server and several in the ring at once. Every other command
// waits until each walk is answered or given up. Results are printed in
// the order their commands were typed: an answer that comes before those
// of the queries typed earlier waits for them.
//
// A walk's request is answered like any other, but it is not sent again
// as it was if no reply comes: it is asked again as a new request (a new
// id and sequence number). The server takes a user's requests only in the
// order of their sequence numbers and keeps the reply to the last, so a
// retransmission of a request it has since seen the next of would be
// dropped as a replay; a query-dht changes nothing at the server, so
// asking it again is safe.
type walk struct {
	q    *queryOp // nil: a result with no walk of its own, waiting its turn
	res  Result
	done bool
}

// maxWalks bounds the queries one peer has asked of the server or in the
// ring at once.
const maxWalks = 32

// mayStart reports whether the next line may start now, the command in
// progress being over: with walks going, only a query-dht with its
// Long Name. The line is parsed once (head), however often it is asked.
func (p *Peer) mayStart() bool {
	if len(p.walks) == 0 {
		return true
	}
	if len(p.walks) >= maxWalks || len(p.lines[0]) > MaxInputLine {
		return false // a line too long waits, and is refused in its turn
	}
	if !p.headRead {
		p.head, p.headRead = parseCommand(p.lines[0]), true
	}
	c := &p.head
	return c.usageReason == "" && c.cmd == CmdQueryDHT && c.longName != ""
}

// emit prints r, the result of the command that was in progress, after
// the results of the walks typed before it.
func (p *Peer) emit(out []Output, r Result) []Output {
	if len(p.walks) == 0 {
		return append(out, r)
	}
	p.walks = append(p.walks, &walk{res: r, done: true})
	return out
}

// askAhead starts a query-dht typed with its Long Name: a walk, asking the
// server, after which the input goes on.
func (p *Peer) askAhead(now time.Time, out []Output, msg wire.Message, longName string) []Output {
	o := &queryOp{longName: longName}
	p.walks = append(p.walks, &walk{q: o})
	out = p.ask(now, out, &o.rq, CmdQueryDHT, msg)
	o.rq.tries.capWalkAsk(now)
	return out
}

// maxWalkAskWait caps how long a walk's query-dht waits for the server's
// reply before it is asked again as a new request. The server's round
// trip is measured on replies to earlier asks too, and a server stopped
// for seconds, then answering the asks that waited in its socket, leaves
// the estimate at seconds: a new ask whose datagram was lost waited 4 to
// 8 s, and the query failed 'no answer from the server within 10s' though
// the server answered every other request within a millisecond (a chaos
// run at 15% loss, server stopped 4.5 s). A query-dht changes nothing at
// the server, so asking again sooner costs a datagram; a reply to an
// earlier ask still answers the walk.
const maxWalkAskWait = time.Second

// capWalkAsk holds the wait of a walk's request, just sent, to
// maxWalkAskWait.
func (t *tries) capWalkAsk(now time.Time) {
	if t.rto > maxWalkAskWait {
		// Never later than next: tries.again may have held it to the
		// exchange's give-up, which comes sooner.
		t.rto = maxWalkAskWait
		if c := now.Add(maxWalkAskWait); c.Before(t.next) {
			t.next = c
		}
	}
}

// walkAnswered: the server answered w's query-dht; on SUCCESS the query
// goes into the ring.
func (p *Peer) walkAnswered(now time.Time, w *walk, r wire.Reply) []Output {
	if !r.OK {
		return p.walked(now, w, resultFailed(CmdQueryDHT, p.notKnown(r.Reason)), nil)
	}
	if why := w.q.named(r, p.self.Addr); why != "" {
		return p.walked(now, w, resultFailed(CmdQueryDHT, why), nil)
	}
	if w.q.reasks > 0 {
		// A reply read after a stall of this process's own, before any
		// Tick (the late guard reads the socket first): the stall is
		// spared as it is when a Tick comes first.
		w.q.spareStall(p, now)
	}
	return w.q.send(p, now, nil)
}

// walkOf is the walk whose query has id reqID: the one in the ring now, or
// one it went with before its querier asked the server again (keyOf).
func (p *Peer) walkOf(reqID uint32) (*walk, bool) {
	for _, w := range p.walks {
		if !w.done && w.q != nil {
			if _, ok := w.q.keyOf(reqID); ok {
				return w, true
			}
		}
	}
	return nil, false
}

// keyOf is the token an answer to reqID is signed with, if reqID is this
// query's: the one in the ring now, or one it went with before the server
// was asked again (the node, slow but not gone, may answer it still).
func (o *queryOp) keyOf(reqID uint32) (wire.Key, bool) {
	if o.stage == queryWalking && o.reqID == reqID {
		return o.sg.key, true
	}
	for _, b := range o.before {
		if b.id == reqID {
			return b.key, true
		}
	}
	return wire.Key{}, false
}

// walked ends w with r, prints every result whose turn has come, and lets
// the input go on.
func (p *Peer) walked(now time.Time, w *walk, r Result, out []Output) []Output {
	w.res, w.done = r, true
	if o := w.q; o != nil && o.rq.live {
		// Asked again, the server's reply may still come: a copy of the
		// network's, not a warning.
		key := p.replyKey()
		p.replied.add(o.rq.id, key)
		for _, a := range o.rq.asked {
			p.replied.add(a.id, key)
		}
		o.rq.live = false
	}
	if o := w.q; o != nil && o.copies > 0 {
		// Its copy sent reliably, still in flight, would go on for the
		// link's whole give-up to a node that may drop it (one in another
		// ring since), and its give-up would end every other message in
		// flight to that node.
		out = append(out, p.link.cancelWhereTo(now, func(to netip.AddrPort, m *outMsg) bool { return to == o.to && o.isCopy(m.msg) })...)
	}
	n := 0
	for n < len(p.walks) && p.walks[n].done {
		out = append(out, p.walks[n].res)
		p.walks[n] = nil
		n++
	}
	p.walks = p.walks[n:]
	if len(p.walks) == 0 {
		p.walks = nil
	}
	return p.advance(now, out)
}

// walksDue is when the earliest walk's retry is due.
func (p *Peer) walksDue(earlier func(time.Time)) {
	for _, w := range p.walks {
		switch {
		case w.done || w.q == nil:
		case w.q.stage == queryAsking:
			earlier(w.q.rq.tries.next)
			if w.q.reasks > 0 {
				earlier(w.q.tries.firstSent.Add(p.queryRetry.GiveUp))
			}
		default:
			earlier(w.q.tries.next)
		}
	}
}

// tickWalks retries the walks due, and ends those given up: by the query's
// limit, or by the link for the query sent reliably.
func (p *Peer) tickWalks(now time.Time, gone []failure, out []Output) []Output {
	for i := 0; i < len(p.walks); i++ {
		w := p.walks[i]
		if w.done || w.q == nil {
			continue
		}
		if g, ok := walkFailure(w, gone); ok {
			out = p.walked(now, w, w.q.failed(w.q.unacked(p, now, g)), out)
			i = -1 // the walks ahead may have gone: look again from the first
			continue
		}
		var ok bool
		if w.q.stage == queryAsking {
			if w.q.reasks > 0 {
				w.q.spareStall(p, now)
			}
			if w.q.reasks > 0 && now.Sub(w.q.tries.firstSent) >= p.queryRetry.GiveUp {
				// Asked again for a node, the query keeps its limit.
				out = p.walked(now, w, w.q.failed(fmt.Sprintf("no answer within %s: %s, the node the server named, never acknowledged the query, and the server, asked again for a node, has not answered", p.queryRetry.GiveUp, w.q.who())), out)
				i = -1
				continue
			}
			if out, ok = p.askAgain(now, w, out); !ok {
				i = -1
			}
			continue
		}
		if !w.q.tries.due(now) {
			continue
		}
		if silent, ok := w.q.unheard(p, now); ok {
			out = p.reask(now, w, silent, out)
			continue
		}
		if out, ok = w.q.retry(p, now, out); !ok {
			out = p.walked(now, w, w.q.failed(w.q.unanswered(p)), out)
			i = -1
			continue
		}
		p.holdWalks(now, w)
	}
	return out
}

// walkFailure is w's query sent reliably, if the link gave up on it. Not
// another message to the same node: a copy of a walk ended long since,
// which a node now in another ring drops unacknowledged, says nothing of
// this walk's (a chaos review: one such copy given up failed six fresh
// queries to a live node at once, as never acknowledged).
func walkFailure(w *walk, gone []failure) (failure, bool) {
	for _, g := range gone {
		if g.to == w.q.to && w.q.isCopy(g.msg) {
			return g, true
		}
	}
	return failure{}, false
}

// holdWalks: w's answer is late, so the ring is slower than measured (a
// ring busy with many queries queues them): the other walks still on their
// first try, sent about when w was, are given w's new timeout before they
// go again, as TCP retransmits only its oldest segment. Each walk sent
// again is a whole walk more, reliably, hop by hop, on a ring that is
// already late. A walk is held so once: held again by each walk late
// after it, the last of 32 typed ahead went again only after 31 timeouts,
// past its limit, and failed having gone once (a chaos run at 30% loss).
func (p *Peer) holdWalks(now time.Time, w *walk) {
	until := now.Add(w.q.tries.rto)
	for _, o := range p.walks {
		if o != w && !o.done && o.q != nil && !o.q.held && o.q.tries.sent == 1 && o.q.tries.next.Before(until) {
			o.q.tries.next, o.q.held = until, true
		}
	}
}

// reaskAfter is how long the node the server named may leave the query's
// copy sent reliably unacknowledged before the querier asks the server for
// a node again, doubled each time it has asked, at most maxReasks times
// within the query's limit. A node that left the ring, or whose ring was
// torn down, since the server named it drops the query: the querier
// waited the whole --query-timeout and failed, where the server, asked
// again, names a member of the ring as it is now, or says that no DHT
// exists (a chaos review: every query typed during a leave or a teardown
// that went to the node leaving failed 10 s later). A node that is only
// slow to acknowledge costs a request to the server and a walk from
// another node.
const (
	reaskAfter = time.Second
	maxReasks  = 3
)

// unheard reports that the node the server named has left the query's
// copy sent reliably unacknowledged for reaskAfter (doubled each time
// asked), within the query's limit, and for how long: a copy still queued
// behind a full window (the querier is the node's left neighbour, busy
// with a store round) has not gone, and says nothing of the node.
func (o *queryOp) unheard(p *Peer, now time.Time) (time.Duration, bool) {
	if o.reasks >= maxReasks || now.Sub(o.tries.firstSent) >= p.queryRetry.GiveUp {
		return 0, false
	}
	since, ok := p.link.sentSince(o.to, o.isCopy)
	return now.Sub(since), ok && now.Sub(since) >= reaskAfter<<o.reasks
}

// spareStall: while the server is asked again, a Tick late past what was
// due (the request's retry, or the query's limit) is this process's own
// stall, which the query's limit spares as tries.again does.
func (o *queryOp) spareStall(p *Peer, now time.Time) {
	due := o.tries.firstSent.Add(p.queryRetry.GiveUp)
	if o.rq.tries.next.Before(due) { // the last ask's retry (its reply may have just come)
		due = o.rq.tries.next
	}
	if late := min(now.Sub(due), p.queryRetry.GiveUp-o.tries.stalled); late > lateTick {
		o.tries.firstSent = o.tries.firstSent.Add(late)
		o.tries.stalled += late
	}
}

// reask asks the server again for a node to send w's query to, the copy
// to the silent node cancelled; the walk keeps its limit (queryOp.send).
func (p *Peer) reask(now time.Time, w *walk, silent time.Duration, out []Output) []Output {
	o := w.q
	out = append(out, p.link.cancelWhereTo(now, func(to netip.AddrPort, m *outMsg) bool { return to == o.to && o.isCopy(m.msg) })...)
	out = append(out, Event{Msg: "query-dht asks the server again: the node it named has not acknowledged the query (it may have left the ring)", Level: slog.LevelInfo,
		Attrs: []slog.Attr{slog.String("long_name", o.longName), attrAddr(o.to), slog.Duration("unacknowledged", silent)}})
	// The silent node may be only slow: its answer to this request id is
	// still taken while the walk goes on (keyOf, o.before), and, once the
	// walk has ended (answered or failed), dropped quietly as a second
	// answer is (answerAgain).
	p.answered.add(o.reqID, o.sg.key)
	o.reasks++
	o.before = append(o.before, sentAs{id: o.reqID, key: o.sg.key})
	o.stage = queryAsking
	out = p.ask(now, out, &o.rq, CmdQueryDHT, o.rq.msg)
	o.rq.tries.capWalkAsk(now)
	return out
}

// askAgain asks the server again for a walk whose reply is due, as a new
// request; false: the server did not answer within its limit, and the walk
// ended with a FAILURE.
func (p *Peer) askAgain(now time.Time, w *walk, out []Output) ([]Output, bool) {
	rq := &w.q.rq
	if !rq.live || !rq.tries.due(now) {
		return out, true
	}
	if !rq.tries.again(now, &p.serverRetry, &p.serverRTT) {
		return p.walked(now, w, w.q.failed(p.serverSilent(now)), out), false
	}
	rq.tries.capWalkAsk(now)
	was := rq.id
	if len(rq.asked) == maxAsked {
		rq.asked = rq.asked[1:]
	}
	rq.asked = append(rq.asked, askedAs{id: was, at: rq.sentAt})
	rq.id, rq.sg, rq.sentAt = p.requestID(), p.requestSigner(now), now
	p.stats.Sent++
	p.stats.Retransmits++
	out = append(out, debugEvent("query-dht asked again as a new request: no reply", slog.Uint64("id", uint64(was)), slog.Uint64("new_id", uint64(rq.id))))
	return append(out, rq.sg.send(p.cfg.Server, rq.id, 0, rq.msg)), true
}

// answeredIDs are the ids of the last messages answered here (queries
// answered, requests the server answered, registers challenged), with the
// key that signed each answer (zero where none did: a challenge), oldest
// overwritten first: a copy of an answer, signed with its key, is what a
// network that duplicates or delays does, no warning.
type answeredIDs struct {
	ids  [answeredKept]uint32
	keys [answeredKept]wire.Key
	n    int // how many were ever added
}

// answeredKept is how many answers a peer remembers: a querier typing
// ahead gets a thousand answers a second and more, and a copy may come a
// few hundred milliseconds behind its first (a chaos run: 64 were
// forgotten in 182 ms, and the copy warned).
const answeredKept = 512

func (a *answeredIDs) add(id uint32, key wire.Key) {
	i := a.n % len(a.ids)
	a.ids[i], a.keys[i] = id, key
	a.n++
}

// has reports whether id is one of the last answered.
func (a *answeredIDs) has(id uint32) bool {
	return id != 0 && slices.Contains(a.ids[:min(a.n, len(a.ids))], id)
}

// key is the key that signed the answer to id, if id is one of the last
// answered with a signed answer.
func (a *answeredIDs) key(id uint32) (wire.Key, bool) {
	for i := range min(a.n, len(a.ids)) {
		if id != 0 && a.ids[i] == id && !a.keys[i].IsZero() {
			return a.keys[i], true
		}
	}
	return wire.Key{}, false
}

// failed is the FAILURE of a query given up (unanswered, unacknowledged,
// or the server silent), naming its Long Name as a "not found" does: of
// 241 queries typed ahead, the one that failed is known without counting
// lines. A refusal by the server is not named: its reason is the DHT's.
func (o *queryOp) failed(why string) Result {
	if o.longName != "" {
		why = strconv.Quote(o.longName) + ": " + why
	}
	return resultFailed(CmdQueryDHT, why)
}
