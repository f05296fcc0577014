package app

import (
	"fmt"
	"net/netip"
	"slices"
	"time"

	"dht/dataset"
	"dht/wire"
)

// A join (docs/DESIGN.md §7, join-dht) has two parts: the joiner's command,
// joinOp, and the leader's role, joinLead. The joiner u asks the server,
// which names the ring of n, leader first; u sends join to the leader, which
// takes u in as node n, between the last node (n-1) and itself, so that no
// node changes id and the leader stays the leader:
//
//  1. a teardown keeping neighbours goes round (every table cleared);
//  2. reset-id goes round with the larger size (the others keep their ids);
//  3. reset-right {u} to the last node, set-id {n of n+1, left the last
//     node, right the leader} to u, and the leader's own left is u;
//  4. once both are acknowledged, the store round over n+1 nodes, after
//     which the leader sends u rebuilt, and u sends dht-rebuilt to the
//     server.

type joinStage uint8

const (
	joinAsking    joinStage = iota // join-dht sent to the server
	joinWaiting                    // join sent to the leader; waiting for its rebuilt
	joinReporting                  // dht-rebuilt sent to the server
)

// joinOp: join-dht, from the request to the server's answer to
// dht-rebuilt.
type joinOp struct {
	ringPhase
	rq     request
	stage  joinStage
	leader wire.Member // the leader the server named, which takes this node in
	epoch  uint64      // the join's, from the server's answer: the ring this node waits to be placed in
}

func (o *joinOp) asking() *request { return &o.rq }

func (o *joinOp) failing() Command {
	if o.stage == joinAsking {
		return CmdJoinDHT
	}
	return CmdDHTRebuilt
}

func (o *joinOp) answered(p *Peer, now time.Time, cmd Command, r wire.Reply) []Output {
	if cmd == CmdDHTRebuilt {
		m := o.rq.msg.(wire.DHTRebuilt)
		// A join keeps the leader: the line says where this node is.
		return p.finish(now, nil, Result{Cmd: CmdDHTRebuilt, OK: true, NewLeader: m.NewLeader,
			Detail: fmt.Sprintf("joined as id %d of a ring of %d, led by %s", p.id, p.n, m.NewLeader)})
	}
	// The server named the ring, leader first: ask the leader.
	out := []Output{resultOK(CmdJoinDHT)}
	o.stage = joinWaiting
	n := len(r.Members)
	if n < 1 || n >= MaxRing || slices.ContainsFunc(r.Members, func(m wire.Member) bool { return m.Addr == p.self.Addr }) {
		return p.finish(now, out, resultFailed(CmdDHTRebuilt, "the server's ring has no place for this peer"))
	}
	if r.KeyEpoch == 0 || r.Key.IsZero() {
		return p.finish(now, out, resultFailed(CmdDHTRebuilt, "the server's reply carries no ticket for the ring"))
	}
	// The ticket gives the ring's key: the join and the ring's messages to
	// this node are signed with it.
	p.setRing(r.KeyEpoch, ringKeyOf(p.cred.secret, r.KeyEpoch, wire.Tag(r.Key)))
	o.leader, o.epoch = r.Members[0], r.Epoch
	o.begin(p, now, o.leader.Addr)
	return append(out, p.link.send(now, o.leader.Addr, wire.Join{Joiner: p.self, N: uint16(n), Epoch: r.Epoch}, tagNone, false)...)
}

// rebuilt: the leader has taken this node in and placed every record, or
// could not. One sent once
// (ended: unacknowledged) comes of the server moving the ring on while the
// leader took it in (leaveOp.rebuilt).
func (o *joinOp) rebuilt(p *Peer, now time.Time, m wire.Rebuilt, ended bool) []Output {
	switch {
	case !m.OK && ended:
		return p.finish(now, nil, resultFailed(CmdDHTRebuilt, fmt.Sprintf(
			"the server ended the join (epoch %d) while the leader %s took %s in (%s): %s is Free, outside the ring, which the server heals without it or dissolved (its answers say which)",
			o.epoch, label(o.leader), p.self.Name, m.Reason, p.self.Name)))
	case !m.OK:
		return p.finish(now, nil, resultFailed(CmdDHTRebuilt, m.Reason))
	case !p.inRing:
		return p.finish(now, nil, resultFailed(CmdDHTRebuilt, fmt.Sprintf("%s reported the join done, but gave this peer no place", o.leader.Name)))
	}
	o.stage, o.ringPhase = joinReporting, ringPhase{}
	return p.ask(now, nil, &o.rq, CmdDHTRebuilt, wire.DHTRebuilt{Name: p.self.Name, NewLeader: m.NewLeader, Proof: m.Proof})
}

func (o *joinOp) due() time.Time {
	if o.stage != joinWaiting {
		return time.Time{}
	}
	return o.until
}

func (o *joinOp) expire(p *Peer, now time.Time, out []Output) []Output {
	return o.expired(p, now, out, CmdDHTRebuilt, o.waited())
}

func (o *joinOp) waited() string { return "the rebuilt of the leader " + label(o.leader) }

func (o *joinOp) sent(_ *Peer, m wire.Message) bool {
	_, ok := m.(wire.Join)
	return ok
}

// joinUndone: a join that failed before its leader reported it done leaves
// this peer outside any ring, as the server counts it (Free): the place the
// leader may have given it is forgotten, and its table emptied. Called as
// a failed joinOp finishes, whatever failed it.
func (p *Peer) joinUndone() []Output {
	if !p.inRing && !p.neighbours {
		return nil
	}
	p.clearTable()
	p.leaveRing(false)
	return []Output{p.persist(true, nil)}
}

// leadStep is how far the leader's part of a join has got.
type leadStep uint8

const (
	leadTearing     leadStep = iota // the teardown (keeping neighbours) going round
	leadRenumbering                 // reset-id going round with the larger size
	leadPlacing                     // set-id to the joiner and reset-right to the last node sent
	leadPopulating                  // the store round over the larger ring
)

// joinLead is the leader's part of a join: not a command of its user, who
// may be typing meanwhile, but a role the join message starts, as
// rebuild-dht starts a new leader's store round after a leave.
type joinLead struct {
	joiner  wire.Member
	n       int         // the ring's size before the join
	last    wire.Member // node n-1, this node's left neighbour before the join
	step    leadStep
	data    dataset.Source
	pending int       // set-id and reset-right not yet acknowledged
	until   time.Time // the op timeout bounds the whole role
	epoch   uint64    // the larger ring's
	// ringEpoch is the ring's before the join, which its teardown
	// carries (a broken names it).
	ringEpoch uint64
}

// refuseJoin says why this node cannot take the joiner in now ("" if it
// can): the join came in good faith from the joiner it names (expected
// checked that), so the joiner hears the reason at once.
func (p *Peer) refuseJoin(m wire.Join) string {
	switch {
	case p.joining != nil:
		return fmt.Sprintf("%s is already taking %s in", p.self.Name, p.joining.joiner.Name)
	case !p.inRing || p.id != 0 || !p.neighbours:
		return fmt.Sprintf("%s leads no ring", p.self.Name)
	case int(m.N) != p.n:
		return fmt.Sprintf("%s leads a ring of %d, not %d", p.self.Name, p.n, m.N)
	case p.n >= MaxRing:
		return fmt.Sprintf("the ring has %d members, the most there may be", p.n)
	case p.pop != nil:
		return fmt.Sprintf("%s is still spreading the records", p.self.Name)
	case m.Joiner.Addr == p.self.Addr || m.Joiner.Addr == p.left.Addr || m.Joiner.Addr == p.right.Addr:
		return fmt.Sprintf("%s is in the ring already", m.Joiner.Name)
	}
	return ""
}

// startJoin: a join came from the joiner. The dataset is checked first, so
// that a leader that cannot rebuild changes nothing.
func (p *Peer) startJoin(now time.Time, m wire.Join) []Output {
	if why := p.refuseJoin(m); why != "" {
		return p.link.send(now, m.Joiner.Addr, wire.Rebuilt{Reason: "the join was refused: " + why, NewLeader: p.self.Name, Epoch: m.Epoch}, tagNone, false)
	}
	data, err := p.cfg.LoadData()
	if err != nil {
		return p.joinFailed(now, m.Joiner, m.Epoch, datasetUnusable(err), false)
	}
	j := &joinLead{joiner: m.Joiner, n: p.n, last: p.left, data: data, until: now.Add(p.cfg.OpTimeout), epoch: m.Epoch, ringEpoch: p.epoch}
	p.joining = j
	if p.right.Addr == p.self.Addr {
		// A ring of one: nothing to tear down or renumber round it.
		return j.tornDown(p, now)
	}
	return p.link.send(now, p.right.Addr, wire.Teardown{Origin: p.self.Name, KeepNeighbours: true, OriginAddr: p.self.Addr, Epoch: p.epoch}, tagNone, false)
}

// tornDown: the teardown came back, every other table is cleared; this
// node clears its own, and the ring is renumbered for its larger size.
func (j *joinLead) tornDown(p *Peer, now time.Time) []Output {
	p.clearTable()
	p.inRing = false
	out := []Output{p.persist(true, nil)}
	if p.right.Addr == p.self.Addr {
		return j.renumbered(p, now, out)
	}
	j.step = leadRenumbering
	// The queries this node forwarded while the teardown went round go no
	// further: its right, torn down, drops them unacknowledged ("this peer
	// is in no DHT"), and a window of them held the reset-id back until
	// the link gave up (a chaos run: the join failed, as a query never
	// acknowledged). Their queriers ask again through the server.
	out = append(out, p.endForwards(now)...)
	return append(out, p.link.send(now, p.right.Addr, wire.ResetID{Origin: p.self.Name, ID: 1, N: uint16(j.n + 1), OriginAddr: p.self.Addr, Epoch: j.epoch}, tagNone, false)...)
}

// renumberedBack: reset-id came back, with the id the next node would
// take: the joiner's, if the ring has the n nodes the server listed.
func (j *joinLead) renumberedBack(p *Peer, now time.Time, m wire.ResetID) []Output {
	if int(m.ID) != j.n {
		return p.joinFailed(now, j.joiner, j.epoch, fmt.Sprintf("the ring has %d nodes, not the %d the server listed", m.ID, j.n), false)
	}
	return j.renumbered(p, now, nil)
}

// renumbered: every node holds the larger size; the joiner takes its place
// between the last node and this one.
func (j *joinLead) renumbered(p *Peer, now time.Time, out []Output) []Output {
	p.inRing, p.id, p.n, p.epoch, p.filling = true, 0, j.n+1, j.epoch, true
	p.filled = false
	set := wire.SetID{ID: uint16(j.n), N: uint16(j.n + 1), Left: j.last, Right: p.self, Epoch: j.epoch}
	j.step, j.pending = leadPlacing, 1
	if j.last.Addr == p.self.Addr {
		p.right = j.joiner // a ring of one: the joiner is both neighbours
	} else {
		j.pending++
		out = append(out, p.link.send(now, j.last.Addr, wire.ResetRight{Right: j.joiner, Epoch: j.epoch}, tagJoin, false)...)
	}
	p.left = j.joiner
	p.deferPersist(false) // written with the store round's first commit
	return append(out, p.link.send(now, j.joiner.Addr, set, tagJoin, false)...)
}

// acked: once the joiner has its place and the last node points at it,
// the records go round the larger ring.
func (j *joinLead) acked(p *Peer, now time.Time, out []Output) []Output {
	if j.step != leadPlacing {
		return out
	}
	if j.pending--; j.pending > 0 {
		return out
	}
	j.step = leadPopulating
	data := j.data
	j.data = nil
	return p.startPopulate(now, out, data, &report{to: j.joiner, cmd: CmdJoinDHT, epoch: j.epoch})
}

// tick fails the join when a node it needs stops acknowledging, or when it
// has taken longer than the op timeout.
func (j *joinLead) tick(p *Peer, now time.Time, gone []failure, out []Output) []Output {
	for _, g := range gone {
		if g.to == p.right.Addr || g.to == j.last.Addr || g.to == j.joiner.Addr {
			return append(out, p.joinFailed(now, j.joiner, j.epoch, p.unacked(now, g), false)...)
		}
	}
	if !now.Before(j.until) {
		return append(out, p.joinFailed(now, j.joiner, j.epoch, fmt.Sprintf("the ring did not finish within %s", p.cfg.OpTimeout), false)...)
	}
	return out
}

// joinFailed ends the join this node leads, or was to: its user hears why,
// and so does the joiner, which then does not report to the server; the
// server rolls the join back at its op timeout.
func (p *Peer) joinFailed(now time.Time, joiner wire.Member, epoch uint64, why string, once bool) []Output {
	p.joining = nil
	if p.pop != nil && p.pop.tell != nil && p.pop.tell.cmd == CmdJoinDHT {
		p.pop = nil
	}
	// The join's reset-right and set-id, if not yet acknowledged, are
	// sent no more: a copy taken late would point a node at the joiner.
	out := p.link.cancel(now, tagJoin)
	out = append(out, p.rebuildFailed(report{to: joiner, cmd: CmdJoinDHT, epoch: epoch}, why)...)
	reason := fmt.Sprintf("the join failed at the leader %s: %s", p.self.Name, why)
	return append(out, p.tell(now, joiner.Addr, wire.Rebuilt{Reason: reason, NewLeader: p.self.Name, Epoch: epoch}, once)...)
}

// tell sends a leaver or a joiner the rebuilt that ends its operation:
// reliably, or, if once, once and unacknowledged.
func (p *Peer) tell(now time.Time, to netip.AddrPort, m wire.Rebuilt, once bool) []Output {
	if once {
		return []Output{p.sendNoAck(to, m, p.link.sg)}
	}
	return p.link.send(now, to, m, tagNone, false)
}
