package app

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"dht/app/state"
	"dht/dataset"
	"dht/wire"
)

// operation is the user command in progress: one at a time, since a peer
// has one exchange with the server at a time and the next input line
// waits. Each command is a type of its own with its own stages; the peer's
// handlers hand each event (a reply, an acknowledgement, a ring message
// coming back, time) to the command it concerns by the command's type.
type operation interface {
	// asking is the command's request to the server (live while it waits
	// for the reply), or nil for a command that sends none.
	asking() *request
	// answered: the server replied SUCCESS to the request for cmd.
	answered(p *Peer, now time.Time, cmd Command, r wire.Reply) []Output
	// failing is the command a failure now reports: once the server has
	// said SUCCESS to a setup-dht, its ring phase fails as dht-complete;
	// a leave-dht's as dht-rebuilt, a teardown-dht's as teardown-complete.
	failing() Command
	// due is when the command itself next needs Tick (zero: never): the
	// end of a sleep, the limit of a ring phase, a query's retry.
	due() time.Time
	// expire: due has passed.
	expire(p *Peer, now time.Time, out []Output) []Output
	// needs are the peers a ring phase waits on: the link giving up on
	// one fails the command.
	needs() []netip.AddrPort
	// sent reports whether m is a message the command sent itself.
	sent(p *Peer, m wire.Message) bool
}

// request is a command's request to the server: sent, retransmitted under
// the server's Retry policy, answered once.
type request struct {
	cmd   Command
	msg   wire.Message
	sg    signer // a retransmission is signed as the first copy was
	id    uint32
	tries tries
	live  bool // sent and not yet answered
	// A query-dht asked again goes as a new request, with a new id
	// (askAgain): sentAt is when the one with id went, asked the ids it
	// went with before and when, the latest last. A reply to any of them
	// answers the query, and times its round trip exactly: on a link
	// slower than the retry time, each reply came after its id was
	// replaced, and the query failed though every copy was answered.
	sentAt time.Time
	asked  []askedAs
}

// askedAs is an id a query-dht went with, and when.
type askedAs struct {
	id uint32
	at time.Time
}

// maxAsked is how many earlier ids of a query-dht a reply may answer.
const maxAsked = 32

func (rq *request) prepare(cmd Command, msg wire.Message) {
	*rq = request{cmd: cmd, msg: msg}
}

// noRing is the part of operation a command without a ring phase has.
type noRing struct{}

func (noRing) due() time.Time                                   { return time.Time{} }
func (noRing) expire(_ *Peer, _ time.Time, o []Output) []Output { return o }
func (noRing) needs() []netip.AddrPort                          { return nil }
func (noRing) sent(*Peer, wire.Message) bool                    { return false }

// ringPhase is the limit of a command's ring phase and the peers it waits
// on.
type ringPhase struct {
	until  time.Time
	waitOn []netip.AddrPort
}

func (r *ringPhase) begin(p *Peer, now time.Time, waitOn ...netip.AddrPort) {
	r.until, r.waitOn = now.Add(p.cfg.OpTimeout), waitOn
}

func (r *ringPhase) needs() []netip.AddrPort { return r.waitOn }

// expired fails the command whose ring phase took too long, saying what
// it waited for.
func (r *ringPhase) expired(p *Peer, now time.Time, out []Output, c Command, waited string) []Output {
	return p.finish(now, out, resultFailed(c, r.tooLong(p, waited)))
}

// tooLong is why a ring phase failed at its limit.
func (r *ringPhase) tooLong(p *Peer, waited string) string {
	return fmt.Sprintf("the ring did not finish within %s: it waited for %s", p.cfg.OpTimeout, waited)
}

// opFailure picks, among the messages the link gave up on, the one that
// fails the command in progress: one to a peer the command needs, and of
// those the command's own message rather than another that was in flight
// to the same peer (a query this node was forwarding, say), so that the
// FAILURE names what the command was waiting for.
func opFailure(p *Peer, o waiter, gone []failure) (failure, bool) {
	var first failure
	found := false
	needs := o.needs()
	for _, g := range gone {
		if !slices.Contains(needs, g.to) {
			continue
		}
		if o.sent(p, g.msg) {
			return g, true
		}
		if !found {
			first, found = g, true
		}
	}
	return first, found
}

// waiter is what opFailure asks of a command.
type waiter interface {
	needs() []netip.AddrPort
	sent(p *Peer, m wire.Message) bool
}

// sleepOp: sleep DURATION holds the next input line back.
type sleepOp struct {
	noRing
	until time.Time
}

func (*sleepOp) asking() *request                                        { return nil }
func (*sleepOp) answered(*Peer, time.Time, Command, wire.Reply) []Output { return nil }
func (*sleepOp) failing() Command                                        { return CmdSleep }
func (o *sleepOp) due() time.Time                                        { return o.until }

func (o *sleepOp) expire(p *Peer, now time.Time, out []Output) []Output {
	// Its one line, as every command's (SPEC §5), once the pause is over.
	return p.finish(now, out, resultOK(CmdSleep))
}

// plainOp is a command that is one request to the server: dht-complete,
// dht-rebuilt and teardown-complete as typed, and deregister.
type plainOp struct {
	noRing
	rq request
}

func (o *plainOp) asking() *request { return &o.rq }
func (o *plainOp) failing() Command { return o.rq.cmd }

func (o *plainOp) answered(p *Peer, now time.Time, cmd Command, r wire.Reply) []Output {
	switch m := o.rq.msg.(type) {
	case wire.DHTRebuilt:
		return p.rebuiltAccepted(now, m)
	case wire.Deregister:
		if m.Name == p.self.Name {
			p.registered, p.exited = false, true
			p.lines, p.linesBytes, p.head, p.headRead = nil, 0, command{}, false
			p.op = nil
			// The file no longer holds a registration: a peer started on
			// it registers anew rather than resume. The server's answer is
			// the command's result, whatever becomes of that commit.
			forget := PersistPeer{Batch: state.Batch{Identity: &state.Identity{}, Clear: true}, Forget: m.Name}
			return []Output{resultOK(CmdDeregister), forget, Exit{}}
		}
	}
	return p.finish(now, nil, resultOK(cmd))
}

// rebuiltAccepted: the server took dht-rebuilt, which ends the command;
// if it named this peer as the user who left, this peer is out of the
// ring. Its file drops the neighbours after the result: the result is the
// server's, and a peer that stops before the commit finds on resuming that
// the ring no longer counts it, and drops them then.
func (p *Peer) rebuiltAccepted(now time.Time, m wire.DHTRebuilt) []Output {
	res := Result{Cmd: CmdDHTRebuilt, OK: true, NewLeader: m.NewLeader}
	if m.Name != p.self.Name {
		return p.finish(now, nil, res)
	}
	p.leaveRing(false)
	out := p.finish(now, nil, res)
	tidy := p.persist(false, nil)
	tidy.Tidy = true
	return append(out, tidy)
}

// registerOp: register binds the address first, then asks the server. A
// resume is a register too, of the registration the peer's file holds.
type registerOp struct {
	noRing
	bind       netip.AddrPort
	rq         request         // live once bound
	resume     *state.Identity // the file's, when this is a resume
	challenges int
	// anew: the server challenged this register though it was signed
	// with the user's secret: it did not hold that secret, and registers
	// the user anew (onChallenge).
	anew bool
	// again: typed at a peer that holds this registration already (a
	// rejoin, whatever the server answers).
	again bool
	// typed: a resume the user asked for again by typing register after
	// the one at the start failed; its result is the register's.
	typed bool
	// unbound: the resume at the start could not bind its address; the
	// runner stops the process on it (the file is this user's, and no
	// other address is to be tried with it), so its line does not say to
	// type a register.
	unbound bool
	// elsewhere: the resume at the start, of a file registered with
	// another server, which does not hold the user's secret: it stopped
	// there (onChallenge).
	elsewhere bool
}

func (o *registerOp) asking() *request { return &o.rq }

func (o *registerOp) failing() Command {
	if o.resume != nil && !o.typed {
		return CmdResume
	}
	return CmdRegister
}

func (o *registerOp) answered(p *Peer, now time.Time, _ Command, r wire.Reply) []Output {
	// The file of a resume that failed may hold a table of a place this
	// register does not take back.
	stale := p.unresumed != nil
	if !r.Key.IsZero() {
		// A new secret: the rings taken with the old one say nothing of
		// the next (a set-id's ticket is made with the secret, so one of
		// them replayed does not verify, and every ring message is signed
		// with its ring's key), and a server started on a new file counts
		// its epochs from 1 again: neither the ring key's epoch nor the
		// ring epoch this node last held is a floor any more (a place
		// the server still counts is taken back from the file, resumed;
		// one it does not is dropped below).
		p.cred.secret, p.cred.seq = r.Key, 0
		p.cred.epoch, p.cred.ringKey, p.epoch = 0, wire.Key{}, 0
	}
	if p.cred.secret.IsZero() {
		return p.failed(now, nil, resultFailed(o.failing(), "the server's reply carries no secret"))
	}
	// A ring member's rejoin carries its ticket for the ring's key, whose
	// set-ids are for it even if it holds no place (holdsRing).
	p.counted = len(r.Tickets) == 1 && r.KeyEpoch != 0
	if p.counted {
		p.setRing(r.KeyEpoch, ringKeyOf(p.cred.secret, r.KeyEpoch, r.Tickets[0]))
	}
	// The server counts this process's alives from the register's
	// sequence number (Server.rejoin).
	p.cred.aliveSeq = max(p.cred.aliveSeq, o.rq.sg.seq)
	p.registered, p.unresumed, p.elsewhere = true, nil, false
	p.self.Name = o.rq.msg.(wire.Register).Name
	p.startAlive(now)
	if o.resume != nil {
		return p.resumed(now, *o.resume, r, o.anew, o.failing())
	}
	res := resultOK(CmdRegister)
	res.Detail = p.rejoined(r, o.again)
	var out []Output
	if o.anew {
		res.Detail = registeredAnew(p.self.Name)
		if p.inRing || p.neighbours {
			// The server knows no ring with this user in it.
			res.Detail += fmt.Sprintf("; its place (id %d of a ring of %d) and table were discarded", p.id, p.n)
			out = p.abandon(now, fmt.Sprintf("the server did not hold %s's secret", p.self.Name))
			out = append(out, p.dropPlace()...)
		}
	}
	// A peer outside any ring keeps no table: after a resume that failed,
	// the file it registers in may hold one of the place it had, which no
	// ring counts.
	return p.finish(now, append(out, p.persist(stale && !p.inRing && !p.neighbours, nil)), res)
}

// rejoined says what a register that the server took as a rejoin left the
// user as (SPEC §3: the reply says which state and, for a ring member,
// which DHT), with the server's note when the rejoin made the ring heal;
// "" for a new registration. A rejoin as Free from a process that held no
// registration (a new, empty file) reads as a new one: it is one, to the
// user.
func (p *Peer) rejoined(r wire.Reply, again bool) string {
	st := state.State(r.State)
	if st == state.Free && r.Reason == "" && !again {
		return ""
	}
	d := fmt.Sprintf("rejoined: %s is %s", p.self.Name, st)
	if st != state.Free {
		d += fmt.Sprintf(" in the DHT of epoch %d", r.Epoch)
		if p.inRing && p.epoch == r.Epoch {
			d += fmt.Sprintf(", id %d of a ring of %d", p.id, p.n)
		}
	}
	return withNote(d, r)
}

type setupStage uint8

const (
	setupAsking     setupStage = iota // setup-dht sent to the server
	setupPopulating                   // set-ids sent, the records going round behind them; the flush follows
	setupCompleting                   // dht-complete sent to the server
)

// setupOp: setup-dht, from the request to the server's answer to
// dht-complete.
type setupOp struct {
	ringPhase
	rq    request
	stage setupStage
	data  dataset.Source
	// The server's reply: the ring, its epoch, the ring key's epoch and
	// the members' tickets (asked for with tickets when one reply had no
	// room for all).
	members  []wire.Member
	epoch    uint64
	keyEpoch uint64
	tickets  []wire.Tag
}

func (o *setupOp) asking() *request { return &o.rq }

func (o *setupOp) failing() Command {
	if o.stage == setupAsking {
		return CmdSetupDHT
	}
	return CmdDHTComplete
}

func (o *setupOp) answered(p *Peer, now time.Time, cmd Command, r wire.Reply) []Output {
	if cmd == CmdDHTComplete {
		return p.finish(now, nil, resultOK(CmdDHTComplete))
	}
	_, more := o.rq.msg.(wire.Tickets)
	if !more {
		o.members, o.epoch, o.keyEpoch = r.Members, r.Epoch, r.KeyEpoch
	} else if r.KeyEpoch != o.keyEpoch {
		return p.finish(now, nil, resultFailed(CmdSetupDHT, "the server's tickets are for another ring"))
	}
	o.tickets = append(o.tickets, r.Tickets...)
	switch {
	case len(o.tickets) > len(o.members) || more && len(r.Tickets) == 0 && len(o.tickets) < len(o.members):
		return p.finish(now, nil, resultFailed(CmdSetupDHT, "the server's reply has no ticket for every member"))
	case len(o.tickets) < len(o.members):
		return p.ask(now, nil, &o.rq, CmdSetupDHT, wire.Tickets{Name: p.self.Name, From: uint16(len(o.tickets))})
	}
	key := ringKeyOf(p.cred.secret, o.keyEpoch, o.tickets[0])
	p.setRing(o.keyEpoch, key)
	return o.place(p, now, o.members, o.epoch)
}

// place: the server named the ring; tell every member its place.
func (o *setupOp) place(p *Peer, now time.Time, members []wire.Member, epoch uint64) []Output {
	names := make([]string, len(members))
	for i, m := range members {
		names[i] = m.Name
	}
	out := []Output{Result{Cmd: CmdSetupDHT, OK: true, Ring: names}}
	if p.healing != nil {
		// The server already heals this ring (a member restarted): the
		// heal places it, not this setup.
		return p.finish(now, out, resultFailed(CmdDHTComplete, "a member restarted during the setup; the server heals the ring instead"))
	}
	if epoch != 0 && epoch < p.epoch {
		// The answer came late (lost, asked again, answered from the
		// server's cache), after a heal that replaced this setup's ring
		// had placed this node and ended: set up now, the ring of the
		// earlier epoch would undo the heal, and its members drop its
		// messages.
		return p.finish(now, out, resultFailed(CmdDHTComplete, fmt.Sprintf("a member restarted during the setup; the server healed the ring instead (epoch %d)", p.epoch)))
	}
	out = append(out, p.abandon(now, "a new ring is being set up")...)
	n := len(members)
	if n < 1 || members[0].Addr != p.self.Addr {
		return p.finish(now, out, resultFailed(CmdDHTComplete, "the server's ring does not start at this peer"))
	}
	p.clearTable()
	p.inRing, p.id, p.n, p.epoch, p.filling = true, 0, n, epoch, true
	p.filled = false
	p.left, p.right, p.neighbours = members[n-1], members[1%n], true
	waitOn := make([]netip.AddrPort, 0, n-1)
	for _, m := range members[1:] {
		waitOn = append(waitOn, m.Addr)
	}
	o.begin(p, now, waitOn...)
	for i := 1; i < n; i++ {
		msg := wire.SetID{ID: uint16(i), N: uint16(n), Left: members[i-1], Right: members[(i+1)%n], Epoch: epoch, Ticket: o.tickets[i]}
		out = append(out, p.link.send(now, members[i].Addr, msg, tagSetID, false)...)
	}
	// The records go round right behind the set-ids, without waiting for
	// their acks (a round trip to the slowest member): a member's set-id
	// leaves before the stores that reach it through its left neighbour,
	// so it is in its socket first unless lost; a store that comes before
	// it is signed with a ring key the member does not have yet (every
	// setup draws a new one), so it is dropped unacknowledged and sent
	// again, like a lost one. The set-ids' acks end nothing: the committed
	// back round the ring says every member took its place and its
	// records. A member that never acknowledges its set-id fails the
	// command as a neighbour that stops acknowledging does. (A heal keeps
	// the ring key, so there a store could reach a survivor still placed
	// in the old ring: its leader waits for the set-ids' acks.)
	o.stage = setupPopulating
	data := o.data
	o.data = nil
	return p.startPopulate(now, out, data, nil)
}

// populated: every record is committed at its node.
func (o *setupOp) populated(p *Peer, now time.Time) []Output {
	if o.stage != setupPopulating {
		return nil
	}
	o.stage, o.ringPhase = setupCompleting, ringPhase{}
	return p.ask(now, nil, &o.rq, CmdDHTComplete, wire.DHTComplete{Name: p.self.Name})
}

func (o *setupOp) due() time.Time {
	if o.stage == setupPopulating {
		return o.until
	}
	return time.Time{}
}

func (o *setupOp) expire(p *Peer, now time.Time, out []Output) []Output {
	return p.finish(now, out, resultFailed(CmdDHTComplete, o.tooLong(p, o.waited())+setupGivenUp))
}

// setupGivenUp ends the line of a setup that failed in its ring phase with
// what becomes of the DHT, which the line would leave to the trace (a
// walk-through on several hosts): finish gives the setup up, and the
// alive sent at once tells the server.
const setupGivenUp = "; this setup is given up, and the server rolls it back as it hears so (at its --op-timeout at the latest): every member Free"

func (o *setupOp) waited() string {
	// Either may be what never came: the flush, dropped at a node, or
	// the committed behind it (a chaos review: the line named only the
	// committed, where the flush had stalled).
	return "the flush behind the records, then the committed behind it, to come back round the ring"
}

func (o *setupOp) sent(p *Peer, m wire.Message) bool {
	switch m := m.(type) {
	case wire.SetID:
		return true
	case wire.Store:
		return o.stage == setupPopulating // the leader forwards no one else's
	case wire.Flush:
		return m.Leader == p.self.Name
	}
	return false
}

type leaveStage uint8

const (
	leaveAsking      leaveStage = iota // leave-dht sent to the server
	leaveTearing                       // the teardown (keeping neighbours) going round
	leaveRenumbering                   // reset-id going round
	leaveClosing                       // reset-left and reset-right sent
	leaveRebuilding                    // rebuild-dht sent to the new leader
	leaveReporting                     // dht-rebuilt sent to the server
)

// leaveRunning: the server took the leave, and this node works at it in
// the ring (neither asking the server nor reporting to it).
func leaveRunning(s leaveStage) bool { return s > leaveAsking && s < leaveReporting }

// leaveOp: leave-dht, from the request to the server's answer to
// dht-rebuilt.
type leaveOp struct {
	ringPhase
	rq          request
	stage       leaveStage
	left, right wire.Member // this node's neighbours when it left
	n           int         // the ring's size when it left
	pending     int         // resets not yet acknowledged
	epoch       uint64      // the renumbered ring's, from the server's answer
	ringEpoch   uint64      // the ring's it left, which its teardown carries
}

func (o *leaveOp) asking() *request { return &o.rq }

func (o *leaveOp) failing() Command {
	if o.stage == leaveAsking {
		return CmdLeaveDHT
	}
	return CmdDHTRebuilt
}

func (o *leaveOp) answered(p *Peer, now time.Time, cmd Command, r wire.Reply) []Output {
	if cmd == CmdDHTRebuilt {
		m := o.rq.msg.(wire.DHTRebuilt)
		return p.rebuiltAccepted(now, m)
	}
	// Tear the ring's tables down, keeping neighbours.
	out := []Output{resultOK(CmdLeaveDHT)}
	o.stage = leaveTearing
	if !p.inRing || !p.neighbours {
		return p.finish(now, out, resultFailed(CmdDHTRebuilt, notInRing(p.self.Name)))
	}
	o.left, o.right, o.n, o.epoch, o.ringEpoch = p.left, p.right, p.n, r.Epoch, p.epoch
	o.begin(p, now, p.left.Addr, p.right.Addr)
	return append(out, p.link.send(now, p.right.Addr, wire.Teardown{Origin: p.self.Name, KeepNeighbours: true, OriginAddr: p.self.Addr, Epoch: p.epoch}, tagNone, false)...)
}

// tornDown: the teardown came back; renumber the others. The leaver's
// emptied table and lost place are committed once rebuild-dht has left
// (resetAcked), as the other nodes write theirs with the rebuild's
// commit: a commit here would keep the leaver from reading the reset-id
// when it comes back, and the reset-left and reset-right that follow
// would wait for its disk. If the leave ends before (finish), the commit
// is made then. A leaver stopped meanwhile resumes on a file that still
// holds its place, which the ring no longer counts: resumed drops it.
func (o *leaveOp) tornDown(p *Peer, now time.Time) []Output {
	p.clearTable()
	p.leaveRing(true)
	p.ownLeave = true
	p.deferPersist(true)
	o.stage = leaveRenumbering
	// As at a join's leader (joinLead.tornDown): the right, torn down,
	// drops the queries forwarded to it meanwhile, unacknowledged, and
	// they would hold the reset-id back.
	out := p.endForwards(now)
	return append(out, p.link.send(now, o.right.Addr, wire.ResetID{Origin: p.self.Name, ID: 0, N: uint16(o.n - 1), OriginAddr: p.self.Addr, Epoch: o.epoch}, tagNone, false)...)
}

// renumbered: reset-id came back; point the neighbours at each other.
func (o *leaveOp) renumbered(p *Peer, now time.Time) []Output {
	o.stage, o.pending = leaveClosing, 2
	// The queries this node forwarded go no further: its right, whose
	// left it is no longer once the reset-left comes, drops them
	// unacknowledged ("query from neither its querier nor the left
	// neighbour"), and each was sent again until the give-up, then warned
	// (a chaos run with queries typed during a leave: 867 copies and 14
	// warnings at the leaver). Their queriers send their copies again to
	// the member the server named.
	out := p.endForwards(now)
	out = append(out, p.link.send(now, o.right.Addr, wire.ResetLeft{Left: o.left, Epoch: o.epoch}, tagResetLeft, false)...)
	return append(out, p.link.send(now, o.left.Addr, wire.ResetRight{Right: o.right, Epoch: o.epoch}, tagResetRight, false)...)
}

// resetAcked: once both neighbours point at each other, the right one
// rebuilds.
func (o *leaveOp) resetAcked(p *Peer, now time.Time, out []Output) []Output {
	if o.stage != leaveClosing {
		return out
	}
	if o.pending--; o.pending > 0 {
		return out
	}
	o.stage = leaveRebuilding
	o.ringPhase.until = now.Add(p.cfg.OpTimeout)
	out = append(out, p.link.send(now, o.right.Addr, wire.RebuildDHT{Leaver: p.self}, tagRebuild, false)...)
	return append(out, p.persist(true, nil)) // after the send: the rebuild starts while the disk works
}

// rebuilt: the new leader has placed every record, or could not. One
// sent once (ended: unacknowledged) comes of the server moving the ring on
// while the new leader rebuilt it (a heal's set-id or request, the ring
// dissolved): the server ended the leave, and its reason is the new
// leader's view of that.
func (o *leaveOp) rebuilt(p *Peer, now time.Time, m wire.Rebuilt, ended bool) []Output {
	if !m.OK && ended {
		return p.finish(now, nil, resultFailed(CmdDHTRebuilt, fmt.Sprintf(
			"the server ended the leave (epoch %d) while the new leader %s rebuilt the ring (%s: %s): %s is Free, outside the ring, which the server heals without it or dissolved (its answers say which)",
			o.epoch, label(o.right), o.right.Name, m.Reason, p.self.Name)))
	}
	if !m.OK {
		return p.finish(now, nil, resultFailed(CmdDHTRebuilt, m.Reason))
	}
	o.stage, o.ringPhase = leaveReporting, ringPhase{}
	return p.ask(now, nil, &o.rq, CmdDHTRebuilt, wire.DHTRebuilt{Name: p.self.Name, NewLeader: m.NewLeader, Proof: m.Proof})
}

func (o *leaveOp) due() time.Time {
	if o.stage == leaveAsking || o.stage == leaveReporting {
		return time.Time{}
	}
	return o.until
}

func (o *leaveOp) expire(p *Peer, now time.Time, out []Output) []Output {
	return o.expired(p, now, out, CmdDHTRebuilt, o.waited())
}

func (o *leaveOp) waited() string {
	switch o.stage {
	case leaveRenumbering:
		return "the reset-id to come back round the ring"
	case leaveClosing:
		return "the acks of reset-left and reset-right"
	case leaveRebuilding:
		return "the rebuilt of the new leader " + label(o.right)
	}
	return "the teardown to come back round the ring"
}

func (o *leaveOp) sent(p *Peer, m wire.Message) bool {
	switch m := m.(type) {
	case wire.ResetLeft, wire.ResetRight, wire.RebuildDHT:
		return true
	case wire.Teardown:
		return m.Origin == p.self.Name
	case wire.ResetID:
		return m.Origin == p.self.Name
	}
	return false
}

type teardownStage uint8

const (
	teardownAsking     teardownStage = iota // teardown-dht sent to the server
	teardownTearing                         // the teardown going round
	teardownCompleting                      // teardown-complete sent to the server
)

// teardownOp: teardown-dht, from the request to the server's answer to
// teardown-complete.
type teardownOp struct {
	ringPhase
	rq    request
	stage teardownStage
	// left and right were this node's neighbours; back: the teardown came
	// back round the ring; done: every other node's table is on disk (the
	// right neighbour's torn-down came).
	left, right netip.AddrPort
	back, done  bool
	epoch       uint64 // the ring's, once the server took the teardown
}

func (o *teardownOp) asking() *request { return &o.rq }

func (o *teardownOp) failing() Command {
	if o.stage == teardownAsking {
		return CmdTeardownDHT
	}
	return CmdTeardownComplete
}

func (o *teardownOp) answered(p *Peer, now time.Time, cmd Command, r wire.Reply) []Output {
	if cmd == CmdTeardownComplete {
		return p.finish(now, nil, resultOK(CmdTeardownComplete))
	}
	out := []Output{resultOK(CmdTeardownDHT)}
	o.stage, o.epoch = teardownTearing, p.epoch
	o.begin(p, now, p.right.Addr)
	if !p.neighbours || p.right.Addr == p.self.Addr {
		o.back, o.done = true, true
		return append(out, o.tornDown(p, now)...)
	}
	// The teardown goes first; this node's own table is committed while
	// it travels (the runner sends before it commits), and the torn-down
	// follows, which each node passes on once its own table is on disk.
	o.left, o.right = p.left.Addr, p.right.Addr
	out = append(out, p.link.send(now, o.right, wire.Teardown{Origin: p.self.Name, OriginAddr: p.self.Addr, Epoch: p.epoch}, tagNone, false)...)
	p.clearTable()
	p.leaveRing(false)
	out = append(out, p.endForwards(now)...)
	out = append(out, p.persist(true, nil))
	return append(out, p.link.send(now, o.right, wire.TornDown{Origin: p.self.Name}, tagNone, false)...)
}

// tornDown: the teardown came back (or the ring is this node alone).
func (o *teardownOp) tornDown(p *Peer, now time.Time) []Output {
	o.back = true
	return o.complete(p, now)
}

// confirmed: the torn-down came back: every table is on disk.
func (o *teardownOp) confirmed(p *Peer, now time.Time) []Output {
	o.done = true
	return o.complete(p, now)
}

// complete sends teardown-complete once the teardown came back and every
// table is on disk (this node's own was committed before it read either).
func (o *teardownOp) complete(p *Peer, now time.Time) []Output {
	if !o.back || !o.done {
		return nil
	}
	var out []Output
	if p.inRing || p.neighbours {
		// Alone in its ring, the node forgets its place only now.
		p.clearTable()
		p.leaveRing(false)
		out = append(out, p.persist(true, nil))
	}
	o.stage, o.ringPhase = teardownCompleting, ringPhase{}
	return p.ask(now, out, &o.rq, CmdTeardownComplete, wire.TeardownComplete{Name: p.self.Name})
}

func (o *teardownOp) due() time.Time {
	if o.stage == teardownTearing {
		return o.until
	}
	return time.Time{}
}

func (o *teardownOp) expire(p *Peer, now time.Time, out []Output) []Output {
	return o.expired(p, now, out, CmdTeardownComplete, o.waited())
}

func (o *teardownOp) waited() string {
	return "the torn-down behind the teardown to come back round the ring"
}

func (o *teardownOp) sent(p *Peer, m wire.Message) bool {
	t, ok := m.(wire.Teardown)
	return ok && t.Origin == p.self.Name
}

type queryStage uint8

const (
	queryAsking   queryStage = iota // query-dht sent to the server
	queryLongName                   // the server named a member; waiting for the next input line, the Long Name
	queryWalking                    // the query sent to the member; waiting for the answer
)

// queryOp: query-dht, from the request to the ring's answer. Typed with
// its Long Name it is a walk from its request on (walk.go): the next input
// line may start at once. Typed without, it is the command in progress
// while it asks the server and waits for its Long Name, the next line;
// once the query is sent into the ring it is a walk too.
type queryOp struct {
	noRing
	rq       request
	stage    queryStage
	longName string
	to       netip.AddrPort // the member the server named
	toName   string         // its name
	reqID    uint32         // the query's id, which its answer echoes
	sg       signer         // the token the server gave, and the ring's epoch
	tries    tries          // under the query Retry policy
	copies   int            // sent reliably (retry)
	reasks   int            // the server asked again for a node (reask)
	before   []sentAs       // the ids it went with before each reask, and their tokens
	held     bool           // its first retry was held back once (holdWalks)
}

// sentAs is an id a query went into the ring with, and the token its
// answer is signed with.
type sentAs struct {
	id  uint32
	key wire.Key
}

func (o *queryOp) asking() *request { return &o.rq }
func (o *queryOp) failing() Command { return CmdQueryDHT }

func (o *queryOp) answered(p *Peer, now time.Time, _ Command, r wire.Reply) []Output {
	if why := o.named(r, p.self.Addr); why != "" {
		return p.finish(now, nil, resultFailed(CmdQueryDHT, why))
	}
	// Only now is the next line the Long Name: a query-dht the server
	// refuses takes none, so the line goes on as a command.
	o.stage = queryLongName
	return p.advance(now, nil)
}

// takeLongName: the line after a query-dht the server answered is its Long
// Name; the query goes to the member the server named.
func (o *queryOp) takeLongName(p *Peer, now time.Time, line string, out []Output) []Output {
	name := strings.TrimSpace(line)
	switch {
	case len(line) > MaxInputLine:
		return p.finish(now, out, resultFailed(CmdQueryDHT, fmt.Sprintf("Long Name too long (a line of more than %d bytes)", MaxInputLine)))
	case len(name) > wire.MaxField:
		return p.finish(now, out, resultFailed(CmdQueryDHT, fmt.Sprintf("Long Name too long (%d bytes, at most %d)", len(name), wire.MaxField)))
	}
	o.longName = name
	return o.ask(p, now, out)
}

// ask sends the query to the member the server named, and makes it a walk:
// the command is over for the input, which goes on. The first attempt
// travels without acknowledgements, the answer being the only one the
// querier needs; if none comes within the retry time, the query is sent
// again, hop by hop reliably.
func (o *queryOp) ask(p *Peer, now time.Time, out []Output) []Output {
	out = o.send(p, now, out)
	p.walks = append(p.walks, &walk{q: o})
	p.op = nil
	return p.advance(now, out)
}

// send sends the query into the ring, to the member the server named.
func (o *queryOp) send(p *Peer, now time.Time, out []Output) []Output {
	o.stage = queryWalking
	o.reqID = p.link.newID()
	was := o.tries
	o.tries.start(now, p.queryRTT.first(&p.queryRetry))
	o.copies = 0 // none has gone reliably to this node yet
	if o.reasks > 0 {
		// Asked the server again: the query's limit runs from its first
		// attempt, whichever node it goes to.
		o.tries.firstSent, o.tries.stalled = was.firstSent, was.stalled
	}
	q := wire.Query{ReqID: o.reqID, Querier: p.self, LongName: o.longName}
	return append(out, p.sendNoAck(o.to, q, o.sg))
}

// named takes the member and the token from the server's SUCCESS, or says
// why the reply names no member to ask; self is the querier's address,
// which the query's tag covers.
func (o *queryOp) named(r wire.Reply, self netip.AddrPort) string {
	if len(r.Members) != 1 {
		return "the server named no node to ask"
	}
	o.to, o.toName = r.Members[0].Addr, r.Members[0].Name
	o.sg = signer{seq: r.KeyEpoch, key: r.Key, from: self}
	return ""
}

// answer: the node that owns the Long Name answered.
func (o *queryOp) answer(p *Peer, now time.Time, r wire.QueryResult) Result {
	// Not a round trip: an answer to an earlier ask's id, or one read
	// after a stall of this process's own (heardInTime).
	if rtt, ok := o.tries.roundTrip(now); ok && o.reasks == 0 && o.tries.heardInTime(now) {
		p.queryRTT.sample(rtt)
	}
	a := Answer{Answered: true, LongName: r.LongName, Node: r.Node, NodeID: int(r.NodeID), Hops: int(r.Hops)}
	if r.Found {
		a.Record = dataset.FromFields(r.Record)
	}
	return Result{Cmd: CmdQueryDHT, OK: r.Found, Answer: a}
}

// retry sends the query again, reliably this time, or, past the query's
// limit, reports that it gives up. While a copy sent reliably is still
// unacknowledged, the link sends that one again and no other goes: a node
// that no longer takes it (one that left the ring since the server named
// it) would otherwise get a stream of copies for every retry.
func (o *queryOp) retry(p *Peer, now time.Time, out []Output) ([]Output, bool) {
	if !o.tries.again(now, &p.queryRetry, &p.queryRTT) {
		return out, false
	}
	if p.link.pending(o.to, o.isCopy) {
		return out, true
	}
	// Each copy waits twice as long as the one before for its answer,
	// past the retry policy's cap, up to maxCopyWait: a copy the node acknowledged goes on
	// hop by hop, reliably, and only its answer may be lost, while each
	// copy is a whole walk more, which every node forwards again to one
	// that stopped (a new user's review: a copy every 100 ms, 2,769
	// datagrams in 10 s from the node before the stopped one, and the
	// retries of every query typed with it held back).
	o.tries.next = now.Add(min(o.tries.rto<<min(o.copies, 16), maxCopyWait))
	o.copies++
	p.stats.Retransmits++
	q := wire.Query{ReqID: o.reqID, Querier: p.self, LongName: o.longName}
	return append(out, p.link.sendSigned(now, o.to, q, tagNone, false, o.sg)...), true
}

// maxCopyWait caps the wait of a query's copy for its answer, which is
// not acknowledged: doubling without a cap, a query sent at 30% loss got
// about 7 copies in its 10 s, each answer lost with a chance of 0.3, and
// one query in a few thousand failed with every node running (the loss
// sweep, under the race detector). Capped at a second, a dozen or more go.
const maxCopyWait = time.Second

// unacked is why the query failed when the link gave up on g: for the
// query sent to the member the server named, that it never acknowledged it.
func (o *queryOp) unacked(p *Peer, now time.Time, g failure) string {
	if _, ok := g.msg.(wire.Query); !ok || g.to != o.to {
		return p.unacked(now, g)
	}
	// Within the time since the query's first attempt: a node the
	// server named again late in a long --query-timeout was given up
	// --give-up after the last, and the line said 'within 10s' of a query
	// 25 s old (a review).
	within := p.link.cfg.GiveUp
	if !o.tries.firstSent.IsZero() {
		within = max(within, roundWait(now.Sub(o.tries.firstSent)))
	}
	return o.silent(within)
}

// unanswered is why the query failed when its own limit passed: the node
// the server named never acknowledged it, or the ring never answered.
func (o *queryOp) unanswered(p *Peer) string {
	if p.link.pending(o.to, o.isCopy) {
		return o.silent(p.queryRetry.GiveUp)
	}
	if o.copies == 0 {
		// Only the first attempt went, unacknowledged (the retries of
		// the queries typed with it came first): nothing says where it
		// stopped.
		return fmt.Sprintf("no answer within %s to the query sent to %s, the node the server named: it, or a node on the way from it to the one that holds the Long Name, may have stopped%s", p.queryRetry.GiveUp, o.who(), askAgainLater)
	}
	return fmt.Sprintf("no answer from the ring within %s (asked %s, the node the server named, which took the query; a node on the way from it to the one that holds the Long Name may have stopped)%s", p.queryRetry.GiveUp, o.who(), askAgainLater)
}

// askAgainLater ends the line of a query that a stopped member may have
// failed with what to do (a walk-through on several hosts: the line named
// a cause and no next step).
const askAgainLater = "; a member silent for the server's --dead-after is healed out of the ring: ask again once that heal is done"

// who is the node the server named, as a failure names it.
func (o *queryOp) who() string {
	if o.toName == "" {
		return o.to.String()
	}
	return label(wire.Member{Name: o.toName, Addr: o.to})
}

// silent: the node the server named never acknowledged the query. The
// ring may have changed since the server named it.
func (o *queryOp) silent(within time.Duration) string {
	if o.reasks > 0 {
		// A node holds back, unacknowledged, a query its right
		// neighbour is behind in taking (a walk-through on several hosts:
		// a node named alive, its right neighbour's link down, was said
		// to have stopped).
		return fmt.Sprintf("no answer within %s: no node the server named acknowledged the query (asked %d times, the last named %s; it, or a node after it that holds its forwards back, may have stopped)%s", within, o.reasks+1, o.who(), askAgainLater)
	}
	return fmt.Sprintf("no answer within %s: %s, the node the server named, never acknowledged the query (it may have left the ring or stopped since, or a node after it that holds its forwards back; query-dht asks the server anew)", within, o.who())
}

// isCopy reports whether m is this query, sent reliably.
func (o *queryOp) isCopy(m wire.Message) bool {
	q, ok := m.(wire.Query)
	return ok && q.ReqID == o.reqID
}

// unacked is why a command failed when the link gave up on g: what was
// sent, to whom (by name where this node knows it), and, for a store,
// that the silence may be further on: a node acknowledges a store once
// it has passed on what it forwards, so a node that stopped holds back
// the acks of every node before it.
func (p *Peer) unacked(now time.Time, g failure) string {
	why := fmt.Sprintf("%s sent to %s was not acknowledged within %s", g.msg.Type(), p.named(g.to), p.link.cfg.GiveUp)
	refused := p.sendRefused(g.to, now.Add(-p.link.cfg.GiveUp))
	switch {
	case refused != "":
		why += " (" + refused + ")"
	case g.to.Addr().IsLoopback() && !p.self.Addr.Addr().IsLoopback() && !p.serverOnThisHost(p.self.Addr.Addr()):
		// Sent from an address other hosts reach to a loopback one: the
		// datagram went to a process of this host, not to the user
		// registered there (a walk-through on several hosts: a user on
		// the server's host registered at 127.0.0.1 failed every setup
		// that picked it).
		why += fmt.Sprintf(" (%s is a loopback address: from this host it reaches this host only; a user whose peer runs on another host must register with an address the other hosts reach)", g.to.Addr())
	}
	if _, ok := g.msg.(wire.Store); ok && refused == "" {
		why += " (it, or a node after it, stopped taking stores)"
	}
	return why + stalledNote(g.stalled)
}

// stalledNote says, after a give-up that came right after a stall of this
// process's own (failure.stalled), that the silence may be its own: the
// node named may be live (a review: a leader stopped past twice the
// give-up named its live neighbour as the cause).
func stalledNote(stalled time.Duration) string {
	if stalled <= 0 {
		return ""
	}
	return fmt.Sprintf("; but this process itself had not run for %s (stopped, or starved of CPU), so the silence may be its own", stalled.Round(time.Millisecond))
}

// named is addr as "NAME (ADDR)" when this node knows whose it is (its
// neighbours, the setup's or the heal's ring it leads, the neighbours of
// the leave it makes, the leader of the join it asked for, the right
// neighbour it last forgot), "the server (ADDR)" for the server's, else
// the address alone.
func (p *Peer) named(addr netip.AddrPort) string {
	var known []wire.Member
	if p.neighbours {
		known = append(known, p.right, p.left)
	}
	switch o := p.op.(type) {
	case *setupOp:
		known = append(known, o.members...)
	case *leaveOp:
		known = append(known, o.left, o.right)
	case *joinOp:
		known = append(known, o.leader)
	}
	if p.healing != nil {
		known = append(known, p.healing.members...)
	}
	for _, m := range append(known, p.formerRight) {
		if m.Addr == addr && m.Name != "" {
			return label(m)
		}
	}
	if addr == p.cfg.Server {
		return "the server (" + addr.String() + ")"
	}
	return addr.String()
}

// label is how a failure names a member: "NAME (ADDR)".
func label(m wire.Member) string { return m.Name + " (" + m.Addr.String() + ")" }
