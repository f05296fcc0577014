package app

import (
	"fmt"
	"time"
)

// A command that waits says what for, as it waits: a person at the peer
// who typed register at a server that is down, or teardown-dht in a ring
// with a stopped member, would otherwise see nothing until the command's
// limit (10 s for the server, --op-timeout for the ring), when its FAILURE
// names the cause. Once a command has waited waitNoteAfter, and again
// every waitNoteEvery, the peer writes a note (stderr, not stdout: results
// only go there) naming what it waits for and when it gives up.
const (
	waitNoteAfter = 2 * time.Second
	waitNoteEvery = 10 * time.Second
)

// waitNote is when the command op next says what it still waits for,
// once it has said it. walk: op is a query typed with its Long Name; the
// notes of those are one stream, every 10s, whichever is the oldest, so
// that a batch of queries at a server that is down, given up one after
// another, is not a note each.
type waitNote struct {
	op   operation
	next time.Time
	walk bool
}

// waiting is what a command waits for: the server's answer to rq; or,
// with rq nil, the ring's answer to query; or the end of its ring phase
// (ring). since is when that wait began; op is the command.
type waiting struct {
	op    operation
	since time.Time
	rq    *request
	query *queryOp
	ring  interface{ waited() string }
	until time.Time // if not zero, when the wait gives up (else its policy's limit from since)
}

// waitingOn says what the command in progress waits for, or, with none,
// the oldest query typed with its Long Name (a walk); false when nothing
// waits for anything a person would not expect: the next input line, the
// end of a sleep.
func (p *Peer) waitingOn() (waiting, bool) {
	if p.op == nil {
		for _, w := range p.walks {
			if !w.done && w.q != nil {
				return p.queryWaiting(w.q)
			}
		}
		return waiting{}, false
	}
	if q, ok := p.op.(*queryOp); ok {
		return p.queryWaiting(q)
	}
	if rq := p.op.asking(); rq != nil && rq.live {
		return waiting{op: p.op, since: rq.tries.firstSent, rq: rq}, true
	}
	if r, ok := p.op.(interface{ waited() string }); ok {
		if d := p.op.due(); !d.IsZero() {
			return waiting{op: p.op, since: d.Add(-p.cfg.OpTimeout), ring: r}, true // its ring phase's limit
		}
	}
	return waiting{}, false
}

// queryWaiting is what query q waits for: the server's answer to its
// query-dht, or the ring's answer.
func (p *Peer) queryWaiting(q *queryOp) (waiting, bool) {
	switch {
	case q.rq.live && q.reasks > 0:
		// Asked again for a node: the query has waited since its first
		// attempt, and gives up at its limit or the server's, the sooner.
		until := q.tries.firstSent.Add(p.queryRetry.GiveUp)
		if server := q.rq.tries.firstSent.Add(p.serverRetry.GiveUp); server.Before(until) {
			until = server
		}
		return waiting{op: q, since: q.tries.firstSent, rq: &q.rq, until: until}, true
	case q.rq.live:
		return waiting{op: q, since: q.rq.tries.firstSent, rq: &q.rq}, true
	case q.stage == queryWalking:
		return waiting{op: q, since: q.tries.firstSent, query: q}, true
	}
	return waiting{}, false
}

// waitNoteDue is when the command that waits next says what it waits for.
func (p *Peer) waitNoteDue() (time.Time, bool) {
	w, ok := p.waitingOn()
	if !ok {
		return time.Time{}, false
	}
	next := w.since.Add(waitNoteAfter)
	if (p.wait.op == w.op || p.wait.walk && w.op != p.op) && p.wait.next.After(next) {
		next = p.wait.next
	}
	return next, true
}

// noteWait appends to out, when its time has come, the note of what the
// command that waits waits for, and when it gives up.
func (p *Peer) noteWait(now time.Time, out []Output) []Output {
	next, ok := p.waitNoteDue()
	if !ok || now.Before(next) {
		return out
	}
	w, _ := p.waitingOn()
	p.wait = waitNote{op: w.op, next: now.Add(waitNoteEvery), walk: w.op != p.op}
	var what, after string
	var left time.Duration // till the wait's limit
	switch {
	case w.rq != nil:
		left = p.serverRetry.GiveUp - now.Sub(w.since)
		if !w.until.IsZero() {
			left = w.until.Sub(now)
		}
		what = fmt.Sprintf("the server at %s to answer %s (this peer gives up in %s)", p.cfg.Server, w.rq.cmd, roundWait(left))
		if refused := p.sendRefused(p.cfg.Server, w.since); refused != "" {
			after = "; " + refused
		}
	case w.query != nil:
		left = p.queryRetry.GiveUp - now.Sub(w.since)
		what = fmt.Sprintf("the answer to the query for %s, asked of %s (this peer gives up in %s, at --query-timeout %s)",
			quoteName(w.query.longName), w.query.who(), roundWait(left), p.queryRetry.GiveUp)
	default:
		left = w.op.due().Sub(now)
		// The ring phase's own limit is this peer's, not the server's
		// --op-timeout (which may end it sooner); a message its
		// destination does not acknowledge fails it at --give-up, most
		// often well before.
		what = fmt.Sprintf("%s (it fails in %s at the latest)", w.ring.waited(), roundWait(left))
		if to, m, ok := p.link.stalest(w.op.needs()); ok {
			if giveUp := p.link.cfg.GiveUp - now.Sub(m.tries.firstSent); now.Add(giveUp).Before(w.op.due()) {
				left = giveUp // the limit that comes first
				what = fmt.Sprintf("%s, and for %s to acknowledge the %s sent to it (it fails in %s, at --give-up %s)", w.ring.waited(), p.named(to), m.msg.Type(), roundWait(left), p.link.cfg.GiveUp)
			}
		}
	}
	if left < time.Second/2 {
		// The limit has come (a note every 10s from 2s falls on a
		// give-up of 12s): the FAILURE follows at once, and says it
		// better than "in 0s". The stream skips this note (p.wait is
		// set).
		return out
	}
	if n := p.walking() - 1; n > 0 && w.op != p.op {
		what += fmt.Sprintf("; %d more queries wait behind it", n)
	}
	return append(out, Notice{Line: fmt.Sprintf("%s: waiting for %s, for %s so far%s", w.op.failing(), what, roundWait(now.Sub(w.since)), after)})
}

// walking is how many queries typed with their Long Names wait for an
// answer.
func (p *Peer) walking() (n int) {
	for _, w := range p.walks {
		if !w.done && w.q != nil {
			n++
		}
	}
	return n
}

// quoteName is a Long Name as a note shows it: quoted, cut to 80 bytes.
func quoteName(s string) string {
	if len(s) > 80 {
		s = s[:80] + "…"
	}
	return fmt.Sprintf("%q", s)
}

// roundWait is d as a person reads it: whole seconds, at least 1s.
func roundWait(d time.Duration) time.Duration {
	return max(d.Round(time.Second), time.Second)
}
