package app

import (
	"fmt"
	"net/netip"
	"time"

	"dht/wire"
)

// A walk is a query sent into the ring, waiting for its answer. The
// server's part of a query-dht is one exchange at a time, like every
// request; once the query is sent into the ring, the command is over for
// the input: a query-dht typed next (with its Long Name on its line) may
// start while up to maxWalks queries walk, so a script that pipes queries
// has several in the ring at once. Every other command waits until each
// walk is answered or given up. Results are printed in the order their
// commands were typed: an answer that comes before those of the queries
// typed earlier waits for them.
type walk struct {
	q    *queryOp // nil: a result with no walk of its own, waiting its turn
	res  Result
	done bool
}

// maxWalks bounds the queries one peer has in the ring at once.
const maxWalks = 32

func (w *walk) needs() []netip.AddrPort { return w.q.waitOn[:] }

func (w *walk) sent(_ *Peer, m wire.Message) bool {
	q, ok := m.(wire.Query)
	return ok && q.ReqID == w.q.reqID
}

// mayStart reports whether the next line may start now, the command in
// progress being over: with walks in the ring, only a query-dht with its
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

// walkOf is the walk in the ring whose query has id reqID.
func (p *Peer) walkOf(reqID uint32) (*walk, bool) {
	for _, w := range p.walks {
		if !w.done && w.q != nil && w.q.reqID == reqID {
			return w, true
		}
	}
	return nil, false
}

// walked ends w with r, prints every result whose turn has come, and lets
// the input go on.
func (p *Peer) walked(now time.Time, w *walk, r Result, out []Output) []Output {
	w.res, w.done = r, true
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
		if !w.done && w.q != nil {
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
		if g, ok := opFailure(p, w, gone); ok {
			out = p.walked(now, w, resultFailed(CmdQueryDHT, fmt.Sprintf("%s sent to %s was not acknowledged within %s", g.msg.Type(), g.to, p.link.cfg.GiveUp)), out)
			i = -1 // the walks ahead may have gone: look again from the first
			continue
		}
		if !w.q.tries.due(now) {
			continue
		}
		var ok bool
		if out, ok = w.q.retry(p, now, out); !ok {
			out = p.walked(now, w, resultFailed(CmdQueryDHT, fmt.Sprintf("no answer from the ring within %s", p.queryRetry.GiveUp)), out)
			i = -1
			continue
		}
		p.holdWalks(now, w)
	}
	return out
}

// holdWalks: w's answer is late, so the ring is slower than measured (a
// ring busy with many queries queues them): the other walks still on their
// first try, sent about when w was, are given w's new timeout before they
// go again, as TCP retransmits only its oldest segment. Each walk sent
// again is a whole walk more, reliably, hop by hop, on a ring that is
// already late.
func (p *Peer) holdWalks(now time.Time, w *walk) {
	until := now.Add(w.q.tries.rto)
	for _, o := range p.walks {
		if o != w && !o.done && o.q != nil && o.q.tries.sent == 1 && o.q.tries.next.Before(until) {
			o.q.tries.next = until
		}
	}
}
