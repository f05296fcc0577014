package app

import (
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"dht/app/state"
	"dht/dataset"
	"dht/wire"
)

// PeerConfig configures the peer state machine.
type PeerConfig struct {
	Server netip.AddrPort
	// LoadData reads and checks the dataset. It is called before setup-dht
	// is sent and when this peer becomes the leader of a rebuilt ring; the
	// leader reads the records by index as it sends them.
	LoadData func() (dataset.Source, error)
	// Rand seeds the first message id.
	Rand *rand.Rand
	Link LinkConfig
	// RequestTimeout bounds one request to the server, retransmissions
	// included.
	RequestTimeout time.Duration
	// QueryTimeout bounds a query from query-dht to its answer.
	QueryTimeout time.Duration
	// OpTimeout bounds each ring phase of setup, leave and teardown.
	OpTimeout time.Duration
}

func (c PeerConfig) withDefaults() PeerConfig {
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = 10 * time.Second
	}
	if c.QueryTimeout <= 0 {
		c.QueryTimeout = 10 * time.Second
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

type stage uint8

const (
	stBind     stage = iota + 1 // waiting for Bound
	stRequest                   // waiting for the server's reply
	stLongName                  // query-dht: the server named a member; waiting for the next input line, the Long Name
	stSleep
	stSetID    // leader: waiting for every set-id to be acknowledged
	stPopulate // leader: waiting for the flush to come back
	stQuery    // waiting for the query's result
	stTeardown // waiting for our teardown to come back
	stResetID  // leaver: waiting for reset-id to come back
	stResets   // leaver: waiting for reset-left and reset-right acks
	stRebuild  // leaver: waiting for the new leader's rebuilt
)

// op is the user command in progress. One at a time: messages to the server
// come in pairs, and the next input line waits.
type op struct {
	name  string // result lines are printed under this name
	stage stage
	// server request in flight
	req      wire.Message
	reqID    uint32
	reqFirst time.Time
	reqRTO   time.Duration
	reqSent  int       // transmissions of the request
	deadline time.Time // stage deadline (request retransmit, sleep, ring phase)
	bind     netip.AddrPort
	// query-dht
	longName   string
	queryReqID uint32
	queryTo    netip.AddrPort // the member the server named
	queryRetry time.Time      // when to ask again if no answer came
	queryRTO   time.Duration
	queryFirst time.Time // when the query was first sent
	queryTries int
	// setup-dht
	data    dataset.Source
	pending int // set-ids or resets not yet acknowledged
	// leave-dht
	left, right wire.Member
	n           int
	// needs are the peers this op waits on: giving up on one fails it.
	needs    []netip.AddrPort
	needsBuf [2]netip.AddrPort // room for needs without an allocation
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

// populate is a store round led by this peer (setup or rebuild).
type populate struct {
	n       int
	data    dataset.Source // sent right in dataset order, but for this node's own
	next    int            // the next record of data to look at
	flushed bool
	leaver  *wire.Member // rebuild: who to tell when done
	// This node's own records: those before scanned went in the first
	// commit (which clears the table); feed collects the others in own
	// and commits them ownChunk at a time once the first is out.
	scanned  int
	own      []dataset.Record
	firstOut bool
}

// ownChunk is the most of its own records a leader commits at once. It
// finds them as it walks the dataset, so a dataset of any size costs it
// bounded memory; for any ring the real dataset makes, they all go in one
// commit.
const ownChunk = 8192

// Peer is the user process as a state machine: the client side of the nine
// server commands and the whole ring protocol.
type Peer struct {
	cfg   PeerConfig
	stats Stats
	link  *link

	self       wire.Member // Addr valid once bound, Name once registered
	bound      bool
	registered bool
	exited     bool

	lines []string
	op    *op
	// inputEnded: no more lines will come, so a query-dht that still
	// needs its Long Name fails instead of waiting for it.
	inputEnded bool

	inRing      bool
	id, n       int
	left, right wire.Member
	neighbours  bool
	table       Table
	uncommitted []dataset.Record
	// unsaved: the place in the ring changed since the file was last
	// written (and, with clearSaved, the table was emptied): set-id and the
	// renumbering of a leave are written with the commit that follows them
	// in the same operation (the stores', or the flush's), not one each.
	unsaved, clearSaved bool
	pop                 *populate
	leaver              netip.AddrPort // set by reset-left: whose rebuild-dht to accept
	queryTime           time.Duration  // smoothed time first attempts take to be answered
}

// NewPeer builds a peer.
func NewPeer(cfg PeerConfig) *Peer {
	cfg = cfg.withDefaults()
	p := &Peer{cfg: cfg}
	p.link = newLink(cfg.Link, cfg.Rand.Uint32(), &p.stats)
	return p
}

// Stats reports the datagram counters.
func (p *Peer) Stats() Stats { return p.stats }

// Idle reports that no command is in progress or waiting.
func (p *Peer) Idle() bool { return p.op == nil && len(p.lines) == 0 }

// WantsLongName reports that the command in progress waits for the next
// input line, as the Long Name: query-dht typed without one, which the
// server has answered SUCCESS.
func (p *Peer) WantsLongName() bool { return p.op != nil && p.op.stage == stLongName }

// Registered reports whether this peer holds a registration.
func (p *Peer) Registered() bool { return p.registered }

// Name is the registered name ("" before register succeeds).
func (p *Peer) Name() string { return p.self.Name }

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
// are skipped wherever they come.
func (p *Peer) Input(now time.Time, line string) []Output {
	if p.exited || p.inputEnded {
		return nil
	}
	line = strings.TrimRight(line, "\r\n")
	t := strings.TrimSpace(line)
	if t == "" || strings.HasPrefix(t, "#") {
		return nil
	}
	p.lines = append(p.lines, line)
	return p.advance(now, nil)
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
	for !p.exited {
		o := p.op
		switch {
		case o != nil && o.stage == stLongName && len(p.lines) > 0:
			out = p.takeLongName(now, p.nextLine(), out)
		case o != nil && o.stage == stLongName && p.inputEnded:
			return p.finish(now, out, o.name+" FAILURE: input ended before the Long Name")
		case o == nil && len(p.lines) > 0:
			out = p.start(now, p.nextLine(), out)
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
	return line
}

// takeLongName: the line after a query-dht the server answered is its Long
// Name; the query goes to the member the server named.
func (p *Peer) takeLongName(now time.Time, line string, out []Output) []Output {
	o := p.op
	name := strings.TrimSpace(line)
	switch {
	case len(line) > MaxInputLine:
		return p.finish(now, out, fmt.Sprintf("%s FAILURE: Long Name too long (a line of more than %d bytes)", o.name, MaxInputLine))
	case len(name) > wire.MaxField:
		return p.finish(now, out, fmt.Sprintf("%s FAILURE: Long Name too long (%d bytes, at most %d)", o.name, len(name), wire.MaxField))
	}
	o.longName = name
	return append(out, p.askNode(now)...)
}

// tooLong refuses an input line over MaxInputLine: it is no command, and
// the note for the person typing goes to stderr, not among the results.
func tooLong(line string) Notice {
	const show = 40
	head := line[:min(len(line), show)]
	return Notice{Line: fmt.Sprintf("input: a line of more than %d bytes ignored (it began %q...)", MaxInputLine, head)}
}

func (p *Peer) start(now time.Time, line string, out []Output) []Output {
	if len(line) > MaxInputLine {
		return append(out, tooLong(line))
	}
	c := parseCommand(line)
	if c.usageReason != "" {
		return append(out, Print{c.name + " FAILURE: " + c.usageReason})
	}
	switch c.name {
	case "help":
		return append(out, Print{HelpText()})
	case "sleep":
		p.op = &op{name: c.name, stage: stSleep, deadline: now.Add(c.sleep)}
		return out
	}
	o := &op{name: c.name, longName: c.longName}
	switch {
	case c.name == "register" && !p.registered:
		p.op, o.stage, o.bind, o.req = o, stBind, c.bind, c.msg
		return append(out, Bind{Name: c.msg.(wire.Register).Name, Addr: c.bind})
	case !p.registered:
		return append(out, Print{c.name + " FAILURE: not registered: register first (the peer sends from the address it registers)"})
	case ringPart(c.msg) == p.self.Name && !(p.inRing && p.neighbours):
		// The server may count this user in the ring when this peer
		// knows of none (a process that lost its file), and would wait
		// for a part this peer cannot play. Naming another user, the
		// command goes as typed: the server decides.
		return append(out, Print{c.name + " FAILURE: this peer holds no place in a ring"})
	case c.name == "setup-dht":
		data, err := p.cfg.LoadData()
		if err != nil {
			return append(out, Print{c.name + " FAILURE: cannot use the dataset: " + err.Error()})
		}
		o.data = data
	}
	p.op = o
	return p.request(now, out, c.name, c.msg)
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
	o := p.op
	if o == nil || o.stage != stBind || o.bind != addr {
		return nil
	}
	if err != nil {
		return p.failed(now, nil, fmt.Sprintf("%s FAILURE: %v", o.name, err))
	}
	p.self.Addr, p.bound = addr, true
	return p.request(now, nil, o.name, o.req)
}

// request sends msg to the server as the current op and waits for the reply.
func (p *Peer) request(now time.Time, out []Output, name string, msg wire.Message) []Output {
	o := p.op
	o.name, o.stage, o.req = name, stRequest, msg
	o.reqID = p.link.newID()
	o.reqFirst, o.reqRTO, o.reqSent = now, max(2*p.link.rto(), 4*p.link.cfg.MinRTO), 1
	o.deadline = now.Add(o.reqRTO)
	p.stats.Sent++
	return append(out, Send{To: p.cfg.Server, ID: o.reqID, Msg: msg})
}

// failed ends the current op with a FAILURE line; a register that failed
// lets go of the table file opened for it, and of the address it bound.
func (p *Peer) failed(now time.Time, out []Output, line string) []Output {
	if p.op.name == "register" && !p.registered {
		out = append(out, DiscardStore{})
		if p.bound {
			p.bound, p.self.Addr = false, netip.AddrPort{}
			out = append(out, Unbind{})
		}
	}
	return p.finish(now, out, line)
}

// finish ends the current op with a result line and starts the next one.
func (p *Peer) finish(now time.Time, out []Output, line string) []Output {
	p.op = nil
	out = append(out, Print{line})
	return p.advance(now, out)
}

func (p *Peer) identity() state.Identity {
	id := state.Identity{Name: p.self.Name, Addr: p.self.Addr, Server: p.cfg.Server, InRing: p.inRing}
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
// in progress; the persist that goes with it clears the file.
func (p *Peer) clearTable() {
	p.uncommitted = nil
	p.pop = nil
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
	From   netip.AddrPort
	Header wire.Header
	Msg    wire.Message
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

// Receive handles datagrams in order but settles nothing: the records their
// stores brought to this node are not committed, and nothing is
// acknowledged, until Settle. A runner that finds more datagrams waiting
// while Unsettled receives them too before it settles, so that one commit
// and one Ack per sender cover them all.
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

// Unsettled reports stored records not yet committed.
func (p *Peer) Unsettled() bool { return len(p.uncommitted) > 0 }

// Settle commits, in one transaction, the records that stores brought to
// this node since the last Settle, then acknowledges everything received
// since: one Ack to each sender, after the commit, so that an acknowledged
// store is on disk.
func (p *Peer) Settle() []Output {
	return p.link.flushAcks(p.commitStores(nil, false))
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
	switch m := m.(type) {
	case wire.Reply:
		return p.onReply(now, from, h, m)
	case wire.Ack:
		return p.onAck(now, from, h, m)
	case wire.SetID, wire.Store, wire.Flush, wire.Query, wire.QueryResult, wire.Teardown,
		wire.ResetID, wire.ResetLeft, wire.ResetRight, wire.RebuildDHT, wire.Rebuilt:
		if !p.registered {
			// No table file is open to keep a place in a ring in.
			return []Output{event("dropped: this peer is not registered", attrAddr(from), slog.String("type", m.Type().String()), slog.Uint64("id", uint64(h.ID)))}
		}
		return p.onRing(now, from, h, m)
	}
	return []Output{event("dropped: a server request sent to a peer", attrAddr(from), slog.String("type", m.Type().String()))}
}

func (p *Peer) onReply(now time.Time, from netip.AddrPort, h wire.Header, r wire.Reply) []Output {
	o := p.op
	if from != p.cfg.Server || o == nil || o.stage != stRequest || h.ID != o.reqID {
		return []Output{event("dropped: reply matches no request", attrAddr(from), slog.Uint64("id", uint64(h.ID)))}
	}
	if o.reqSent == 1 {
		p.link.sample(now.Sub(o.reqFirst))
	}
	if !r.OK {
		return p.failed(now, nil, o.name+" FAILURE: "+r.Reason)
	}
	if o.name == "query-dht" {
		if len(r.Members) != 1 {
			return p.finish(now, nil, o.name+" FAILURE: the server named no node to ask")
		}
		o.queryTo = r.Members[0].Addr
		if o.longName == "" {
			// Only now is the next line the Long Name: a query-dht the
			// server refuses takes none, so the line goes on as a command.
			o.stage, o.deadline = stLongName, time.Time{}
			return p.advance(now, nil)
		}
		return p.askNode(now)
	}
	line := o.name + " SUCCESS"
	switch o.name {
	case "register":
		p.registered = true
		p.self.Name = o.req.(wire.Register).Name
		return p.finish(now, []Output{p.persist(false, nil)}, line)
	case "setup-dht":
		return p.startSetup(now, r.Members)
	case "leave-dht":
		return p.startLeave(now)
	case "teardown-dht":
		return p.startTeardown(now)
	case "dht-rebuilt":
		var out []Output
		if o.req.(wire.DHTRebuilt).Name == p.self.Name {
			p.inRing, p.neighbours = false, false
			p.left, p.right = wire.Member{}, wire.Member{}
			out = append(out, p.persist(false, nil))
		}
		return p.finish(now, out, line+": new leader "+o.req.(wire.DHTRebuilt).NewLeader)
	case "deregister":
		if o.req.(wire.Deregister).Name == p.self.Name {
			p.registered, p.exited = false, true
			p.lines = nil
			p.op = nil
			return []Output{Print{line}, Exit{}}
		}
	}
	return p.finish(now, nil, line)
}

func (p *Peer) onAck(now time.Time, from netip.AddrPort, h wire.Header, a wire.Ack) []Output {
	out := p.acked(now, from, h.ID, nil)
	for _, id := range a.More {
		out = p.acked(now, from, id, out)
	}
	p.link.endAck()
	return out
}

func (p *Peer) acked(now time.Time, from netip.AddrPort, id uint32, out []Output) []Output {
	t, ok, more := p.link.acked(now, from, id)
	if !ok {
		if p.link.ackedBefore(from, id) {
			return append(out, debugEvent("ack again: the message was sent more than once", attrAddr(from), slog.Uint64("id", uint64(id))))
		}
		return append(out, event("dropped: ack matches nothing in flight", attrAddr(from), slog.Uint64("id", uint64(id))))
	}
	out = append(out, more...)
	o := p.op
	switch t {
	case tagSetID:
		if o != nil && o.stage == stSetID {
			if o.pending--; o.pending == 0 {
				out = p.startPopulate(now, out, o.data, nil)
				o.stage, o.deadline = stPopulate, now.Add(p.cfg.OpTimeout)
				o.data = nil
			}
		}
	case tagResetLeft, tagResetRight:
		if o != nil && o.stage == stResets {
			if o.pending--; o.pending == 0 {
				o.stage, o.deadline = stRebuild, now.Add(p.cfg.OpTimeout)
				out = append(out, p.link.send(now, o.right.Addr, wire.RebuildDHT{Leaver: p.self}, tagRebuild, false)...)
			}
		}
	}
	if p.pop != nil && from == p.right.Addr {
		out = p.feed(now, out)
	}
	return out
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
	case wire.ResetID:
		if !fromLeft {
			return "not from the left neighbour"
		}
		if m.N < 1 || int(m.N) > MaxRing || m.ID >= m.N && m.Origin != p.self.Name {
			return fmt.Sprintf("reset-id %d of %d is not a place in a ring", m.ID, m.N)
		}
	case wire.ResetLeft:
		if !fromLeft {
			return "not from the left neighbour"
		}
		if !validMember(m.Left) {
			return "reset-left names an invalid neighbour"
		}
	case wire.ResetRight:
		if !p.neighbours || from != p.right.Addr {
			return "not from the right neighbour"
		}
		if !validMember(m.Right) {
			return "reset-right names an invalid neighbour"
		}
	case wire.Store, wire.Flush, wire.Teardown:
		if !fromLeft {
			return "not from the left neighbour"
		}
	case wire.Query:
		if !fromLeft && m.Hops != 0 {
			return "forwarded query not from the left neighbour"
		}
		if !validMember(m.Querier) {
			return "query names an invalid querier"
		}
	case wire.RebuildDHT:
		if !p.leaver.IsValid() || from != p.leaver {
			return "not from the node that just left"
		}
		if !validMember(m.Leaver) {
			return "rebuild-dht names an invalid leaver"
		}
	case wire.QueryResult:
		if p.op == nil || p.op.stage != stQuery || m.ReqID != p.op.queryReqID {
			return "answers no query in progress"
		}
	case wire.Rebuilt:
		if p.op == nil || p.op.stage != stRebuild || from != p.op.right.Addr {
			return "no leave is waiting for it"
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

// sendNoAck sends m once, unacknowledged (FlagNoAck): a query or its
// answer, which the querier retries end to end.
func (p *Peer) sendNoAck(to netip.AddrPort, m wire.Message) Send {
	p.stats.Sent++
	return Send{To: to, ID: p.link.newID(), Flags: wire.FlagNoAck, Msg: m}
}

func (p *Peer) onRing(now time.Time, from netip.AddrPort, h wire.Header, m wire.Message) []Output {
	noAck := false
	if h.Flags&wire.FlagNoAck != 0 {
		switch m.(type) {
		case wire.Query, wire.QueryResult:
			noAck = true
		}
	}
	if !noAck && p.link.seen.has(from, h.ID) {
		p.stats.DupsSuppressed++
		p.link.ack(from, h.ID)
		return nil
	}
	if why := p.expected(from, m); why != "" {
		ev := event("dropped: "+why, attrAddr(from), slog.String("type", m.Type().String()), slog.Uint64("id", uint64(h.ID)))
		if _, late := m.(wire.QueryResult); late && !noAck {
			// A late answer is still acknowledged, so that its sender stops.
			p.link.ack(from, h.ID)
		}
		return []Output{ev}
	}
	if _, ok := m.(wire.Store); ok && p.link.backlog(p.right.Addr) > p.backlogLimit() {
		return []Output{event("dropped: right neighbour is behind; the left will retransmit", attrAddr(from), slog.Uint64("id", uint64(h.ID)))}
	}
	if !noAck {
		p.link.seen.add(from, h.ID)
		// The ack goes out after the batch, so after anything the message
		// made us persist.
		p.link.ack(from, h.ID)
	}
	return p.handleRing(now, from, m, noAck)
}

// handleRing acts on a ring message; noAck says it came unacknowledged (a
// query's first attempt, which is forwarded the same way).
func (p *Peer) handleRing(now time.Time, from netip.AddrPort, m wire.Message, noAck bool) []Output {
	switch m := m.(type) {
	case wire.SetID:
		p.clearTable()
		p.inRing, p.id, p.n = true, int(m.ID), int(m.N)
		p.left, p.right, p.neighbours = m.Left, m.Right, true
		p.leaver = netip.AddrPort{}
		// Written with this node's stores, or at the flush: acknowledged
		// at once, so the leader starts the stores without waiting for a
		// disk.
		p.deferPersist(true)
		return nil
	case wire.Store:
		if int(m.N) != p.n {
			return []Output{event("store for another ring size ignored", attrAddr(from), slog.Int("ring", int(m.N)))}
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
				// Committed at Settle and then forgotten: the record may
				// share the datagram's bytes until then.
				p.uncommitted = append(p.uncommitted, dataset.FromFields(*f))
			}
		}
		if len(fwd) > 0 {
			return p.link.send(now, p.right.Addr, wire.Store{N: m.N, Records: fwd}, tagNone, false)
		}
		return nil
	case wire.Flush:
		if m.Leader == p.self.Name {
			return p.populated(now)
		}
		// Every store before the flush was acknowledged, so committed
		// (commitStores): the flush may go on once a change of place
		// still unwritten is.
		out := p.commitStores(nil, true)
		return append(out, p.link.send(now, p.right.Addr, m, tagNone, true)...)
	case wire.Query:
		pos := dataset.Pos(m.LongName)
		if dataset.ID(pos, p.n) != p.id {
			m.Hops++
			if noAck {
				return []Output{p.sendNoAck(p.right.Addr, m)}
			}
			return p.link.send(now, p.right.Addr, m, tagNone, false)
		}
		res := wire.QueryResult{ReqID: m.ReqID, Node: p.self.Name, NodeID: uint16(p.id), Hops: m.Hops, LongName: m.LongName}
		r, ok, err := p.lookup(m.LongName)
		if ok {
			res.Found, res.Record = true, r.Fields()
		}
		// The querier asks again if the answer is lost.
		out := []Output{p.sendNoAck(m.Querier.Addr, res)}
		if err != nil {
			// Answered as not found: the querier hears from this node, and
			// its log says why.
			out = append(out, event("table read failed; answered not found", slog.String("long_name", m.LongName), slog.String("err", err.Error())))
		}
		return out
	case wire.QueryResult:
		return p.queryAnswered(now, m)
	case wire.Teardown:
		if m.Origin == p.self.Name {
			return p.teardownReturned(now, m)
		}
		// Delete first, then forward to what was the right neighbour.
		right := p.right.Addr
		p.clearTable()
		p.inRing = false
		if !m.KeepNeighbours {
			p.neighbours, p.left, p.right = false, wire.Member{}, wire.Member{}
		}
		out := []Output{p.persist(true, nil)}
		return append(out, p.link.send(now, right, m, tagNone, false)...)
	case wire.ResetID:
		if m.Origin == p.self.Name {
			return p.renumbered(now)
		}
		p.inRing, p.id, p.n = true, int(m.ID), int(m.N)
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
		return nil
	case wire.RebuildDHT:
		p.leaver = netip.AddrPort{}
		data, err := p.cfg.LoadData()
		if err != nil {
			reason := "new leader cannot use its dataset: " + err.Error()
			out := p.rebuildFailed(m.Leaver, "cannot use the dataset: "+err.Error())
			return append(out, p.link.send(now, m.Leaver.Addr, wire.Rebuilt{Reason: reason, NewLeader: p.self.Name}, tagNone, false)...)
		}
		leaver := m.Leaver
		return p.startPopulate(now, nil, data, &leaver)
	case wire.Rebuilt:
		if !m.OK {
			return p.finish(now, nil, "dht-rebuilt FAILURE: "+m.Reason)
		}
		return p.request(now, nil, "dht-rebuilt", wire.DHTRebuilt{Name: p.self.Name, NewLeader: m.NewLeader})
	}
	return nil
}

// rebuildFailed tells this node's user, as well as the leaver, that the
// rebuild of a leave it was to lead failed here: the cause (a dataset
// file, a neighbour) is this node's to see to, and nothing else would
// print it.
func (p *Peer) rebuildFailed(leaver wire.Member, why string) []Output {
	return []Output{
		Print{fmt.Sprintf("rebuild-dht FAILURE: %s; the leave-dht of %s fails with it", why, leaver.Name)},
		event("rebuild failed", slog.String("leaver", leaver.Name), slog.String("err", why)),
	}
}

// startSetup: setup-dht succeeded; tell every member its place.
func (p *Peer) startSetup(now time.Time, members []wire.Member) []Output {
	o := p.op
	names := make([]string, len(members))
	for i, m := range members {
		names[i] = m.Name
	}
	out := []Output{Print{fmt.Sprintf("setup-dht SUCCESS: ring of %d: %s", len(members), strings.Join(names, " "))}}
	n := len(members)
	if n < 1 || members[0].Addr != p.self.Addr {
		return p.finish(now, out, "dht-complete FAILURE: the server's ring does not start at this peer")
	}
	p.clearTable()
	p.inRing, p.id, p.n = true, 0, n
	p.left, p.right, p.neighbours = members[n-1], members[1%n], true
	o.name, o.stage, o.pending = "dht-complete", stSetID, n-1
	o.deadline = now.Add(p.cfg.OpTimeout)
	for _, m := range members[1:] {
		o.needs = append(o.needs, m.Addr)
	}
	for i := 1; i < n; i++ {
		msg := wire.SetID{ID: uint16(i), N: uint16(n), Left: members[i-1], Right: members[(i+1)%n]}
		out = append(out, p.link.send(now, members[i].Addr, msg, tagSetID, false)...)
	}
	return out
}

// startPopulate keeps this node's records, commits them, and starts sending
// the rest right. leaver is set for a rebuild.
func (p *Peer) startPopulate(now time.Time, out []Output, data dataset.Source, leaver *wire.Member) []Output {
	p.clearTable()
	pop := &populate{n: p.n, data: data, leaver: leaver}
	var own []dataset.Record
	for ; pop.scanned < data.Len() && len(own) < ownChunk; pop.scanned++ {
		if r := data.Record(pop.scanned); dataset.ID(r.Pos(), p.n) == p.id {
			own = append(own, r)
		}
	}
	first := p.persist(true, own)
	p.pop = pop
	if p.n == 1 {
		out = append(out, first)
		own = nil
		for i := pop.scanned; i < data.Len(); i++ {
			if own = append(own, data.Record(i)); len(own) == ownChunk || i == data.Len()-1 {
				out = append(out, p.persist(false, own))
				own = nil
			}
		}
		return append(out, p.populated(now)...)
	}
	// The stores go first: the other nodes work while this one commits,
	// and the flush cannot come back before it has. The second feed goes
	// on past a chunk of own records the first could not commit before
	// the first commit was out.
	out = p.feed(now, out)
	out = append(out, first)
	pop.firstOut = true
	return p.feed(now, out)
}

// feed sends stores right while the window has room, then the flush.
func (p *Peer) feed(now time.Time, out []Output) []Output {
	pop := p.pop
	total := pop.data.Len()
	held := false // a chunk of own records waits for the first commit
	for pop.next < total && !held && p.link.unsent(p.right.Addr) == 0 {
		size := wire.StoreOverhead
		var recs []wire.Record
		for ; pop.next < total; pop.next++ {
			r := pop.data.Record(pop.next)
			if dataset.ID(r.Pos(), pop.n) == p.id {
				if pop.next < pop.scanned {
					continue // in the first commit
				}
				if len(pop.own) == ownChunk {
					if held = !pop.firstOut; held {
						break
					}
					out = append(out, p.persist(false, pop.own))
					pop.own = nil
				}
				pop.own = append(pop.own, r)
				continue
			}
			f := r.Fields()
			l := wire.RecordLen(f)
			if len(recs) > 0 && size+l > wire.MaxDatagram {
				break // r goes first in the next datagram
			}
			recs = append(recs, f)
			size += l
		}
		if len(recs) > 0 {
			out = append(out, p.link.send(now, p.right.Addr, wire.Store{N: uint16(pop.n), Records: recs}, tagNone, false)...)
		}
	}
	if pop.next == total && len(pop.own) > 0 && pop.firstOut {
		// Committed before the flush can come back: the runner carries
		// out a step's outputs before it reads the next datagram.
		out = append(out, p.persist(false, pop.own))
		pop.own = nil
	}
	if pop.next == total && !pop.flushed {
		pop.flushed = true
		out = append(out, p.link.send(now, p.right.Addr, wire.Flush{Leader: p.self.Name, N: uint16(pop.n)}, tagNone, true)...)
	}
	return out
}

// populated: the flush came back (or the ring is this node alone), so every
// record is committed at its node.
func (p *Peer) populated(now time.Time) []Output {
	pop := p.pop
	if pop == nil {
		return []Output{event("dropped: flush for no store round of ours")}
	}
	p.pop = nil
	if pop.leaver != nil {
		return p.link.send(now, pop.leaver.Addr, wire.Rebuilt{OK: true, NewLeader: p.self.Name}, tagNone, false)
	}
	if p.op != nil && p.op.stage == stPopulate {
		return p.request(now, nil, "dht-complete", wire.DHTComplete{Name: p.self.Name})
	}
	return nil
}

// queryRTO is how long a query's first attempt may take before it is sent
// again: twice the ring's retransmission timeout, and four times the
// answers seen so far take (a long ring, or a loaded one, answers slowly:
// asking again too soon only adds load).
func (p *Peer) queryRTO() time.Duration {
	return min(max(2*p.link.rto(), 4*p.queryTime), p.link.maxRTO())
}

func (p *Peer) queryAnswered(now time.Time, r wire.QueryResult) []Output {
	if o := p.op; o.queryTries == 1 {
		d := now.Sub(o.queryFirst)
		if p.queryTime == 0 {
			p.queryTime = d
		} else {
			p.queryTime = (7*p.queryTime + d) / 8
		}
	}
	if !r.Found {
		return p.finish(now, nil, fmt.Sprintf("query-dht FAILURE: %q not found in the DHT (answered by node %s, id %d, after %s)", r.LongName, r.Node, r.NodeID, hops(r.Hops)))
	}
	// One allocation for the whole answer: it is on the path every query
	// takes (strconv.Itoa of a number below 100 allocates nothing).
	var b strings.Builder
	size := len("query-dht SUCCESS: found at node  (id 65535) after 65535 hops") + len(r.Node)
	for i, h := range dataset.Headers {
		size += len("\n: ") + len(h) + len(r.Record[i])
	}
	b.Grow(size)
	b.WriteString("query-dht SUCCESS: found at node ")
	b.WriteString(r.Node)
	b.WriteString(" (id ")
	b.WriteString(strconv.Itoa(int(r.NodeID)))
	b.WriteString(") after ")
	b.WriteString(strconv.Itoa(int(r.Hops)))
	if r.Hops == 1 {
		b.WriteString(" hop")
	} else {
		b.WriteString(" hops")
	}
	for i, h := range dataset.Headers {
		b.WriteString("\n")
		b.WriteString(h)
		b.WriteString(": ")
		b.WriteString(r.Record[i])
	}
	return p.finish(now, nil, b.String())
}

func hops(n uint16) string {
	if n == 1 {
		return "1 hop"
	}
	return strconv.Itoa(int(n)) + " hops"
}

// askNode sends the query to the member the server named.
func (p *Peer) askNode(now time.Time) []Output {
	o := p.op
	// The first attempt travels without acknowledgements, the answer
	// being the only one the querier needs; if none comes within the
	// retry time, the query is sent again, hop by hop reliably.
	o.stage, o.deadline = stQuery, now.Add(p.cfg.QueryTimeout)
	o.queryReqID = p.link.newID()
	o.queryRTO = p.queryRTO()
	o.queryRetry = now.Add(o.queryRTO)
	o.queryFirst, o.queryTries = now, 1
	o.needs = append(o.needsBuf[:0], o.queryTo)
	q := wire.Query{ReqID: o.queryReqID, Querier: p.self, LongName: o.longName}
	return []Output{p.sendNoAck(o.queryTo, q)}
}

// startLeave: leave-dht succeeded; tear the ring's tables down, keeping
// neighbours.
func (p *Peer) startLeave(now time.Time) []Output {
	o := p.op
	out := []Output{Print{"leave-dht SUCCESS"}}
	if !p.inRing || !p.neighbours {
		return p.finish(now, out, "dht-rebuilt FAILURE: this peer holds no place in a ring")
	}
	o.name, o.stage, o.deadline = "dht-rebuilt", stTeardown, now.Add(p.cfg.OpTimeout)
	o.left, o.right, o.n = p.left, p.right, p.n
	o.needs = []netip.AddrPort{p.left.Addr, p.right.Addr}
	return append(out, p.link.send(now, p.right.Addr, wire.Teardown{Origin: p.self.Name, KeepNeighbours: true}, tagNone, false)...)
}

// startTeardown: teardown-dht succeeded; delete the ring.
func (p *Peer) startTeardown(now time.Time) []Output {
	o := p.op
	out := []Output{Print{"teardown-dht SUCCESS"}}
	o.name, o.stage, o.deadline = "teardown-complete", stTeardown, now.Add(p.cfg.OpTimeout)
	o.needs = []netip.AddrPort{p.right.Addr}
	if !p.neighbours || p.right.Addr == p.self.Addr {
		return append(out, p.teardownReturned(now, wire.Teardown{Origin: p.self.Name})...)
	}
	return append(out, p.link.send(now, p.right.Addr, wire.Teardown{Origin: p.self.Name}, tagNone, false)...)
}

func (p *Peer) teardownReturned(now time.Time, m wire.Teardown) []Output {
	o := p.op
	if o == nil || o.stage != stTeardown {
		return []Output{event("dropped: teardown of ours returned unexpectedly")}
	}
	p.clearTable()
	p.inRing = false
	if !m.KeepNeighbours {
		p.neighbours, p.left, p.right = false, wire.Member{}, wire.Member{}
		out := []Output{p.persist(true, nil)}
		return append(out, p.request(now, nil, "teardown-complete", wire.TeardownComplete{Name: p.self.Name})...)
	}
	out := []Output{p.persist(true, nil)}
	o.stage = stResetID
	return append(out, p.link.send(now, o.right.Addr, wire.ResetID{Origin: p.self.Name, ID: 0, N: uint16(o.n - 1)}, tagNone, false)...)
}

// renumbered: reset-id came back; take this peer out of the ring.
func (p *Peer) renumbered(now time.Time) []Output {
	o := p.op
	if o == nil || o.stage != stResetID {
		return []Output{event("dropped: reset-id of ours returned unexpectedly")}
	}
	o.stage, o.pending = stResets, 2
	out := p.link.send(now, o.right.Addr, wire.ResetLeft{Left: o.left}, tagResetLeft, false)
	return append(out, p.link.send(now, o.left.Addr, wire.ResetRight{Right: o.right}, tagResetRight, false)...)
}

// opFailure picks, among the messages the link gave up on, the one that
// fails the ring phase in progress: one to a peer the op needs, and of
// those the op's own message rather than another that was in flight to the
// same peer (a query this node was forwarding, say), so that the FAILURE
// names what the op was waiting for.
func (p *Peer) opFailure(gone []failure) (failure, bool) {
	var first failure
	found := false
	for _, g := range gone {
		if !slices.Contains(p.op.needs, g.to) {
			continue
		}
		if p.opSent(g.msg) {
			return g, true
		}
		if !found {
			first, found = g, true
		}
	}
	return first, found
}

// opSent reports whether m is a message the op in progress sent itself.
func (p *Peer) opSent(m wire.Message) bool {
	o := p.op
	switch m := m.(type) {
	case wire.SetID, wire.ResetLeft, wire.ResetRight, wire.RebuildDHT:
		return true // only an op sends these
	case wire.Store:
		return o.stage == stPopulate // the leader forwards no one else's
	case wire.Flush:
		return m.Leader == p.self.Name
	case wire.Teardown:
		return m.Origin == p.self.Name
	case wire.ResetID:
		return m.Origin == p.self.Name
	case wire.Query:
		return o.stage == stQuery && m.ReqID == o.queryReqID
	}
	return false
}

// NextDeadline is when Tick next has work.
func (p *Peer) NextDeadline() (time.Time, bool) {
	t, ok := p.link.deadline()
	if p.op != nil && !p.op.deadline.IsZero() && (!ok || p.op.deadline.Before(t)) {
		t, ok = p.op.deadline, true
	}
	if p.op != nil && p.op.stage == stQuery && p.op.queryRetry.Before(t) {
		t = p.op.queryRetry
	}
	return t, ok
}

// Tick retransmits, gives up, and times out the current op.
func (p *Peer) Tick(now time.Time) []Output {
	out, gone := p.link.tick(now)
	for _, g := range gone {
		out = append(out, event("gave up: no acknowledgement", attrAddr(g.to), slog.String("type", g.msg.Type().String())))
	}
	if p.pop != nil && slices.ContainsFunc(gone, func(g failure) bool { return g.to == p.right.Addr }) {
		if l := p.pop.leaver; l != nil {
			why := fmt.Sprintf("right neighbour %s stopped acknowledging stores", p.right.Addr)
			out = append(out, p.rebuildFailed(*l, why)...)
			out = append(out, p.link.send(now, l.Addr, wire.Rebuilt{Reason: why, NewLeader: p.self.Name}, tagNone, false)...)
		}
		p.pop = nil
	}
	if o := p.op; o != nil && o.stage >= stSetID {
		if g, ok := p.opFailure(gone); ok {
			out = p.finish(now, out, fmt.Sprintf("%s FAILURE: %s sent to %s was not acknowledged within %s", o.name, g.msg.Type(), g.to, p.link.cfg.GiveUp))
		}
	}
	o := p.op
	if o != nil && o.stage == stQuery && !now.Before(o.queryRetry) && now.Before(o.deadline) {
		o.queryRTO = min(2*o.queryRTO, p.link.maxRTO())
		o.queryRetry = now.Add(o.queryRTO)
		o.queryTries++
		p.stats.Retransmits++
		q := wire.Query{ReqID: o.queryReqID, Querier: p.self, LongName: o.longName}
		out = append(out, p.link.send(now, o.queryTo, q, tagNone, false)...)
	}
	if o == nil || o.deadline.IsZero() || now.Before(o.deadline) {
		return out
	}
	switch o.stage {
	case stSleep:
		p.op = nil
		return p.advance(now, out)
	case stRequest:
		if now.Sub(o.reqFirst) >= p.cfg.RequestTimeout {
			return p.failed(now, out, fmt.Sprintf("%s FAILURE: no answer from the server at %s within %s", o.name, p.cfg.Server, p.cfg.RequestTimeout))
		}
		o.reqRTO = min(2*o.reqRTO, p.link.maxRTO())
		o.deadline = now.Add(o.reqRTO)
		o.reqSent++
		p.stats.Sent++
		p.stats.Retransmits++
		return append(out, Send{To: p.cfg.Server, ID: o.reqID, Flags: wire.FlagRetransmit, Msg: o.req})
	case stQuery:
		return p.finish(now, out, fmt.Sprintf("query-dht FAILURE: no answer from the ring within %s", p.cfg.QueryTimeout))
	default:
		return p.finish(now, out, fmt.Sprintf("%s FAILURE: the ring did not finish within %s", o.name, p.cfg.OpTimeout))
	}
}
