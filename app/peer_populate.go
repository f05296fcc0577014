package app

import (
	"net/netip"
	"time"

	"dht/dataset"
	"dht/wire"
)

// populate is a store round led by this peer (setup, or the rebuild of a
// leave or a join).
type populate struct {
	n       int
	round   uint32         // drawn for this round: its flush and committeds carry it
	data    dataset.Source // sent right in dataset order, but for this node's own
	next    int            // the next record of data to look at
	flushed bool
	// right: where the flush went; back: it came back round the ring;
	// done: every other node's table is on disk (the committed from right
	// came).
	right      netip.AddrPort
	back, done bool
	tell       *report // rebuild: who to tell when done
	// This node's own records: those before scanned go in the first
	// commit (which clears the table), made once the flush has left, or
	// before if a second chunk of own records needs it out; feed collects
	// the others in own and commits them ownChunk at a time once the first
	// is out.
	scanned  int
	first    []dataset.Record
	own      []dataset.Record
	firstOut bool
}

// ownChunk is the most of its own records a leader commits at once. It
// finds them as it walks the dataset, so a dataset of any size costs it
// bounded memory; for any ring the real dataset makes, they all go in one
// commit.
const ownChunk = 8192

// report is whom the leader of a rebuild tells with rebuilt that every
// record is placed, or that the rebuild failed: the user who left, or the
// one who joined.
type report struct {
	to  wire.Member
	cmd Command // CmdLeaveDHT or CmdJoinDHT: the command the rebuild ends
}

// startPopulate keeps this node's records, commits them, and starts sending
// the rest right. tell is set for a rebuild.
func (p *Peer) startPopulate(now time.Time, out []Output, data dataset.Source, tell *report) []Output {
	p.clearTable()
	pop := &populate{n: p.n, round: p.link.newID(), data: data, tell: tell}
	var own []dataset.Record
	for ; pop.scanned < data.Len() && len(own) < ownChunk; pop.scanned++ {
		if r := data.Record(pop.scanned); dataset.ID(r.Pos(), p.n) == p.id {
			own = append(own, r)
		}
	}
	p.pop = pop
	if p.n == 1 {
		out = append(out, p.persist(true, own))
		own = nil
		for i := pop.scanned; i < data.Len(); i++ {
			if own = append(own, data.Record(i)); len(own) == ownChunk || i == data.Len()-1 {
				out = append(out, p.persist(false, own))
				own = nil
			}
		}
		return append(out, p.populated(now)...)
	}
	// The stores go first, and this node commits once its flush has left:
	// a commit made earlier would keep it from reading the acks that let
	// the flush go, for as long as its disk takes, while the others
	// commit when the flush passes them. The flush cannot come back before
	// this node has committed (the runner carries out a step's outputs
	// before it reads the next datagram).
	pop.first = own
	return p.feed(now, out)
}

// firstCommit is the commit of this node's first records, which clears
// its table.
func (pop *populate) firstCommit(p *Peer, out []Output) []Output {
	pop.firstOut = true
	out = append(out, p.persist(true, pop.first))
	pop.first = nil
	return out
}

// feed sends stores right while the window has room, then the flush.
func (p *Peer) feed(now time.Time, out []Output) []Output {
	pop := p.pop
	total := pop.data.Len()
	for pop.next < total && p.link.unsent(p.right.Addr) == 0 {
		size := wire.StoreOverhead
		var recs []wire.Record
		for ; pop.next < total; pop.next++ {
			r := pop.data.Record(pop.next)
			if dataset.ID(r.Pos(), pop.n) == p.id {
				if pop.next < pop.scanned {
					continue // in the first commit
				}
				if len(pop.own) == ownChunk {
					if !pop.firstOut {
						// Bounded memory: the first commit goes now, the
						// chunk after it.
						out = pop.firstCommit(p, out)
					}
					out = append(out, p.persist(false, pop.own))
					pop.own = nil
				}
				pop.own = append(pop.own, r)
				continue
			}
			f := r.Fields()
			l := wire.RecordLen(f)
			if len(recs) > 0 && size+l > wire.MaxMessage {
				break // r goes first in the next datagram
			}
			recs = append(recs, f)
			size += l
		}
		if len(recs) > 0 {
			out = append(out, p.link.send(now, p.right.Addr, wire.Store{N: uint16(pop.n), Records: recs}, tagNone, false)...)
		}
	}
	if pop.next == total && !pop.flushed {
		pop.flushed, pop.right = true, p.right.Addr
		out = append(out, p.link.send(now, p.right.Addr, wire.Flush{Leader: p.self.Name, N: uint16(pop.n), LeaderAddr: p.self.Addr, Round: pop.round}, tagNone, true)...)
	}
	if pop.flushed && p.link.unsent(pop.right) == 0 {
		// The flush has left: commit, before it can come back (the runner
		// carries out a step's outputs before it reads the next datagram).
		if !pop.firstOut {
			out = pop.firstCommit(p, out)
		}
		if len(pop.own) > 0 {
			out = append(out, p.persist(false, pop.own))
			pop.own = nil
		}
	}
	return out
}

// popReturned: the flush came back (back), or the committed from the right
// neighbour (done). The round is over when both have: this node's own
// records were committed before it sent the flush.
func (p *Peer) popReturned(now time.Time, back, done bool) []Output {
	pop := p.pop
	if pop == nil {
		return []Output{dropped("flush for no store round of ours", netip.AddrPort{})}
	}
	pop.back = pop.back || back
	pop.done = pop.done || done
	if !pop.back || !pop.done {
		return nil
	}
	return p.populated(now)
}

// populated: the flush came back and every other node's table is on disk
// (or the ring is this node alone), so every record is committed at its
// node.
func (p *Peer) populated(now time.Time) []Output {
	pop := p.pop
	p.pop = nil
	if r := pop.tell; r != nil {
		if r.cmd == CmdJoinDHT {
			p.joining = nil // taken in: the join's part here is done
		}
		return p.link.send(now, r.to.Addr, wire.Rebuilt{OK: true, NewLeader: p.self.Name}, tagNone, false)
	}
	if h := p.healing; h != nil && h.step == healPopulating {
		return h.populated(p, now)
	}
	if o, ok := p.op.(*setupOp); ok {
		return o.populated(p, now)
	}
	return nil
}

// goneRight reports that the link gave up on the right neighbour, which
// this store round sends to.
func (pop *populate) goneRight(p *Peer, gone []failure) bool {
	for _, g := range gone {
		if g.to == p.right.Addr {
			return true
		}
	}
	return false
}
