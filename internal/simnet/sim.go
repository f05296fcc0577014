// Package simnet runs the dht state machines (app.Server, app.Peer) over a
// simulated network with a virtual clock: what the protocol tests, the
// design document's diagrams and its pictures of the ring are made of.
package simnet

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"slices"
	"time"

	"dht/app"
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
// same messages, levels and keys: app.TraceSend and its kin), stamped with
// the virtual time.
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
	// Batch (on in New) hands a peer, with each datagram, every other
	// one that reaches it within simBatchWindow, in one StepBatch, as the
	// runner does with what one read of its socket returns: one commit for
	// the records they bring, one ack per sender. Off, a peer steps each
	// datagram on its own.
	Batch bool
	// Tap, if set, sees every datagram sent (not those Inject adds): an
	// attacker's capture, for the tests that replay it.
	Tap func(from, to netip.AddrPort, b []byte)
	// Lose, if set, is asked about every datagram sent (after Tap): true
	// loses it on the way, as Loss would.
	Lose func(from, to netip.AddrPort, b []byte) bool
	// Slow gives the link of an address a latency of its own: a datagram
	// from or to it takes that much longer (a host far away).
	Slow map[netip.AddrPort]time.Duration

	seed   uint64
	rng    *rand.Rand // network faults
	now    time.Time
	seq    uint64
	queue  []simPacket
	server *app.Server
	sstore *store.MemServer
	saddr  netip.AddrPort
	slog   *slog.Logger
	procs  map[string]*Process
	gone   map[string]*Process // taken out by Remove; Restart may bring them back
	byAddr map[netip.AddrPort]*Process
	// restarts counts the peers Restart started again: it seeds them.
	restarts uint64
	down     map[netip.AddrPort]bool
	// held is what came for a process Stop stopped, kept as its socket
	// keeps it, for Cont.
	held map[netip.AddrPort][]simPacket
	// serverGone: the server was killed and is not restarted yet.
	serverGone bool
	// deadAfter is the server's --dead-after (0: the default).
	deadAfter time.Duration
	trace     slog.Handler
	steps     int
	stats     Stats
	err       error
}

// Stats counts what the simulated network and server went through.
type Stats struct {
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
	injected bool
}

// Process is a peer process of the simulation: what a test may look at
// (and, for the table, change behind the node's back). The simulation
// keeps its fields up to date.
type Process struct {
	Name string
	Addr netip.AddrPort
	Core *app.Peer
	// Table is its table file, in memory.
	Table *store.MemPeer
	// Printed is every result it printed so far.
	Printed []app.Result
	// Bound: its socket is open (a register bound it, and no refusal
	// closed it since). Exited: it ended after deregister.
	Bound, Exited bool
	// Clock is how far its host's clock is ahead of the simulation's
	// (behind, if negative): its core is given the simulation's time plus
	// Clock, and its deadlines are taken back by it.
	Clock time.Duration

	log  *slog.Logger
	load func() (dataset.Source, error)
}

// now is the time on its host's clock when the simulation's is t.
func (p *Process) now(t time.Time) time.Time { return t.Add(p.Clock) }

// simLatency is how long every datagram takes.
const simLatency = 20 * time.Microsecond

// simBatchWindow: with Batch, a datagram due this much later is taken with
// the one being delivered (it arrives a little early).
const simBatchWindow = 200 * time.Microsecond

// New builds a simulation whose server listens at server. Every random
// choice (the server's pick of ring members and query entry points, the
// peers' message ids) is drawn from seed.
func New(seed uint64, server netip.AddrPort) *Sim {
	s := &Sim{
		seed:   seed,
		rng:    rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		now:    time.Date(2020, 2, 2, 12, 0, 0, 0, time.UTC),
		sstore: store.NewMemServer(),
		saddr:  server,
		procs:  map[string]*Process{},
		gone:   map[string]*Process{},
		byAddr: map[netip.AddrPort]*Process{},
		down:   map[netip.AddrPort]bool{},
		held:   map[netip.AddrPort][]simPacket{},
		Batch:  true,
	}
	s.server = s.newServer(1, state.ServerState{}, nil)
	s.SetTrace(nil)
	return s
}

// newServer builds the server's state machine from what it persisted,
// drawing its random choices from the seed and stream.
func (s *Sim) newServer(stream uint64, st state.ServerState, replies []state.CachedReply) *app.Server {
	return app.NewServer(app.ServerConfig{Rand: rand.New(rand.NewPCG(s.seed, stream)), Keys: app.KeysFrom(rand.New(rand.NewPCG(s.seed, stream^0x6b657973))),
		OpTimeout: time.Minute, DeadAfter: s.deadAfter, Started: s.now}, st, replies)
}

// SetDeadAfter gives the server --dead-after d. It starts the server
// afresh: call it before anything is sent to it.
func (s *Sim) SetDeadAfter(d time.Duration) {
	s.deadAfter = d
	s.server = s.newServer(1, state.ServerState{}, nil)
}

// SetTrace sends the trace of every process to h from now on; nil stops
// tracing. Records carry the virtual time.
func (s *Sim) SetTrace(h slog.Handler) {
	s.trace = h
	s.slog = s.logger("server", s.saddr)
	for _, p := range s.procs {
		p.log = s.logger(p.Name, p.Addr)
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
	p := &Process{Name: name, Addr: addr, Table: store.NewMemPeer(),
		load: func() (dataset.Source, error) { return dataset.Records(data), nil }}
	p.Core = app.NewPeer(app.PeerConfig{
		Server:   s.saddr,
		LoadData: p.load,
		Rand:     rand.New(rand.NewPCG(s.seed, uint64(len(s.procs))+100)),
	})
	p.Core.SetTable(p.Table)
	p.log = s.logger(name, addr)
	s.procs[name] = p
	s.byAddr[addr] = p
}

// Restart is a kill -9 of user name's process and a new one started on its
// file (the table as committed): the new peer resumes the registration the
// file holds (app.Peer.Resume) and reads input as usual. Datagrams in
// flight to the old process are lost; nothing it had not committed
// survives. It reports false if there is no such process or its file holds
// no registration.
func (s *Sim) Restart(name string) bool {
	p := s.procs[name]
	if p == nil {
		p = s.gone[name]
	}
	if p == nil {
		return false
	}
	id, _, err := p.Table.Load()
	if err != nil || id.Name == "" {
		return false
	}
	s.queue = slices.DeleteFunc(s.queue, func(q simPacket) bool { return q.to == p.Addr })
	s.restarts++
	p.Core = app.NewPeer(app.PeerConfig{
		Server:   s.saddr,
		LoadData: p.load,
		Rand:     rand.New(rand.NewPCG(s.seed, 1000+s.restarts)),
	})
	p.Core.SetTable(p.Table)
	p.Bound, p.Exited = false, false
	delete(s.gone, name)
	s.procs[name], s.byAddr[p.Addr] = p, p
	delete(s.down, p.Addr)
	s.exec(p.Addr, p, p.Core.Resume(p.now(s.now), id))
	return true
}

// Server is the server's state machine (a new one after each restart).
func (s *Sim) Server() *app.Server { return s.server }

// Seed is the seed the simulation was built with.
func (s *Sim) Seed() uint64 { return s.seed }

// Now is the virtual time.
func (s *Sim) Now() time.Time { return s.now }

// Err is what went wrong, if anything did: an output that could not be
// carried out (a state its file would refuse, a bind of another address).
// Nothing runs after it.
func (s *Sim) Err() error { return s.err }

// Stats reports what the network and the server went through so far.
func (s *Sim) Stats() Stats { return s.stats }

// Down makes addr (the server's or a peer's) unreachable: every datagram
// that arrives there from now on is lost, as if its process were dead or
// cut off. Its process still runs its timers.
func (s *Sim) Down(addr netip.AddrPort) { s.down[addr] = true }

// Up undoes Down.
func (s *Sim) Up(addr netip.AddrPort) { delete(s.down, addr) }

// Remove takes the process of user name out of the simulation, as if it
// had died as it stands: it runs no timers, what arrives at its address is
// lost, and Names, Process and Peer no longer know it. It returns the
// process (nil if there is none), for Restore.
func (s *Sim) Remove(name string) *Process {
	p := s.procs[name]
	if p != nil {
		delete(s.procs, name)
		delete(s.byAddr, p.Addr)
		s.gone[name] = p
	}
	return p
}

// Restore puts back a process Remove took out, as it was then: its memory,
// its table and its timers, now due.
func (s *Sim) Restore(p *Process) {
	delete(s.gone, p.Name)
	s.procs[p.Name] = p
	s.byAddr[p.Addr] = p
}

// Stop stops the process of user name as SIGSTOP does (a suspended host
// too): it runs nothing, and what arrives at its address waits in its
// socket, which Cont delivers. It returns the process (nil if none).
func (s *Sim) Stop(name string) *Process {
	p := s.Remove(name)
	if p != nil {
		s.held[p.Addr] = []simPacket{}
	}
	return p
}

// Cont runs again a process Stop stopped: its timers are due, and what
// came meanwhile is read, in the order it came.
func (s *Sim) Cont(p *Process) {
	s.Restore(p)
	for _, pkt := range s.held[p.Addr] {
		pkt.at = s.now
		s.seq++
		pkt.seq = s.seq
		s.queue = append(s.queue, pkt)
	}
	delete(s.held, p.Addr)
}

// Peer is the state machine of the peer started for user name, or nil.
func (s *Sim) Peer(name string) *app.Peer {
	if p := s.procs[name]; p != nil {
		return p.Core
	}
	return nil
}

// Process is the peer process started for user name, or nil.
func (s *Sim) Process(name string) *Process { return s.procs[name] }

// Names lists the users peers were started for, sorted.
func (s *Sim) Names() []string {
	names := make([]string, 0, len(s.procs))
	for n := range s.procs {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Place is the place in the ring that the file of user name's peer holds
// (what 'dht inspect' would show of it).
func (s *Sim) Place(name string) (state.Identity, error) {
	p := s.procs[name]
	if p == nil {
		return state.Identity{}, fmt.Errorf("sim: no peer for %s", name)
	}
	id, _, err := p.Table.Load()
	return id, err
}

// Do types line at the peer of user name and runs the network until that
// peer has finished it, or waits for the next line as a Long Name, and
// every datagram in flight has arrived (acks included). It returns what
// the peer printed meanwhile.
func (s *Sim) Do(name, line string) ([]app.Result, error) {
	p := s.procs[name]
	if p == nil {
		return nil, fmt.Errorf("sim: no peer %q", name)
	}
	before := len(p.Printed)
	s.input(p, line)
	limit := s.now.Add(5 * time.Minute)
	for !p.Core.Idle() && !p.Core.WantsLongName() && s.err == nil {
		if !s.Step() || s.now.After(limit) {
			return p.Printed[before:], fmt.Errorf("sim: %s: %q did not finish (printed %q)", name, line, p.Printed[before:])
		}
	}
	for i := 0; s.err == nil && s.Busy(); i++ {
		if i == 1_000_000 || !s.Step() {
			return p.Printed[before:], fmt.Errorf("sim: the network never settled after %q", line)
		}
	}
	return slices.Clone(p.Printed[before:]), s.err
}

// Input types line at the peer of user name, without running the network
// (Step does, one event at a time).
func (s *Sim) Input(name, line string) error {
	p := s.procs[name]
	if p == nil {
		return fmt.Errorf("sim: no peer %q", name)
	}
	s.input(p, line)
	return s.err
}

// EndOfInput tells the peer of user name that no more lines will come,
// without running the network.
func (s *Sim) EndOfInput(name string) error {
	p := s.procs[name]
	if p == nil {
		return fmt.Errorf("sim: no peer %q", name)
	}
	s.exec(p.Addr, p, p.Core.EndOfInput(p.now(s.now)))
	return s.err
}

func (s *Sim) input(p *Process, line string) {
	app.TraceTyped(p.log, line, !p.Core.Idle())
	s.exec(p.Addr, p, p.Core.Input(p.now(s.now), line))
}

// Busy reports datagrams in flight, or a peer with a deadline pending (a
// retransmission, a command or a join waiting; not the next alive, which
// a registered peer always has). Do steps until it is false
// once the peer typed at is idle (or waits for a Long Name), so that the
// last messages are acknowledged; who steps by hand (Input, Step) may do
// the same.
func (s *Sim) Busy() bool {
	if len(s.queue) > 0 {
		return true
	}
	for _, p := range s.procs {
		if _, ok := p.Core.Pending(); ok {
			return true
		}
	}
	return false
}

func (s *Sim) exec(from netip.AddrPort, p *Process, outs []app.Output) {
	log := s.slog
	if p != nil {
		log = p.log
	}
	for len(outs) > 0 && s.err == nil {
		o := outs[0]
		outs = outs[1:]
		switch o := o.(type) {
		case app.Send:
			if p != nil && o.Sign && !o.ToServer && o.To != s.saddr && o.Self != p.Addr {
				// The tag of a datagram from one peer to another covers
				// its sender's address, which the receiver checks with
				// the source: signed from any other, it is refused there.
				s.err = fmt.Errorf("sim: %s signs a %s to %s from %v, not from its address %s", p.Name, o.Msg.Type(), o.To, o.Self, p.Addr)
				return
			}
			b, err := o.Append(nil)
			if err != nil {
				s.err = fmt.Errorf("sim: encode %s: %w", o.Msg.Type(), err)
				return
			}
			app.TraceSend(log, o)
			s.transmit(from, o.To, b)
		case app.Result:
			p.Printed = append(p.Printed, o)
			app.TraceOutput(log, o)
		case app.Event, app.Notice:
			app.TraceOutput(log, o)
		case app.PersistServer:
			// What the server saves, its file must open again with.
			if err := o.State.Check(); err != nil {
				s.err = fmt.Errorf("sim: the server saved a state its file would be refused for: %w", err)
				return
			}
			if err := s.sstore.Save(o.State, o.Reply, o.Forget...); err != nil {
				s.err = err
				return
			}
			app.TraceOutput(log, o)
		case app.PersistPeer:
			if id := o.Batch.Identity; id != nil {
				if err := id.Check(); err != nil {
					s.err = fmt.Errorf("sim: %s saved an identity its file would be refused for: %w", p.Name, err)
					return
				}
			}
			if err := p.Table.Apply(o.Batch); err != nil {
				s.err = err
				return
			}
			if id, recs, err := p.Table.Load(); err != nil || id.CheckTable(recs) != nil {
				s.err = fmt.Errorf("sim: %s's table, as saved, is one its file would be refused for: %v%w", p.Name, err, id.CheckTable(recs))
				return
			} else if !id.InRing && len(recs) > 0 {
				s.err = fmt.Errorf("sim: %s saved %d records with no place in a ring", p.Name, len(recs))
				return
			}
			app.TraceOutput(log, o)
		case app.DiscardStore:
			// A new process would start from a new file.
			p.Table = store.NewMemPeer()
			p.Core.SetTable(p.Table)
		case app.Bind:
			var err error
			if o.Addr != p.Addr {
				err = fmt.Errorf("sim: %s may only bind %s", p.Name, p.Addr)
			}
			p.Bound = err == nil
			outs = append(p.Core.Bound(p.now(s.now), o.Addr, err), outs...)
		case app.Unbind:
			p.Bound = false
		case app.Exit:
			p.Exited = true
			app.TraceOutput(log, o)
		case app.TableUnreadable:
			s.err = fmt.Errorf("sim: %s cannot read its table: %w", p.Name, o.Err)
			return
		}
	}
}

// transmit puts a datagram on the network, which may lose, duplicate or
// delay it.
func (s *Sim) transmit(from, to netip.AddrPort, b []byte) {
	if s.Tap != nil {
		s.Tap(from, to, slices.Clone(b))
	}
	s.stats.Sent++
	if s.rng.Float64() < s.Loss || s.Lose != nil && s.Lose(from, to, b) {
		s.stats.Dropped++
		return
	}
	n := 1
	if s.rng.Float64() < s.Dup {
		n = 2
		s.stats.Duplicated++
	}
	for i := range n {
		d := simLatency + s.Slow[from] + s.Slow[to]
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

// Step delivers the next datagram or fires the next timer, whichever is
// due first; false when nothing is left to do. A failure stops the
// simulation (Err).
func (s *Sim) Step() bool {
	if s.err != nil {
		return false
	}
	var next time.Time
	kind := 0 // 1 datagram, 2 server timer, 3 peer timer
	var tp *Process
	if len(s.queue) > 0 {
		next, kind = s.queue[s.earliest()].at, 1
	}
	if at, ok := s.server.NextDeadline(); ok && !s.serverGone && (kind == 0 || at.Before(next)) {
		next, kind = at, 2
	}
	for _, name := range s.Names() {
		p := s.procs[name]
		if at, ok := p.Core.NextDeadline(); ok && (kind == 0 || at.Add(-p.Clock).Before(next)) {
			at = at.Add(-p.Clock)
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
		s.exec(tp.Addr, tp, tp.Core.Tick(tp.now(s.now)))
	}
	if s.steps++; s.RestartEvery > 0 && s.steps%s.RestartEvery == 0 {
		s.restartServer()
	}
	return true
}

// Inject puts datagram b on the network, from any source address: a
// stranger's, or one forged. It is neither lost nor duplicated, and a
// datagram that does not decode is dropped where it arrives, as the
// runners do.
func (s *Sim) Inject(from, to netip.AddrPort, b []byte) {
	s.seq++
	s.queue = append(s.queue, simPacket{at: s.now.Add(simLatency), seq: s.seq, from: from, to: to, data: slices.Clone(b), injected: true})
}

// RestartServer is a SIGKILL of the server and a restart on the same file.
func (s *Sim) RestartServer() { s.restartServer() }

// KillServer is a SIGKILL of the server, restarted only by a RestartServer:
// meanwhile it gets nothing and its timers do not fire, and its file stays
// as it was, however long the peers run on.
func (s *Sim) KillServer() { s.serverGone = true }

// restartServer is a SIGKILL of the server and a restart on the same file.
func (s *Sim) restartServer() {
	st, replies, err := s.sstore.Load()
	if err != nil {
		s.err = fmt.Errorf("sim: restart the server: %w", err)
		return
	}
	s.server, s.serverGone = s.newServer(uint64(s.steps), st, replies), false
	s.queue = slices.DeleteFunc(s.queue, func(p simPacket) bool { return p.to == s.saddr })
	s.stats.Restarts++
	s.exec(s.saddr, nil, s.server.Start(s.now))
}

// RestartServerWith is RestartServer with --dead-after d from now on.
func (s *Sim) RestartServerWith(d time.Duration) {
	s.deadAfter = d
	s.restartServer()
}

// RestartServerOnANewFile is a SIGKILL of the server and a start on a new,
// empty file: every registration and the DHT are lost, and the peers'
// secrets mean nothing to it.
func (s *Sim) RestartServerOnANewFile() {
	s.sstore = store.NewMemServer()
	s.server, s.serverGone = s.newServer(uint64(s.steps), state.ServerState{}, nil), false
	s.queue = slices.DeleteFunc(s.queue, func(p simPacket) bool { return p.to == s.saddr })
	s.stats.Restarts++
}

// ServerFile is a copy of the server's file as it stands: what an operator
// backs up.
type ServerFile struct {
	st      state.ServerState
	replies []state.CachedReply
}

// CopyServerFile copies the server's file as it stands.
func (s *Sim) CopyServerFile() ServerFile {
	st, replies, err := s.sstore.Load()
	if err != nil {
		s.err = fmt.Errorf("sim: copy the server's file: %w", err)
	}
	return ServerFile{st, replies}
}

// RestartServerOnACopy is a SIGKILL of the server and a start on f, an
// older copy of its file put back (a backup restored): registrations, the
// DHT and its epoch as they were when f was copied.
func (s *Sim) RestartServerOnACopy(f ServerFile) {
	s.sstore = store.NewMemServer()
	for _, r := range f.replies {
		if err := s.sstore.Save(f.st, &r); err != nil {
			s.err = fmt.Errorf("sim: put the copy back: %w", err)
			return
		}
	}
	if err := s.sstore.Save(f.st, nil); err != nil {
		s.err = fmt.Errorf("sim: put the copy back: %w", err)
		return
	}
	s.restartServer()
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

func (s *Sim) deliver(pkt simPacket) {
	if s.down[pkt.to] {
		return // the process there is dead or cut off
	}
	h, m, err := wire.Decode(pkt.data)
	if err != nil && pkt.injected {
		return
	}
	if err != nil {
		s.err = fmt.Errorf("sim: decode: %w", err)
		return
	}
	if pkt.to == s.saddr {
		if s.serverGone {
			return
		}
		app.TraceRecv(s.slog, app.Datagram{From: pkt.from, Header: h, Msg: m})
		s.exec(s.saddr, nil, s.server.Step(s.now, pkt.from, h, m))
		return
	}
	if held, ok := s.held[pkt.to]; ok {
		s.held[pkt.to] = append(held, pkt) // its process is stopped
		return
	}
	p := s.byAddr[pkt.to]
	if p == nil || !p.Bound || p.Exited {
		return // nobody listens there: the datagram is lost
	}
	d := app.Datagram{From: pkt.from, Header: h, Msg: m}
	app.TraceRecv(p.log, d)
	if !s.Batch {
		s.exec(p.Addr, p, p.Core.Step(p.now(s.now), pkt.from, h, m))
		return
	}
	batch := []app.Datagram{d}
	for i := 0; i < len(s.queue); {
		q := s.queue[i]
		if q.to != pkt.to || q.at.After(s.now.Add(simBatchWindow)) {
			i++
			continue
		}
		s.queue = slices.Delete(s.queue, i, i+1)
		h, m, err := wire.Decode(q.data)
		if err != nil && q.injected {
			continue
		}
		if err != nil {
			s.err = fmt.Errorf("sim: decode: %w", err)
			return
		}
		d := app.Datagram{From: q.from, Header: h, Msg: m}
		app.TraceRecv(p.log, d)
		batch = append(batch, d)
	}
	s.exec(p.Addr, p, p.Core.StepBatch(p.now(s.now), batch))
}
