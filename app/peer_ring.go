package app

import (
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"time"

	"dht/dataset"
	"dht/wire"
)

// ofEarlierRing reports that m belongs to a ring, or a store round, this
// node's have replaced, which expected drops: a ring phase of an older
// epoch, the flush or the committed of a store round this node led before
// the one it leads now, if any (round numbers never repeat), a teardown,
// torn-down or reset at a node outside any ring, a reset-id back at an
// origin that no longer renumbers, or a rebuilt for a leave or join this
// node no longer runs.
func (p *Peer) ofEarlierRing(m wire.Message) bool {
	var epoch uint64
	switch m := m.(type) {
	case wire.Flush:
		if p.earlierRoundOfOurs(m.Leader, m.Round) {
			return true
		}
		epoch = m.Epoch
	case wire.Committed:
		if p.earlierRoundOfOurs(m.Leader, m.Round) {
			return true
		}
		epoch = m.Epoch
	case wire.TornDown:
		if m.Origin == p.self.Name {
			// Back at its origin, which no longer tears down (restarted
			// since: its rejoin dissolved the DHT).
			return !p.tearingDown()
		}
		// At a node with no neighbours and no teardown passed (a process
		// restarted after the teardown went by): the teardown it follows
		// would have been dropped here too.
		return p.tearing == nil && !p.neighbours
	case wire.Teardown:
		// At a node outside any ring (a member restarted during the
		// teardown, which dissolved the DHT), or back at an origin that
		// no longer tears down: nothing here to tear down.
		if !p.neighbours && (m.Origin != p.self.Name || !p.tearingDown()) {
			return true
		}
		epoch = m.Epoch
	case wire.Rebuilt:
		// With no leave or join of this node's own under way (its process
		// restarted during it): nothing here will ever wait for it.
		switch o := p.op.(type) {
		case *leaveOp:
			return !leaveRunning(o.stage)
		case *joinOp:
			return o.stage != joinWaiting
		}
		return true
	case wire.SetID:
		if p.placedBy(m) {
			return true
		}
		epoch = m.Epoch
	case wire.Heal:
		return p.staleHeal(m)
	case wire.Join:
		// Its ring's epoch is the larger ring's, newer than the leader's
		// until the join is done.
		return m.Epoch != 0 && m.Epoch <= p.epoch
	case wire.ResetID:
		if m.Origin == p.self.Name && !p.renumbering() {
			// Back at its origin, which no longer renumbers (a copy whose
			// ack was lost, to an origin restarted since).
			return true
		}
		if !p.neighbours || p.numberedBy(m) {
			return true // at a node outside any ring, or numbered so already: nothing to renumber
		}
		epoch = m.Epoch
	case wire.ResetLeft:
		if !p.neighbours || p.leftAlready(m) {
			return true // at a node outside any ring, or pointed so already: nothing to reset
		}
		epoch = m.Epoch
	case wire.ResetRight:
		if !p.neighbours {
			return true
		}
		epoch = m.Epoch
	}
	return epoch != 0 && epoch < p.epoch
}

// staleHeal: m is a heal this node has been past: of an earlier epoch
// than its ring's (or than the last ring it held, which its file keeps),
// or of the ring it holds, but for the heal it led and still reports
// (healAgain: the server, restarted, sends it again); or of a ring whose
// key is older than the last this node took. A heal of the server's is
// always of an epoch no node holds yet, with the DHT's key.
func (p *Peer) staleHeal(m wire.Heal) bool {
	if p.olderKey(m) {
		return true
	}
	return p.epoch != 0 && (m.Epoch < p.epoch || m.Epoch == p.epoch && m.Epoch != p.healDone)
}

// numberedBy: reset-id m would give this node the place it holds, in the
// ring of the same epoch: a copy of the one that numbered it, whose
// renumbering is over (a node takes a reset-id only once, and its place
// reaches its file only with the store round that follows, by when its
// left has its ack). A copy that outlived its duplicate filter (its
// process restarted, its place taken back) and sent round again would come
// back to an origin no longer renumbering, unacknowledged, and be sent
// again until given up.
func (p *Peer) numberedBy(m wire.ResetID) bool {
	return p.inRing && m.Epoch != 0 && m.Epoch == p.epoch && int(m.ID) == p.id && int(m.N) == p.n && m.Origin != p.self.Name
}

// placedBy: set-id m names the place this node holds, in the ring it is
// in (a copy of the one that placed it).
func (p *Peer) placedBy(m wire.SetID) bool {
	return p.inRing && p.neighbours && m.Epoch != 0 && m.Epoch == p.epoch && int(m.ID) == p.id && int(m.N) == p.n && m.Left == p.left && m.Right == p.right
}

// leftAlready: reset-left m names the left neighbour this node has: a
// copy of the one that pointed it there, whose leave is over. A leaver's
// reset-left comes from the leaver, this node's left until it is taken,
// and names another node; a copy sent with the left neighbour's address
// as its source, taken, would make the left this node's leaver, and a
// copy of the leave's rebuild-dht from there would have this node empty
// its table and spread the dataset round the ring again. The tag, which
// covers the sender's address as well as the receiver's, stops such a
// copy first; this check is the second line (the duplicate filter holds
// the leaver's id, not the left's).
func (p *Peer) leftAlready(m wire.ResetLeft) bool {
	return p.neighbours && m.Left == p.left
}

// olderKey: heal m is of a ring keyed before the last key this node took.
func (p *Peer) olderKey(m wire.Heal) bool { return m.KeyEpoch != 0 && m.KeyEpoch < p.cred.epoch }

// earlierRoundOfOurs: a flush or a committed of leader's round is of a
// store round this node led before the one it leads now, if any (round
// numbers never repeat).
func (p *Peer) earlierRoundOfOurs(leader string, round uint32) bool {
	return leader == p.self.Name && (p.pop == nil || round != p.pop.round)
}

// tearingDown: a teardown-dht this node started is going round.
func (p *Peer) tearingDown() bool {
	o, ok := p.op.(*teardownOp)
	return ok && o.stage == teardownTearing
}

// renumbering: a reset-id this node started (for its leave, or for a join
// it leads) is going round.
func (p *Peer) renumbering() bool {
	if j := p.joining; j != nil && j.step == leadRenumbering {
		return true
	}
	l, ok := p.op.(*leaveOp)
	return ok && l.stage == leaveRenumbering
}

// expected says whether a ring message may come from `from`, and why not.
func (p *Peer) expected(from netip.AddrPort, m wire.Message) string {
	fromLeft := p.neighbours && from == p.left.Addr
	switch m := m.(type) {
	case wire.SetID:
		if m.N < 2 || int(m.N) > MaxRing || m.ID == 0 || m.ID >= m.N {
			return fmt.Sprintf("set-id %d of %d is not a place in a ring", m.ID, m.N)
		}
		if !validMember(m.Left) || !validMember(m.Right) {
			return "set-id names an invalid neighbour"
		}
		if m.Epoch != 0 && m.Epoch < p.epoch {
			// A late copy from a setup that a heal replaced: taken, it
			// would empty the table the heal's stores filled.
			return fmt.Sprintf("set-id of ring epoch %d, older than this node's %d", m.Epoch, p.epoch)
		}
		if p.placedBy(m) {
			// Taken again, it would empty the table its stores filled (an
			// attacker's review: copies from many sources, two trace
			// lines each).
			return fmt.Sprintf("set-id %d of %d of ring epoch %d: the place this node holds (a copy)", m.ID, m.N, m.Epoch)
		}
	case wire.ResetID:
		if !fromLeft {
			return "not from the left neighbour"
		}
		if m.Epoch != 0 && m.Epoch < p.epoch {
			// Left over from a leave or join that a heal replaced.
			return fmt.Sprintf("reset-id of ring epoch %d, older than this node's %d", m.Epoch, p.epoch)
		}
		if m.N < 1 || int(m.N) > MaxRing || m.ID >= m.N && m.Origin != p.self.Name {
			return fmt.Sprintf("reset-id %d of %d is not a place in a ring", m.ID, m.N)
		}
		if p.numberedBy(m) {
			return fmt.Sprintf("reset-id %d of %d of ring epoch %d: the place this node holds (a copy)", m.ID, m.N, m.Epoch)
		}
	case wire.ResetLeft:
		if !fromLeft {
			return "not from the left neighbour"
		}
		if !validMember(m.Left) {
			return "reset-left names an invalid neighbour"
		}
		if m.Epoch != 0 && m.Epoch < p.epoch {
			// Left over from a leave that a heal replaced.
			return fmt.Sprintf("reset-left of ring epoch %d, older than this node's %d", m.Epoch, p.epoch)
		}
		if p.leftAlready(m) {
			return fmt.Sprintf("reset-left to %s, the left neighbour this node has (a copy)", m.Left)
		}
	case wire.ResetRight:
		if !p.neighbours || from != p.right.Addr {
			return "not from the right neighbour"
		}
		if !validMember(m.Right) {
			return "reset-right names an invalid neighbour"
		}
		if m.Epoch != 0 && m.Epoch < p.epoch {
			// Left over from a leave or a join that a heal replaced: taken,
			// it would point the healed ring at a node outside it.
			return fmt.Sprintf("reset-right of ring epoch %d, older than this node's %d", m.Epoch, p.epoch)
		}
	case wire.Teardown:
		if !fromLeft && !p.tearingBack(from, m) {
			return "not from the left neighbour"
		}
		if m.Epoch != 0 && m.Epoch < p.epoch {
			// Left over from a leave, a join or a teardown that a heal
			// replaced: its origin may be out of the ring, so it would
			// go round for ever, emptying every table it passes.
			return fmt.Sprintf("teardown of ring epoch %d, older than this node's %d", m.Epoch, p.epoch)
		}
	case wire.TornDown:
		if !p.tornDownFrom(from, m) {
			if fromLeft && p.tearing == nil && m.Origin != p.self.Name {
				return tornDownAhead
			}
			return "no teardown waits for it from there"
		}
	case wire.Store:
		if !fromLeft {
			return "not from the left neighbour"
		}
	case wire.Flush:
		if !fromLeft {
			return "not from the left neighbour"
		}
		if m.Epoch != 0 && m.Epoch < p.epoch {
			// A store round of a ring a heal (or a leave, a join) replaced,
			// sent before its sender took the new ring: passed on, it would
			// be held up at a node that knows nothing of its round.
			return fmt.Sprintf("flush of ring epoch %d, older than this node's %d", m.Epoch, p.epoch)
		}
		if p.earlierRoundOfOurs(m.Leader, m.Round) {
			return "flush of no store round of ours (a late copy of an earlier round's)"
		}
		if n := p.link.unseen(from, m.After); n > 0 {
			// Sent right behind them, it came first: the left sends it
			// again, and by then they will have come too (or they are
			// given up on, and it names them no more).
			return fmt.Sprintf(flushAhead+"%d of the messages sent before it", n)
		}
	case wire.Committed:
		if m.Epoch != 0 && m.Epoch < p.epoch {
			return fmt.Sprintf("committed of ring epoch %d, older than this node's %d", m.Epoch, p.epoch)
		}
		if !p.committedFrom(from, m) {
			return noRoundWaits
		}
	case wire.Query:
		if !fromLeft && m.Hops != 0 {
			return "forwarded query not from the left neighbour"
		}
		if !validMember(m.Querier) {
			return "query names an invalid querier"
		}
	case wire.RebuildDHT:
		if !p.leaver.IsValid() || from != p.leaver || p.neighbours && from == p.left.Addr {
			// The leaver pointed this node at its own left before it
			// sent this: it is never this node's left neighbour.
			return "not from the node that just left"
		}
		if !validMember(m.Leaver) {
			return "rebuild-dht names an invalid leaver"
		}
	case wire.QueryResult:
		if _, ok := p.walkOf(m.ReqID); !ok {
			return "answers no query in progress"
		}
	case wire.Rebuilt:
		// Its sender names itself, and it names the epoch of the leave or
		// join it ends: a rebuilt of an earlier leave or join of this
		// user, sent again (from the node it waits for now, the tag
		// covering both addresses; after a restart, whose duplicate
		// filter is empty), would end this one with an earlier word (an
		// attacker's review: a later leave failed so, its rebuild done).
		switch o := p.op.(type) {
		case *leaveOp:
			if o.stage == leaveRebuilding && from == o.right.Addr && m.NewLeader == o.right.Name && m.Epoch == o.epoch {
				return ""
			}
		case *joinOp:
			if o.stage == joinWaiting && from == o.leader.Addr && m.NewLeader == o.leader.Name && m.Epoch == o.epoch {
				return ""
			}
		}
		return "no leave or join is waiting for it"
	case wire.Heal:
		if from != p.cfg.Server {
			return "heal not from the server"
		}
		if len(m.Members) == 0 || m.Members[0].Addr != p.self.Addr || m.Members[0].Name != p.self.Name {
			return "heal names another leader"
		}
		for _, mb := range m.Members {
			if !validMember(mb) {
				return "heal names an invalid member"
			}
		}
		if p.staleHeal(m) {
			// A copy that outlived this node's duplicate filter (a
			// restart of its process): of an earlier epoch, taken, it
			// would empty a table of the ring that stands for a place in
			// one that does not; of the ring this node holds, it would
			// place and fill that ring again.
			if p.olderKey(m) {
				return fmt.Sprintf("heal of a ring keyed at epoch %d, and this node took the key of epoch %d", m.KeyEpoch, p.cred.epoch)
			}
			return fmt.Sprintf("heal of ring epoch %d, and this node's is %d", m.Epoch, p.epoch)
		}
	case wire.Join:
		if !validMember(m.Joiner) || from != m.Joiner.Addr {
			return "not from the joiner it names"
		}
		if m.Epoch != 0 && m.Epoch <= p.epoch {
			// A late copy of a join the server ended, or a copy sent again
			// after this node restarted (its duplicate filter empty): its
			// joiner may be gone, and a refusal, sent reliably, would go to
			// its address until the link gave up (an attacker's review).
			return fmt.Sprintf("join of ring epoch %d, and this node's is already %d (a late copy)", m.Epoch, p.epoch)
		}
	}
	switch m.(type) {
	case wire.Store, wire.Flush, wire.Query:
		if !p.inRing {
			return "this peer is in no DHT"
		}
	}
	return ""
}

// validMember: a neighbour must be a registered-looking user at a unicast
// IPv4 address.
func validMember(m wire.Member) bool {
	a := m.Addr.Addr()
	return ValidName(m.Name) && NotUnicast(a) == "" && m.Addr.Port() != 0
}

// backlogLimit is how many unacknowledged messages to the right neighbour a
// node tolerates before it stops taking stores from the left: it then drops
// them unacknowledged, and the left retransmits once the right caught up.
func (p *Peer) backlogLimit() int { return 4 * p.link.cfg.Window }

// queuesRight reports that m, taken, may go on in the right link's queue,
// which the sender's retransmission can wait for while that queue is past
// backlogLimit (unacknowledged, it comes again): a store, or a query sent
// reliably (by its querier or the left neighbour) that this node does not
// answer. A querier's token flood of such queries grew the queue to a
// gigabyte, and the ring's own messages waited behind it (a red-team
// review: a teardown rolled back).
func (p *Peer) queuesRight(m wire.Message, noAck bool) bool {
	switch m := m.(type) {
	case wire.Store:
		return true
	case wire.Query:
		return !noAck && p.n > 0 && dataset.ID(dataset.Pos(m.LongName), p.n) != p.id
	}
	return false
}

// sendNoAck sends m once, unacknowledged (FlagNoAck): a query or its
// answer, which the querier retries end to end, or the rebuilt that tells
// a leaver or a joiner the server ended its operation (which the server
// tells it too).
func (p *Peer) sendNoAck(to netip.AddrPort, m wire.Message, sg signer) Send {
	p.stats.Sent++
	return sg.send(to, p.link.newID(), wire.FlagNoAck, m)
}

func (p *Peer) onRing(now time.Time, from netip.AddrPort, h wire.Header, m wire.Message) []Output {
	noAck := false
	if h.Flags&wire.FlagNoAck != 0 {
		switch m.(type) {
		case wire.Query, wire.QueryResult, wire.Rebuilt:
			noAck = true
		}
	}
	// A querier holds no ring key: its query is acknowledged with its
	// token.
	sg := p.link.sg
	switch m := m.(type) {
	case wire.Query:
		if from == m.Querier.Addr {
			sg = p.tokenSigner(from)
		}
	case wire.Heal:
		sg = signer{seq: h.Seq, key: p.cred.secret, toServer: true} // the server knows no ring key of ours
	case wire.SetID:
		if !p.ticketRing.key.IsZero() {
			sg = p.ticketRing // the ring its sender, the leader, holds
		}
	}
	var ticketRing signer
	if _, ok := m.(wire.SetID); ok {
		ticketRing = p.ticketRing
	}
	p.ticketRing = signer{}
	seen := &p.link.seen
	if q, ok := m.(wire.Query); ok && from == q.Querier.Addr {
		seen = &p.link.queries
	}
	if !noAck && seen.has(from, h.ID) {
		p.stats.DupsSuppressed++
		if hm, ok := m.(wire.Heal); ok && from == p.cfg.Server {
			// Traced as any other copy is (its ack too): the server's
			// heal, captured and sent again from its address, was two
			// lines a copy, without end.
			p.link.ackCopy(from, h.ID, sg)
			p.healGivenUpAgain(now, hm)
			ev := dropped("a copy of a heal already taken: acknowledged again", from, slog.Uint64("epoch", hm.Epoch), slog.Uint64("id", uint64(h.ID)))
			ev.Level = slog.LevelInfo
			return append([]Output{ev}, p.healAgain(now, hm)...)
		}
		// Acknowledged again, so that its sender stops; traced as the
		// drops are (its ack too): a copy captured and sent again and
		// again, from any source, costs the trace a few lines a minute
		// (an attacker's review: two lines a copy, without end).
		p.link.ackCopy(from, h.ID, sg)
		ev := dropped("a copy of a message already taken: acknowledged again", from, slog.String("type", m.Type().String()), slog.Uint64("id", uint64(h.ID)))
		ev.Level = slog.LevelInfo
		return []Output{ev}
	}
	// An unacknowledged query is known by its querier and the querier's
	// id for it, which only a holder of the querier's token can sign: by
	// its sender and header id, a token holder forging the left
	// neighbour's source with the ids it sends next (its answers show
	// them) had the neighbour's forwards of other queriers' queries
	// dropped here as copies.
	if q, ok := m.(wire.Query); ok && noAck && p.link.unacked.has(q.Querier.Addr, q.ReqID) {
		p.stats.DupsSuppressed++
		// No warning: a network that duplicates makes such copies, and a
		// replay is summarised as any drop is.
		ev := dropped("a copy of a query already taken", from, slog.Uint64("id", uint64(h.ID)))
		ev.Level = slog.LevelInfo
		return []Output{ev}
	}
	if why := p.expected(from, m); why != "" {
		if hm, ok := m.(wire.Heal); ok && from == p.cfg.Server {
			p.healGivenUpAgain(now, hm)
		}
		ev := dropped(why, from, slog.String("type", m.Type().String()), slog.Uint64("id", uint64(h.ID)))
		if why == noRoundWaits || why == tornDownAhead || strings.HasPrefix(why, flushAhead) {
			// What a working network does on its own (a copy of a
			// committed whose ack was lost, a flush or a torn-down
			// overtaking what it follows): its sender sends it again or
			// gives it up, and says so then (a chaos review: hundreds of
			// warnings in a healthy run at 15% loss).
			ev.Level = slog.LevelDebug
		}
		if _, late := m.(wire.QueryResult); late && !noAck {
			// A late answer is still acknowledged, so that its sender stops.
			p.link.ack(from, h.ID)
		}
		if p.ofEarlierRing(m) || p.roundBeforeResume(from, m) {
			// Taken, never to be acted on (epochs never repeat): its sender,
			// a member of this ring still, stops sending it, and a flush
			// it sent after it, which names it, is no longer held back.
			seen.add(from, h.ID)
			p.link.ackCopy(from, h.ID, sg)
		}
		return []Output{ev}
	}
	if p.link.backlog(p.right.Addr) > p.backlogLimit() && p.queuesRight(m, noAck) {
		return []Output{dropped("right neighbour is behind; the sender will send it again", from, slog.String("type", m.Type().String()), slog.Uint64("id", uint64(h.ID)))}
	}
	if !ticketRing.key.IsZero() {
		p.setRing(ticketRing.seq, ticketRing.key) // the set-id is taken
	}
	if !noAck {
		seen.add(from, h.ID)
	} else if q, ok := m.(wire.Query); ok {
		p.link.unacked.add(q.Querier.Addr, q.ReqID)
	}
	if st, ok := m.(wire.Store); ok && !noAck {
		// Acknowledged once what it passes on has left (link.sendHolding).
		return p.onStore(now, from, st, heldAck{to: from, id: h.ID, sg: sg})
	}
	if !noAck {
		// The ack goes out after the batch, so after anything the message
		// made us persist (but a flush's or a teardown's, which goes
		// before the commit it makes: see committed).
		p.link.ackSigned(from, h.ID, sg)
	}
	return p.handleRing(now, from, m, noAck)
}

// onStore keeps the records of store m whose id is this node's and
// forwards the rest right; m is acknowledged (ack) once the forward has
// left, or at once if nothing goes on.
func (p *Peer) onStore(now time.Time, from netip.AddrPort, m wire.Store, ack heldAck) []Output {
	if int(m.N) != p.n {
		p.link.ackCopy(ack.to, ack.id, ack.sg) // quiet, as its drop is summarised
		// Traced as the drops are (summarised): a copy captured in an
		// earlier ring of the same key (a leave, a join and a heal keep
		// it), sent again at a member restarted since, whose duplicate
		// filter is empty, was a warning line each (SPEC §7).
		return []Output{dropped("store for another ring size", from, slog.Int("ring", int(m.N)))}
	}
	if p.id == 0 {
		// Stores start at the leader, which keeps its own records: one
		// that comes back holds records no member takes (the members
		// disagree on the ring), and would circle it for ever.
		p.link.ackSigned(ack.to, ack.id, ack.sg)
		return []Output{dropped("a store came back to the leader", from, slog.Int("records", len(m.Records)))}
	}
	mine := 0
	for i := range m.Records {
		if dataset.ID(dataset.Pos(m.Records[i][3]), p.n) == p.id {
			mine++
		}
	}
	fwd := m.Records // most stores only pass through: forward them as they came
	if mine > 0 {
		fwd = make([]wire.Record, 0, len(m.Records)-mine)
		for i := range m.Records {
			f := &m.Records[i]
			if dataset.ID(dataset.Pos(f[3]), p.n) != p.id {
				fwd = append(fwd, *f)
				continue
			}
			// Committed at the flush (or at Settle, once ownChunk
			// wait) and then forgotten: the record may share the
			// datagram's bytes until then.
			p.uncommitted = append(p.uncommitted, dataset.FromFields(*f))
		}
	}
	if len(fwd) == 0 {
		p.link.ackSigned(ack.to, ack.id, ack.sg)
		return nil
	}
	return p.link.sendHolding(now, p.right.Addr, wire.Store{N: m.N, Records: fwd}, ack)
}

// handleRing acts on a ring message; noAck says it came unacknowledged (a
// query's first attempt, which is forwarded the same way).
func (p *Peer) handleRing(now time.Time, from netip.AddrPort, m wire.Message, noAck bool) []Output {
	switch m := m.(type) {
	case wire.SetID:
		return p.held(now, func() []Output { return p.placed(now, from, m) })
	case wire.Flush:
		if m.Leader == p.self.Name {
			return p.popReturned(now, true, false)
		}
		if out, lost := p.flushAfterLostStores(now, m); lost {
			return out
		}
		// Every store before the flush has come (it names those its left
		// neighbour had not seen acknowledged). Forward first: the runner
		// sends it before this node's commit of its records (and of its
		// place if still unwritten), so the nodes commit in parallel, not
		// one after another. The leader reports the round done only once
		// every table is on disk, which the committed that follows the
		// flush round the ring says.
		right := p.right.Addr
		m.After = nil // the link names what this node sent ahead of it
		out := p.link.send(now, right, m, tagNone, true)
		cw := &commitWait{leader: m.Leader, round: m.Round, epoch: m.Epoch, left: from, right: right}
		if p.link.flushQueued(right, m.Leader, m.Round) {
			// The flush waits for room in the window to the right (or
			// behind more unacknowledged stores than it can name).
			// Committing now would keep this node from reading the acks
			// that make room for as long as its disk takes, and hold the
			// flush, and every commit after it, that long: the commit is
			// made when the flush leaves (flushLeft).
			cw.held = true
			p.committing = cw
			return out
		}
		return p.committed(now, out, cw)
	case wire.Committed:
		if m.Leader == p.self.Name {
			return p.popReturned(now, false, true)
		}
		// Expected: from the left neighbour the round's flush came from,
		// whose table, and every one before it, is on disk. It goes on
		// once this node's is too: at once, unless its flush is held
		// (the commit is made, and the committed sent on, when the flush
		// leaves).
		cw := p.committing
		cw.fromLeft = true
		if cw.held {
			return nil
		}
		return p.passCommitted(now, nil, cw)
	case wire.Query:
		pos := dataset.Pos(m.LongName)
		if dataset.ID(pos, p.n) != p.id {
			if int(m.Hops) >= p.n-1 {
				// Every id is within n-1 forwards of the node first
				// asked: a query still unanswered after them would circle
				// a ring whose members disagree on it, for ever.
				return []Output{dropped("a query would loop", from, slog.Int("hops", int(m.Hops)), slog.Int("ring", p.n), slog.String("long_name", m.LongName))}
			}
			m.Hops++
			if noAck {
				return []Output{p.sendNoAck(p.right.Addr, m, p.tokenSigner(m.Querier.Addr))}
			}
			return p.link.send(now, p.right.Addr, m, tagNone, false)
		}
		res := wire.QueryResult{ReqID: m.ReqID, Node: p.self.Name, NodeID: uint16(p.id), Hops: m.Hops, LongName: m.LongName}
		r, ok, err := p.lookup(m.LongName)
		if err != nil {
			// Not answered: "not found" would be false for a record this
			// node holds in a file it cannot read. The process stops; the
			// querier asks again, and the ring heals round this node.
			return []Output{TableUnreadable{Err: err}}
		}
		if ok {
			res.Found, res.Record = true, r.Fields()
		} else if p.filling {
			// Its records may not all have come: "not found" could be
			// false (a chaos run with queries in the ring during leaves,
			// joins and heals: dozens of shipped Long Names answered
			// "not found"). Unanswered, the querier sends it again.
			ev := dropped("a query for a table still being filled", from, slog.String("long_name", m.LongName))
			ev.Level = slog.LevelInfo
			return []Output{ev}
		}
		// The querier asks again if the answer is lost.
		return []Output{p.sendNoAck(m.Querier.Addr, res, p.tokenSigner(m.Querier.Addr))}
	case wire.QueryResult:
		w, _ := p.walkOf(m.ReqID) // expected: a query in the ring
		if w.q.stage == queryWalking {
			p.answered.add(w.q.reqID, w.q.sg.key)
		}
		for _, b := range w.q.before {
			p.answered.add(b.id, b.key) // an answer to another of its ids is a copy too
		}
		return p.walked(now, w, w.q.answer(p, now, m), nil)
	case wire.Teardown:
		if m.Origin == p.self.Name {
			return p.teardownReturned(now, m)
		}
		// Forward first: the runner sends it before this node's commit, so
		// the nodes commit in parallel, not one after another.
		right := p.right.Addr
		out := p.link.send(now, right, m, tagNone, false)
		p.clearTable()
		p.inRing = false
		p.joining = nil
		if m.KeepNeighbours {
			// A leave's or a join's: the emptied table is written with the
			// rebuild's commit that follows at every node, before the
			// rebuild is reported done. The queries this node forwarded
			// round the old ring go no further: the right, torn down,
			// drops them until its reset-id, then took a copy sent again
			// round the renumbered ring with the hops it made round the
			// old one, and the node before the one that holds the Long
			// Name dropped it as "a query would loop". Their queriers ask
			// again.
			p.deferPersist(true)
			return append(out, p.endForwards(now)...)
		}
		p.formerRight = p.right
		p.neighbours, p.left, p.right = false, wire.Member{}, wire.Member{}
		out = append(out, p.endForwards(now)...)
		// A teardown-dht's: the origin sends teardown-complete once every
		// table is on disk, which the torn-down that follows the teardown
		// round the ring says; this node passes it on once it has come
		// from the left, after this commit. The teardown's ack says it
		// came, not that the table is emptied on disk: it goes first, so
		// that the left does not send the teardown again for as long as
		// this commit takes (see committed).
		out = p.link.flushAcks(out)
		out = append(out, p.persist(true, nil))
		p.tearing = &tornWait{origin: m.Origin, left: from, right: right}
		return out
	case wire.TornDown:
		if o, ok := p.op.(*teardownOp); ok && m.Origin == p.self.Name {
			return o.confirmed(p, now)
		}
		// Expected: from the left neighbour the teardown came from, whose
		// table, and every one before it, is on disk; this node's own
		// commit was done before it read anything more.
		right := p.tearing.right
		p.tearing = nil
		return p.link.send(now, right, m, tagNone, false)
	case wire.ResetID:
		if m.Origin == p.self.Name {
			if j := p.joining; j != nil && j.step == leadRenumbering {
				return j.renumberedBack(p, now, m)
			}
			if l, ok := p.op.(*leaveOp); ok && l.stage == leaveRenumbering {
				return l.renumbered(p, now)
			}
			return []Output{dropped("reset-id of ours returned unexpectedly", netip.AddrPort{})}
		}
		p.inRing, p.id, p.n, p.epoch, p.filling = true, int(m.ID), int(m.N), m.Epoch, true
		p.filled = false
		// Written with the rebuild's stores or flush, which follow.
		p.deferPersist(false)
		m.ID++
		return p.link.send(now, p.right.Addr, m, tagNone, false)
	case wire.ResetLeft:
		p.leaver = from
		p.left = m.Left
		p.deferPersist(false)
		return nil
	case wire.ResetRight:
		p.right = m.Right
		p.deferPersist(false)
		// What this node forwarded to its old right (the leaver, out of
		// the ring now; or, at a join, the leader, whose left is the
		// joiner now) is dropped there unacknowledged.
		return p.endForwardsOff(now)
	case wire.RebuildDHT:
		p.leaver = netip.AddrPort{}
		data, err := p.cfg.LoadData()
		if err != nil {
			reason := "new leader cannot use its dataset: " + err.Error()
			out := p.rebuildFailed(report{to: m.Leaver, cmd: CmdLeaveDHT, epoch: p.epoch}, datasetUnusable(err))
			return append(out, p.link.send(now, m.Leaver.Addr, wire.Rebuilt{Reason: reason, NewLeader: p.self.Name, Epoch: p.epoch}, tagNone, false)...)
		}
		// The reset-id that came before it numbered this node in the
		// leave's ring: its epoch is the leave's.
		return p.startPopulate(now, nil, data, &report{to: m.Leaver, cmd: CmdLeaveDHT, epoch: p.epoch})
	case wire.Rebuilt:
		// expected: the leave or the join in progress
		if j, ok := p.op.(*joinOp); ok {
			return j.rebuilt(p, now, m, noAck)
		}
		return p.op.(*leaveOp).rebuilt(p, now, m, noAck)
	case wire.Join:
		return p.startJoin(now, m)
	case wire.Heal:
		return p.held(now, func() []Output { return p.startHeal(now, m) })
	case wire.Broken:
		return p.onBroken(now, from, m)
	}
	return nil
}

// rebuildFailed tells this node's user, as well as the leaver or the
// joiner, that the rebuild of a leave or a join it was to lead failed
// here: the cause (a dataset file, a neighbour) is this node's to see to,
// and nothing else would print it.
func (p *Peer) rebuildFailed(r report, why string) []Output {
	who := "leaver"
	if r.cmd == CmdJoinDHT {
		who = "joiner"
	}
	return []Output{
		resultFailed(CmdRebuildDHT, fmt.Sprintf("%s; the %s of %s fails with it", why, r.cmd, r.to.Name)),
		event("rebuild failed", slog.String(who, r.to.Name), slog.String("err", why)),
	}
}

// teardownReturned: a teardown this node started came back round the ring,
// to the teardown-dht or the leave-dht that sent it, or the join this node
// leads.
func (p *Peer) teardownReturned(now time.Time, m wire.Teardown) []Output {
	if j := p.joining; j != nil && j.step == leadTearing && m.KeepNeighbours {
		return j.tornDown(p, now)
	}
	switch o := p.op.(type) {
	case *teardownOp:
		if o.stage == teardownTearing && !m.KeepNeighbours {
			return o.tornDown(p, now)
		}
	case *leaveOp:
		if o.stage == leaveTearing && m.KeepNeighbours {
			return o.tornDown(p, now)
		}
	}
	return []Output{dropped("teardown of ours returned unexpectedly", netip.AddrPort{})}
}

// tornWait is a node's part in confirming a teardown-dht: the torn-down
// from the left goes on to the right.
type tornWait struct {
	origin      string
	left, right netip.AddrPort
}

// commitWait is a node's part in confirming a store round: the committed
// from the left goes on to the right.
type commitWait struct {
	leader      string
	round       uint32 // the flush's
	epoch       uint64 // the flush's
	left, right netip.AddrPort
	// held: the flush has not left yet, nor has this node committed.
	// fromLeft: the committed from the left neighbour came.
	held, fromLeft bool
}

// committed commits this node's records once its flush has left, and
// sends the committed on if it came from the left meanwhile.
func (p *Peer) committed(now time.Time, out []Output, cw *commitWait) []Output {
	cw.held = false
	// The acks owed go first: a store's says its records came and went
	// on, the flush's that it came, neither that they are on disk (the
	// committed says that). Held for the commit, they came late to a left
	// neighbour that had sent the stores and the flush in one write, which
	// sent them all again once the commit outlasted its timeout.
	out = p.link.flushAcks(out)
	out = p.commitStores(out, true)
	// Every record of the round for this node is on disk once the commit
	// just made runs: an output, run after the whole read is handled, so a
	// query read with the flush (or after it in the same read) still finds
	// the file without them. Filling ends at Settle, when the read is over.
	p.filled = true
	p.committing = cw
	if cw.fromLeft {
		return p.passCommitted(now, out, cw)
	}
	return out
}

// passCommitted sends the round's committed on to the right neighbour:
// this node's table is on disk, and so is every one from the leader's to
// it. Sent after the commit (outputs run in order).
func (p *Peer) passCommitted(now time.Time, out []Output, cw *commitWait) []Output {
	p.committing = nil
	return append(out, p.link.send(now, cw.right, wire.Committed{Leader: cw.leader, Round: cw.round, Epoch: cw.epoch}, tagNone, false)...)
}

// flushLeft makes the commit a held flush waited for, once the acks from
// the right neighbour have let the flush go.
func (p *Peer) flushLeft(now time.Time, from netip.AddrPort, out []Output) []Output {
	if cw := p.committing; cw != nil && cw.held && from == cw.right && !p.link.flushQueued(from, cw.leader, cw.round) {
		return p.committed(now, out, cw)
	}
	return out
}

// committedFrom: a committed may come from the left neighbour a round's
// flush came from, here, or back at its leader from its left neighbour
// once the leader has sent it.
func (p *Peer) committedFrom(from netip.AddrPort, m wire.Committed) bool {
	if m.Leader == p.self.Name {
		return p.pop != nil && p.pop.committedSent && p.neighbours && from == p.left.Addr && m.Round == p.pop.round
	}
	c := p.committing
	return c != nil && !c.fromLeft && from == c.left && m.Leader == c.leader && m.Round == c.round
}

// Three reasons a ring message is dropped that a working network gives on
// its own: traced at the debug level.
const (
	noRoundWaits = "no store round waits for it from there"
	flushAhead   = "flush ahead of "
	// tornDownAhead: a torn-down from the left neighbour before the
	// teardown it follows (sent right behind it, which was lost): the left
	// sends both again.
	tornDownAhead = "torn-down ahead of its teardown"
)

// roundBeforeResume: m, a committed from the left neighbour that no round
// here waits for, is of the ring whose place this process took back at its
// resume: its round was done before (the place and table in the file were
// committed at its flush), and its ack was lost as the process before
// stopped. Acknowledged, so that the left stops sending it (a chaos
// review: 102 copies over 10s, then "gave up" on the live member).
func (p *Peer) roundBeforeResume(from netip.AddrPort, m wire.Message) bool {
	c, ok := m.(wire.Committed)
	return ok && p.resumedIn != 0 && c.Epoch == p.resumedIn && p.epoch == p.resumedIn && p.neighbours && from == p.left.Addr
}

// tearingBack: a teardown-dht this node started comes back from the
// neighbour that was its left (the origin forgot its place when it sent
// the teardown).
func (p *Peer) tearingBack(from netip.AddrPort, m wire.Teardown) bool {
	o, ok := p.op.(*teardownOp)
	return ok && o.stage == teardownTearing && m.Origin == p.self.Name && !m.KeepNeighbours && from == o.left
}

// tornDownFrom: a torn-down may come from the left neighbour a
// teardown-dht's teardown came from, here, or back at its origin from its
// left neighbour.
func (p *Peer) tornDownFrom(from netip.AddrPort, m wire.TornDown) bool {
	if o, ok := p.op.(*teardownOp); ok && m.Origin == p.self.Name {
		return o.stage == teardownTearing && from == o.left
	}
	return p.tearing != nil && from == p.tearing.left && m.Origin == p.tearing.origin
}

// placed: a set-id placed this node in a ring (its setup's, a heal's, or
// the join it waits in).
func (p *Peer) placed(now time.Time, from netip.AddrPort, m wire.SetID) []Output {
	p.tearing = nil
	var out []Output
	if j, ok := p.op.(*joinOp); !ok || j.stage != joinWaiting || from != j.leader.Addr {
		// A new ring: nothing of the old one goes on here.
		// Said of this node by name: a leaver or a joiner whose
		// rebuild this node ran is told the same words.
		out = p.abandon(now, fmt.Sprintf("%s set %s up in a new ring (epoch %d)", p.named(from), p.self.Name, m.Epoch))
	}
	p.clearTable()
	p.inRing, p.id, p.n, p.epoch, p.filling = true, int(m.ID), int(m.N), m.Epoch, true
	p.filled = false
	p.left, p.right, p.neighbours, p.ownLeave = m.Left, m.Right, true, false
	p.leaver = netip.AddrPort{}
	p.joining = nil
	// Every query this node forwarded round the old ring goes no
	// further, to its old right or not: sent again, it went on round the
	// renumbered ring with the hops it made round the old one, and was
	// dropped as "a query would loop" one node short of the one that
	// holds its Long Name. Their queriers ask again.
	out = append(out, p.endForwards(now)...)
	// Written with this node's stores, or at the flush: acknowledged
	// at once, so the leader starts the stores without waiting for a
	// disk.
	p.deferPersist(true)
	return out
}

// endForwards ends the queries this node forwarded round a ring that has
// changed under them: one a teardown ends (the right, out of the ring once
// the teardown passed it, drops them unacknowledged, and a give-up would
// name a live node), one a set-id places this node in anew, one a heal
// rebuilds, one the server healed this node out of. Their queriers ask
// again through the server. Its own, as a querier, go on: their walks are
// its own.
func (p *Peer) endForwards(now time.Time) []Output {
	return p.link.cancelWhere(now, func(o *outMsg) bool {
		q, ok := o.msg.(wire.Query)
		return ok && q.Querier.Addr != p.self.Addr
	})
}

// endForwardsOff ends the queries this node forwarded to a node that is
// not its right neighbour any more (a reset-right gave it another):
// a node a heal removed as offline never acknowledges them, and each was
// sent again until the give-up, then warned once per query. Their queriers
// send their copies again to the member the server named, which forwards
// them round the ring as it is now.
func (p *Peer) endForwardsOff(now time.Time) []Output {
	return p.link.cancelWhereTo(now, func(to netip.AddrPort, o *outMsg) bool {
		q, ok := o.msg.(wire.Query)
		return ok && q.Querier.Addr != p.self.Addr && to != p.right.Addr
	})
}
