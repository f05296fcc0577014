package app

import (
	"fmt"
	"log/slog"
	"net/netip"
	"time"

	"dht/dataset"
	"dht/wire"
)

// A heal (docs/DESIGN.md §6, Healing) is led by the node the server names
// in a heal message: the first live member of a ring that lost members.
// It is a role, not a command of its user, who may be typing meanwhile:
//
//  1. this node takes id 0 of the survivors' ring and sends set-id to
//     every other survivor, as a setup does (a set-id replaces whatever
//     place and table the receiver held);
//  2. once every set-id is acknowledged, the store round over the new ring,
//     the flush behind it;
//  3. once the flush is back, healed to the server, sent again until the
//     server acknowledges it (anew past the give-up: the ring is healed).
//
// A survivor that does not acknowledge, or a dataset that does not load,
// ends the role with heal FAILURE, and this node's alives say it gave the
// heal up: the server heals again, led by another member (quitHeal), and
// without a member that went offline meanwhile.

type healStep uint8

const (
	healPlacing    healStep = iota // set-id sent to every other survivor
	healPopulating                 // the store round over the healed ring
	healReporting                  // healed sent to the server
)

// healLead is this node's part as the leader of a heal.
type healLead struct {
	epoch   uint64
	members []wire.Member // this node first
	step    healStep
	data    dataset.Source
	pending int // set-ids not yet acknowledged
	// unheard: when the server first acknowledged no healed within the
	// give-up; it is sent again, anew, until it does (said once), for as
	// long as the server's default --op-timeout.
	unheard time.Time
}

// startHeal: the server named this node the leader of the heal of epoch
// m.Epoch (expected checked that it came from the server and names this
// node first).
func (p *Peer) startHeal(now time.Time, m wire.Heal) []Output {
	if h := p.healing; h != nil && m.Epoch <= h.epoch {
		return []Output{dropped("heal of an older epoch", p.cfg.Server, slog.Uint64("epoch", m.Epoch))}
	}
	var out []Output
	if h := p.healing; h != nil {
		// The server healed again (another member went offline): this
		// heal fails as replaced, not as one the server will heal again.
		out = p.healEnded(fmt.Sprintf("the server replaced it with the heal of epoch %d", m.Epoch))
	}
	out = append(out, p.abandon(now, fmt.Sprintf("the server asked %s to heal the ring", p.self.Name))...)
	data, err := p.cfg.LoadData()
	if err != nil {
		p.quitHeal(now, m.Epoch)
		return append(out, resultFailed(CmdHeal, datasetUnusable(err)+healQuitNote))
	}
	n := len(m.Members)
	if len(m.Tickets) > 0 && m.KeyEpoch != 0 {
		// This node's ticket: the ring's key, should its setup have been
		// cut short before it had it.
		p.setRing(m.KeyEpoch, ringKeyOf(p.cred.secret, m.KeyEpoch, m.Tickets[0]))
	}
	h := &healLead{epoch: m.Epoch, members: m.Members, data: data, pending: n - 1}
	p.healing = h
	p.clearTable()
	p.inRing, p.id, p.n, p.epoch, p.filling = true, 0, n, m.Epoch, true
	p.filled = false
	p.left, p.right, p.neighbours, p.ownLeave = m.Members[n-1], m.Members[1%n], true, false
	p.leaver = netip.AddrPort{}
	// Every query this node forwarded round the old ring ends, to a
	// right the heal keeps too (see placed): a join's leader, its
	// teardown gone round and not back, forwarded them to a torn-down
	// right, which dropped them, and a window of them held the heal's
	// set-id to it back until the give-up.
	out = append(out, p.endForwards(now)...)
	p.deferPersist(true) // written with the store round's first commit
	if n == 1 {
		return h.placed(p, now, out)
	}
	for i := 1; i < n; i++ {
		set := wire.SetID{ID: uint16(i), N: uint16(n), Left: m.Members[i-1], Right: m.Members[(i+1)%n], Epoch: m.Epoch}
		if i < len(m.Tickets) {
			set.Ticket = m.Tickets[i]
		}
		out = append(out, p.link.send(now, m.Members[i].Addr, set, tagHeal, false)...)
	}
	return out
}

// healAgain: the server sent again the heal of epoch m.Epoch, which this
// node led to the end of its store round and whose healed it gave up
// (the server was down longer than the give-up): the ring stands, so the
// role goes on where it ended, reporting healed, rather than placing and
// filling the ring again; nil when this node has no such heal.
func (p *Peer) healAgain(now time.Time, m wire.Heal) []Output {
	if p.healing != nil || m.Epoch == 0 || m.Epoch != p.healDone || m.Epoch != p.epoch || !p.inRing || p.id != 0 || p.pop != nil {
		return nil
	}
	p.healing = &healLead{epoch: m.Epoch, members: m.Members}
	return p.healing.populated(p, now)
}

// acked: a survivor has its place; once all have, the records go round.
func (h *healLead) acked(p *Peer, now time.Time, out []Output) []Output {
	if h.step != healPlacing {
		return out
	}
	if h.pending--; h.pending > 0 {
		return out
	}
	return h.placed(p, now, out)
}

func (h *healLead) placed(p *Peer, now time.Time, out []Output) []Output {
	h.step = healPopulating
	data := h.data
	h.data = nil
	return p.startPopulate(now, out, data, nil)
}

// populated: every record is committed at its node; tell the server.
func (h *healLead) populated(p *Peer, now time.Time) []Output {
	h.step, p.healDone = healReporting, h.epoch
	return p.link.sendSigned(now, p.cfg.Server, wire.Healed{Name: p.self.Name, Epoch: h.epoch}, tagHealed, false, p.secretSigner(now))
}

// reported: the server has the healed report; the role is done.
func (h *healLead) reported(p *Peer) []Output {
	p.healing, p.healDone = nil, 0
	names := make([]string, len(h.members))
	for i, m := range h.members {
		names[i] = m.Name
	}
	return []Output{Result{Cmd: CmdHeal, OK: true, Ring: names}}
}

// healFailed ends the heal this node leads.
func (p *Peer) healFailed(why string) []Output {
	return p.healEnded(fmt.Sprintf("%s; the server heals again without a member that went offline, or rolls the heal back", why))
}

// healQuitNote ends the line of a heal this node gave up.
const healQuitNote = "; the server is told, and heals the ring again, led by another member while one can lead"

// healGaveUp ends the heal this node leads, which cannot go on here (a
// survivor stopped acknowledging its set-id or its stores), and has the
// server told, so that it heals again at once (Server.quitHeal) rather
// than wait for its --op-timeout and dissolve the DHT.
func (p *Peer) healGaveUp(now time.Time, why string) []Output {
	p.quitHeal(now, p.healing.epoch)
	return p.healEnded(why + healQuitNote)
}

// healGivenUpAgain: the server sent again the heal m, which this node gave
// up (a server restarted, or back, after its alives stopped naming it):
// they name it again, so that the server heals again rather than wait for
// the healed it will not get.
func (p *Peer) healGivenUpAgain(now time.Time, m wire.Heal) {
	if p.quit.op == wire.TypeHeal && p.quit.epoch == m.Epoch && p.healing == nil {
		p.quitHeal(now, m.Epoch)
	}
}

// quitHeal: the alive sent now, and those after it for a while, say that
// this node gave up the heal of epoch.
func (p *Peer) quitHeal(now time.Time, epoch uint64) {
	if !p.registered || p.aliveAt.IsZero() {
		return
	}
	p.quit, p.quitUntil, p.aliveAt = quitNote{wire.TypeHeal, epoch}, now.Add(quitFor), now
}

// healEnded ends the heal this node leads, with heal FAILURE: why.
func (p *Peer) healEnded(why string) []Output {
	h := p.healing
	p.healing = nil
	if p.pop != nil && p.pop.tell == nil {
		p.pop = nil
	}
	return []Output{
		resultFailed(CmdHeal, why),
		event("heal failed", slog.Uint64("epoch", h.epoch), slog.String("err", why)),
	}
}

// healTick fails the heal when a survivor stops acknowledging: the server
// is told (healGaveUp). The server's silence does not end it at once: the
// ring is healed, and the healed that says so is sent again, anew, until
// the server takes it (a server stalled or cut off has acknowledged the
// heal, and would wait for its --op-timeout and dissolve the ring; one
// restarted sends the heal again), for as long as a server waits by
// default (quitFor), and while this node still leads the ring it healed.
// A pace or another heal ends it sooner if the ring has moved on.
func (p *Peer) healTick(now time.Time, gone []failure, out []Output) []Output {
	for _, g := range gone {
		switch g.tag {
		case tagHeal:
			return append(out, p.healGaveUp(now, p.unacked(now, g))...)
		case tagHealed:
			h := p.healing
			if p.epoch != h.epoch || !p.inRing || p.id != 0 || !h.unheard.IsZero() && now.Sub(h.unheard) >= quitFor {
				return append(out, p.healFailed(p.unacked(now, g))...)
			}
			if h.unheard.IsZero() {
				h.unheard = now
				out = append(out, Notice{Line: fmt.Sprintf("heal: %s; the ring is healed, and healed goes on being sent until the server takes it, for up to %s", p.unacked(now, g), quitFor)})
			}
			return append(out, h.populated(p, now)...)
		}
	}
	return out
}

// abandon ends whatever this node was doing in the ring it had: a new ring
// is being set up over it (a heal, or a set-id from its leader). The
// commands of its user in a ring phase fail, saying why; so do a rebuild or
// a join it leads, and their leaver or joiner hears it.
func (p *Peer) abandon(now time.Time, why string) []Output {
	// What this node still had to deliver of the old ring's phases goes no
	// further: its retransmissions would reach nodes of the new ring,
	// which drop them unacknowledged if they no longer fit, and a flush
	// of the new ring sent after them would wait behind them (it names
	// what went before it on the link). Queries go on: their walks are
	// the querier's.
	out := p.link.cancelWhere(now, func(m *outMsg) bool {
		switch m.msg.(type) {
		case wire.Query, wire.QueryResult:
			return false
		}
		return true
	})
	// The leaver or the joiner is told once, unacknowledged: the server
	// that ended the ring told it too (its pace, or its resume's answer),
	// and one restarted since could not check the message, nor so stop
	// its retransmissions.
	if p.pop != nil && p.pop.tell != nil {
		out = append(out, p.popFailed(now, why, true)...)
	}
	p.pop = nil
	if p.joining != nil {
		out = append(out, p.joinFailed(now, p.joining.joiner, p.joining.epoch, why, true)...)
	}
	if p.healing != nil {
		out = append(out, p.healFailed(why)...)
	}
	switch o := p.op.(type) {
	case *setupOp:
		if o.stage == setupPopulating {
			return p.finish(now, out, resultFailed(CmdDHTComplete, why))
		}
	case *leaveOp:
		if o.stage != leaveAsking && o.stage != leaveReporting {
			return p.finish(now, out, resultFailed(CmdDHTRebuilt, why))
		}
	case *teardownOp:
		if o.stage == teardownTearing {
			return p.finish(now, out, resultFailed(CmdTeardownComplete, why))
		}
	}
	return out
}

// popFailed ends the store round this node leads, and tells whoever it
// was for: the leaver or the joiner of a rebuild (once, unacknowledged, if
// once), or the heal.
func (p *Peer) popFailed(now time.Time, why string, once bool) []Output {
	var out []Output
	switch r := p.pop.tell; {
	case r != nil && r.cmd == CmdJoinDHT:
		out = p.joinFailed(now, r.to, r.epoch, why, once)
	case r != nil:
		out = p.rebuildFailed(*r, why)
		out = append(out, p.tell(now, r.to.Addr, wire.Rebuilt{Reason: why, NewLeader: p.self.Name, Epoch: r.epoch}, once)...)
	case p.healing != nil:
		out = p.healGaveUp(now, why)
	}
	p.pop = nil
	return out
}

// reportBroken tells the origin of each ring phase this node forwarded a
// message of, and gave up on with its right neighbour, that the phase
// cannot finish, naming the neighbour: the origin, which waits for its
// message to come back round, would otherwise wait for its op timeout.
func (p *Peer) reportBroken(now time.Time, gone []failure, out []Output) []Output {
	told := map[netip.AddrPort]bool{}
	for _, g := range gone {
		var origin netip.AddrPort
		var epoch uint64
		var round uint32
		switch m := g.msg.(type) {
		case wire.Teardown:
			if m.Origin != p.self.Name {
				origin, epoch = m.OriginAddr, m.Epoch
			}
		case wire.ResetID:
			if m.Origin != p.self.Name {
				origin, epoch = m.OriginAddr, m.Epoch
			}
		case wire.Flush:
			if m.Leader != p.self.Name {
				origin, epoch, round = m.LeaderAddr, m.Epoch, m.Round
			}
		}
		if !origin.IsValid() || told[origin] || origin == g.to {
			continue
		}
		told[origin] = true
		node := wire.Member{Addr: g.to}
		for _, m := range []wire.Member{p.right, p.formerRight} {
			if m.Addr == g.to {
				node.Name = m.Name
			}
		}
		out = append(out, event("ring phase broken: telling its origin", attrAddr(origin), slog.String("node", node.String()), slog.String("type", g.msg.Type().String())))
		out = append(out, p.link.send(now, origin, wire.Broken{Node: node, What: g.msg.Type(), Epoch: epoch, Round: round}, tagNone, false)...)
	}
	return out
}

// noteStoresLost remembers stores given up (storesLost): a store carries
// no round nor leader to report to, its round's flush does.
func (p *Peer) noteStoresLost(gone []failure) {
	for _, g := range gone {
		if _, ok := g.msg.(wire.Store); ok && p.epoch != 0 {
			p.storesLost.epoch, p.storesLost.to = p.epoch, wire.Member{Addr: g.to}
			if p.right.Addr == g.to {
				p.storesLost.to = p.right
			}
			return
		}
	}
}

// flushAfterLostStores: flush m of this node's ring came after stores of
// its round were given up here (storesLost): the round lost records, so
// the flush goes no further, and its leader is told which node stopped
// taking them, as for a flush given up.
func (p *Peer) flushAfterLostStores(now time.Time, m wire.Flush) ([]Output, bool) {
	lost := p.storesLost
	if lost.epoch == 0 || lost.epoch != m.Epoch || !m.LeaderAddr.IsValid() {
		return nil, false
	}
	out := []Output{event("ring phase broken: the flush came after stores this node gave up; telling its leader", attrAddr(m.LeaderAddr),
		slog.String("node", lost.to.String()), slog.Uint64("round", uint64(m.Round)))}
	return append(out, p.link.send(now, m.LeaderAddr, wire.Broken{Node: lost.to, What: wire.TypeStore, Epoch: m.Epoch, Round: m.Round}, tagNone, false)...), true
}

// onBroken: a node on the way of a ring phase of ours gave up on its right
// neighbour; the phase cannot finish.
func (p *Peer) onBroken(now time.Time, from netip.AddrPort, m wire.Broken) []Output {
	who := m.Node.Addr.String()
	if m.Node.Name != "" {
		who = label(m.Node)
	}
	why := fmt.Sprintf("the ring is broken at %s: it stopped acknowledging %s from %s for %s", who, m.What, p.named(from), p.link.cfg.GiveUp)
	// Only a report of the phase under way counts: the message it names,
	// by type, epoch and a flush's round, must be one this node sent in
	// it (an attacker's review: a broken captured in an earlier join,
	// sent again from anywhere, failed every later join; the ring's key
	// outlives the phases it signs).
	phase := func(teardownEpoch, resetEpoch uint64) bool {
		return m.Epoch != 0 && (m.What == wire.TypeTeardown && m.Epoch == teardownEpoch || m.What == wire.TypeResetID && m.Epoch == resetEpoch)
	}
	switch m.What {
	case wire.TypeStore, wire.TypeFlush: // a store's: reported when the round's flush came after it
		if pop := p.pop; pop == nil || !pop.flushed || m.Epoch != pop.epoch || m.Round != pop.round {
			break
		}
		out := p.popFailed(now, why, false)
		if o, ok := p.op.(*setupOp); ok && o.stage == setupPopulating {
			return p.finish(now, out, resultFailed(CmdDHTComplete, why+setupGivenUp))
		}
		return out
	case wire.TypeTeardown, wire.TypeResetID:
		if j := p.joining; j != nil && (j.step == leadTearing || j.step == leadRenumbering) && phase(j.ringEpoch, j.epoch) {
			return p.joinFailed(now, j.joiner, j.epoch, why, false)
		}
		switch o := p.op.(type) {
		case *teardownOp:
			if o.stage == teardownTearing && phase(o.epoch, 0) {
				return p.finish(now, nil, resultFailed(CmdTeardownComplete, why))
			}
		case *leaveOp:
			if (o.stage == leaveTearing || o.stage == leaveRenumbering) && phase(o.ringEpoch, o.epoch) {
				return p.finish(now, nil, resultFailed(CmdDHTRebuilt, why))
			}
		}
	}
	return []Output{dropped("broken for no ring phase of ours", from, slog.String("node", m.Node.String()), slog.String("what", m.What.String()))}
}
