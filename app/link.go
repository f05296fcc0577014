package app

import (
	"log/slog"
	"math/bits"
	"net/netip"
	"slices"
	"time"

	"dht/wire"
)

// LinkConfig tunes reliable delivery of ring messages.
type LinkConfig struct {
	// Retry is the retransmission policy (see Retry); the peer's requests
	// to the server and its queries follow it too.
	Retry
	// Window is the most messages in flight (sent, not yet acknowledged) to
	// one destination: the flow control that keeps a fast sender from
	// overrunning a neighbour's socket buffer.
	Window int
}

func (c LinkConfig) withDefaults() LinkConfig {
	c.Retry = c.Retry.withDefaults()
	if c.Window <= 0 {
		c.Window = DefaultWindow
	}
	return c
}

// tag says what a sender wants to hear about when a message is acknowledged
// or given up on.
type tag uint8

const (
	tagNone tag = iota
	tagSetID
	tagResetLeft
	tagResetRight
	tagRebuild
	tagJoin   // the set-id and reset-right of a join its leader waits on
	tagHeal   // the set-ids of a heal its leader waits on
	tagHealed // the healed report to the server
)

// signer is the key and sequence number a datagram is signed with (zero
// key: unsigned); toServer: the user's secret, for the server, which
// checks it whatever address it was reached at (Send.ToServer); from, for
// a datagram to another peer: this peer's own address, which the tag
// covers with the receiver's (Send.Self).
type signer struct {
	seq      uint64
	key      wire.Key
	toServer bool
	from     netip.AddrPort
}

// send is the Send of msg to `to`, signed by sg.
func (sg signer) send(to netip.AddrPort, id uint32, flags wire.Flags, msg wire.Message) Send {
	return Send{To: to, ID: id, Flags: flags, Msg: msg, Sign: !sg.key.IsZero(), ToServer: sg.toServer, Seq: sg.seq, Key: sg.key, Self: sg.from}
}

type outMsg struct {
	id  uint32
	sg  signer
	msg wire.Message
	tag tag
	// barrier: not acted on before everything sent ahead of it has come.
	// A flush goes at once, naming what is in flight ahead of it
	// (withAfter); any other barrier is sent only once everything ahead
	// of it is acknowledged.
	barrier bool
	tries   tries
	// held: the acks of the messages this one forwards, owed once it is
	// sent (see sendHolding).
	held []heldAck
}

// heldAck is an ack owed to `to` for message id, signed by sg, held until
// what the message brought has been sent on.
type heldAck struct {
	to netip.AddrPort
	id uint32
	sg signer
}

type dest struct {
	queue    []*outMsg // not yet sent
	inflight []*outMsg // sent, not acknowledged
}

// Stats counts what the link did; the bench and the loss tests report them.
type Stats struct {
	Sent           uint64 // datagrams handed to the socket (first sends, retransmissions, acks, replies)
	Retransmits    uint64
	DupsSuppressed uint64 // received messages recognised as duplicates
	GaveUp         uint64
}

// link delivers ring messages at least once and lets the receiver act on
// them exactly once: every message has an id, the receiver acknowledges it
// (again, if it comes again) and remembers recent ids, the sender
// retransmits with exponential backoff until acknowledged or GiveUp passes.
type link struct {
	cfg    LinkConfig
	nextID uint32
	dests  map[netip.AddrPort]*dest
	seen   dedup
	// queries: the ids of the queries their queriers sent reliably, kept
	// apart from seen: a querier sends as many as it likes, and in seen
	// they would push out the ring's own messages, whose copies would then
	// be taken again as new (a set-id placing this node again, a store
	// taken twice).
	queries dedup
	// unacked: the queries sent without acknowledgement (a querier's
	// first attempt, and its forwards), by querier and the querier's id
	// for the query (Query.ReqID, not a sender's header id), which nothing sends
	// twice (a query asked again goes as a new one): a copy is a
	// duplicate of the network's or a replay, and answered again it would
	// send the querier a record for every copy.
	unacked dedup
	// late: messages acknowledged since they were sent (the last
	// lateAcks). An ack for one of them that comes again is no sign of
	// trouble: the receiver acknowledges every copy of a message sent
	// more than once (a receiver acknowledges a message once it has
	// committed what it brought, and a commit slower than the timeout, a
	// slow disk or a loaded machine, has the message sent again on a
	// network that loses nothing), and a network that duplicates
	// delivers an ack twice.
	late dedup
	// dropped: messages given up on by cancel, whose ack may still come
	// and means nothing (their receiver took them; nothing waits on it).
	dropped dedup
	stats   *Stats
	acks    []pendingAck // owed, not yet sent
	// Two estimates: of the round trips of stores, whose ack waits for
	// the receiver's commit (a disk flush), and of every other ring
	// message's, acknowledged at once. Mixed, the quick acks of set-ids
	// would set the timeout of the first stores below a commit, and a
	// window of them would be sent twice on a network that loses nothing.
	rtt, storeRTT rttEstimator
	// sg signs what the link sends: the ring's key and epoch.
	sg signer
	// ackRTT and ackStoreRTT are the longest round trips of the messages
	// the Ack being handled acknowledges (0: none sent once); endAck
	// samples them.
	ackRTT, ackStoreRTT time.Duration
}

// estimate is the round-trip estimate the timeouts of m follow.
func (l *link) estimate(m wire.Message) *rttEstimator {
	if _, ok := m.(wire.Store); ok {
		return &l.storeRTT
	}
	return &l.rtt
}

func newLink(cfg LinkConfig, firstID uint32, stats *Stats) *link {
	seed := uint64(firstID)*0x9e3779b97f4a7c15 + 1
	return &link{cfg: cfg.withDefaults(), nextID: firstID, dests: map[netip.AddrPort]*dest{},
		seen: newDedup(1<<16, seed), queries: newDedup(queriesSeen, seed^0x27d4eb2f),
		unacked: newDedup(unackedQueriesSeen, seed^0x165667b1), late: newDedup(lateAcks, ^seed),
		dropped: newDedup(lateAcks, seed^0x5bd1e995), stats: stats}
}

// queriesSeen is how many querier's queries the link remembers: a
// querier's retries come within its query timeout.
const queriesSeen = 1 << 12

// unackedQueriesSeen is how many queries sent without acknowledgement the
// link remembers: about two seconds of them at a node of a ring of 8
// queried at 15,000 queries a second, hours of them at a person's rate.
const unackedQueriesSeen = 1 << 14

// lateAcks is how many acknowledged messages the link remembers (see
// link.late): the last few windows' worth, to a few destinations.
const lateAcks = 1024

func (l *link) newID() uint32 {
	l.nextID++
	if l.nextID == 0 {
		l.nextID = 1
	}
	return l.nextID
}

func (l *link) dest(to netip.AddrPort) *dest {
	d := l.dests[to]
	if d == nil {
		d = &dest{}
		l.dests[to] = d
	}
	return d
}

// send queues msg for reliable delivery to `to` and transmits what the
// window allows.
func (l *link) send(now time.Time, to netip.AddrPort, msg wire.Message, t tag, barrier bool) []Output {
	return l.sendSigned(now, to, msg, t, barrier, l.sg)
}

// sendHolding is send of a message that forwards what another brought:
// that message's ack, held, is owed once this one is sent (at once if the
// window has room). A node then acknowledges a store from its left only
// when the records it passes on have left for its right neighbour, so a
// left neighbour never has more than a window in flight beyond what the
// right can take: the pipeline's flow control, without dropping stores
// for the left to send again.
func (l *link) sendHolding(now time.Time, to netip.AddrPort, msg wire.Message, held heldAck) []Output {
	d := l.dest(to)
	d.queue = append(d.queue, &outMsg{msg: msg, sg: l.sg, held: []heldAck{held}})
	return l.pump(now, to, d, nil)
}

// sendSigned is send with the messages signed by sg, not the ring's signer
// (a querier's query, signed with its token).
func (l *link) sendSigned(now time.Time, to netip.AddrPort, msg wire.Message, t tag, barrier bool, sg signer) []Output {
	d := l.dest(to)
	d.queue = append(d.queue, &outMsg{msg: msg, tag: t, barrier: barrier, sg: sg})
	return l.pump(now, to, d, nil)
}

// cancel stops delivering the messages tagged t, queued or in flight to
// any destination: what they would do no longer applies (a join that
// failed). Their acks, if they come, are taken without a word.
func (l *link) cancel(now time.Time, t tag) []Output {
	return l.cancelWhere(now, func(m *outMsg) bool { return m.tag == t })
}

// cancelWhere stops delivering the messages drop picks, queued or in
// flight to any destination. Their acks, if they come, are taken without a
// word (ackDropped); the acks a queued one held for what it forwards are owed still,
// and go out.
func (l *link) cancelWhere(now time.Time, drop func(*outMsg) bool) []Output {
	return l.cancelWhereTo(now, func(_ netip.AddrPort, m *outMsg) bool { return drop(m) })
}

// cancelWhereTo is cancelWhere with the destination of each message.
func (l *link) cancelWhereTo(now time.Time, drop func(netip.AddrPort, *outMsg) bool) []Output {
	var out []Output
	for _, to := range l.sortedDests() {
		d := l.dests[to]
		keep := func(ms []*outMsg) []*outMsg {
			kept := ms[:0]
			for _, m := range ms {
				if !drop(to, m) {
					kept = append(kept, m)
					continue
				}
				if m.id != 0 {
					l.dropped.add(to, m.id)
				}
				for _, h := range m.held {
					l.ackSigned(h.to, h.id, h.sg)
				}
				m.held = nil
			}
			return kept
		}
		d.inflight, d.queue = keep(d.inflight), keep(d.queue)
		out = l.pump(now, to, d, out)
	}
	return out
}

// signerOf is the signer of message id in flight to `to`: its ack must be
// signed with the same key. ok is false if no such message is in flight.
func (l *link) signerOf(to netip.AddrPort, id uint32) (sg signer, ok bool) {
	if d := l.dests[to]; d != nil {
		for _, m := range d.inflight {
			if m.id == id {
				return m.sg, true
			}
		}
	}
	return signer{}, false
}

// pending reports whether a message that match picks waits, queued or in
// flight, to `to`.
func (l *link) pending(to netip.AddrPort, match func(wire.Message) bool) bool {
	if d := l.dests[to]; d != nil {
		for _, ms := range [2][]*outMsg{d.queue, d.inflight} {
			for _, m := range ms {
				if match(m.msg) {
					return true
				}
			}
		}
	}
	return false
}

// sentSince is when the message match picks, in flight to `to` (sent and
// not acknowledged; not one still queued), was first sent, moved on by
// this process's own stalls (tries.again); ok is false if none is.
func (l *link) sentSince(to netip.AddrPort, match func(wire.Message) bool) (time.Time, bool) {
	if d := l.dests[to]; d != nil {
		for _, m := range d.inflight {
			if match(m.msg) {
				return m.tries.firstSent, true
			}
		}
	}
	return time.Time{}, false
}

// backlog is the number of messages to `to` not yet acknowledged.
func (l *link) backlog(to netip.AddrPort) int {
	d := l.dests[to]
	if d == nil {
		return 0
	}
	return len(d.queue) + len(d.inflight)
}

// flushQueued reports whether the flush of leader's round waits, not yet
// sent, in the queue to `to`.
func (l *link) flushQueued(to netip.AddrPort, leader string, round uint32) bool {
	if d := l.dests[to]; d != nil {
		for _, m := range d.queue {
			if f, ok := m.msg.(wire.Flush); ok && f.Leader == leader && f.Round == round {
				return true
			}
		}
	}
	return false
}

// unsent is the number of messages to `to` waiting for window space.
func (l *link) unsent(to netip.AddrPort) int {
	d := l.dests[to]
	if d == nil {
		return 0
	}
	return len(d.queue)
}

func (l *link) pump(now time.Time, to netip.AddrPort, d *dest, out []Output) []Output {
	for len(d.queue) > 0 && len(d.inflight) < l.cfg.Window {
		m := d.queue[0]
		if m.barrier {
			msg, ok := withAfter(m.msg, d.inflight)
			if !ok && len(d.inflight) > 0 {
				break
			}
			m.msg = msg
		}
		d.queue = d.queue[1:]
		if st, ok := m.msg.(wire.Store); ok {
			m.msg = l.coalesce(st, m, d)
		}
		for _, h := range m.held {
			l.ackSigned(h.to, h.id, h.sg)
		}
		m.held = nil
		m.id = l.newID()
		m.tries.start(now, l.estimate(m.msg).first(&l.cfg.Retry))
		d.inflight = append(d.inflight, m)
		l.stats.Sent++
		out = append(out, m.sg.send(to, m.id, 0, m.msg))
	}
	if len(d.queue) == 0 && len(d.inflight) == 0 {
		delete(l.dests, to)
	}
	return out
}

// withAfter is barrier message msg sent with the messages ahead of it in
// flight: a flush naming their ids, for its receiver to act on it only
// once they have all come. ok is false for a message that cannot name
// them (any other type, or more than wire.MaxAfter ahead): it waits for
// their acks.
//
// Only the stores ahead are named: they are what a flush follows. A query
// in flight on the same link (its own walk's, a querier's taken into the
// ring by the set-id of a setup that followed a teardown at once) may
// never be acknowledged: its receiver, in another ring now, drops it. A
// flush naming it was dropped as ahead of it at every copy until the link
// gave the query, and the flush with it, up: the setup waited its two
// minutes and failed (a chaos run at 15% loss).
func withAfter(msg wire.Message, ahead []*outMsg) (_ wire.Message, ok bool) {
	f, isFlush := msg.(wire.Flush)
	if !isFlush {
		return msg, false
	}
	f.After = nil
	for _, m := range ahead {
		if _, st := m.msg.(wire.Store); st {
			f.After = append(f.After, m.id)
		}
	}
	if len(f.After) > wire.MaxAfter {
		return msg, false
	}
	return f, true
}

// coalesce merges the stores queued right behind st (m's) into it while
// the datagram has room, and their held acks into m's: a slow neighbour
// gets fewer, fuller datagrams.
func (l *link) coalesce(st wire.Store, m *outMsg, d *dest) wire.Store {
	size := wire.EncodedLen(st)
	merged := false
	for len(d.queue) > 0 {
		next, ok := d.queue[0].msg.(wire.Store)
		if !ok || d.queue[0].barrier || next.N != st.N {
			break
		}
		add := 0
		for _, r := range next.Records {
			add += wire.RecordLen(r)
		}
		if size+add > wire.MaxMessage {
			break
		}
		if !merged {
			st.Records = append([]wire.Record(nil), st.Records...)
			merged = true
		}
		st.Records = append(st.Records, next.Records...)
		m.held = append(m.held, d.queue[0].held...)
		size += add
		d.queue = d.queue[1:]
	}
	return st
}

// acked handles an Ack from `from` for message id. It reports the tag of the
// acknowledged message, or ok=false for an ack that matches nothing.
func (l *link) acked(now time.Time, from netip.AddrPort, id uint32) (t tag, ok bool, out []Output) {
	d := l.dests[from]
	if d == nil {
		return tagNone, false, nil
	}
	for i, m := range d.inflight {
		if m.id == id {
			// Not when its retransmission fell due more than lateTick ago
			// and did not run: this process was stopped or starved
			// meanwhile, and the ack, come at once, waited unread. Such a
			// sample (a 4 s SIGSTOP) set the timeout above the give-up.
			if rtt, ok := m.tries.roundTrip(now); ok && now.Sub(m.tries.next) <= lateTick {
				if _, store := m.msg.(wire.Store); store {
					l.ackStoreRTT = max(l.ackStoreRTT, rtt)
				} else {
					l.ackRTT = max(l.ackRTT, rtt)
				}
			}
			// Remembered sent once too: a network that duplicates
			// delivers its ack twice, and the copy is no sign of trouble.
			l.late.add(from, id)
			d.inflight = append(d.inflight[:i], d.inflight[i+1:]...)
			return m.tag, true, l.pump(now, from, d, nil)
		}
	}
	return tagNone, false, nil
}

// unseen is how many of ids, messages from `from`, have not come.
func (l *link) unseen(from netip.AddrPort, ids []uint32) int {
	n := 0
	for _, id := range ids {
		if !l.seen.has(from, id) {
			n++
		}
	}
	return n
}

// ackedBefore reports that id, sent to `from`, was acknowledged already
// (one of the last lateAcks): an ack that matches nothing in flight, for
// it, is the answer to another copy of the message, or a copy of the ack.
func (l *link) ackedBefore(from netip.AddrPort, id uint32) bool { return l.late.has(from, id) }

// ackDropped reports that id, sent to `from`, was cancelled in flight: its
// ack, if it comes, ends nothing.
func (l *link) ackDropped(from netip.AddrPort, id uint32) bool { return l.dropped.has(from, id) }

// endAck feeds the round trip of the Ack just handled into the estimate:
// one sample an Ack, the longest of the messages it acknowledges. A node
// acknowledges together everything one commit covers, up to a window of
// messages sent over the time the commit took; a sample for each would
// weigh one commit 32 times and keep the variation, so the timeout, too
// small: timeouts would fire near the median round trip and send many
// stores twice.
func (l *link) endAck() {
	if l.ackRTT > 0 {
		l.rtt.sample(l.ackRTT)
		l.ackRTT = 0
	}
	if l.ackStoreRTT > 0 {
		l.storeRTT.sample(l.ackStoreRTT)
		l.ackStoreRTT = 0
	}
}

// failure is a message the link gave up on. stalled, if not 0, is how
// late this process ran the retransmission it gave up at: a stall of its
// own just before, beyond what the give-up spares (tries.again), so the
// silence may be its own.
type failure struct {
	to      netip.AddrPort
	msg     wire.Message
	tag     tag
	stalled time.Duration
}

// tick retransmits what is due and gives up on destinations that stayed
// silent for GiveUp; everything queued for a gone destination is dropped.
func (l *link) tick(now time.Time) (out []Output, gone []failure) {
	for _, to := range l.sortedDests() {
		d := l.dests[to]
		dead := false
		var stalled time.Duration
		for i, m := range d.inflight {
			if !m.tries.due(now) {
				continue
			}
			if late := now.Sub(m.tries.next); !m.tries.again(now, &l.cfg.Retry, l.estimate(m.msg)) {
				if m.tries.unspared > lateTick {
					stalled = late
				}
				dead = true
				break
			}
			if m.barrier {
				// Only what is still in flight ahead of it: the rest has
				// come, or was given up on.
				m.msg, _ = withAfter(m.msg, d.inflight[:i])
			}
			l.stats.Sent++
			l.stats.Retransmits++
			out = append(out, m.sg.send(to, m.id, wire.FlagRetransmit, m.msg))
		}
		if dead {
			l.stats.GaveUp++
			for _, m := range append(d.inflight, d.queue...) {
				gone = append(gone, failure{to: to, msg: m.msg, tag: m.tag, stalled: stalled})
			}
			delete(l.dests, to)
		}
	}
	return out, gone
}

// postpone moves every retransmission timeout d later: for d the node
// read nothing (a commit), so acks that came meanwhile wait unread, and
// what waits for them would otherwise be sent again before they are read.
func (l *link) postpone(d time.Duration) {
	for _, dst := range l.dests {
		for _, m := range dst.inflight {
			m.tries.next = m.tries.next.Add(d)
			m.tries.deaf += d
		}
	}
}

// sortedDests keeps retransmission order independent of map order, so that
// a seeded simulation replays exactly.
func (l *link) sortedDests() []netip.AddrPort {
	keys := make([]netip.AddrPort, 0, len(l.dests))
	for k := range l.dests {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b netip.AddrPort) int { return a.Compare(b) })
	return keys
}

// stalest is the message in flight to one of dests, sent more than once,
// that has waited longest for its ack, and where it went: what a ring
// phase that waits on dests is held up by, given up at GiveUp (false:
// nothing sent there is overdue).
func (l *link) stalest(dests []netip.AddrPort) (netip.AddrPort, *outMsg, bool) {
	var to netip.AddrPort
	var best *outMsg
	for _, k := range l.sortedDests() {
		if !slices.Contains(dests, k) {
			continue
		}
		for _, m := range l.dests[k].inflight {
			if m.tries.sent > 1 && (best == nil || m.tries.firstSent.Before(best.tries.firstSent)) {
				to, best = k, m
			}
		}
	}
	return to, best, best != nil
}

func (l *link) deadline() (time.Time, bool) {
	var t time.Time
	found := false
	for _, d := range l.dests {
		for _, m := range d.inflight {
			if !found || m.tries.next.Before(t) {
				t, found = m.tries.next, true
			}
		}
	}
	return t, found
}

// ack queues an acknowledgement of message id from `to`; flushAcks sends
// them.
func (l *link) ack(to netip.AddrPort, id uint32) { l.ackSigned(to, id, l.sg) }

// ackSigned is ack with the Ack signed by sg (to a querier: its token).
func (l *link) ackSigned(to netip.AddrPort, id uint32, sg signer) {
	l.ackQueued(to, id, sg, false)
}

// ackCopy is ackSigned for a copy of a message already taken: an ack that
// carries only such ids is traced as the drops are (Send.Quiet), since a
// copy captured and replayed from any source has its ack go there.
func (l *link) ackCopy(to netip.AddrPort, id uint32, sg signer) {
	l.ackQueued(to, id, sg, true)
}

func (l *link) ackQueued(to netip.AddrPort, id uint32, sg signer, copyOf bool) {
	for i := range l.acks {
		// One Ack a signer: its receiver checks it with the key of the
		// message it names first (or, that one acknowledged before, of
		// the first in More it still has in flight), so ids of messages
		// signed with another key (a member's query copy, with its
		// token, and its store, with the ring's, read together) go in an
		// Ack of their own.
		if l.acks[i].to == to && l.acks[i].sg == sg {
			l.acks[i].ids = append(l.acks[i].ids, id)
			l.acks[i].copies = l.acks[i].copies && copyOf
			return
		}
	}
	l.acks = append(l.acks, pendingAck{to: to, ids: []uint32{id}, sg: sg, copies: copyOf})
}

// flushAcks sends what ack queued: one Ack datagram per sender and signer
// (ackQueued), carrying every id that sender is owed of messages signed
// with one key (up to 1+MaxAcks of them).
func (l *link) flushAcks(out []Output) []Output {
	for _, a := range l.acks {
		for ids := a.ids; len(ids) > 0; {
			k := min(len(ids), 1+wire.MaxAcks)
			var more []uint32
			if k > 1 {
				more = ids[1:k]
			}
			l.stats.Sent++
			snd := a.sg.send(a.to, ids[0], 0, wire.Ack{More: more})
			snd.Quiet = a.copies
			out = append(out, snd)
			ids = ids[k:]
		}
	}
	l.acks = l.acks[:0]
	return out
}

type pendingAck struct {
	sg     signer
	to     netip.AddrPort
	ids    []uint32
	copies bool // every id is a copy's (ackCopy)
}

// dedup remembers the last `size` (source, id) pairs seen. It grows to
// that size as ids arrive rather than up front: most peers see few. A pair
// is kept as one uint64, the source's index in a small table and the id,
// in a set of fixed size (idSet): a Go map of (address, id) pairs keeps
// growing while keys come and go, and would be most of what a node holds
// when many records pass.
type dedup struct {
	set  idSet
	ring []uint64
	size int
	next int
	// Sources: an index for each address with pairs in the ring, freed
	// when its last pair leaves, so a stream of strangers cannot grow it.
	index   map[netip.AddrPort]uint32
	sources []dedupSource
	free    []uint32
}

type dedupSource struct {
	addr  netip.AddrPort
	pairs int // of the ring's
}

// newDedup remembers size pairs; seed keys the set's hash, so that ids
// chosen by a sender cannot be made to collide.
func newDedup(size int, seed uint64) dedup {
	return dedup{set: idSet{seed: seed}, size: size, index: map[netip.AddrPort]uint32{}}
}

// dedupKey is never 0 (idSet's empty slot): the top bit is set.
func dedupKey(source uint32, id uint32) uint64 { return 1<<63 | uint64(source)<<32 | uint64(id) }

// dedupKeySource is the source index of a dedupKey.
func dedupKeySource(k uint64) uint32 { return uint32(k>>32) &^ (1 << 31) }

func (d *dedup) has(from netip.AddrPort, id uint32) bool {
	src, ok := d.index[from]
	return ok && d.set.has(dedupKey(src, id))
}

func (d *dedup) add(from netip.AddrPort, id uint32) bool {
	if d.has(from, id) {
		return false
	}
	if len(d.ring) == d.size {
		// Forget the oldest first: it may be the source's last pair.
		old := d.ring[d.next]
		d.set.remove(old)
		d.release(dedupKeySource(old))
	}
	src, ok := d.index[from]
	if !ok {
		if n := len(d.free); n > 0 {
			src, d.free = d.free[n-1], d.free[:n-1]
			d.sources[src] = dedupSource{addr: from}
		} else {
			src = uint32(len(d.sources))
			d.sources = append(d.sources, dedupSource{addr: from})
		}
		d.index[from] = src
	}
	d.sources[src].pairs++
	k := dedupKey(src, id)
	if len(d.ring) < d.size {
		d.ring = append(d.ring, k)
	} else {
		d.ring[d.next] = k
		d.next = (d.next + 1) % len(d.ring)
	}
	d.set.add(k)
	return true
}

// release drops one of source src's pairs, and its index with its last.
func (d *dedup) release(src uint32) {
	s := &d.sources[src]
	if s.pairs--; s.pairs == 0 {
		delete(d.index, s.addr)
		*s = dedupSource{}
		d.free = append(d.free, src)
	}
}

// idSet is a set of non-zero uint64 keys in one array, open addressing with
// linear probing and backward-shift deletion: no tombstones, so its memory
// is set by the most keys it holds at once (two slots, 16 bytes, a key),
// however many pass through it.
type idSet struct {
	slots []uint64 // 0: empty; a power of two, at least twice the keys
	shift uint     // 64 - log2(len(slots))
	n     int
	seed  uint64
}

// home is k's first slot: splitmix64's finaliser of k and the seed, top bits.
func (s *idSet) home(k uint64) uint64 {
	z := k ^ s.seed
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	z ^= z >> 31
	return z >> s.shift
}

func (s *idSet) find(k uint64) (int, bool) {
	mask := uint64(len(s.slots) - 1)
	for i := s.home(k); ; i = (i + 1) & mask {
		switch s.slots[i] {
		case 0:
			return int(i), false
		case k:
			return int(i), true
		}
	}
}

func (s *idSet) has(k uint64) bool {
	if s.n == 0 {
		return false
	}
	_, ok := s.find(k)
	return ok
}

// add puts k, which must not be there, in the set.
func (s *idSet) add(k uint64) {
	if 2*(s.n+1) > len(s.slots) {
		s.grow(max(16, 2*len(s.slots)))
	}
	i, _ := s.find(k)
	s.slots[i] = k
	s.n++
}

func (s *idSet) grow(size int) {
	old := s.slots
	s.slots = make([]uint64, size)
	s.shift = uint(64 - bits.TrailingZeros(uint(size)))
	s.n = 0
	for _, k := range old {
		if k != 0 {
			i, _ := s.find(k)
			s.slots[i] = k
			s.n++
		}
	}
}

// remove takes k out, if there, moving back the keys behind it that would
// otherwise be cut off from their home slot.
func (s *idSet) remove(k uint64) {
	if s.n == 0 {
		return
	}
	i, ok := s.find(k)
	if !ok {
		return
	}
	mask := len(s.slots) - 1
	for j := (i + 1) & mask; s.slots[j] != 0; j = (j + 1) & mask {
		// The key at j may move to the hole at i unless its home lies
		// cyclically in (i, j].
		h := int(s.home(s.slots[j]))
		if (j-h)&mask >= (j-i)&mask {
			s.slots[i] = s.slots[j]
			i = j
		}
	}
	s.slots[i] = 0
	s.n--
}

func attrAddr(a netip.AddrPort) slog.Attr { return slog.String("addr", a.String()) }
