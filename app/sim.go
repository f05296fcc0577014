package app

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"slices"
	"time"

	"dht/app/state"
	"dht/dataset"
	"dht/store"
	"dht/wire"
)

// Sim runs a server and peers in one process over a simulated network with
// a virtual clock: the real state machines, in-memory stores, every
// datagram encoded and decoded by package wire and delivered after a fixed
// delay. By default nothing is lost; the fault knobs (Loss, Dup, Delay,
// RestartEvery, Down) make the network and the server unreliable. With the
// same seed, the same knobs and the same calls it does exactly the same
// thing, so a scripted run is repeatable to the byte; docs/DESIGN.md's
// time-space diagrams are drawn from such runs.
//
// With SetTrace the processes trace what they do as the runners do (the
// same messages, levels and keys), stamped with the virtual time.
type Sim struct {
	// Loss is the probability that a datagram is lost on its way.
	Loss float64
	// Dup is the probability that a datagram arrives twice.
	Dup float64
	// Delay is the most extra delay a datagram may take on top of the
	// fixed latency; random delays reorder datagrams.
	Delay time.Duration
	// RestartEvery > 0 crashes the server every that many steps (datagram
	// deliveries and timer firings): a new Server is built from what it
	// persisted, and the datagrams in flight to it are lost.
	RestartEvery int
	// Batch (on in NewSim) hands a peer, with each datagram, every other
	// one that reaches it within simBatchWindow, in one StepBatch, as the
	// runner does with what one read of its socket returns: one commit for
	// the records they bring, one ack per sender. Off, a peer steps each
	// datagram on its own.
	Batch bool

	seed   uint64
	rng    *rand.Rand // network faults
	now    time.Time
	seq    uint64
	queue  []simPacket
	server *Server
	sstore *store.MemServer
	saddr  netip.AddrPort
	slog   *slog.Logger
	procs  map[string]*simProc
	byAddr map[netip.AddrPort]*simProc
	down   map[netip.AddrPort]bool
	trace  slog.Handler
	steps  int
	stats  SimStats
	err    error
}

// SimStats counts what the simulated network and server went through.
type SimStats struct {
	Sent       int // datagrams sent
	Dropped    int // of them lost (Loss)
	Duplicated int // of them delivered twice (Dup)
	Restarts   int // server crashes and restarts (RestartEvery)
}

type simPacket struct {
	at       time.Time
	seq      uint64
	from, to netip.AddrPort
	data     []byte
}

type simProc struct {
	name  string
	addr  netip.AddrPort
	core  *Peer
	store *store.MemPeer
	out   []string
	log   *slog.Logger
}

// simLatency is how long every datagram takes.
const simLatency = 20 * time.Microsecond

// simBatchWindow: with Batch, a datagram due this much later is taken with
// the one being delivered (it arrives a little early).
const simBatchWindow = 200 * time.Microsecond

// NewSim builds a simulation whose server listens at server. Every random
// choice (the server's pick of ring members and query entry points, the
// peers' message ids) is drawn from seed.
func NewSim(seed uint64, server netip.AddrPort) *Sim {
	s := &Sim{
		seed:   seed,
		rng:    rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		now:    time.Date(2020, 2, 2, 12, 0, 0, 0, time.UTC),
		sstore: store.NewMemServer(),
		saddr:  server,
		procs:  map[string]*simProc{},
		byAddr: map[netip.AddrPort]*simProc{},
		down:   map[netip.AddrPort]bool{},
		Batch:  true,
	}
	s.server = s.newServer(1, state.ServerState{}, nil)
	s.SetTrace(nil)
	return s
}

// newServer builds the server's state machine from what it persisted,
// drawing its random choices from the seed and stream.
func (s *Sim) newServer(stream uint64, st state.ServerState, replies []state.CachedReply) *Server {
	return NewServer(ServerConfig{Rand: rand.New(rand.NewPCG(s.seed, stream)), OpTimeout: time.Minute}, st, replies)
}

// SetTrace sends the trace of every process to h from now on; nil stops
// tracing. Records carry the virtual time.
func (s *Sim) SetTrace(h slog.Handler) {
	s.trace = h
	s.slog = s.logger("server", s.saddr)
	for _, p := range s.procs {
		p.log = s.logger(p.name, p.addr)
	}
}

func (s *Sim) logger(node string, local netip.AddrPort) *slog.Logger {
	if s.trace == nil {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(simClock{h: s.trace, now: &s.now}).With(slog.String("node", node), slog.String("local", local.String()))
}

// simClock stamps records with the simulation's virtual time.
type simClock struct {
	h   slog.Handler
	now *time.Time
}

func (c simClock) Enabled(ctx context.Context, l slog.Level) bool { return c.h.Enabled(ctx, l) }

func (c simClock) Handle(ctx context.Context, r slog.Record) error {
	r.Time = *c.now
	return c.h.Handle(ctx, r)
}

func (c simClock) WithAttrs(attrs []slog.Attr) slog.Handler {
	return simClock{h: c.h.WithAttrs(attrs), now: c.now}
}

func (c simClock) WithGroup(name string) slog.Handler {
	return simClock{h: c.h.WithGroup(name), now: c.now}
}

// AddPeer starts a peer process, not yet registered, for user name; it may
// bind only addr. data is the dataset it spreads when it leads a ring.
func (s *Sim) AddPeer(name string, addr netip.AddrPort, data []dataset.Record) {
	p := &simProc{name: name, addr: addr, store: store.NewMemPeer()}
	p.core = NewPeer(PeerConfig{
		Server:   s.saddr,
		LoadData: func() (dataset.Source, error) { return dataset.Records(data), nil },
		Rand:     rand.New(rand.NewPCG(s.seed, uint64(len(s.procs))+100)),
	})
	p.core.SetTable(p.store)
	p.log = s.logger(name, addr)
	s.procs[name] = p
	s.byAddr[addr] = p
}

// Server is the server's state machine (a new one after each restart).
func (s *Sim) Server() *Server { return s.server }

// Stats reports what the network and the server went through so far.
func (s *Sim) Stats() SimStats { return s.stats }

// Down makes addr (the server's or a peer's) unreachable: every datagram
// that arrives there from now on is lost, as if its process were dead or
// cut off. Its process still runs its timers.
func (s *Sim) Down(addr netip.AddrPort) { s.down[addr] = true }

// Up undoes Down.
func (s *Sim) Up(addr netip.AddrPort) { delete(s.down, addr) }

// Peer is the state machine of the peer started for user name, or nil.
func (s *Sim) Peer(name string) *Peer {
	if p := s.procs[name]; p != nil {
		return p.core
	}
	return nil
}

// Place is the place in the ring that the file of user name's peer holds
// (what 'dht inspect' would show of it).
func (s *Sim) Place(name string) (state.Identity, error) {
	p := s.procs[name]
	if p == nil {
		return state.Identity{}, fmt.Errorf("sim: no peer for %s", name)
	}
	id, _, err := p.store.Load()
	return id, err
}

// Do types line at the peer of user name and runs the network until that
// peer has finished it, or waits for the next line as a Long Name, and
// every datagram in flight has arrived (acks included). It returns what
// the peer printed meanwhile.
func (s *Sim) Do(name, line string) ([]string, error) {
	p := s.procs[name]
	if p == nil {
		return nil, fmt.Errorf("sim: no peer %q", name)
	}
	before := len(p.out)
	s.input(p, line)
	limit := s.now.Add(5 * time.Minute)
	for !p.core.Idle() && !p.core.WantsLongName() && s.err == nil {
		if !s.step() || s.now.After(limit) {
			return p.out[before:], fmt.Errorf("sim: %s: %q did not finish (printed %q)", name, line, p.out[before:])
		}
	}
	for i := 0; s.err == nil && s.busy(); i++ {
		if i == 1_000_000 || !s.step() {
			return p.out[before:], fmt.Errorf("sim: the network never settled after %q", line)
		}
	}
	return p.out[before:], s.err
}

// input types line at p, without running the network.
func (s *Sim) input(p *simProc, line string) {
	traceInput(p.log, line, !p.core.Idle())
	s.exec(p.addr, p, p.core.Input(s.now, line))
}

// busy reports datagrams in flight or retransmissions pending.
func (s *Sim) busy() bool {
	if len(s.queue) > 0 {
		return true
	}
	for _, p := range s.procs {
		if _, ok := p.core.link.deadline(); ok {
			return true
		}
	}
	return false
}

func (s *Sim) exec(from netip.AddrPort, p *simProc, outs []Output) {
	log := s.slog
	if p != nil {
		log = p.log
	}
	for len(outs) > 0 && s.err == nil {
		o := outs[0]
		outs = outs[1:]
		switch o := o.(type) {
		case Send:
			b, err := wire.Append(nil, o.ID, o.Flags, o.Msg)
			if err != nil {
				s.err = fmt.Errorf("sim: encode %s: %w", o.Msg.Type(), err)
				return
			}
			if log.Enabled(context.Background(), slog.LevelInfo) {
				log.LogAttrs(context.Background(), slog.LevelInfo, "send", traceAttrs(o.To, o.ID, o.Flags, o.Msg)...)
			}
			s.transmit(from, o.To, b)
		case Result:
			p.out = append(p.out, o.String())
			traceResult(log, o)
		case Event:
			traceEvent(log, o)
		case Notice:
			traceEvent(log, event(o.Line))
		case PersistServer:
			// What the server saves, its file must open again with.
			if err := o.State.Check(); err != nil {
				s.err = fmt.Errorf("sim: the server saved a state its file would be refused for: %w", err)
				return
			}
			if err := s.sstore.Save(o.State, o.Reply, o.Forget...); err != nil {
				s.err = err
				return
			}
			tracePersistServer(log, o.State)
		case PersistPeer:
			if id := o.Batch.Identity; id != nil {
				if err := id.Check(); err != nil {
					s.err = fmt.Errorf("sim: %s saved an identity its file would be refused for: %w", p.name, err)
					return
				}
			}
			if err := p.store.Apply(o.Batch); err != nil {
				s.err = err
				return
			}
			tracePersistPeer(log, o.Batch)
		case DiscardStore:
			// A new process would start from a new file.
			p.store = store.NewMemPeer()
			p.core.SetTable(p.store)
		case Bind:
			var err error
			if o.Addr != p.addr {
				err = fmt.Errorf("sim: %s may only bind %s", p.name, p.addr)
			}
			outs = append(p.core.Bound(s.now, o.Addr, err), outs...)
		case Exit:
			traceDebug(log, TraceExit)
		}
	}
}

// transmit puts a datagram on the network, which may lose, duplicate or
// delay it.
func (s *Sim) transmit(from, to netip.AddrPort, b []byte) {
	s.stats.Sent++
	if s.rng.Float64() < s.Loss {
		s.stats.Dropped++
		return
	}
	n := 1
	if s.rng.Float64() < s.Dup {
		n = 2
		s.stats.Duplicated++
	}
	for i := range n {
		d := simLatency
		if s.Delay > 0 {
			d += time.Duration(s.rng.Int64N(int64(s.Delay)))
		}
		if i > 0 {
			b = slices.Clone(b)
		}
		s.seq++
		s.queue = append(s.queue, simPacket{at: s.now.Add(d), seq: s.seq, from: from, to: to, data: b})
	}
}

// step delivers the next datagram or fires the next timer, whichever is
// due first; false when nothing is left to do.
func (s *Sim) step() bool {
	var next time.Time
	kind := 0 // 1 datagram, 2 server timer, 3 peer timer
	var tp *simProc
	if len(s.queue) > 0 {
		next, kind = s.queue[s.earliest()].at, 1
	}
	if at, ok := s.server.NextDeadline(); ok && (kind == 0 || at.Before(next)) {
		next, kind = at, 2
	}
	for _, name := range s.names() {
		p := s.procs[name]
		if at, ok := p.core.NextDeadline(); ok && (kind == 0 || at.Before(next)) {
			next, kind, tp = at, 3, p
		}
	}
	if kind == 0 {
		return false
	}
	if next.After(s.now) {
		s.now = next
	}
	switch kind {
	case 1:
		i := s.earliest()
		pkt := s.queue[i]
		s.queue = slices.Delete(s.queue, i, i+1)
		s.deliver(pkt)
	case 2:
		s.exec(s.saddr, nil, s.server.Tick(s.now))
	case 3:
		s.exec(tp.addr, tp, tp.core.Tick(s.now))
	}
	if s.steps++; s.RestartEvery > 0 && s.steps%s.RestartEvery == 0 {
		s.restartServer()
	}
	return true
}

// restartServer is a SIGKILL of the server and a restart on the same file.
func (s *Sim) restartServer() {
	st, replies, err := s.sstore.Load()
	if err != nil {
		s.err = fmt.Errorf("sim: restart the server: %w", err)
		return
	}
	s.server = s.newServer(uint64(s.steps), st, replies)
	s.queue = slices.DeleteFunc(s.queue, func(p simPacket) bool { return p.to == s.saddr })
	s.stats.Restarts++
}

func (s *Sim) earliest() int {
	best := 0
	for i, p := range s.queue {
		b := s.queue[best]
		if p.at.Before(b.at) || p.at.Equal(b.at) && p.seq < b.seq {
			best = i
		}
	}
	return best
}

func (s *Sim) names() []string {
	names := make([]string, 0, len(s.procs))
	for n := range s.procs {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

func (s *Sim) deliver(pkt simPacket) {
	if s.down[pkt.to] {
		return // the process there is dead or cut off
	}
	h, m, err := wire.Decode(pkt.data)
	if err != nil {
		s.err = fmt.Errorf("sim: decode: %w", err)
		return
	}
	if pkt.to == s.saddr {
		simRecv(s.slog, pkt.from, h, m)
		s.exec(s.saddr, nil, s.server.Step(s.now, pkt.from, h, m))
		return
	}
	p := s.byAddr[pkt.to]
	if p == nil || !p.core.bound || p.core.exited {
		return // nobody listens there: the datagram is lost
	}
	simRecv(p.log, pkt.from, h, m)
	if !s.Batch {
		s.exec(p.addr, p, p.core.Step(s.now, pkt.from, h, m))
		return
	}
	batch := []Datagram{{From: pkt.from, Header: h, Msg: m}}
	for i := 0; i < len(s.queue); {
		q := s.queue[i]
		if q.to != pkt.to || q.at.After(s.now.Add(simBatchWindow)) {
			i++
			continue
		}
		s.queue = slices.Delete(s.queue, i, i+1)
		h, m, err := wire.Decode(q.data)
		if err != nil {
			s.err = fmt.Errorf("sim: decode: %w", err)
			return
		}
		simRecv(p.log, q.from, h, m)
		batch = append(batch, Datagram{From: q.from, Header: h, Msg: m})
	}
	s.exec(p.addr, p, p.core.StepBatch(s.now, batch))
}

// simRecv traces a datagram received, as the runners' endpoint does.
func simRecv(log *slog.Logger, from netip.AddrPort, h wire.Header, m wire.Message) {
	if log.Enabled(context.Background(), slog.LevelInfo) {
		log.LogAttrs(context.Background(), slog.LevelInfo, "recv", traceAttrs(from, h.ID, h.Flags, m)...)
	}
}
