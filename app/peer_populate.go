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
	n     int
	round uint32         // drawn for this round: its flush and committed carry it
	epoch uint64         // the ring's, as its flush carries it (a broken names both)
	data  dataset.Source // the records, read by index
	// order is data's indices, the farthest node's records first and this
	// node's own last (from nonOwn on); next is the next of the others to
	// send.
	order        []int32
	nonOwn, next int
	flushed      bool
	// right: where the flush went; back: it came back round the ring;
	// done: every other node's table is on disk (the committed from right
	// came).
	right      netip.AddrPort
	back, done bool
	tell       *report // rebuild: who to tell when done
	// ownNext is the next of this node's own records (in order, from
	// nonOwn on) to commit; cleared: the first commit, which clears the
	// table, is made.
	ownNext int
	cleared bool
	// committedSent: this node's own records are committed, and the
	// committed that follows the flush round the ring has left.
	committedSent bool
}

// ownChunk is the most records a node commits at once: a leader commits
// its own ownChunk at a time, and a node commits what stores brought it
// once ownChunk wait, so that what either holds is bounded whatever the
// dataset's size. For any ring the real dataset makes, a node commits
// once.
const ownChunk = 8192

// report is whom the leader of a rebuild tells with rebuilt that every
// record is placed, or that the rebuild failed: the user who left, or the
// one who joined.
type report struct {
	to  wire.Member
	cmd Command // CmdLeaveDHT or CmdJoinDHT: the command the rebuild ends
	// epoch is that command's, as r.to knows it (the renumbered ring's,
	// the larger ring's): every rebuilt to it carries it.
	epoch uint64
}

// spreadOrder is the order a leader sends data in: grouped by owner, the
// farthest round the ring from the leader first, its own last. A store
// then mostly carries one node's records, which that node keeps whole:
// the others forward the datagrams as they came, full, rather than one a
// hop thinner each time (an eighth of every datagram would stay at each
// node of a ring of 8, and the datagrams sent in all nearly double). The
// nearest node's records leave last and go one hop, so the flush follows
// the last store round the ring sooner. nonOwn is where the leader's own
// start.
func spreadOrder(data dataset.Source, n, leader int) (order []int32, nonOwn int) {
	total := data.Len()
	dist := make([]uint8, total) // n is at most 64
	var count [wire.MaxMembers + 1]int
	for i := range total {
		d := (dataset.ID(data.Record(i).Pos(), n) - leader + n) % n
		dist[i] = uint8(d)
		count[d]++
	}
	// Farthest (n-1) first, down to 1, then the leader's own (0).
	var at [wire.MaxMembers + 1]int
	pos := 0
	for d := n - 1; d >= 1; d-- {
		at[d], pos = pos, pos+count[d]
	}
	nonOwn, at[0] = pos, pos
	order = make([]int32, total)
	for i, d := range dist {
		order[at[d]] = int32(i)
		at[d]++
	}
	return order, nonOwn
}

// startPopulate starts sending the records right, farthest owner first,
// and commits this node's own once its flush has left. tell is set for a
// rebuild.
func (p *Peer) startPopulate(now time.Time, out []Output, data dataset.Source, tell *report) []Output {
	p.clearTable()
	pop := &populate{n: p.n, round: p.link.newID(), data: data, tell: tell}
	pop.order, pop.nonOwn = spreadOrder(data, p.n, p.id)
	pop.ownNext = pop.nonOwn
	p.pop = pop
	if p.n == 1 {
		out = pop.commitOwn(p, out)
		return append(out, p.populated(now)...)
	}
	// The stores go first, and this node commits once its flush has left:
	// a commit made earlier would keep it from reading the acks that let
	// the flush go, for as long as its disk takes, while the others
	// commit when the flush passes them. The flush cannot come back before
	// this node has committed (the runner carries out a step's outputs
	// before it reads the next datagram).
	return p.feed(now, out)
}

// ownLeft is the number of this node's own records not yet committed.
func (pop *populate) ownLeft() int { return len(pop.order) - pop.ownNext }

// commitChunk commits the next ownChunk of this node's own records (the
// first commit clears its table, records or none).
func (pop *populate) commitChunk(p *Peer, out []Output) []Output {
	k := min(pop.ownLeft(), ownChunk)
	recs := make([]dataset.Record, k)
	for i, j := range pop.order[pop.ownNext : pop.ownNext+k] {
		recs[i] = pop.data.Record(int(j))
	}
	pop.ownNext += k
	out = append(out, p.persist(!pop.cleared, recs))
	pop.cleared = true
	return out
}

// commitOwn commits the rest of this node's own records, ownChunk at a
// time.
func (pop *populate) commitOwn(p *Peer, out []Output) []Output {
	for !pop.cleared || pop.ownLeft() > 0 {
		out = pop.commitChunk(p, out)
	}
	return out
}

// settle commits a chunk of this node's own records at the end of a
// turn while it keeps more than one commit takes and its flush has not
// left (the rest goes once it has): it holds no more than a chunk of
// records at a time, however many it keeps.
func (pop *populate) settle(p *Peer, out []Output) []Output {
	if pop.ownLeft() > ownChunk && !pop.flushed {
		out = pop.commitChunk(p, out)
	}
	return out
}

// feed sends stores right while the window has room, then the flush.
func (p *Peer) feed(now time.Time, out []Output) []Output {
	pop := p.pop
	for pop.next < pop.nonOwn && p.link.unsent(p.right.Addr) == 0 {
		size := wire.StoreOverhead
		var recs []wire.Record
		for ; pop.next < pop.nonOwn; pop.next++ {
			f := pop.data.Record(int(pop.order[pop.next])).Fields()
			l := wire.RecordLen(f)
			if len(recs) > 0 && size+l > wire.MaxMessage {
				break // it goes first in the next datagram
			}
			recs = append(recs, f)
			size += l
		}
		out = append(out, p.link.send(now, p.right.Addr, wire.Store{N: uint16(pop.n), Records: recs}, tagNone, false)...)
	}
	if pop.next == pop.nonOwn && !pop.flushed {
		pop.flushed, pop.right, pop.epoch = true, p.right.Addr, p.epoch
		out = append(out, p.link.send(now, p.right.Addr, wire.Flush{Leader: p.self.Name, N: uint16(pop.n), LeaderAddr: p.self.Addr, Round: pop.round, Epoch: p.epoch}, tagNone, true)...)
	}
	if pop.flushed && !pop.committedSent && !pop.flushQueued(p) {
		// The flush has left: commit, before it can come back (the runner
		// carries out a step's outputs before it reads the next datagram),
		// and send the committed after it, which each node passes on once
		// its own table is on disk.
		out = pop.commitOwn(p, out)
		pop.committedSent = true
		out = append(out, p.link.send(now, pop.right, wire.Committed{Leader: p.self.Name, Round: pop.round, Epoch: p.epoch}, tagNone, false)...)
	}
	return out
}

// flushQueued reports whether this round's flush still waits to leave for
// the right neighbour; once it has, so have the stores ahead of it. Other
// messages may wait behind it (a late flush of a replaced round, passing
// through): they do not hold this node's commit.
func (pop *populate) flushQueued(p *Peer) bool {
	return p.link.flushQueued(pop.right, p.self.Name, pop.round)
}

// popReturned: the flush came back (back), or the committed behind it
// (done). The round is over when both have: every record was received,
// and every table is on disk, this node's first.
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
	p.filling = false
	// The round is over: its flush and committed, if a copy is still
	// unacknowledged (the ack lost, its receiver restarted since, which
	// would drop it), go no further.
	out := p.link.cancelWhere(now, func(m *outMsg) bool {
		switch m := m.msg.(type) {
		case wire.Flush:
			return m.Leader == p.self.Name && m.Round == pop.round
		case wire.Committed:
			return m.Leader == p.self.Name && m.Round == pop.round
		}
		return false
	})
	if r := pop.tell; r != nil {
		if r.cmd == CmdJoinDHT {
			p.joining = nil // taken in: the join's part here is done
		}
		// The proof, for the server: this node, whom the server knows by
		// its secret, did the rebuild of this epoch for r.to.
		done := wire.Rebuilt{OK: true, NewLeader: p.self.Name, Proof: rebuiltProof(p.cred.secret, r.to.Name, p.self.Name, p.epoch), Epoch: r.epoch}
		return append(out, p.link.send(now, r.to.Addr, done, tagNone, false)...)
	}
	if h := p.healing; h != nil && h.step == healPopulating {
		return append(out, h.populated(p, now)...)
	}
	if o, ok := p.op.(*setupOp); ok {
		return append(out, o.populated(p, now)...)
	}
	return out
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
