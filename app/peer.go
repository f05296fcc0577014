package app

import (
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"strings"
	"syscall"
	"time"

	"dht/app/state"
	"dht/dataset"
	"dht/wire"
)

// The peer is split by concern: this file holds the state machine's inputs
// (lines, datagrams, time) and its place in the ring; peer_ops.go the user
// commands in progress, each a type of its own; peer_ring.go the ring
// messages; peer_populate.go the store round a leader runs; peer_join.go
// join-dht, the joiner's command and the leader's role.

// PeerConfig configures the peer state machine.
type PeerConfig struct {
	Server netip.AddrPort
	// LoadData reads and checks the dataset. It is called before setup-dht
	// is sent and when this peer becomes the leader of a rebuilt ring; the
	// leader reads the records by index as it sends them.
	LoadData func() (dataset.Source, error)
	// Rand seeds the first message id and draws every request's (a
	// stranger must not guess them: cryptographically strong outside
	// tests).
	Rand *rand.Rand
	// Link tunes the ring's reliable delivery; its Retry is the policy
	// every exchange follows (server requests and queries too).
	Link LinkConfig
	// RequestTimeout bounds one request to the server, retransmissions
	// included.
	RequestTimeout time.Duration
	// QueryTimeout bounds a query from the server's naming a member to
	// the answer (query-dht's own request is bounded by RequestTimeout).
	QueryTimeout time.Duration
	// OpTimeout bounds each ring phase of setup, leave and teardown.
	OpTimeout time.Duration
}

func (c PeerConfig) withDefaults() PeerConfig {
	c.Link = c.Link.withDefaults()
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = DefaultGiveUp
	}
	if c.QueryTimeout <= 0 {
		c.QueryTimeout = DefaultQueryTimeout
	}
	if c.OpTimeout <= 0 {
		c.OpTimeout = DefaultOpTimeout
	}
	if c.Rand == nil {
		c.Rand = rand.New(rand.NewPCG(3, 4))
	}
	if c.LoadData == nil {
		c.LoadData = func() (dataset.Source, error) { return nil, fmt.Errorf("no dataset configured") }
	}
	return c
}

// Table is a node's local table as the core reads it: the file its runner
// commits PersistPeer batches to (the simulation's is in memory). The core
// keeps no records of its own, so a node's memory does not grow with its
// share of the dataset; a query's owner reads the one record it asks for.
// Reads see what has been committed: a node answers queries only once the
// flush has passed it, after every record it holds was.
type Table interface {
	Lookup(longName string) (dataset.Record, bool, error)
}

// Peer is the user process as a state machine: the client side of the nine
// server commands and the whole ring protocol.
type Peer struct {
	cfg   PeerConfig
	stats Stats
	link  *link
	// The policies and round-trip estimates of the exchanges other than
	// ring messages (the link keeps its own): requests to the server, and
	// queries, end to end.
	serverRetry, queryRetry Retry
	serverRTT, queryRTT     rttEstimator
	// serverHeard: an answer or a challenge has come from the server.
	serverHeard bool
	// holding: a change of ring is under way (held); the next input line
	// waits for it.
	holding bool
	// strayServer: where a reply or challenge came from last that was
	// not the server's address, but its port: the server's host answering
	// from another of its addresses, which the peer does not trust.
	strayServer netip.AddrPort

	self          wire.Member // Addr valid once bound, Name once registered
	bound         bool
	registered    bool
	exited        bool
	lastRequestID uint32 // requestID's last
	// unresumed: the identity of the file whose resume failed, until a
	// register succeeds: its registration is what the user may type to
	// try again, and that register resumes it.
	unresumed *state.Identity
	// elsewhere: that resume failed because the server does not hold the
	// user's secret and the file is another server's (registerOp.elsewhere):
	// a register typed registers the user anew with this server.
	elsewhere bool

	lines []string
	// linesBytes is the length of lines, summed (InputFull).
	linesBytes int
	// head is lines[0] parsed, once mayStart has had to read it (headRead).
	head     command
	headRead bool
	op       operation
	// walks: the queries in the ring, and the results waiting behind
	// them, in the order typed (walk.go).
	walks []*walk
	// answered: the last queries answered here, with the token that
	// signed each, so that a second answer to one of them (its first
	// attempt's, slow, behind the reliable retry's) is known for what a
	// working network does (walk.go).
	answered answeredIDs
	// replied: the ids of the last requests the server answered (each id
	// a request went with), so that a copy of an answer, or the answer to
	// an id asked again before the first answer came, is dropped quietly.
	replied answeredIDs
	// inputEnded: no more lines will come, so a query-dht that still
	// needs its Long Name fails instead of waiting for it.
	inputEnded bool

	inRing bool
	// filling: this node's place changed (a set-id, a reset-id, a heal or
	// a join it leads, a setup) and its table is not yet that place's:
	// its store round's records are not all committed here. A query for
	// this node's id that the table does not hold is not answered "not
	// found" meanwhile (the querier sends it again).
	filling     bool
	filled      bool // filling ends at the next Settle (committed, peer_ring.go)
	id, n       int
	left, right wire.Member
	neighbours  bool
	// ownLeave: the neighbours are kept by this node's own leave, its
	// teardown back (not by another member's rebuild).
	ownLeave    bool
	table       Table
	uncommitted []dataset.Record
	// unsaved: the place in the ring changed since the file was last
	// written (and, with clearSaved, the table was emptied): set-id and the
	// renumbering of a leave are written with the commit that follows them
	// in the same operation (the stores', or the flush's), not one each.
	unsaved, clearSaved bool
	pop                 *populate
	leaver              netip.AddrPort // set by reset-left: whose rebuild-dht to accept
	joining             *joinLead      // the join this node leads, as the ring's leader
	// tearing: a teardown-dht's teardown passed here; the torn-down behind
	// it goes right once it comes from the left.
	tearing *tornWait
	// committing: a store round's flush passed here; the committed
	// behind it goes right once it has come from the left and this node's
	// table is on disk.
	committing *commitWait
	healing    *healLead // the heal this node leads, as the server asked
	// healDone is the epoch of the last heal this node led to the end of
	// its store round and whose healed the server never acknowledged: a
	// copy of that heal from the server (restarted meanwhile) is answered
	// with healed again. An acknowledged heal's copy (a replay) is not.
	healDone uint64
	// epoch is the server's number of the ring this place is in (0 if
	// unknown); formerRight the right neighbour this node last forgot (a
	// teardown's), which a broken report or a failure may have to name.
	epoch       uint64
	formerRight wire.Member
	// counted: the server counts this node in the ring of its key, though
	// the node holds no place in it (a member back from a restart that
	// had none saved, whose rejoin gave it the key): the ring's set-ids
	// are for it (holdsRing).
	counted bool

	// While registered, the peer sends the server an alive every
	// alivePeriod (as the server's pace said; aliveUntold until it has),
	// next at aliveAt.
	alivePeriod time.Duration
	aliveAt     time.Time
	// quit is the operation this peer gave up while the server waited for
	// it to finish it, which its alives name until quitUntil (giveUp).
	quit      quitNote
	quitUntil time.Time

	// sendErrs is the last send this host refused to each address, for
	// the failure lines that name it (SendFailed).
	sendErrs map[netip.AddrPort]sendErr

	cred credentials
	// ticketRing is the ring a set-id's ticket gives, which authentic
	// found, for the step of that set-id only: taken with the set-id, not
	// before (a set-id dropped changes nothing), and its ack signed with it.
	ticketRing signer

	// late holds back the judgements of a late Tick (give-ups, an
	// operation's or a query's limit) until what waited on the socket is
	// read.
	late lateGuard

	// wait is when the command in progress began, and when it next says
	// what it still waits for (waitNote).
	wait waitNote

	// storesLost: this node gave up on stores it had taken and forwarded
	// to its right neighbour, to, in the ring of epoch: the round they
	// belong to has lost records, and its flush, should it come after
	// (a flush names only the stores still in flight), goes no further.
	storesLost struct {
		epoch uint64
		to    wire.Member
	}

	// resumedIn is the epoch of the place this process took back from its
	// file at its resume: the store rounds of that ring before it were
	// done, their commits in the file (roundBeforeResume).
	resumedIn uint64
}

// aliveUntold is how often a registered peer sends alive before the
// server's pace has told it how often to (the pace answers the first alive
// that arrives): eight times in the shortest --dead-after the server
// accepts (2s), so that a few lost in a row do not take a live peer for
// dead (an operator's review: at 1 s, three alives lost at 30% loss took a
// peer registered under a --dead-after of 3s out of the ring).
const aliveUntold = 250 * time.Millisecond

// Bounds on the period a pace may set, so that a wrong one neither floods
// the server nor silences the peer.
const (
	minAlivePeriod = 100 * time.Millisecond
	maxAlivePeriod = time.Hour
)

// ServerMaxRTO is the most a request's timeout doubles to (the ring's cap,
// MaxRTO, is lower): a request lost
// six times in a row still goes again within a second, and one to a
// server that is down goes about 15 times in 10 s, not a hundred.
const ServerMaxRTO = time.Second

// NewPeer builds a peer.
func NewPeer(cfg PeerConfig) *Peer {
	cfg = cfg.withDefaults()
	p := &Peer{cfg: cfg}
	p.link = newLink(cfg.Link, cfg.Rand.Uint32(), &p.stats)
	ring := cfg.Link.Retry
	// The server commits a request before it answers it, and one slow
	// disk flush there must not make a request go twice: its timeout
	// never goes below the initial one.
	p.serverRetry = ring
	p.serverRetry.MinRTO, p.serverRetry.GiveUp = ring.RTO, cfg.RequestTimeout
	// A server that answers nothing is down, restarting or stopped, not
	// a lossy hop: a request backs off to ServerMaxRTO, not the ring's
	// cap (a chaos review: a querier with 32 queries typed ahead sent
	// 2,112 query-dhts, a new id each, to a server stopped for 8 s, and
	// the server answered every one when it ran again).
	p.serverRetry.MaxRTO = max(ring.MaxRTO, ServerMaxRTO)
	// A query walks up to n-1 hops before its answer comes: it is first
	// given twice what one hop is. Its floor is higher than a hop's: on a
	// ring that many users query at once an answer's time varies far more
	// than its average, and a query sent again is a whole walk more.
	p.queryRetry = ring
	p.queryRetry.RTO, p.queryRetry.MinRTO, p.queryRetry.GiveUp = 2*ring.RTO, 5*ring.MinRTO, cfg.QueryTimeout
	return p
}

// Stats reports the datagram counters.
func (p *Peer) Stats() Stats { return p.stats }

// Idle reports that no command is in progress or waiting.
func (p *Peer) Idle() bool { return p.op == nil && len(p.lines) == 0 && len(p.walks) == 0 }

// WantsLongName reports that the command in progress waits for the next
// input line, as the Long Name: query-dht typed without one, which the
// server has answered SUCCESS.
func (p *Peer) WantsLongName() bool {
	q, ok := p.op.(*queryOp)
	return ok && q.stage == queryLongName
}

// Registered reports whether this peer holds a registration.
func (p *Peer) Registered() bool { return p.registered }

// Name is the registered name ("" before register succeeds).
func (p *Peer) Name() string { return p.self.Name }

// InRing reports whether this peer holds a place in a ring, or the
// neighbours of one (a leave or a join passed it).
func (p *Peer) InRing() bool { return p.inRing || p.neighbours }

// SetTable gives the core its table file to read, once the runner has
// opened it (nil: none open; lookups find nothing).
func (p *Peer) SetTable(t Table) { p.table = t }

// MaxInputLine is the longest input line the peer acts on. A longer one is
// refused as a whole (LinesFrom hands over only its first MaxInputLine+1
// bytes), and the lines after it are read as usual.
const MaxInputLine = 1 << 20

// Input queues one line typed by the user. Lines are taken in the order
// they came, whenever they came: each starts a command once the one before
// has finished, but for the line after a query-dht typed without its Long
// Name, which is that Long Name if the server answers the query-dht
// SUCCESS (and a command of its own otherwise). Blank lines and comments
// are skipped wherever they come (SPEC §5), before a Long Name too.
func (p *Peer) Input(now time.Time, line string) []Output {
	if p.exited || p.inputEnded {
		return nil
	}
	line = strings.TrimRight(line, "\r\n")
	if noCommand(line) {
		return nil
	}
	p.lines = append(p.lines, line)
	p.linesBytes += len(line)
	return p.advance(now, nil)
}

// The input a peer holds, read ahead of the command in progress, at most:
// past either, InputFull tells the runner to read no more until commands
// have taken some (a file piped in while the server is slow, or lines of
// a mebibyte each, filled the memory).
const (
	maxHeldLines = 1 << 16
	maxHeldBytes = 16 << 20
)

// InputFull reports that the lines read ahead are as many, or as large,
// as a peer holds: the runner stops reading its input until they are not.
func (p *Peer) InputFull() bool {
	return len(p.lines) >= maxHeldLines || p.linesBytes >= maxHeldBytes
}

// noCommand reports a blank line or a comment.
func noCommand(line string) bool {
	t := strings.TrimSpace(line)
	return t == "" || strings.HasPrefix(t, "#")
}

// EndOfInput says no more lines will come: a query-dht waiting for its
// Long Name fails, and so will one that comes to need it later.
func (p *Peer) EndOfInput(now time.Time) []Output {
	if p.inputEnded {
		return nil
	}
	p.inputEnded = true
	return p.advance(now, nil)
}

// advance hands queued lines over, in order: as the Long Name of the
// query-dht that waits for one, or as commands while none is in progress.
func (p *Peer) advance(now time.Time, out []Output) []Output {
	if p.holding {
		return out // held's caller goes on once the change is made
	}
	for !p.exited {
		q, wantsName := p.op.(*queryOp)
		wantsName = wantsName && q.stage == queryLongName
		switch {
		case wantsName && len(p.lines) > 0:
			out = q.takeLongName(p, now, p.nextLine(), out)
		case wantsName && p.inputEnded:
			return p.finish(now, out, resultFailed(CmdQueryDHT, "input ended before the Long Name"))
		case p.op == nil && len(p.lines) > 0 && p.mayStart():
			c, read := p.head, p.headRead
			out = p.start(now, p.nextLine(), c, read, out)
		default:
			return out
		}
	}
	return out
}

func (p *Peer) nextLine() string {
	line := p.lines[0]
	p.lines[0] = ""
	p.lines = p.lines[1:]
	p.linesBytes -= len(line)
	p.head, p.headRead = command{}, false
	return line
}

// tooLong refuses an input line over MaxInputLine as a whole, with the
// result line any command gets, so that a script's results stay one a
// line: it starts with the command the line names (the first word, cut to
// what the line began with when it names none).
func tooLong(line string) Result {
	const show = 40
	head := line[:min(len(line), show)]
	r := Result{Cmd: CmdUnknown, Word: "input",
		Reason: fmt.Sprintf("a line of more than %d bytes, not read as a command (it began %q...)", MaxInputLine, head)}
	if f := strings.Fields(head); len(f) > 0 {
		r.Cmd, _ = commandNamed(f[0])
		r.Word = f[0]
		if len(f) == 1 && strings.HasSuffix(head, f[0]) && !strings.ContainsAny(line[len(head):len(head)+1], " \t") {
			r.Word += "..." // the word goes on past what is shown
		}
	}
	return r
}

// start begins the command on one input line, c if read says mayStart
// parsed it already.
func (p *Peer) start(now time.Time, line string, c command, read bool, out []Output) []Output {
	if len(line) > MaxInputLine {
		return p.emit(out, tooLong(line))
	}
	if !read {
		c = parseCommand(line)
	}
	if c.usageReason != "" {
		return p.emit(out, Result{Cmd: c.cmd, Word: c.word, Reason: c.usageReason})
	}
	switch c.cmd {
	case CmdHelp:
		return p.emit(out, Result{Cmd: CmdHelp, OK: true, Text: HelpText() + "\n" + stopping})
	case CmdSleep:
		p.op = &sleepOp{until: now.Add(c.sleep)}
		return out
	case CmdRegister:
		if u := p.unresumed; !p.registered && p.op == nil && u != nil && c.msg.(wire.Register).Name == u.Name && c.bind == u.Addr {
			// The resume that failed, asked again: the file's place is
			// taken back if the server still counts it, as at the start.
			out = append(out, p.Resume(now, *u)...)
			if o, ok := p.op.(*registerOp); ok {
				o.typed, o.rq.cmd = true, CmdRegister
			}
			return out
		}
		if !p.registered {
			o := &registerOp{bind: c.bind}
			o.rq.prepare(CmdRegister, c.msg)
			p.op = o
			return append(out, Bind{Name: c.msg.(wire.Register).Name, Addr: c.bind})
		}
		if m := c.msg.(wire.Register); m.Name == p.self.Name && c.bind == p.self.Addr {
			// Its own registration again, from the address it holds: a
			// rejoin, signed with its secret, naming the ring it holds a
			// place in as a resume does (so that the server does not
			// heal the ring round a member that lost nothing); and should
			// the server no longer know the user (started on a new file),
			// a new registration once this address answers its challenge.
			if p.inRing {
				m.Epoch = p.epoch
			}
			o := &registerOp{bind: c.bind, again: true}
			p.op = o
			return p.ask(now, out, &o.rq, CmdRegister, m)
		}
	}
	switch {
	case !p.registered && p.unresumed != nil && p.elsewhere:
		u := p.unresumed
		return p.emit(out, resultFailed(c.cmd, fmt.Sprintf("not registered: the resume of %s failed, its file being of the server at %s (typing 'register %s %s %d' registers %s anew with this server if the name is free there)", u.Name, u.Server, u.Name, u.Addr.Addr(), u.Addr.Port(), u.Name)))
	case !p.registered && p.unresumed != nil:
		u := p.unresumed
		return p.emit(out, resultFailed(c.cmd, fmt.Sprintf("not registered: the resume of %s failed; type 'register %s %s %d' to try again", u.Name, u.Name, u.Addr.Addr(), u.Addr.Port())))
	case !p.registered:
		return p.emit(out, resultFailed(c.cmd, "not registered: register first (the peer sends from the address it registers)"))
	case ringPart(c.msg) == p.self.Name && !p.inRing && p.neighbours && !p.ownLeave:
		// Another member's leave-dht or join-dht is rebuilding the ring:
		// this node keeps its neighbours and gets its place back with the
		// rebuild.
		return p.emit(out, resultFailed(c.cmd, fmt.Sprintf("a leave-dht or join-dht is rebuilding the ring %s is in: try again once it is done (the server's answer to any request says what it waits for)", p.self.Name)))
	case ringPart(c.msg) == p.self.Name && !(p.inRing && p.neighbours):
		// The server may count this user in the ring when this peer
		// knows of none (a process that lost its file), and would wait
		// for a part this peer cannot play. Naming another user, the
		// command goes as typed: the server decides.
		return p.emit(out, resultFailed(c.cmd, notInRing(p.self.Name)))
	}
	var o operation
	switch c.cmd {
	case CmdSetupDHT:
		data, err := p.cfg.LoadData()
		if err != nil {
			return p.emit(out, resultFailed(c.cmd, datasetUnusable(err)))
		}
		o = &setupOp{data: data}
	case CmdQueryDHT:
		if c.longName != "" {
			return p.askAhead(now, out, c.msg, c.longName)
		}
		o = &queryOp{}
	case CmdLeaveDHT:
		o = &leaveOp{}
	case CmdTeardownDHT:
		o = &teardownOp{}
	case CmdJoinDHT:
		o = &joinOp{}
	default:
		o = &plainOp{}
	}
	p.op = o
	return p.ask(now, out, o.asking(), c.cmd, c.msg)
}

// ringPart names the user whose peer carries the ring part of msg out
// (leave-dht, teardown-dht), or "".
func ringPart(msg wire.Message) string {
	switch m := msg.(type) {
	case wire.LeaveDHT:
		return m.Name
	case wire.TeardownDHT:
		return m.Name
	}
	return ""
}

// Bound reports the result of a Bind.
//
// err is said to the user as it is: it names what failed (the address, the
// table file).
func (p *Peer) Bound(now time.Time, addr netip.AddrPort, err error) []Output {
	o, ok := p.op.(*registerOp)
	if !ok || o.rq.live || o.bind != addr {
		return nil
	}
	if err != nil {
		o.unbound = o.failing() == CmdResume
		why := err.Error()
		if o.failing() == CmdRegister && errors.Is(err, syscall.EADDRINUSE) {
			why += " (another process has that port: register with another PORT)"
		}
		return p.failed(now, nil, resultFailed(o.failing(), why))
	}
	p.self.Addr, p.bound = addr, true
	// A resume took its ring key from the file before it bound: what the
	// link sends from now on (an ack of what a neighbour sends before the
	// rejoin's reply) is signed from this address, as a neighbour checks.
	p.link.sg.from = addr
	return p.ask(now, nil, &o.rq, o.rq.cmd, o.rq.msg)
}

// ask sends msg to the server as the request rq of the command in
// progress, and waits for the reply.
func (p *Peer) ask(now time.Time, out []Output, rq *request, cmd Command, msg wire.Message) []Output {
	rq.prepare(cmd, msg)
	rq.id, rq.live = p.requestID(), true
	rq.sg = p.requestSigner(now)
	rq.tries.start(now, p.serverRTT.first(&p.serverRetry))
	rq.sentAt = now
	p.stats.Sent++
	return append(out, rq.sg.send(p.cfg.Server, rq.id, 0, msg))
}

// requestID is the message id of a new request to the server: drawn at
// random, unlike the link's counter, which everyone this peer sends a ring
// message to reads (a querier reads a query-result's). A FAILURE the
// server could not sign (it does not know the user) is taken for the
// request in flight whose id it carries, so that id must not be one a
// stranger can guess; and no two requests in flight share one, nor does a
// request share its predecessor's, which the server's reply cache would
// take for a retransmission.
func (p *Peer) requestID() uint32 {
	for {
		id := p.cfg.Rand.Uint32()
		if rq, _ := p.requestOf(id); id != 0 && id != p.lastRequestID && rq == nil {
			p.lastRequestID = id
			return id
		}
	}
}

// Stop ends what the user typed and has not had its line yet, the process
// being stopped (SIGINT, SIGTERM, SIGHUP): each command yields its line
// (SPEC §5). The queries typed ahead print theirs in order, those answered
// as they were; then the command in progress, as its failure. Nothing is
// sent: the process exits, and its file keeps what it last committed.
func (p *Peer) Stop(now time.Time) []Output {
	return p.StopFor(now, "the peer was stopped before it finished")
}

// StopFor is Stop with why as the reason of each failure: the process
// stops on an error of its own (a commit its file refused).
func (p *Peer) StopFor(now time.Time, why string) []Output {
	var out []Output
	for _, w := range p.walks {
		if w.done {
			out = append(out, w.res)
		} else {
			out = append(out, resultFailed(CmdQueryDHT, why))
		}
	}
	p.walks = nil
	if p.op != nil {
		out = append(out, resultFailed(p.op.failing(), why))
		p.op = nil
	}
	if p.healing != nil {
		// A heal this node leads gets its line too (the server heals
		// again without it).
		out = append(out, p.healEnded(why)...)
	}
	return out
}

// failed ends the command in progress with a FAILURE; a register that
// failed lets go of the table file opened for it, and of the address it
// bound.
func (p *Peer) failed(now time.Time, out []Output, r Result) []Output {
	if o, ok := p.op.(*registerOp); ok && !p.registered {
		if o.resume != nil {
			p.unresumed, p.elsewhere = o.resume, o.elsewhere
			// The resume at the start says what to type to try again; a
			// register the user typed says only why it failed (it is what
			// they would type).
			if !o.unbound && !o.elsewhere && o.failing() == CmdResume {
				r.Reason += fmt.Sprintf("; type 'register %s %s %d' to try again", o.resume.Name, o.resume.Addr.Addr(), o.resume.Addr.Port())
			}
		}
		out = append(out, DiscardStore{})
		if p.bound {
			p.bound, p.self.Addr = false, netip.AddrPort{}
			out = append(out, Unbind{})
		}
	}
	return p.finish(now, out, r)
}

// finish ends the command in progress with its last result and starts the
// next one. A join that fails before its leader reported it done is undone
// here, whatever failed it.
func (p *Peer) finish(now time.Time, out []Output, r Result) []Output {
	if !r.OK {
		p.giveUp(now)
	}
	if j, ok := p.op.(*joinOp); ok && j.stage == joinWaiting && !r.OK {
		out = append(out, p.joinUndone()...)
	}
	switch p.op.(type) {
	case *leaveOp, *teardownOp:
		// What a leave or teardown, done or failed, still had in flight
		// round the ring (a copy whose ack was lost, to a node that
		// restarted since) goes no further: no one waits for it any more,
		// and a node that no longer knows it drops it, unacknowledged.
		out = append(out, p.link.cancelWhere(now, func(m *outMsg) bool {
			switch m.msg.(type) {
			case wire.Teardown, wire.TornDown, wire.ResetID, wire.ResetLeft, wire.ResetRight, wire.RebuildDHT:
				return true
			}
			return false
		})...)
	}
	if _, ok := p.op.(*leaveOp); ok && p.unsaved {
		// A leave that ends before its rebuild-dht left: the emptied
		// table and lost place it put off (leaveOp.tornDown).
		out = append(out, p.persist(false, nil))
	}
	p.op = nil
	out = p.emit(out, r)
	return p.advance(now, out)
}

func (p *Peer) identity() state.Identity {
	id := state.Identity{Name: p.self.Name, Addr: p.self.Addr, Server: p.cfg.Server, InRing: p.inRing,
		Secret: p.cred.secret, KeyEpoch: p.cred.epoch, RingKey: p.cred.ringKey, Epoch: p.epoch}
	if p.inRing {
		id.ID, id.N = p.id, p.n
	}
	if p.neighbours {
		id.Left, id.Right = p.left, p.right
	}
	return id
}

func (p *Peer) persist(clear bool, put []dataset.Record) PersistPeer {
	id := p.identity()
	clear = clear || p.clearSaved
	p.unsaved, p.clearSaved = false, false
	return PersistPeer{Batch: state.Batch{Identity: &id, Clear: clear, Put: put}}
}

// deferPersist notes a change of place to write with the next commit;
// clear says the table was emptied too.
func (p *Peer) deferPersist(clear bool) {
	p.unsaved = true
	p.clearSaved = p.clearSaved || clear
}

// clearTable forgets the records not yet committed and the store round
// in progress (led here, or passing); the persist that goes with it
// clears the file.
func (p *Peer) clearTable() {
	p.uncommitted = nil
	p.pop = nil
	p.committing = nil
}

// leaveRing forgets this node's place: its id and, unless keep, its
// neighbours.
func (p *Peer) leaveRing(keepNeighbours bool) {
	if p.inRing || p.neighbours {
		// It held its place: the server no longer counts it in without
		// one (holdsRing).
		p.counted = false
	}
	p.inRing = false
	if !keepNeighbours {
		if p.neighbours {
			p.formerRight = p.right
		}
		p.neighbours, p.left, p.right = false, wire.Member{}, wire.Member{}
		p.ownLeave = false
	}
}

// lookup reads a record from the table file, comparing the whole Long Name.
func (p *Peer) lookup(longName string) (dataset.Record, bool, error) {
	if p.table == nil {
		return dataset.Record{}, false, fmt.Errorf("no table file open")
	}
	return p.table.Lookup(longName)
}

// Datagram is one decoded datagram, for StepBatch.
type Datagram struct {
	From netip.AddrPort
	// Local is the address it was sent to, where the socket says (one
	// bound to every address); zero otherwise.
	Local  netip.Addr
	Header wire.Header
	Msg    wire.Message
	// Stamped says that the socket said when it came, and Waited how long
	// it then waited in the socket's queue before it was read: the server
	// judges who is silent as of when it came, and after a stall of its
	// own waits until it has read what came before (Server.StepDatagram).
	Stamped bool
	Waited  time.Duration
}

// Step handles one datagram: StepBatch with a batch of one.
func (p *Peer) Step(now time.Time, from netip.AddrPort, h wire.Header, m wire.Message) []Output {
	return append(p.step(now, from, h, m), p.Settle()...)
}

// StepBatch handles datagrams read together, in order, and acknowledges
// them together: Receive, then Settle.
func (p *Peer) StepBatch(now time.Time, batch []Datagram) []Output {
	return append(p.Receive(now, batch), p.Settle()...)
}

// Receive handles datagrams in order but settles nothing: nothing is
// acknowledged, and a due commit of stored records is not made, until
// Settle. A runner that finds more datagrams waiting while Unsettled
// receives them too before it settles, so that one commit and one Ack per
// sender cover them all.
func (p *Peer) Receive(now time.Time, batch []Datagram) []Output {
	var out []Output
	for _, d := range batch {
		o := p.step(now, d.From, d.Header, d.Msg)
		if out == nil {
			out = o // each step returns a slice of its own: no copy for a lone datagram
			continue
		}
		out = append(out, o...)
	}
	return out
}

// Unsettled reports that Settle will commit: ownChunk stored records or
// more wait for the disk.
func (p *Peer) Unsettled() bool { return len(p.uncommitted) >= ownChunk }

// Settle acknowledges everything received since the last Settle, one Ack
// to each sender and signer; first it commits the records stores brought to this node
// if ownChunk or more wait, so that what a node holds in memory does not
// grow with the dataset. The others are committed when the flush passes,
// before it goes on: the flush, not a store's ack, says that a node's
// records are on disk, so acknowledging a store waits for no disk and the
// stores of a round flow round the ring while each node commits once. A
// leader that keeps more records than ownChunk commits a chunk of them too
// (populate.settle).
func (p *Peer) Settle() []Output {
	var out []Output
	if p.filled {
		// The runner runs the commit made by the flush before it reads
		// anything more.
		p.filling, p.filled = false, false
	}
	if p.Unsettled() {
		out = p.commitStores(nil, false)
	}
	if p.pop != nil {
		out = p.pop.settle(p, out)
	}
	return p.link.flushAcks(out)
}

// commitStores persists the records stored here and not yet committed;
// with all, a deferred change of place too, even without records.
func (p *Peer) commitStores(out []Output, all bool) []Output {
	if len(p.uncommitted) == 0 && !(all && p.unsaved) {
		return out
	}
	out = append(out, p.persist(false, p.uncommitted))
	p.uncommitted = nil
	return out
}

func (p *Peer) step(now time.Time, from netip.AddrPort, h wire.Header, m wire.Message) []Output {
	p.ticketRing = signer{}
	p.late.heard(now, time.Time{}) // its socket does not say when a datagram came
	if why := p.authentic(from, h, m); why != "" {
		ev := dropped(why, from, slog.String("type", m.Type().String()), slog.Uint64("id", uint64(h.ID)))
		switch why {
		case ackAgain, answerAgain, replyAgain, challengeAgain:
			ev.Level = slog.LevelDebug // what a working network does
		case newerRing:
			ev.Level = slog.LevelInfo // what a lossy network does
		}
		return []Output{ev}
	}
	switch m := m.(type) {
	case wire.Challenge:
		return p.onChallenge(now, from, h, m)
	case wire.Reply:
		return p.onReply(now, from, h, m)
	case wire.Pace:
		return p.onPace(now, from, h, m)
	case wire.Ack:
		return p.onAck(now, from, h, m)
	case wire.SetID, wire.Store, wire.Flush, wire.Committed, wire.Query, wire.QueryResult, wire.Teardown, wire.TornDown,
		wire.ResetID, wire.ResetLeft, wire.ResetRight, wire.RebuildDHT, wire.Rebuilt, wire.Join,
		wire.Heal, wire.Broken:
		if !p.registered {
			// No table file is open to keep a place in a ring in.
			return []Output{dropped("this peer is not registered", from, slog.String("type", m.Type().String()), slog.Uint64("id", uint64(h.ID)))}
		}
		return p.onRing(now, from, h, m)
	}
	return []Output{dropped("a server request sent to a peer", from, slog.String("type", m.Type().String()))}
}

// onReply hands the server's reply to the command whose request it
// answers.
func (p *Peer) onReply(now time.Time, from netip.AddrPort, h wire.Header, r wire.Reply) []Output {
	rq, w := p.requestOf(h.ID)
	if from != p.cfg.Server || rq == nil {
		return []Output{dropped("reply matches no request", from, slog.Uint64("id", uint64(h.ID)))}
	}
	if !r.OK && r.Epoch != 0 && h.Flags&wire.FlagAuth != 0 {
		// The server took a later request of this user's than this one.
		// Only a signed FAILURE says so: an unsigned one (which anyone
		// who learnt the request's id can send from the server's address)
		// fails the request and does no more (an attacker's review: a
		// forged number near 2^64 moved this user's past any the server
		// could take again, for good).
		if r.Epoch > p.cred.seq {
			return p.behind(now, rq, r)
		}
		// One of this process's own, typed ahead: this one may have been
		// acted on, its answer lost (the server keeps one answer an
		// address). It goes on as if no answer had come: sent again as it
		// was, or for a query asked again as a new request.
		// No warning: a network that reorders makes it.
		ev := dropped("the server took a later request of this peer's; this one waits for its own answer", from, slog.Uint64("id", uint64(h.ID)))
		ev.Level = slog.LevelInfo
		return []Output{ev}
	}
	rq.live, p.serverHeard = false, true
	// The key that signed r: a register's reply is signed with its
	// cookie, and the secret it brings is taken only below. An unsigned
	// FAILURE is remembered with none (anyone may send one).
	var key wire.Key
	if h.Flags&wire.FlagAuth != 0 {
		key = p.replyKey()
	}
	p.replied.add(rq.id, key)
	for _, a := range rq.asked {
		p.replied.add(a.id, key)
	}
	switch rtt, once := rq.tries.roundTrip(now); {
	case !rq.tries.heardInTime(now):
		// Read after a stall of this process's own, which the reply may
		// have waited out unread: no round trip (a review: a reply read
		// after a 4 s SIGSTOP set the server's timeout to 12 s, and a
		// lost request was not sent again before the give-up).
	case w != nil:
		p.serverRTT.sample(walkRoundTrip(rq, h.ID, now))
	case once:
		p.serverRTT.sample(rtt)
	}
	if w != nil {
		return p.walkAnswered(now, w, r)
	}
	if !r.OK {
		return p.failed(now, nil, resultFailed(rq.cmd, p.notKnown(r.Reason)))
	}
	return p.op.answered(p, now, rq.cmd, r)
}

// behind: the server took a request of this user's with a sequence number
// above rq's and above every one this process used (Server.behind), which
// it names in the epoch field: the process before ran on a clock ahead of
// this one's, and rq was not acted on. The count goes on above the number
// named, and rq is asked again, as a new request.
func (p *Peer) behind(now time.Time, rq *request, r wire.Reply) []Output {
	ev := event("the server took a later sequence number from this user (its process before counted from a clock ahead of this one's): asking again above it",
		slog.Uint64("seq", rq.sg.seq), slog.Uint64("last", r.Epoch))
	p.cred.seq = r.Epoch
	return p.ask(now, []Output{ev}, rq, rq.cmd, rq.msg)
}

func (p *Peer) onAck(now time.Time, from netip.AddrPort, h wire.Header, a wire.Ack) []Output {
	out, fresh := p.acked(now, from, h.ID, nil)
	for _, id := range a.More {
		var f bool
		out, f = p.acked(now, from, id, out)
		fresh = fresh || f
	}
	p.link.endAck()
	if first, _ := firstOutput(out).(Event); !fresh && !first.Drop {
		// Every message it names was acknowledged before: a network
		// that duplicates, or an ack captured and sent again from its
		// sender's address, or the quiet ack of a ring message copied
		// at its receiver. Traced as a drop, summarised, not a line a
		// copy without end (an attacker's review: 2,000 lines for 2,000
		// copies).
		ev := dropped(ackAgain, from, slog.String("type", wire.TypeAck.String()), slog.Uint64("id", uint64(h.ID)))
		ev.Level = slog.LevelDebug
		out = append([]Output{ev}, out...)
	}
	return out
}

// acked takes the ack of message id; fresh: the message was in flight, or
// cancelled in flight and this is its first ack (which ends nothing, and
// is no sign of trouble).
func (p *Peer) acked(now time.Time, from netip.AddrPort, id uint32, out []Output) (_ []Output, fresh bool) {
	t, ok, more := p.link.acked(now, from, id)
	if !ok {
		switch {
		case p.link.ackedBefore(from, id):
			return out, false
		case p.link.ackDropped(from, id):
			p.link.late.add(from, id) // a copy of this ack is one
			return out, true
		}
		return append(out, dropped("ack matches nothing in flight", from, slog.Uint64("id", uint64(id)))), false
	}
	out = append(out, more...)
	switch o := p.op.(type) {
	case *leaveOp:
		if t == tagResetLeft || t == tagResetRight {
			out = o.resetAcked(p, now, out)
		}
	}
	if t == tagJoin && p.joining != nil {
		out = p.joining.acked(p, now, out)
	}
	if h := p.healing; h != nil {
		switch t {
		case tagHeal:
			out = h.acked(p, now, out)
		case tagHealed:
			out = append(out, h.reported(p)...)
		}
	}
	if p.pop != nil && from == p.right.Addr {
		out = p.feed(now, out)
	}
	return p.flushLeft(now, from, out), true
}

// startAlive starts the alives once register has succeeded: the first
// after a quarter of a period (the register itself was a sign of life),
// since it is the one the server answers with its pace. Sent a whole
// untold period after the register, it and the next were all the server
// could hear before a --dead-after of 3s ran out: two lost in a row (one
// chance in 25 at 20% loss) took a live peer for dead.
func (p *Peer) startAlive(now time.Time) {
	p.aliveAt = now.Add(p.alivePeriodOrUntold() / 4)
}

func (p *Peer) alivePeriodOrUntold() time.Duration {
	if p.alivePeriod == 0 {
		return aliveUntold
	}
	return p.alivePeriod
}

// paceAnswers is how long after an alive a pace that answers it may
// lengthen the alive period: longer than any round trip to the server (a
// window of the last few alives would never take the answer at a peer 4 s
// of round trip away: TestAFarPeerTakesTheServersPace).
const paceAnswers = 30 * time.Second

// onPace takes the server's word on how often to send alive, and on
// whether the ring this node holds a place in still counts it. A pace
// that lengthens the period is taken only in answer to an alive sent in
// the last paceAnswers: a pace is signed but carries no sequence number of
// its own (the server's at its start is 0), and a pace captured from a
// server run with a long --dead-after, sent again once the server runs
// with a short one, silenced a live member until it was healed out (a red
// team). An alive's sequence number is its sending time in nanoseconds,
// or just above the last (nextSeq).
func (p *Peer) onPace(now time.Time, from netip.AddrPort, h wire.Header, m wire.Pace) []Output {
	if from != p.cfg.Server || !p.registered {
		return []Output{dropped("pace not from the server this peer is registered with", from)}
	}
	d := min(max(time.Duration(m.PeriodMS)*time.Millisecond, minAlivePeriod), maxAlivePeriod)
	answers := h.Seq != 0 && h.Seq <= p.cred.aliveSeq && h.Seq >= uint64(now.Add(-paceAnswers).UnixNano())
	period, at := p.alivePeriod, p.aliveAt
	if d <= p.alivePeriodOrUntold() || answers {
		p.alivePeriod = d
		if next := now.Add(d); next.Before(p.aliveAt) {
			p.aliveAt = next
		}
	} // else its ring news still counts (epochs never repeat); the period comes with the answer to the next alive
	if m.Gone == 0 || m.Gone != p.placeEpoch() {
		if p.alivePeriod == period && p.aliveAt.Equal(at) {
			// A copy (the server's pace at its start goes three times),
			// or one captured and sent again from the server's address:
			// traced as a drop, summarised, not a line a copy without
			// end (an attacker's review: 200 copies, 200 lines).
			ev := dropped("pace that changes nothing (a copy, or the period this peer keeps)", from, slog.Uint64("period_ms", uint64(m.PeriodMS)))
			ev.Level = slog.LevelDebug
			return []Output{ev}
		}
		return nil
	}
	return p.ringGone(now, m.Gone)
}

// ringGone: the server counts this node in no ring of epoch, the one it
// holds a place in, or the one its setup, join, leave or teardown in
// progress works at. Either the ring was replaced while this process did
// not run or could not be heard (it was healed out as offline, or the ring
// was dissolved), or the server ended the operation (a member restarted
// without its place, or went offline, and the ring healed or was rolled
// back): nothing else would tell this node before its give-up or op
// timeout. The operation fails, saying so; the place and table are
// dropped, in memory and in the file, as a restarted process does at its
// resume.
func (p *Peer) ringGone(now time.Time, epoch uint64) []Output {
	return p.held(now, func() []Output { return p.ringEnded(now, epoch) })
}

// held runs change, a change of ring that may end the command in
// progress, with the next input line held back until it is made: a
// command typed behind the one ended starts once this node's new state is
// set, and is not taken for the one ended (a chaos review: a join-dht
// typed behind a leave-dht the server ended got the leave's failure, and
// its request, sent and answered, was given up).
func (p *Peer) held(now time.Time, change func() []Output) []Output {
	if p.holding {
		return change()
	}
	p.holding = true
	out := change()
	p.holding = false
	return p.advance(now, out)
}

// ringEnded is ringGone's change.
func (p *Peer) ringEnded(now time.Time, epoch uint64) []Output {
	// The queries this node forwarded round that ring go no further: its
	// old right drops them unacknowledged (from neither their querier nor
	// its left neighbour), and their give-up would fail whatever else goes
	// to that node meanwhile (a join-dht typed next). Their queriers ask
	// again through the server.
	fw := p.endForwards(now)
	return append(fw, p.ringLeft(now, epoch)...)
}

// ringLeft is ringEnded's change of state and command.
func (p *Peer) ringLeft(now time.Time, epoch uint64) []Output {
	what := ""
	switch o := p.op.(type) {
	case *joinOp:
		if o.stage == joinWaiting {
			what = "join"
		}
	case *leaveOp:
		if leaveRunning(o.stage) {
			what = "leave"
		}
	case *teardownOp:
		if o.stage == teardownTearing {
			what = "teardown"
		}
	case *setupOp:
		if o.stage == setupPopulating {
			what = "setup"
		}
	}
	if what != "" {
		why := fmt.Sprintf("the server ended the %s (epoch %d): %s is Free, outside the ring (dissolved meanwhile; the server's answer to a request, such as query-dht %s, tells why)", what, epoch, p.self.Name, p.self.Name)
		if what == "leave" || what == "join" {
			// Healed round the leaver or the joiner: the server's answers
			// say why only while the ring heals.
			why = fmt.Sprintf("the server ended the %s (epoch %d): %s is Free, outside the ring, which the server heals without it (a member went offline or restarted, or the %s passed --op-timeout; while it heals, the server's answers say why)", what, epoch, p.self.Name, what)
		}
		out := p.abandon(now, why) // a setup, a leave or a teardown fails here
		if what == "join" {
			out = p.finish(now, out, resultFailed(CmdDHTRebuilt, why)) // and drops what the join gave
		}
		return append(out, p.dropPlace()...)
	}
	note := Notice{Line: fmt.Sprintf("%s is Free: the server counts it in no ring of epoch %d (it was healed out of that ring as offline, the ring was dissolved, or its leave or teardown ended there); its place (id %d of a ring of %d) and table are discarded",
		p.self.Name, epoch, p.id, p.n)}
	out := p.abandon(now, fmt.Sprintf("the server counts %s in no ring of epoch %d", p.self.Name, epoch))
	return append(append(out, p.dropPlace()...), note)
}

// notInRing is why a peer refuses a leave-dht or teardown-dht of its own
// user, or cannot go on with its leave: it holds no place in a ring.
func notInRing(name string) string {
	return fmt.Sprintf("%s holds no place in a ring (leave-dht and teardown-dht are for a member of the DHT)", name)
}

// dropPlace forgets this node's place, neighbours and table, and writes
// that to its file; nothing if it holds none.
func (p *Peer) dropPlace() []Output {
	p.tearing = nil
	p.leaver = netip.AddrPort{}
	p.counted = false
	if !p.inRing && !p.neighbours {
		return nil
	}
	p.clearTable()
	p.leaveRing(false)
	return []Output{p.persist(true, nil)}
}

// placeEpoch is the epoch of the ring this node holds a place in, or of
// the join, the leave or the teardown in progress that places it,
// renumbers its ring or tears it down; 0 if none: what its alives carry.
func (p *Peer) placeEpoch() uint64 {
	if p.inRing {
		return p.epoch
	}
	switch o := p.op.(type) {
	case *joinOp:
		if o.stage == joinWaiting {
			return o.epoch
		}
	case *leaveOp:
		if leaveRunning(o.stage) {
			return o.epoch
		}
	case *teardownOp:
		if o.stage == teardownTearing {
			return o.epoch // the ring it tears down, whose place it gave up when it sent the teardown
		}
	}
	if p.neighbours {
		// A leave's or a join's teardown passed this node: its table is
		// cleared, its neighbours kept for the renumbering, and its file
		// still shows its place until the rebuild's commit. Should the
		// server have healed the ring without it meanwhile, the pace says
		// so, and the place goes.
		return p.epoch
	}
	return 0
}

// aliveDue sends the alive due at now, if one is.
func (p *Peer) aliveDue(now time.Time, out []Output) []Output {
	if !p.registered || p.aliveAt.IsZero() || now.Before(p.aliveAt) {
		return out
	}
	p.aliveAt = now.Add(p.alivePeriodOrUntold())
	if p.cred.secret.IsZero() {
		return out // the server would not take it
	}
	p.stats.Sent++
	p.cred.aliveSeq = nextSeq(p.cred.aliveSeq, now)
	sg := signer{seq: p.cred.aliveSeq, key: p.cred.secret, toServer: true}
	// KeyEpoch claims the largest epoch this peer knows outside its place:
	// its ring key's, or the last ring it held (its floor: it refuses a
	// set-id of an older epoch). A server put back on an older file takes
	// its next epochs past both.
	m := wire.Alive{Name: p.self.Name, PeriodMS: uint32(p.alivePeriod.Milliseconds()), Epoch: p.placeEpoch(), KeyEpoch: max(p.cred.epoch, p.epoch)}
	if now.Before(p.quitUntil) {
		m.QuitOp, m.Quit = p.quit.op, p.quit.epoch
	}
	return append(out, sg.send(p.cfg.Server, p.link.newID(), 0, m))
}

// quitNote names an operation this peer gave up: the type of the request
// that started it, and its epoch.
type quitNote struct {
	op    wire.Type
	epoch uint64
}

// quitFor is how long alives name an operation given up, the first sent at
// once: as long as the server waits for it by default (--op-timeout), so
// that a server down, or a notice lost, when the peer gave up still ends
// the operation when it hears the next, rather than roll the DHT back at
// its timeout. The server acts on one (Server.quit) and ignores the rest:
// by then it no longer waits for that operation, and a new one takes a new
// epoch.
const quitFor = DefaultOpTimeout

// giveUp: the command in progress fails. If the server took it (a setup,
// leave, join or teardown it answered with its epoch) and waits for this
// peer to finish it with dht-complete, dht-rebuilt or teardown-complete,
// which will not come, an alive sent now says so, and the server ends the
// operation at once (Server.quit) instead of at its --op-timeout.
func (p *Peer) giveUp(now time.Time) {
	q := p.awaited()
	if q.epoch == 0 || !p.registered || p.aliveAt.IsZero() {
		return
	}
	p.quit, p.quitUntil, p.aliveAt = q, now.Add(quitFor), now
}

// awaited is the operation in progress the server took and waits for this
// peer to finish; epoch 0 when there is none. One whose request went
// unanswered is named by the request's sequence number instead (larger
// than any epoch): the server may have taken it and lost the answer, or
// answered only after this peer gave up (its disk stalled), and it knows
// the number (Server.quit).
func (p *Peer) awaited() quitNote {
	var q quitNote
	switch o := p.op.(type) {
	case *setupOp:
		q = quitNote{wire.TypeSetupDHT, o.epoch}
	case *leaveOp:
		q = quitNote{wire.TypeLeaveDHT, o.epoch}
	case *joinOp:
		q = quitNote{wire.TypeJoinDHT, o.epoch}
	case *teardownOp:
		q = quitNote{wire.TypeTeardownDHT, o.epoch}
	default:
		return quitNote{}
	}
	// A request the server answered FAILURE is nothing it waits for.
	if rq := p.op.asking(); q.epoch == 0 && rq != nil && rq.live && rq.msg != nil && rq.msg.Type() == q.op && rq.sg.seq >= seqFloor {
		q.epoch = rq.sg.seq
	}
	return q
}

// Deaf tells the peer it read nothing for d (its runner was committing):
// the ring messages waiting for acks, which may have come meanwhile and
// wait unread, are sent again that much later, not before the acks are
// read.
func (p *Peer) Deaf(d time.Duration) {
	if d > 0 {
		p.link.postpone(d)
	}
}

// NextDeadline is when Tick next has work: Pending's, or the next alive
// while registered.
func (p *Peer) NextDeadline() (time.Time, bool) {
	t, ok := p.Pending()
	if p.registered && !p.aliveAt.IsZero() && (!ok || p.aliveAt.Before(t)) {
		t, ok = p.aliveAt, true
	}
	return t, ok
}

// Pending is when Tick next has work other than the alives a registered
// peer sends forever: a retransmission, a command's or a join's limit.
func (p *Peer) Pending() (time.Time, bool) {
	return p.late.deadline(p.pending())
}

func (p *Peer) pending() (time.Time, bool) {
	t, ok := p.link.deadline()
	earlier := func(d time.Time) {
		if !d.IsZero() && (!ok || d.Before(t)) {
			t, ok = d, true
		}
	}
	if p.op != nil {
		if rq := p.op.asking(); rq != nil && rq.live {
			earlier(rq.tries.next)
		}
		earlier(p.op.due())
	}
	if t, ok := p.waitNoteDue(); ok {
		earlier(t)
	}
	p.walksDue(earlier)
	if p.joining != nil {
		earlier(p.joining.until)
	}
	return t, ok
}

// serverSilent is why a request the server never answered failed; if
// this host refused to send there, why; if nothing ever came from there,
// the address may be wrong.
func (p *Peer) serverSilent(now time.Time) string {
	why := fmt.Sprintf("no answer from the server at %s within %s", p.cfg.Server, p.serverRetry.GiveUp)
	refused := p.sendRefused(p.cfg.Server, now.Add(-p.serverRetry.GiveUp))
	switch {
	case p.strayServer.IsValid() && !p.serverHeard:
		why += fmt.Sprintf(" (answers came from %s instead, and were dropped: only the server's address is trusted; give the peer that address, or start the server with --addr %s)", p.strayServer, p.cfg.Server.Addr())
	case refused != "":
		why += " (" + refused + ")"
	case !p.serverHeard:
		if o, ok := p.op.(*registerOp); ok && o.bind.IsValid() && !p.serverOnThisHost(o.bind.Addr()) {
			// A server may run there and be unable to answer: the
			// address registered is this host's, but not one the
			// server's host reaches (another network's; a walk-through
			// on several hosts).
			why += fmt.Sprintf(" (nothing has come from there yet: is a dht server running at that address, and can it reach %s, the address this peer registers from?)", o.bind)
			break
		}
		why += " (nothing has come from there yet: is a dht server running at that address?)"
	}
	return why
}

// Tick retransmits, gives up, and times out the command in progress.
func (p *Peer) Tick(now time.Time) []Output {
	// After a stall of its own (lateTick) the peer gives nothing up
	// before the acks and answers that came meanwhile are read; its
	// alives go on.
	due, ok := p.pending()
	if judge, late := p.late.judging(now, due, ok); !judge {
		out := p.aliveDue(now, nil)
		if late > 0 {
			out = append(out, lateEvent("it gives up on any peer or the server", late))
		}
		return out
	}
	out, gone := p.link.tick(now)
	out = p.aliveDue(now, out)
	for _, g := range gone {
		out = append(out, event("gave up: no acknowledgement", attrAddr(g.to), slog.String("type", g.msg.Type().String())))
	}
	out = p.reportBroken(now, gone, out)
	p.noteStoresLost(gone)
	if p.pop != nil && p.pop.goneRight(p, gone) {
		var stalled time.Duration
		for _, g := range gone {
			stalled = max(stalled, g.stalled)
		}
		out = append(out, p.popFailed(now, fmt.Sprintf("right neighbour %s stopped acknowledging stores", p.named(p.right.Addr))+stalledNote(stalled), false)...)
	}
	if p.healing != nil {
		out = p.healTick(now, gone, out)
	}
	if p.joining != nil {
		out = p.joining.tick(p, now, gone, out)
	}
	out = p.tickWalks(now, gone, out)
	o := p.op
	if o == nil {
		return p.noteWait(now, out)
	}
	if g, ok := opFailure(p, o, gone); ok {
		why := p.unacked(now, g)
		if _, ok := o.(*setupOp); ok {
			why += setupGivenUp
		}
		return p.finish(now, out, resultFailed(o.failing(), why))
	}
	if rq := o.asking(); rq != nil && rq.live && rq.tries.due(now) {
		if !rq.tries.again(now, &p.serverRetry, &p.serverRTT) {
			why := p.serverSilent(now)
			switch rq.cmd {
			case CmdDHTComplete, CmdDHTRebuilt, CmdTeardownComplete:
				// The ring's part is done: a server stalled, not gone nor
				// restarted, may still read it and finish the operation.
				why += fmt.Sprintf("; a server only stalled may still take it (its answer to this peer's next request, such as query-dht %s, tells what became of the DHT)", p.self.Name)
			case CmdLeaveDHT, CmdTeardownDHT:
				// A stalled server may still read it, and then end it at
				// once, given up (this peer's alives say so): what was
				// asked for happens all the same (a chaos review: a leaver
				// told FAILURE was healed out of the ring, unsaid).
				what := "heal the ring without " + p.self.Name
				if rq.cmd == CmdTeardownDHT {
					what = "dissolve the DHT"
				}
				why += fmt.Sprintf("; a server only stalled may still take it, and then %s, this peer having given it up (its answer to this peer's next request, such as query-dht %s, tells what became of the DHT)", what, p.self.Name)
			}
			return p.failed(now, out, resultFailed(rq.cmd, why))
		}
		p.stats.Sent++
		p.stats.Retransmits++
		out = append(out, rq.sg.send(p.cfg.Server, rq.id, wire.FlagRetransmit, rq.msg))
	}
	if d := o.due(); !d.IsZero() && !now.Before(d) {
		out = o.expire(p, now, out)
	}
	return p.noteWait(now, out)
}

// datasetUnusable is the reason a ring command fails when its leader's
// dataset does not load, said once ("dataset: " opens the loader's errors).
func datasetUnusable(err error) string {
	return "cannot use the dataset: " + strings.TrimPrefix(err.Error(), "dataset: ")
}

// notKnown adds to the server's "NAME is not registered" or "not signed by
// NAME", when NAME is this peer's own user, what to do: the server lost the
// registration, or holds an older secret for it (a new file, or one from
// before it), and a register makes it anew.
func (p *Peer) notKnown(reason string) string {
	if !p.registered {
		return reason
	}
	var why string
	switch reason {
	case p.self.Name + " is not registered":
		why = "the server no longer knows it: started on a new or older file?"
	case "not signed by " + p.self.Name:
		// The server holds another secret than this peer's: one of the
		// two files is from before the user's last register.
		why = "the server holds another secret for it: its file or this peer's is from before the last register?"
	default:
		return reason
	}
	a := p.self.Addr
	return fmt.Sprintf("%s (%s); type 'register %s %s %d' to register anew", reason, why, p.self.Name, a.Addr(), a.Port())
}
