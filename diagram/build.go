package diagram

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Options tune Build.
type Options struct {
	// Title is drawn above the diagram.
	Title string
	// From starts the diagram at the first event it matches (the events
	// before it still set the state that notes are told against). The zero
	// Match starts at the beginning.
	From Match
	// Fold is the shortest run of store traffic (stores and their acks)
	// folded into one arrow per edge and type: 0 means DefaultFold, a
	// negative value never folds.
	Fold int
	// Order is the order of the lifelines: OrderRing (the zero value) or
	// OrderAppearance.
	Order Order
	// Acks is how acks are drawn: AcksFold (the zero value), AcksShow or
	// AcksHide.
	Acks AckMode
}

// Order is an order of lifelines, left to right.
type Order uint8

const (
	// OrderRing puts the server first, then the ring's members by id (the
	// id each holds when the diagram starts, or else the first it takes),
	// then everyone else in order of first appearance: arrows round the
	// ring go left to right, but for the one back from the last node.
	OrderRing Order = iota
	// OrderAppearance puts the server first, then every other lifeline in
	// order of first appearance.
	OrderAppearance
)

var orderNames = []string{OrderRing: "ring", OrderAppearance: "appearance"}

func (o Order) String() string { return enumName(orderNames, int(o), "Order") }

// ParseOrder parses "ring" or "appearance".
func ParseOrder(s string) (Order, error) {
	i, err := parseEnum(orderNames, s)
	return Order(i), err
}

// AckMode is how the acks of ring messages are drawn.
type AckMode uint8

const (
	// AcksFold draws no ack arrows: a message whose ack came back ends
	// its label with " · acked" (Item.AckNote). An ack that acknowledges
	// nothing drawn is shown as with AcksShow.
	AcksFold AckMode = iota
	// AcksShow draws every ack as a light dashed arrow.
	AcksShow
	// AcksHide leaves acks out.
	AcksHide
)

var ackNames = []string{AcksFold: "fold", AcksShow: "show", AcksHide: "hide"}

func (a AckMode) String() string { return enumName(ackNames, int(a), "AckMode") }

// ParseAckMode parses "fold", "show" or "hide".
func ParseAckMode(s string) (AckMode, error) {
	i, err := parseEnum(ackNames, s)
	return AckMode(i), err
}

func enumName(names []string, i int, typ string) string {
	if i >= 0 && i < len(names) {
		return names[i]
	}
	return fmt.Sprintf("%s(%d)", typ, i)
}

func parseEnum(names []string, s string) (int, error) {
	if i := slices.Index(names, s); i >= 0 {
		return i, nil
	}
	return 0, fmt.Errorf("%q is not one of %s", s, strings.Join(names, ", "))
}

// DefaultFold is the Fold used when Options.Fold is 0.
const DefaultFold = 4

// Widths, in characters, at which labels wrap.
const (
	arrowWidth = 52
	noteWidth  = 38
)

// Match selects a trace event by process, direction and what it is: the
// message type of a datagram, the event name of anything else. An empty
// part matches anything. N > 1 selects the N-th event that matches.
type Match struct {
	Process, Dir, What string
	N                  int
}

// ParseMatch parses "PROCESS:DIR:WHAT[@N]", such as "carol:send:flush",
// "::teardown" (parts may be empty) or "bob:event:input@3" (the third line
// bob typed).
func ParseMatch(s string) (Match, error) {
	bad := func(why string) (Match, error) {
		return Match{}, fmt.Errorf("match %q: %s; want PROCESS:DIR:WHAT[@N] (parts may be empty), e.g. carol:send:flush", s, why)
	}
	spec, nth, hasN := strings.Cut(s, "@")
	parts := strings.Split(spec, ":")
	if len(parts) != 3 {
		return bad("not three parts")
	}
	m := Match{Process: parts[0], Dir: parts[1], What: parts[2], N: 1}
	switch m.Dir {
	case "", DirSend, DirRecv, DirEvent:
	default:
		return bad(fmt.Sprintf("direction %q is not send, recv or event", m.Dir))
	}
	if hasN {
		n, err := strconv.Atoi(nth)
		if err != nil || n < 1 {
			return bad(fmt.Sprintf("@%s is not a count from 1", nth))
		}
		m.N = n
	}
	return m, nil
}

func (m Match) String() string {
	s := m.Process + ":" + m.Dir + ":" + m.What
	if m.N > 1 {
		s += "@" + strconv.Itoa(m.N)
	}
	return s
}

// IsZero reports whether m is the zero Match.
func (m Match) IsZero() bool { return m.Process == "" && m.Dir == "" && m.What == "" }

func (m Match) matches(e *Event) bool {
	what := e.Type
	if e.Dir == DirEvent {
		what = e.Event
	}
	return (m.Process == "" || m.Process == e.Process) && (m.Dir == "" || m.Dir == e.Dir) && (m.What == "" || m.What == what)
}

// Kind is what an Item draws.
type Kind uint8

const (
	Message  Kind = iota // a message: solid arrow
	Response             // a reply from the server: dashed arrow
	Note                 // an action on a lifeline
	Ack                  // an ack of ring messages: light dashed arrow
)

// Item is one row of a diagram: an arrow between two lifelines or a note
// on one.
type Item struct {
	Kind     Kind
	From, To int      // lifeline indexes; a note has From == To
	Lines    []string // the label, wrapped
	// Lost marks a datagram sent but never received by a process whose
	// trace is part of the diagram.
	Lost bool
	// Count is the number of datagrams an arrow stands for (1 unless
	// folded).
	Count int
	// Warn marks a note about something that went wrong (a drop, a
	// timeout).
	Warn bool
	// Acked counts the datagrams of a message arrow whose ack came back,
	// when acks are folded; AckNote says so (" · acked"), drawn lighter
	// after the last line of the label.
	Acked   int
	AckNote string

	typ, ackOf string
	input      bool // a note for a line typed: it starts a note of its own
	id         uint32
	more       []uint32 // an ack's further ids
	records    int
	retransmit bool
	from, to   string
}

// Diagram is a time-space diagram: lifelines left to right, items top to
// bottom in causal order.
type Diagram struct {
	Title     string
	Lifelines []string
	Items     []Item
}

// node is one event of the input with what Build works out about it.
type node struct {
	ev         *Event
	proc       string
	file, line int
	from, to   string // lifelines of a datagram's two ends
	pair       int    // index of the matching send or recv; -1: none
	done       bool
}

// Build draws the diagram of one run from its trace files (one slice of
// events per file, in file order). Every process's lines are kept in the
// order it wrote them; across processes a datagram is received after it
// was sent, and otherwise the earlier timestamp goes first (ties: file
// order). Message ids, addresses and times do not appear in the diagram,
// so that two runs of the same script draw the same picture.
func Build(files [][]Event, opt Options) (*Diagram, error) {
	var nodes []*node
	for fi := range files {
		for li := range files[fi] {
			e := &files[fi][li]
			p := e.Process
			if p == "" {
				p = "peer"
			}
			nodes = append(nodes, &node{ev: e, proc: p, file: fi, line: li, pair: -1})
		}
	}
	if len(nodes) == 0 {
		return nil, fmt.Errorf("diagram: the trace is empty")
	}
	book := newAddrBook(nodes)
	traced := map[string]bool{}
	for _, n := range nodes {
		traced[n.proc] = true
		switch {
		case n.ev.Dir == DirSend || isFaultDrop(n.ev):
			n.from, n.to = n.proc, book.name(n.ev.Remote)
		case n.ev.Dir == DirRecv:
			n.from, n.to = book.name(n.ev.Remote), n.proc
		}
	}
	pairUp(nodes)
	order := merge(nodes)

	w := walker{opt: opt, traced: traced, visible: opt.From.IsZero(), sent: map[sentKey]sent{},
		peers: map[string]*peerState{}, servers: map[string]*serverState{},
		ring: ringOrder{cur: map[string]ringPos{}, own: map[string]bool{}, rank: map[string]int{}}}
	for _, i := range order {
		w.step(nodes, i)
	}
	if !w.visible {
		return nil, fmt.Errorf("diagram: no event matches --from %s", opt.From)
	}
	items := applyAcks(w.items, opt.Acks)
	if len(items) == 0 {
		return nil, fmt.Errorf("diagram: nothing to draw")
	}
	fold := opt.Fold
	if fold == 0 {
		fold = DefaultFold
	}
	if fold > 0 {
		items = foldStores(items, fold)
	}
	for i := range items {
		if it := &items[i]; it.Acked > 0 {
			it.AckNote = ackedText(it.Acked, it.Count)
			if last := it.Lines[len(it.Lines)-1]; utf8.RuneCountInString(last+it.AckNote) > arrowWidth+8 {
				it.Lines = append(it.Lines, "")
				it.AckNote = strings.TrimPrefix(it.AckNote, " · ")
			}
		}
	}
	var rank map[string]int
	if opt.Order == OrderRing {
		rank = w.ring.rank
	}
	return layoutLifelines(opt.Title, items, rank), nil
}

// applyAcks draws the acks as mode says. Folding marks, for every ack, the
// last message arrow drawn before it that it acknowledges.
func applyAcks(items []Item, mode AckMode) []Item {
	if mode == AcksShow {
		return items
	}
	type key struct {
		from, to string
		id       uint32
	}
	last := map[key]int{}
	out := items[:0:0]
	for _, it := range items {
		if it.Kind != Ack {
			if it.Kind == Message && !it.Lost {
				last[key{it.from, it.to, it.id}] = len(out)
			}
			out = append(out, it)
			continue
		}
		if mode == AcksHide {
			continue
		}
		marked := false
		for _, id := range append([]uint32{it.id}, it.more...) {
			k := key{it.to, it.from, id}
			if j, ok := last[k]; ok {
				out[j].Acked = 1
				delete(last, k)
				marked = true
			}
		}
		if !marked {
			out = append(out, it) // it acknowledges nothing drawn: keep it
		}
	}
	return out
}

// ackedText is what a message arrow says about its acks when they are
// folded: acked of count datagrams were acknowledged.
func ackedText(acked, count int) string {
	switch {
	case count > 1 && acked == count:
		return " · all acked"
	case acked < count:
		return fmt.Sprintf(" · %d of %d acked", acked, count)
	}
	return " · acked"
}

// Text is the label as it reads: its lines, the last followed by AckNote.
func (it *Item) Text() []string {
	if it.AckNote == "" {
		return it.Lines
	}
	lines := slices.Clone(it.Lines)
	lines[len(lines)-1] += it.AckNote
	return lines
}

// addrBook maps socket addresses to the processes that own them.
type addrBook struct {
	exact    map[string]string
	wildcard map[uint16]string // bound to 0.0.0.0:PORT
}

func newAddrBook(nodes []*node) addrBook {
	b := addrBook{exact: map[string]string{}, wildcard: map[uint16]string{}}
	for _, n := range nodes {
		l := n.ev.Local
		if l == "" {
			continue
		}
		if _, ok := b.exact[l]; !ok {
			b.exact[l] = n.proc
		}
		if ap, err := netip.ParseAddrPort(l); err == nil && ap.Addr().IsUnspecified() {
			if _, ok := b.wildcard[ap.Port()]; !ok {
				b.wildcard[ap.Port()] = n.proc
			}
		}
	}
	return b
}

// name is the process at addr, or addr itself when no trace owns it.
func (b addrBook) name(addr string) string {
	if p, ok := b.exact[addr]; ok {
		return p
	}
	if ap, err := netip.ParseAddrPort(addr); err == nil {
		if p, ok := b.wildcard[ap.Port()]; ok {
			return p
		}
	}
	if addr == "" {
		return "?"
	}
	return addr
}

func isFaultDrop(e *Event) bool {
	return e.Dir == DirEvent && strings.HasPrefix(e.Event, "fault: dropped") && e.Type != ""
}

type pairKey struct {
	from, to, typ, flags string
	id                   uint32
}

// pairUp matches the k-th receipt of a datagram (same ends, type, id and
// flags) with its k-th sending.
func pairUp(nodes []*node) {
	sends := map[pairKey][]int{}
	recvs := map[pairKey][]int{}
	for i, n := range nodes {
		k := pairKey{from: n.from, to: n.to, typ: n.ev.Type, flags: n.ev.Flags, id: n.ev.ID}
		switch n.ev.Dir {
		case DirSend:
			sends[k] = append(sends[k], i)
		case DirRecv:
			recvs[k] = append(recvs[k], i)
		}
	}
	for k, ss := range sends {
		rs := recvs[k]
		for j := 0; j < len(ss) && j < len(rs); j++ {
			nodes[ss[j]].pair, nodes[rs[j]].pair = rs[j], ss[j]
		}
	}
}

// merge orders the events: each process's in its own order, a receipt
// after its sending, otherwise by time, then file and line.
func merge(nodes []*node) []int {
	var procs []string
	queues := map[string][]int{}
	for i, n := range nodes {
		if _, ok := queues[n.proc]; !ok {
			procs = append(procs, n.proc)
		}
		queues[n.proc] = append(queues[n.proc], i)
	}
	earlier := func(a, b *node) bool {
		if c := a.ev.Time.Compare(b.ev.Time); c != 0 {
			return c < 0
		}
		if a.file != b.file {
			return a.file < b.file
		}
		return a.line < b.line
	}
	order := make([]int, 0, len(nodes))
	for len(order) < len(nodes) {
		best, bestBlocked := -1, -1
		for _, p := range procs {
			q := queues[p]
			if len(q) == 0 {
				continue
			}
			n := nodes[q[0]]
			blocked := n.ev.Dir == DirRecv && n.pair >= 0 && !nodes[n.pair].done
			if blocked {
				if bestBlocked < 0 || earlier(n, nodes[bestBlocked]) {
					bestBlocked = q[0]
				}
				continue
			}
			if best < 0 || earlier(n, nodes[best]) {
				best = q[0]
			}
		}
		if best < 0 { // an inconsistent trace: go by time
			best = bestBlocked
		}
		n := nodes[best]
		n.done = true
		queues[n.proc] = queues[n.proc][1:]
		order = append(order, best)
	}
	return order
}

type sentKey struct {
	from, to string
	id       uint32
}

type sent struct {
	typ     string
	visible bool // sent inside the diagram's window
}

// walker turns the ordered events into items.
type walker struct {
	opt     Options
	traced  map[string]bool
	visible bool
	matched int // events From matched so far
	items   []Item
	sent    map[sentKey]sent // each message sent, for its ack
	peers   map[string]*peerState
	servers map[string]*serverState
	ring    ringOrder
}

// ringPos is a process's place in the ring.
type ringPos struct {
	in bool
	id int
}

// ringOrder learns the ring's ids from the trace, for OrderRing.
type ringOrder struct {
	cur map[string]ringPos // as last heard
	// own marks the processes whose place was heard from the process
	// itself or a ring message to it: the server's member list does not
	// override those.
	own map[string]bool
	// rank is each lifeline's id for the order: the one it held when the
	// diagram starts, or else the first it took after.
	rank    map[string]int
	started bool
}

// start takes the places held when the diagram starts.
func (r *ringOrder) start() {
	for p, pos := range r.cur {
		if pos.in {
			r.rank[p] = pos.id
		}
	}
}

func (r *ringOrder) hear(proc string, pos ringPos, own, visible bool) {
	if !own && r.own[proc] {
		return
	}
	r.own[proc] = r.own[proc] || own
	r.cur[proc] = pos
	if _, ok := r.rank[proc]; visible && pos.in && !ok {
		r.rank[proc] = pos.id
	}
}

// learn takes what e says about the ring.
func (r *ringOrder) learn(n *node, visible bool) {
	e := n.ev
	switch {
	case e.Dir == DirEvent && e.Event == "persist":
		if _, ok := e.Attrs["in_ring"]; ok {
			r.hear(n.proc, ringPos{flag(e.Attrs, "in_ring"), num(e.Attrs, "node_id")}, true, visible)
		} else if ms := str(e.Attrs, "members"); ms != "" && str(e.Attrs, "dht") != "none" {
			for i, m := range strings.Split(ms, ",") {
				r.hear(m, ringPos{true, i}, false, visible)
			}
		}
	case e.Dir == DirSend || e.Dir == DirRecv:
		switch {
		case e.Type == "set-id", e.Type == "reset-id" && n.to != str(e.Msg, "origin"):
			id := num(e.Msg, "node_id")
			r.hear(n.to, ringPos{true, id}, true, visible)
			// A set-id names the receiver's neighbours, ids id-1 and id+1.
			if size := num(e.Msg, "ring"); e.Type == "set-id" && size > 0 {
				r.hear(memberName(str(e.Msg, "left")), ringPos{true, (id + size - 1) % size}, false, visible)
				r.hear(memberName(str(e.Msg, "right")), ringPos{true, (id + 1) % size}, false, visible)
			}
		}
	}
}

func (w *walker) step(nodes []*node, i int) {
	n := nodes[i]
	e := n.ev
	if !w.visible && w.opt.From.matches(e) {
		w.matched++
		w.visible = w.matched >= w.opt.From.N
	}
	if w.visible && !w.ring.started {
		w.ring.started = true
		w.ring.start()
	}
	defer w.ring.learn(n, w.visible)
	switch {
	case e.Dir == DirSend:
		if e.Type != "ack" {
			w.sent[sentKey{n.from, n.to, e.ID}] = sent{e.Type, w.visible}
		}
		if n.pair < 0 {
			w.arrow(n, w.traced[n.to], false)
		}
	case e.Dir == DirRecv:
		w.arrow(n, false, n.pair < 0 && w.traced[n.from])
	case isFaultDrop(e):
		w.arrow(n, true, false)
	default:
		w.note(n)
	}
}

func (w *walker) add(it Item) {
	if !w.visible {
		return
	}
	if it.Kind == Note && len(w.items) > 0 {
		last := &w.items[len(w.items)-1]
		if last.Kind == Note && last.from == it.from && !it.input {
			last.Lines = append(last.Lines, it.Lines...)
			last.Warn = last.Warn || it.Warn
			return
		}
	}
	w.items = append(w.items, it)
}

func (w *walker) arrow(n *node, lost, dup bool) {
	e := n.ev
	it := Item{Kind: Message, from: n.from, to: n.to, Lost: lost, Count: 1, typ: e.Type, id: e.ID,
		records: num(e.Msg, "records"), retransmit: e.Retransmit()}
	switch e.Type {
	case "reply":
		it.Kind = Response
	case "ack":
		it.Kind = Ack
		acked, ok := w.sent[sentKey{n.to, n.from, e.ID}]
		if ok && !acked.visible {
			return // the ack of a message sent before the window: noise
		}
		it.ackOf = acked.typ
		it.more = ids(e.Msg["more"])
	}
	answers := ""
	if e.Type == "reply" {
		answers = w.sent[sentKey{n.to, n.from, e.ID}].typ
	}
	text := label(e, n.to, answers)
	if it.retransmit {
		text += " [retransmit]"
	}
	if dup {
		text += " [duplicate]"
	}
	if lost {
		text += " [lost]"
	}
	it.Lines = wrap(text, arrowWidth)
	w.add(it)
}

func (w *walker) note(n *node) {
	e := n.ev
	var text string
	var parts []string // a note of several lines, one per part
	warn := e.Level == "WARN" || e.Level == "ERROR"
	switch e.Event {
	case "input":
		text = "$ " + str(e.Attrs, "line")
		if flag(e.Attrs, "queued") {
			text += " (queued)"
		}
	case "print":
		text = str(e.Attrs, "line")
		if k := num(e.Attrs, "more_lines"); k > 0 {
			text += fmt.Sprintf(" (+%d lines)", k)
		}
	case "persist":
		if _, ok := e.Attrs["users"]; ok {
			s := w.servers[n.proc]
			if s == nil {
				s = &serverState{}
				w.servers[n.proc] = s
			}
			parts = s.apply(e.Attrs)
		} else {
			p := w.peers[n.proc]
			if p == nil {
				p = &peerState{}
				w.peers[n.proc] = p
			}
			parts = p.apply(e.Attrs)
		}
	case "exit":
		text = "process exits"
		if why := str(e.Attrs, "why"); why != "" {
			text += ": " + why
		}
	case "listening":
		text = "listening on " + str(e.Attrs, "addr")
		if e.Remote != "" {
			text = "listening on " + e.Remote
		}
	default:
		text = e.Event
		if e.Type != "" {
			text += " (" + e.Type + ")"
		}
		for _, k := range []string{"what", "err"} {
			if v := str(e.Attrs, k); v != "" {
				text += ": " + v
			}
		}
	}
	if parts == nil {
		parts = []string{text}
	}
	var lines []string
	for _, p := range parts {
		lines = append(lines, wrap(p, noteWidth)...)
	}
	w.add(Item{Kind: Note, from: n.proc, to: n.proc, Lines: lines, Warn: warn, input: e.Event == "input"})
}

// peerState is what a peer's table file holds, as far as its persist
// lines tell.
type peerState struct {
	known       bool
	inRing      bool
	id, n       int
	left, right string
}

// apply takes one persist line and says what changed, one part a line.
func (p *peerState) apply(a map[string]any) []string {
	var parts []string
	recs := num(a, "records")
	switch {
	case flag(a, "clear") && recs > 0:
		parts = append(parts, fmt.Sprintf("clear table, commit %d records", recs))
	case flag(a, "clear"):
		parts = append(parts, "clear table")
	case recs > 0:
		parts = append(parts, fmt.Sprintf("commit %d records", recs))
	}
	if _, ok := a["in_ring"]; ok {
		next := peerState{known: true, inRing: flag(a, "in_ring"), id: num(a, "node_id"), n: num(a, "ring"),
			left: str(a, "left"), right: str(a, "right")}
		if p.known {
			parts = append(parts, p.identityDiff(next)...)
		} else {
			parts = append(parts, next.identity()...)
		}
		*p = next
	}
	return dbNote(parts)
}

// identity describes the identity saved when the one before is not known.
func (p peerState) identity() []string {
	if !p.inRing && p.left == "" && p.right == "" {
		return []string{"save identity, in no ring"}
	}
	id := "no id"
	if p.inRing {
		id = fmt.Sprintf("id %d of %d", p.id, p.n)
	}
	nb := "no neighbours"
	if p.left != "" || p.right != "" {
		nb = fmt.Sprintf("left %s, right %s", p.left, p.right)
	}
	return []string{id, nb}
}

// identityDiff says what changed from p to next.
func (p peerState) identityDiff(next peerState) []string {
	var parts []string
	switch {
	case next.inRing && (!p.inRing || next.id != p.id || next.n != p.n):
		parts = append(parts, fmt.Sprintf("id %d of %d", next.id, next.n))
	case !next.inRing && p.inRing:
		parts = append(parts, "forget id")
	}
	switch {
	case next.left == "" && next.right == "" && (p.left != "" || p.right != ""):
		parts = append(parts, "forget neighbours")
	case next.left != p.left && next.right != p.right:
		parts = append(parts, fmt.Sprintf("left %s, right %s", next.left, next.right))
	case next.left != p.left:
		parts = append(parts, "left "+next.left)
	case next.right != p.right:
		parts = append(parts, "right "+next.right)
	}
	return parts
}

// dbNote is the note for a change persisted: "db:" and what changed.
func dbNote(parts []string) []string {
	if len(parts) == 0 {
		return []string{"db: save"}
	}
	parts[0] = "db: " + parts[0]
	return parts
}

// serverState is the registry as the server's persist lines tell it.
type serverState struct {
	known   bool
	users   map[string]string
	dht     string
	members string
	leaver  string
	joiner  string
}

func (s *serverState) apply(a map[string]any) []string {
	var changes, parts []string
	users := map[string]string{}
	var names []string
	if u := str(a, "users"); u != "" {
		for _, kv := range strings.Split(u, ",") {
			name, state, _ := strings.Cut(kv, ":")
			users[name] = state
			names = append(names, name)
		}
	}
	for _, name := range names {
		if old, ok := s.users[name]; !ok || old != users[name] {
			changes = append(changes, fmt.Sprintf("%s %s", name, users[name]))
		}
	}
	var gone []string
	for name := range s.users {
		if _, ok := users[name]; !ok {
			gone = append(gone, name)
		}
	}
	slices.Sort(gone)
	for _, name := range gone {
		changes = append(changes, name+" removed")
	}
	if len(changes) > 0 {
		parts = append(parts, strings.Join(changes, ", "))
	}
	dht, members, leaver, joiner := str(a, "dht"), str(a, "members"), str(a, "leaver"), str(a, "joiner")
	if s.known && (dht != s.dht || members != s.members || leaver != s.leaver || joiner != s.joiner) || !s.known && dht != "none" {
		switch dht {
		case "none", "":
			parts = append(parts, "no DHT")
		case "leaving":
			parts = append(parts, fmt.Sprintf("DHT leaving (%s)", leaver))
		case "joining":
			parts = append(parts, fmt.Sprintf("DHT joining (%s)", joiner))
		default:
			parts = append(parts, fmt.Sprintf("DHT %s [%s]", dht, strings.ReplaceAll(members, ",", " ")))
		}
	}
	s.known, s.users, s.dht, s.members, s.leaver, s.joiner = true, users, dht, members, leaver, joiner
	return dbNote(parts)
}

func hops(n int) string {
	if n == 1 {
		return "1 hop"
	}
	return fmt.Sprintf("%d hops", n)
}

// memberName is the name of a "name@ip:port" member.
func memberName(s string) string {
	name, _, _ := strings.Cut(s, "@")
	return name
}

// label is the text of a datagram's arrow to the lifeline to: its type and
// main fields, said so that a reader need not know the message's layout.
// answers is the type of the request a reply answers, if known.
func label(e *Event, to, answers string) string {
	m := e.Msg
	t := e.Type
	switch t {
	case "register":
		if epoch := str(m, "epoch"); epoch != "" {
			return fmt.Sprintf("register %s %s: a rejoin, its file in the ring of epoch %s", str(m, "name"), str(m, "addr"), epoch)
		}
		return fmt.Sprintf("register %s %s", str(m, "name"), str(m, "addr"))
	case "setup-dht":
		return fmt.Sprintf("setup-dht %s %s", str(m, "ring"), str(m, "name"))
	case "dht-complete", "query-dht", "leave-dht", "deregister", "teardown-dht", "teardown-complete", "join-dht":
		return t + " " + str(m, "name")
	case "dht-rebuilt":
		return fmt.Sprintf("dht-rebuilt %s %s", str(m, "name"), str(m, "new_leader"))
	case "reply":
		if !flag(m, "ok") {
			return "FAILURE: " + str(m, "reason")
		}
		ms := strings.Split(str(m, "members"), ",")
		for i := range ms {
			ms[i] = memberName(ms[i])
		}
		switch {
		case ms[0] == "" && answers == "register" && str(m, "epoch") != "":
			return "SUCCESS: a member of the ring of epoch " + str(m, "epoch")
		case ms[0] == "":
			return "SUCCESS"
		case answers == "query-dht" && len(ms) == 1:
			return "SUCCESS: ask " + ms[0]
		case answers == "setup-dht" || answers == "join-dht":
			return "SUCCESS: the ring, leader first: " + strings.Join(ms, " ")
		}
		return "SUCCESS [" + strings.Join(ms, " ") + "]"
	case "set-id":
		return fmt.Sprintf("set-id: id %s in a ring of %s, left %s, right %s", str(m, "node_id"), str(m, "ring"),
			memberName(str(m, "left")), memberName(str(m, "right")))
	case "store":
		return fmt.Sprintf("store (%s records)", str(m, "records"))
	case "flush":
		if leader := str(m, "leader"); to == leader {
			return "flush back at " + leader + ": every record received"
		}
		return fmt.Sprintf("flush of %s's round", str(m, "leader"))
	case "query":
		return fmt.Sprintf("query %q, %s so far", str(m, "long_name"), hops(num(m, "hops")))
	case "query-result":
		what := "found"
		if !flag(m, "found") {
			what = "not found"
		}
		return fmt.Sprintf("query-result: %s at %s (id %s), %s", what, str(m, "node"), str(m, "node_id"), hops(num(m, "hops")))
	case "teardown":
		origin := str(m, "origin")
		switch {
		case to == origin && flag(m, "keep_neighbours"):
			return "teardown back at " + origin + ": every other table cleared"
		case to == origin:
			return "teardown back at " + origin
		case flag(m, "keep_neighbours"):
			return "teardown from " + origin + ", keep neighbours"
		}
		return "teardown from " + origin
	case "committed":
		if leader := str(m, "leader"); to == leader {
			return "committed back at " + leader + ": every table on disk"
		}
		return "committed: every table from " + str(m, "leader") + "'s to the sender's on disk"
	case "torn-down":
		if origin := str(m, "origin"); to == origin {
			return "torn-down back at " + origin + ": every table emptied on disk"
		}
		return "torn-down: every table from " + str(m, "origin") + "'s to the sender's emptied on disk"
	case "reset-id":
		if origin := str(m, "origin"); to == origin {
			return fmt.Sprintf("reset-id back at %s: renumbering complete, ring of %s", origin, str(m, "ring"))
		}
		return fmt.Sprintf("reset-id from %s: id %s in a ring of %s", str(m, "origin"), str(m, "node_id"), str(m, "ring"))
	case "reset-left":
		return "reset-left: your left is now " + memberName(str(m, "left"))
	case "reset-right":
		return "reset-right: your right is now " + memberName(str(m, "right"))
	case "rebuild-dht":
		return "rebuild-dht: lead a store round, report to " + memberName(str(m, "leaver"))
	case "join":
		return fmt.Sprintf("join: take %s in, ring of %s → %d", memberName(str(m, "joiner")), str(m, "ring"), num(m, "ring")+1)
	case "heal":
		return fmt.Sprintf("heal: lead the ring of epoch %s, %s", str(m, "epoch"), strings.ReplaceAll(str(m, "members"), ",", " "))
	case "healed":
		return fmt.Sprintf("healed %s: every record of epoch %s placed", str(m, "name"), str(m, "epoch"))
	case "rebuilt":
		if !flag(m, "ok") {
			return "rebuilt FAILURE: " + str(m, "reason")
		}
		return "rebuilt: every record placed, new leader " + str(m, "new_leader")
	}
	return t
}

// ids reads the further ids of an ack: a list of numbers, or the same
// written as text ("[1 2 3]").
func ids(v any) []uint32 {
	var out []uint32
	switch v := v.(type) {
	case []any:
		for _, x := range v {
			if f, ok := x.(float64); ok {
				out = append(out, uint32(f))
			}
		}
	case string:
		for _, f := range strings.Fields(strings.Trim(v, "[]")) {
			if n, err := strconv.ParseUint(f, 10, 32); err == nil {
				out = append(out, uint32(n))
			}
		}
	}
	return out
}

// foldStores replaces every run of at least min store arrows and acks of
// stores with one arrow per edge and kind, in order of first appearance.
func foldStores(items []Item, min int) []Item {
	isStore := func(it *Item) bool {
		return it.Kind != Note && (it.typ == "store" || it.typ == "ack" && it.ackOf == "store")
	}
	var out []Item
	for i := 0; i < len(items); {
		if !isStore(&items[i]) {
			out = append(out, items[i])
			i++
			continue
		}
		j := i
		for j < len(items) && isStore(&items[j]) {
			j++
		}
		if j-i < min {
			out = append(out, items[i:j]...)
			i = j
			continue
		}
		type groupKey struct {
			from, to, typ string
			lost          bool
		}
		var keys []groupKey
		groups := map[groupKey]*Item{}
		retrans := map[groupKey]int{}
		counted := map[groupKey]map[uint32]bool{} // a retransmission carries the same records
		for k := i; k < j; k++ {
			it := items[k]
			gk := groupKey{it.from, it.to, it.typ, it.Lost}
			g := groups[gk]
			if g == nil {
				c := it
				c.Count, c.records, c.Acked = 0, 0, 0
				g = &c
				groups[gk] = g
				keys = append(keys, gk)
			}
			g.Count++
			g.Acked += it.Acked
			if counted[gk] == nil {
				counted[gk] = map[uint32]bool{}
			}
			if !counted[gk][it.id] {
				counted[gk][it.id] = true
				g.records += it.records
			}
			if it.retransmit {
				retrans[gk]++
			}
		}
		for _, gk := range keys {
			g := groups[gk]
			text := gk.typ
			if g.Count > 1 {
				text += fmt.Sprintf(" ×%d", g.Count)
			}
			if gk.typ == "store" {
				text += fmt.Sprintf(" (%d records)", g.records)
			}
			switch r := retrans[gk]; {
			case r == 1 && g.Count == 1:
				text += " [retransmit]"
			case r > 0:
				text += fmt.Sprintf(" [%d retransmitted]", r)
			}
			if gk.lost {
				text += " [lost]"
			}
			g.Lines = wrap(text, arrowWidth)
			out = append(out, *g)
		}
		i = j
	}
	return out
}

// layoutLifelines numbers the lifelines: the server first, then those
// with a rank by rank, then the others; ties in order of first appearance.
func layoutLifelines(title string, items []Item, rank map[string]int) *Diagram {
	var names []string
	seen := map[string]bool{}
	use := func(s string) {
		if !seen[s] {
			seen[s] = true
			names = append(names, s)
		}
	}
	for _, it := range items {
		use(it.from)
		use(it.to)
	}
	group := func(s string) int {
		if s == "server" {
			return 0
		}
		if _, ok := rank[s]; ok {
			return 1
		}
		return 2
	}
	slices.SortStableFunc(names, func(a, b string) int {
		return cmp.Or(cmp.Compare(group(a), group(b)), cmp.Compare(rank[a], rank[b]))
	})
	index := map[string]int{}
	for i, n := range names {
		index[n] = i
	}
	d := &Diagram{Title: title, Lifelines: names, Items: items}
	for i := range d.Items {
		d.Items[i].From, d.Items[i].To = index[d.Items[i].from], index[d.Items[i].to]
	}
	return d
}

// wrap splits text into lines of at most width characters, at spaces
// where it can. Control characters become spaces.
func wrap(text string, width int) []string {
	text = strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return ' '
		}
		return r
	}, strings.ToValidUTF8(text, "\uFFFD"))
	var lines []string
	for utf8.RuneCountInString(text) > width {
		cut, comma := -1, -1
		count := 0
		prev := rune(0)
		for i, r := range text {
			if count > width {
				break
			}
			if r == ' ' && count > 0 {
				cut = i
				if prev == ',' && count >= width/2 {
					comma = i
				}
			}
			prev = r
			count++
		}
		if comma > 0 {
			cut = comma // keep a list's items whole
		}
		if cut <= 0 {
			// no space: cut the word at width runes
			n := 0
			for i := range text {
				if n == width {
					cut = i
					break
				}
				n++
			}
			lines = append(lines, text[:cut])
			text = text[cut:]
			continue
		}
		lines = append(lines, text[:cut])
		text = strings.TrimLeft(text[cut+1:], " ")
	}
	return append(lines, text)
}
