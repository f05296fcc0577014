package app

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"dht/app/state"
	"dht/dataset"
	"dht/internal/udpio"
	"dht/store"
	"dht/wire"
)

// Faults makes a socket lossy on purpose, for testing the whole system over
// a bad network: each datagram sent is dropped with probability Loss, and
// one that is not dropped is sent twice with probability Dup.
type Faults struct {
	Loss float64
	Dup  float64
	Rand *rand.Rand
}

func (f *Faults) active() bool { return f != nil && (f.Loss > 0 || f.Dup > 0) }

// datagram is what a socket reader hands the loop.
type datagram struct {
	from  netip.AddrPort
	local netip.Addr // where it was sent, if the socket says
	// came: when it came, by the wall clock, if the socket says (zero
	// otherwise); after: when the read before it emptied the socket's
	// queue (zero: none yet). It came after that, whatever the wall
	// clock says (set forward since: an NTP step, a suspend).
	came, after time.Time
	h           wire.Header
	msg         wire.Message
	size        int
	err         error
}

// endpoint is one socket with its reader, tracing and fault injection.
// What the loop sends during one turn is written together by flush.
type endpoint struct {
	conn   udpio.Conn
	local  netip.AddrPort
	log    *slog.Logger
	faults *Faults
	tr     *Traffic
	now    func() time.Time
	drops  dropSummary
	quiet  quietLines
	// refused, if set, is told of each datagram the host refused to send
	// (with the runner's lock held, as flush is), and, with a nil error, of
	// the first one it then took to the same address.
	refused func(to netip.AddrPort, err error)
	// refusedTo: the addresses a send was refused to since the last one
	// taken, of which refused is to hear when one is taken.
	refusedTo map[netip.AddrPort]struct{}
	// datagrams encoded and waiting for flush, their buffers kept for the
	// next turn
	out   []udpio.Message
	types []wire.Type
}

// readBatch and writeBatch bound the datagrams one read hands over and one
// flush writes at a time.
const (
	readBatch  = 64
	writeBatch = 64
)

// Traffic counts what a runner's socket did. It may be read while the runner
// runs.
type Traffic struct {
	Datagrams atomic.Uint64 // written to the socket
	Bytes     atomic.Uint64 // in those datagrams
	Stores    atomic.Uint64 // store datagrams among them, retransmissions included
	Lost      atomic.Uint64 // dropped on purpose by Faults instead of being written
}

func newEndpoint(conn udpio.Conn, log *slog.Logger, faults *Faults, tr *Traffic, now func() time.Time) *endpoint {
	local := conn.LocalAddr()
	log = log.With(slog.String("local", local.String()))
	return &endpoint{conn: conn, local: local, log: log, faults: faults, tr: tr, now: now, out: make([]udpio.Message, 0, writeBatch)}
}

// traceDrop traces a datagram dropped, summarising a flood of them.
func (e *endpoint) traceDrop(log *slog.Logger, ev Event) {
	e.drops.trace(log, e.now(), ev)
}

// read runs until the socket is closed, or until handle or settle reports
// false, handing each lot of datagrams that one read returns, decoded, to
// handle. When handle asks to drain, read hands it whatever else is
// waiting, without waiting for more, and then calls settle.
func (e *endpoint) read(handle func([]datagram) (ok, drain bool), settle func() bool) {
	ms := make([]udpio.Message, readBatch)
	for i := range ms {
		ms[i].Buf = make([]byte, wire.MaxDatagram+1)
	}
	ds := make([]datagram, readBatch)
	lots := 0             // handled since the last settle, while draining
	var emptied time.Time // when a read last emptied the socket's queue
	_ = e.conn.ReadBatches(ms, func(lot []udpio.Message) (ok, more bool) {
		if len(lot) == 0 { // drained: nothing else is waiting
			lots = 0
			emptied = time.Now()
			return settle(), false
		}
		for i, m := range lot {
			d := &ds[i]
			d.from, d.local, d.size, d.came, d.after = m.Addr, m.Local, m.N, m.At, emptied
			d.h, d.msg, d.err = wire.Decode(m.Buf[:m.N])
		}
		if len(lot) < len(ms) {
			emptied = time.Now() // what comes next came after this read
		} else if at := lot[len(lot)-1].At; !at.IsZero() {
			// A full lot (a flood: the queue is never emptied): what
			// comes next came after its last datagram, which waited no
			// longer than since the bound before it (a wall clock set
			// forward since does not make the next lot older than this
			// one: an attacker's review).
			now := time.Now()
			w := max(now.Sub(at), 0)
			if !emptied.IsZero() {
				w = min(w, now.Sub(emptied))
			}
			if c := now.Add(-w); c.After(emptied) {
				emptied = c
			}
		}
		ok, drain := handle(ds[:len(lot)])
		if !ok {
			return false, false
		}
		if !drain {
			lots = 0
			return true, false
		}
		if lots++; lots >= maxDrain {
			lots = 0
			return settle(), false
		}
		return true, true
	})
}

// maxDrain bounds the lots read before settling.
const maxDrain = 16

// take hands what read handed over to step, one datagram at a time, and
// returns the outputs appended to outs. It traces each datagram received;
// one step refused (its outputs start with a drop: the drop's line says
// what came and why, and a flood of them is summarised) at the debug
// level, which the trace on stderr leaves out.
func (e *endpoint) take(in []datagram, outs []Output, step func(Datagram) []Output) []Output {
	// How long each waited is taken now, under the caller's lock: the
	// time it waited for that lock (a Tick's slow commit) counts too.
	var wall time.Time
	for _, d := range in {
		var waited time.Duration
		if !d.came.IsZero() {
			if wall.IsZero() {
				wall = time.Now()
			}
			waited = max(wall.Sub(d.came), 0) // the socket's times are the wall clock's
			if !d.after.IsZero() {
				waited = min(waited, wall.Sub(d.after)) // the monotonic clock's
			}
		}
		if d.err != nil {
			e.traceDrop(e.log, dropped("not a datagram of ours", d.from, slog.Int("bytes", d.size), slog.String("err", d.err.Error())))
			continue
		}
		o := step(Datagram{From: d.from, Local: d.local, Header: d.h, Msg: d.msg, Stamped: !d.came.IsZero(), Waited: waited})
		ev, drop := firstOutput(o).(Event)
		if !drop || !ev.Drop {
			if e.log.Enabled(context.Background(), slog.LevelInfo) {
				e.log.LogAttrs(context.Background(), slog.LevelInfo, "recv", traceAttrs(d.from, d.h.ID, d.h.Flags, d.msg)...)
			}
			outs = append(outs, o...)
			continue
		}
		// Refused: traced here, after the datagram's own line (at the
		// debug level, for --trace-json's diagrams; stderr leaves it
		// out), each as the drop summary allows.
		show, recv := e.drops.enter(e.log, e.now(), ev)
		if recv && e.log.Enabled(context.Background(), slog.LevelDebug) {
			e.log.LogAttrs(context.Background(), slog.LevelDebug, "recv", traceAttrs(d.from, d.h.ID, d.h.Flags, d.msg)...)
		}
		if show {
			traceEvent(e.log, ev)
		}
		outs = append(outs, o[1:]...)
	}
	return outs
}

func firstOutput(o []Output) Output {
	if len(o) == 0 {
		return nil
	}
	return o[0]
}

func traceAttrs(addr netip.AddrPort, id uint32, flags wire.Flags, m wire.Message) []slog.Attr {
	attrs := []slog.Attr{slog.String("addr", addr.String()), slog.String("type", m.Type().String()), slog.Uint64("id", uint64(id))}
	if flags&wire.FlagRetransmit != 0 {
		attrs = append(attrs, slog.Bool("retransmit", true))
	}
	if flags&wire.FlagNoAck != 0 {
		attrs = append(attrs, slog.Bool("no_ack", true))
	}
	if lv, ok := m.(slog.LogValuer); ok {
		attrs = append(attrs, slog.Any("msg", lv))
	}
	return attrs
}

// send encodes one datagram for the next flush, applying fault injection.
func (e *endpoint) send(s Send) {
	b, ok := e.encode(s)
	if !ok {
		return
	}
	copies := 1
	if e.faults.active() {
		if e.faults.Rand.Float64() < e.faults.Loss {
			e.tr.Lost.Add(1)
			e.log.LogAttrs(context.Background(), slog.LevelInfo, "fault: dropped on send", traceAttrs(s.To, s.ID, s.Flags, s.Msg)...)
			return
		}
		if e.faults.Rand.Float64() < e.faults.Dup {
			copies = 2
		}
	}
	level, traced := slog.LevelInfo, true
	if s.Quiet {
		level, traced = e.quiet.show(s.Msg.Type(), e.now())
	}
	if traced && e.log.Enabled(context.Background(), level) {
		e.log.LogAttrs(context.Background(), level, "send", traceAttrs(s.To, s.ID, s.Flags, s.Msg)...)
	}
	e.queue(b, s.To, s.From, s.Msg.Type())
	if copies == 2 {
		e.queue(append(e.room(), b...), s.To, s.From, s.Msg.Type())
	}
}

// room returns the buffer of the next datagram queued, emptied, flushing
// first if the batch is full.
func (e *endpoint) room() []byte {
	if len(e.out) == cap(e.out) {
		e.flush()
	}
	k := len(e.out)
	buf := e.out[:k+1][k].Buf
	if buf == nil {
		buf = make([]byte, 0, wire.MaxDatagram)
	}
	return buf[:0]
}

func (e *endpoint) encode(s Send) ([]byte, bool) {
	b, err := s.Append(e.room())
	if err != nil {
		e.log.Error("cannot encode", slog.String("addr", s.To.String()), slog.String("type", s.Msg.Type().String()), slog.String("err", err.Error()))
		return nil, false
	}
	return b, true
}

func (e *endpoint) queue(b []byte, to netip.AddrPort, from netip.Addr, t wire.Type) {
	e.out = append(e.out, udpio.Message{Buf: b, Addr: to, Local: from})
	e.types = append(e.types, t)
}

// flush writes what send encoded, in order.
func (e *endpoint) flush() {
	for i := 0; i < len(e.out); {
		n, err := e.conn.WriteBatch(e.out[i:])
		for j := i; j < i+n; j++ {
			e.tr.Datagrams.Add(1)
			e.tr.Bytes.Add(uint64(len(e.out[j].Buf)))
			if len(e.refusedTo) > 0 {
				if _, ok := e.refusedTo[e.out[j].Addr]; ok {
					delete(e.refusedTo, e.out[j].Addr)
					e.refused(e.out[j].Addr, nil)
				}
			}
			if e.types[j] == wire.TypeStore {
				e.tr.Stores.Add(1)
			}
		}
		i += n
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				break
			}
			if i < len(e.out) {
				// Counted with the drops: a send refused at every
				// retransmission (a firewall's EPERM) is a few lines a
				// second, not one each.
				to := e.out[i].Addr
				e.drops.trace(e.log, e.now(), Event{Msg: "send failed: " + err.Error(), Level: slog.LevelWarn, Attrs: []slog.Attr{attrAddr(to)}, From: to})
				if e.refused != nil {
					if e.refusedTo == nil || len(e.refusedTo) >= maxSendErrs {
						e.refusedTo = make(map[netip.AddrPort]struct{})
					}
					e.refusedTo[to] = struct{}{}
					e.refused(to, err)
				}
			}
			i++ // skip the datagram that failed
		}
	}
	e.discard()
}

// discard forgets what waits for flush.
func (e *endpoint) discard() { e.out, e.types = e.out[:0], e.types[:0] }

func traceEvent(log *slog.Logger, ev Event) {
	log.LogAttrs(context.Background(), ev.Level, ev.Msg, ev.Attrs...)
}

// A runner's state machine is driven from two goroutines: the socket's
// reader, which handles each lot of datagrams one read returns as soon as it
// has decoded them, and Run's, which handles input lines and the deadline
// timer. Whichever holds the runner's lock owns the core, the socket's
// sending side and the file. Handing datagrams over a channel to one loop
// instead would cost a goroutine switch, and a thread wake-up, on every
// hop. Under the lock nothing is written that a slow reader could hold up:
// results, notes and the hooks that follow them go to a printer, and the
// trace to a queue, each written by a goroutine of its own. The lock does
// cover the commit of a batch to disk, which the acknowledgements that
// follow it must wait for.

// deadline keeps a time.Timer set no later than a core's next deadline. It
// moves the timer only to an earlier time: one that fires early, or for a
// deadline that has gone, costs a Tick that finds nothing to do, whereas
// moving a timer on every datagram costs a wake-up of the runtime's poller
// thread whenever the new time is the earliest.
type deadline struct {
	t     *time.Timer
	armed bool
	at    time.Time
}

func newDeadline() *deadline {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return &deadline{t: t}
}

func (d *deadline) set(now, at time.Time, ok bool) {
	if !ok || d.armed && !at.Before(d.at) {
		return
	}
	d.t.Reset(max(at.Sub(now), 0))
	d.armed, d.at = true, at
}

// fired is called when the timer's channel delivered.
func (d *deadline) fired() { d.armed = false }

// ServerStore is what the server runner persists to.
type ServerStore interface {
	Save(st state.ServerState, reply *state.CachedReply, forget ...netip.AddrPort) error
}

// ServerRunner owns the server's socket and feeds its state machine.
type ServerRunner struct {
	Conn  udpio.Conn
	Core  *Server
	Store ServerStore
	// Log is the trace; the runner queues what it logs for Log's handler,
	// so that a slow stderr never holds up the protocol. nil: discard.
	Log    *slog.Logger
	Faults *Faults
	Now    func() time.Time // nil: time.Now
	// Traffic counts the datagrams the server sends.
	Traffic Traffic

	mu      sync.Mutex
	stopped bool       // under mu: Run has returned or is returning
	fail    chan error // the first failure to persist
}

// Run serves until ctx is done. A failure to persist ends it with an error:
// the server does not answer what it could not make durable.
func (r *ServerRunner) Run(ctx context.Context) error {
	log, flushTrace := queueTrace(r.Log)
	defer func() {
		giveUp, end := graceAfter(ctx.Done())
		flushTrace(giveUp)
		end()
	}()
	now := r.Now
	if now == nil {
		now = time.Now
	}
	ep := newEndpoint(r.Conn, log, r.Faults, &r.Traffic, now)
	r.fail = make(chan error, 1)
	tm := newDeadline()
	handle := func(outs []Output) {
		for _, o := range outs {
			switch o := o.(type) {
			case Send:
				if !o.From.IsValid() {
					o.From = r.Core.ReplyFrom(o.To)
				}
				ep.send(o)
			case PersistServer:
				ep.flush()
				if err := r.Store.Save(o.State, o.Reply, o.Forget...); err != nil {
					r.stopped = true
					r.fail <- fmt.Errorf("server: %w", commitFailed("registry", err))
					ep.discard()
					return
				}
				tracePersistServer(log, o.State)
			case Event:
				if o.Drop {
					ep.traceDrop(log, o)
				} else {
					traceEvent(log, o)
				}
			}
		}
		ep.flush()
		at, ok := r.Core.NextDeadline()
		tm.set(now(), at, ok)
		at, ok = ep.drops.due()
		tm.set(now(), at, ok)
	}
	defer func() {
		r.mu.Lock()
		r.stopped = true
		ep.drops.flush(log, now())
		traceStopped(log, ctx) // the last line
		r.mu.Unlock()
	}()
	var outs []Output // reused turn after turn
	go ep.read(func(in []datagram) (bool, bool) {
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.stopped {
			return false, false
		}
		t := now()
		outs = ep.take(in, outs, func(d Datagram) []Output {
			o := r.Core.StepDatagram(t, d)
			// An answer goes from where the datagram it answers was
			// sent: one with a user's source forged then moves only the
			// source of an answer the user drops, and changes nothing
			// (what the server starts itself goes from ReplyFrom, which
			// only an authentic datagram sets).
			for i, out := range o {
				if s, ok := out.(Send); ok && s.To == d.From && !s.From.IsValid() && NotUnicast(d.Local) == "" {
					s.From = d.Local
					o[i] = s
				}
			}
			return o
		})
		handle(outs)
		clear(outs) // keep nothing alive until the next turn
		outs = outs[:0]
		return true, false
	}, nil)
	r.mu.Lock()
	handle(r.Core.Start(now()))
	r.mu.Unlock()
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-r.fail:
			return err
		case <-tm.t.C:
			r.mu.Lock()
			tm.fired()
			if !r.stopped {
				ep.drops.tick(ep.log, now())
				handle(r.Core.Tick(now()))
			}
			r.mu.Unlock()
		}
	}
}

// PeerStore is the peer's table file: the runner commits the core's batches
// to it, and the core reads records from it (Table).
type PeerStore interface {
	Apply(b state.Batch) error
	Lookup(longName string) (dataset.Record, bool, error)
	// Discard closes the file and removes it if nothing was ever written
	// to it.
	Discard() error
	Close() error
}

// PeerRunner owns the peer's socket, stdin and table file, and feeds its
// state machine.
type PeerRunner struct {
	Core *Peer
	// Lines delivers input lines; closed at end of input.
	Lines <-chan string
	// Out gets the results: their text, one Write each, or, if it is a
	// ResultWriter, the Results themselves. It is written by a goroutine
	// of the runner's own, in order, so that a reader who does not keep up
	// holds up the input, never the protocol; Run returns once everything
	// is written.
	Out io.Writer
	// Log is the trace; the runner queues what it logs for Log's handler,
	// so that a slow stderr never holds up the protocol (past a bound it
	// drops lines, and says how many). nil: discard.
	Log *slog.Logger
	// OpenStore opens the table file when the peer binds for register.
	OpenStore func(name string) (PeerStore, error)
	// Resume, if set, is the registration read from Store, a table file
	// already open: Run starts by resuming it (Peer.Resume), before the
	// first input line.
	Resume *state.Identity
	Store  PeerStore
	// Listen binds the peer's socket; nil: udpio.Listen, a real one.
	Listen func(netip.AddrPort) (udpio.Conn, error)
	Faults *Faults
	Now    func() time.Time
	// Idle, if set, is called after each input the runner handles (a line,
	// a datagram, a timer) that leaves the core idle (no command in progress
	// or queued), with the number of lines read from Lines so far: whoever
	// sent k lines knows the k-th has finished, its result lines written to
	// Out, once it sees Idle(n) with n >= k. Drivers of scripts and prompts
	// use it. Calls come one at a time, from the goroutine that writes Out,
	// after what was written before them; calls that nothing was written
	// between may come as one, with the later count.
	Idle func(linesRead int)
	// WantsLine, if set, is called after each input that leaves the core
	// waiting for the next line as a Long Name (the server answered a
	// query-dht typed without one), with the number of lines read so far:
	// a prompt shows it. It is called as Idle is.
	WantsLine func(linesRead int)
	// Notes, if set, gets what the person at the peer should read that is
	// no command's result: that input ended while the peer stays
	// registered, that the ring was healed without it. It is written as Out
	// is, in order with it.
	Notes io.Writer
	// Traffic counts the datagrams the peer sends.
	Traffic Traffic

	// Under mu:
	mu        sync.Mutex
	stopped   bool
	read      int
	ep        *endpoint
	store     PeerStore
	storeName string
	log       *slog.Logger
	out       *printer
	now       func() time.Time
	tm        *deadline
	quit      chan error    // exit (nil) or the failure that ends Run
	idle      chan struct{} // a turn left the core idle while awaitIdle, or able to take input again while held
	awaitIdle bool          // input ended: Run waits for the core to be idle
	held      bool          // the core holds as much input as it takes (InputFull): none is read
	ds        []Datagram
	// released is the socket of a refused register, closed when the turn
	// that gave it up ends unless a register in the same turn takes its
	// address again; closing holds one channel for each close under way,
	// closed when it is done.
	released *endpoint
	closing  []chan struct{}
	// unrun is what followed a commit the disk refused, not carried out.
	unrun []Output
}

// Run runs the peer until it deregisters, ctx is done, or input ends while
// the peer holds no registration.
func (r *PeerRunner) Run(ctx context.Context) (err error) {
	defer r.start()(ctx.Done())
	defer r.awaitCloses()
	defer func() {
		r.mu.Lock()
		r.stopped = true
		ep := r.ep
		if ep != nil {
			ep.flush()
			ep.drops.flush(r.logger(r.log), r.now())
		}
		traceStopped(r.logger(r.log), ctx) // the last line
		r.mu.Unlock()
		// Outside mu: the close waits for the reader to end its turn, and
		// the reader's turn begins by taking mu (and finding it stopped).
		if ep != nil {
			ep.conn.Close()
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.store != nil {
			if cerr := r.store.Close(); cerr != nil && err == nil {
				err = cerr
			}
		}
	}()
	if r.Resume != nil && r.Store != nil {
		r.mu.Lock()
		r.store, r.storeName = r.Store, r.Resume.Name
		r.Core.SetTable(r.Store)
		r.handle(r.Core.Resume(r.now(), *r.Resume))
		r.mu.Unlock()
	}
	lines := r.Lines
	for {
		// While the output waits, no more input: a reader who does not
		// keep up with the results stops the input, not the protocol.
		in, room := lines, (<-chan struct{})(nil)
		if r.out.full() {
			in, room = nil, r.out.room
		}
		r.mu.Lock()
		if r.held = r.Core.InputFull(); r.held {
			in = nil // until a turn takes some (handle)
		}
		if r.awaitIdle && r.Core.Idle() && !r.stopped {
			if !r.Core.Registered() {
				r.mu.Unlock()
				select {
				case err := <-r.quit: // the last input's failure, not a clean end
					return err
				default:
					return nil
				}
			}
			// Nothing more will change that: say it once.
			r.awaitIdle = false
			if r.Core.InRing() {
				r.note(fmt.Sprintf("input ended; still registered as %s, serving the ring until stopped (Ctrl-C or SIGTERM)", r.Core.Name()))
			} else {
				r.note(fmt.Sprintf("input ended; still registered as %s, which a setup-dht may pick for its ring: running until stopped (Ctrl-C or SIGTERM)", r.Core.Name()))
			}
		}
		r.mu.Unlock()
		select {
		case <-ctx.Done():
			// Stopped (SIGINT, SIGTERM): the command in progress still
			// gets its line, which the printer writes before Run returns.
			r.mu.Lock()
			if !r.stopped {
				r.handle(r.Core.Stop(r.now()))
				if r.Core.InRing() {
					r.note(fmt.Sprintf("stopped while %s holds a place in the ring: started again on the same --db it resumes it; if not, the server heals the ring without it once it is silent for --dead-after", r.Core.Name()))
				}
			}
			r.mu.Unlock()
			return nil
		case err := <-r.quit:
			return err
		case <-r.idle:
		case <-room:
		case line, ok := <-in:
			// A register that follows may bind the address a refused
			// one let go of.
			r.awaitCloses()
			r.mu.Lock()
			if !ok {
				lines = nil
				if !r.stopped {
					r.awaitIdle = true
					r.handle(r.Core.EndOfInput(r.now()))
				}
			} else if !r.stopped {
				r.read++
				traceInput(r.logger(r.log), line, !r.Core.Idle())
				r.handle(r.Core.Input(r.now(), line))
			}
			r.mu.Unlock()
		case <-r.tm.t.C:
			r.awaitCloses()
			r.mu.Lock()
			r.tm.fired()
			if !r.stopped {
				if r.ep != nil {
					r.ep.drops.tick(r.logger(r.log), r.now())
				}
				r.handle(r.Core.Tick(r.now()))
			}
			r.mu.Unlock()
		}
	}
}

// start sets up what Run's turns use, and returns what ends it once Run
// has stopped: the writing of what is queued for Out and the trace, for
// stopGrace at most once signal is closed (graceAfter).
func (r *PeerRunner) start() (stop func(signal <-chan struct{})) {
	log, flushTrace := queueTrace(r.Log)
	r.log = log
	r.out = newPrinter(r.Idle, r.WantsLine)
	r.now = r.Now
	if r.now == nil {
		r.now = time.Now
	}
	r.tm = newDeadline()
	r.quit = make(chan error, 1)
	r.idle = make(chan struct{}, 1)
	return func(signal <-chan struct{}) {
		r.tm.t.Stop()
		giveUp, end := graceAfter(signal)
		defer end()
		r.out.close(giveUp)
		flushTrace(giveUp)
	}
}

// printResult queues a result for Out (as text, formatted in the one place
// results are, or typed to a ResultWriter), and traces it; with mu held.
func (r *PeerRunner) printResult(res Result) {
	if w, ok := r.Out.(ResultWriter); ok {
		r.out.writeResult(w, res)
	} else {
		r.out.write(r.Out, append(res.AppendText(nil), '\n'))
	}
	traceResult(r.logger(r.log), res)
}

// note queues a line for the person at the peer, or traces it if no one
// reads Notes; with mu held.
func (r *PeerRunner) note(line string) {
	if r.Notes != nil {
		r.out.write(r.Notes, append([]byte(line), '\n'))
		return
	}
	traceEvent(r.logger(r.log), event(line))
}

// awaitCloses waits until the sockets given up so far are closed; without
// mu, which their readers may need to end their turn.
func (r *PeerRunner) awaitCloses() {
	r.mu.Lock()
	cs := r.closing
	r.closing = nil
	r.mu.Unlock()
	for _, c := range cs {
		<-c
	}
}

// onDatagrams is the socket reader's turn: it reports false once the
// runner has stopped.
// Stores ask for a drain: a commit costs a disk flush, and what is already
// waiting is committed by the same one.
func (r *PeerRunner) onDatagrams(ep *endpoint, in []datagram) (ok, drain bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopped || r.ep != ep {
		return false, false
	}
	t := r.now()
	outs := r.ep.take(in, nil, func(d Datagram) []Output {
		r.ds = append(r.ds[:0], d)
		return r.Core.Receive(t, r.ds)
	})
	if r.Core.Unsettled() {
		exit, err := r.exec(outs)
		if r.ep != nil {
			r.ep.flush()
		}
		if err != nil || exit {
			r.stopFailed(err)
			r.stop(err)
			return false, false
		}
		return true, true
	}
	r.handle(append(outs, r.Core.Settle()...))
	return true, false
}

func (r *PeerRunner) settle(ep *endpoint) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopped || r.ep != ep {
		return false
	}
	r.handle(r.Core.Settle())
	return true
}

// stop ends Run with err (nil: a clean exit); with mu held.
func (r *PeerRunner) stop(err error) {
	r.stopped = true
	r.quit <- err // room for one, and nothing is handled once stopped
}

// stopFailed, for a runner that stops on an error of its own (its file
// refused a commit; nil: none), prints a line for each command typed and
// not yet answered, saying why; with mu held.
func (r *PeerRunner) stopFailed(err error) {
	if err == nil {
		return
	}
	// The process stops on an error of its own (its file refused a
	// commit): each command typed still gets its line, saying why;
	// so does one whose result followed the commit: a success that
	// may rest on it (a resume's, whose line a script reads) is a
	// failure, saying why; a failure, a query's answer, help's list
	// and a sleep's end stand as they were.
	why := "the peer stopped: " + strings.TrimPrefix(err.Error(), "peer: ")
	for _, o := range r.unrun {
		if res, ok := o.(Result); ok {
			switch res.Cmd {
			case CmdQueryDHT, CmdHelp, CmdSleep, CmdUnknown:
			default:
				if res.OK {
					res = resultFailed(res.Cmd, why)
				}
			}
			r.printResult(res)
		}
	}
	r.unrun = nil
	for _, o := range r.Core.StopFor(r.now(), why) {
		if res, ok := o.(Result); ok {
			r.printResult(res)
		}
	}
}

// handle carries out a core's outputs, sends what they sent, and sets the
// timer; with mu held. An exit or a failure stops the runner.
func (r *PeerRunner) handle(outs []Output) {
	exit, err := r.exec(outs)
	if r.ep != nil {
		r.ep.flush()
	}
	r.stopFailed(err)
	if err != nil || exit {
		r.stop(err)
		return
	}
	at, ok := r.Core.NextDeadline()
	r.tm.set(r.now(), at, ok)
	if r.ep != nil {
		at, ok = r.ep.drops.due()
		r.tm.set(r.now(), at, ok)
	}
	if r.held && !r.Core.InputFull() {
		r.held = false
		select {
		case r.idle <- struct{}{}:
		default:
		}
	}
	if r.Core.Idle() {
		if r.awaitIdle {
			select {
			case r.idle <- struct{}{}:
			default:
			}
		}
		r.out.hookIdle(r.read)
	}
	if r.Core.WantsLongName() {
		r.out.hookWantsLine(r.read)
	}
}

func (r *PeerRunner) exec(outs []Output) (exit bool, err error) {
	log := r.log
	defer r.closeReleased()
	for len(outs) > 0 {
		o := outs[0]
		outs = outs[1:]
		switch o := o.(type) {
		case Send:
			if r.ep == nil {
				traceEvent(r.logger(log), dropped("no socket to send from", o.To, slog.String("type", o.Msg.Type().String())))
				continue
			}
			r.ep.send(o)
		case Result:
			r.printResult(o)
		case Notice:
			r.note(o.Line)
		case Event:
			if o.Drop && r.ep != nil {
				r.ep.traceDrop(r.logger(log), o)
			} else {
				traceEvent(r.logger(log), o)
			}
		case PersistPeer:
			// What is ready to go goes before the commit, so that others
			// work while this process waits for the disk.
			if r.ep != nil {
				r.ep.flush()
			}
			if r.store == nil {
				return false, fmt.Errorf("peer: persist before the table file is open")
			}
			// The printer's turn first: the commit keeps this process's
			// only P for as long as the disk takes (raw system calls),
			// and nothing queued waits for it. A few turns, not a wait:
			// the scheduler takes the yielder back first one time in 61,
			// and a printer held up by its reader must not hold the
			// commit.
			for i := 0; o.Tidy && i < 3 && r.out.busy(); i++ {
				runtime.Gosched()
			}
			began := r.now()
			if err := r.store.Apply(o.Batch); err != nil {
				if o.Forget != "" {
					return false, fmt.Errorf("peer: %w", forgetFailed(o.Forget, err))
				}
				// Fail-stop, as a crash: nothing that follows the commit
				// (a committed, a result) goes out, and the file keeps
				// its last whole commit, which a restart resumes from.
				// The results that followed it are said failed (handle).
				r.unrun = outs
				return false, fmt.Errorf("peer: %w", commitFailed("file (registration, place and table)", err))
			}
			// The socket was not read meanwhile: what waits for an ack
			// that came during the commit waits that much longer.
			r.Core.Deaf(r.now().Sub(began))
			tracePersistPeer(r.logger(log), o.Batch)
		case DiscardStore:
			if r.store != nil {
				r.Core.SetTable(nil)
				if err := r.store.Discard(); err != nil {
					traceEvent(r.logger(log), event("could not remove the table file of a failed register", slog.String("err", err.Error())))
				}
				r.store = nil
			}
		case Unbind:
			if r.ep != nil {
				r.ep.flush()
				r.ep.drops.flush(r.ep.log, r.now())
				traceEvent(r.logger(log), event("closing the socket of a refused register", attrAddr(r.ep.local)))
				r.released, r.ep = r.ep, nil
			}
		case Bind:
			// The time after the bind, which may open a file: the request
			// that follows is timed from it.
			bindErr := r.bind(o, log)
			more := r.Core.Bound(r.now(), o.Addr, bindErr)
			var stop error
			switch {
			case bindErr != nil && slices.ContainsFunc(more, isResumeFailure):
				// The file is this user's: no other name or address is
				// to be tried with it.
				hint := ""
				if errors.Is(bindErr, syscall.EADDRINUSE) {
					hint = fmt.Sprintf(" (is a peer of %s running already?)", o.Name)
				}
				stop = fmt.Errorf("peer: the resume of %s failed: %w%s", o.Name, bindErr, hint)
			case refusedFile(bindErr):
				// The register fails, and so does the process: a file it
				// cannot trust is not one to try another name with.
				stop = fmt.Errorf("peer: %w", bindErr)
			}
			if stop != nil {
				for _, m := range more {
					if res, ok := m.(Result); ok {
						r.printResult(res)
					}
				}
				return false, stop
			}
			outs = append(more, outs...)
		case Exit:
			traceDebug(r.logger(log), TraceExit)
			exit = true
		case TableUnreadable:
			return false, fmt.Errorf("peer: cannot read the table file, stopping (the ring heals without this node): %w", o.Err)
		}
	}
	return exit, nil
}

func isResumeFailure(o Output) bool {
	r, ok := o.(Result)
	return ok && r.Cmd == CmdResume && !r.OK
}

// refusedFile reports whether err is a table file refused for what it
// holds (damaged, not a dht file, another kind or version), rather than
// one busy or out of reach.
func refusedFile(err error) bool {
	for _, e := range []error{store.ErrDamaged, store.ErrNotDHT, store.ErrWrongKind, store.ErrVersion} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

func (r *PeerRunner) bind(b Bind, log *slog.Logger) error {
	// Bind comes only while unregistered: a register refused by the server
	// may be retried under another name or at another address.
	if r.store != nil && r.storeName != b.Name {
		r.Core.SetTable(nil)
		if err := r.store.Close(); err != nil {
			return err
		}
		r.store = nil
	}
	if r.store == nil && r.OpenStore != nil {
		st, err := r.OpenStore(b.Name)
		if err != nil {
			return fmt.Errorf("cannot open the table file: %w", err)
		}
		r.store, r.storeName = st, b.Name
		r.Core.SetTable(st)
	}
	if old := r.released; old != nil && r.ep == nil && old.local == b.Addr {
		// Refused, and tried again at the same address in the same turn:
		// the socket is still open.
		r.ep, r.released = old, nil
	}
	if r.ep != nil && r.ep.local == b.Addr {
		r.ep.log = log.With(slog.String("node", b.Name))
		return nil
	}
	listen := r.Listen
	if listen == nil {
		listen = listenUDP
	}
	conn, err := listen(b.Addr)
	if err != nil {
		var oe *net.OpError
		if errors.As(err, &oe) {
			err = oe.Err // without "listen udp4 ADDR", said below
		}
		if errors.Is(err, syscall.EADDRNOTAVAIL) {
			return fmt.Errorf("cannot bind %s: %w (%s is not an address of this host)", b.Addr, err, b.Addr.Addr())
		}
		return fmt.Errorf("cannot bind %s: %w", b.Addr, err)
	}
	if old := r.ep; old != nil {
		old.flush()
		old.drops.flush(old.log, r.now())
		r.closeReleased()
		r.released = old
	}
	ep := newEndpoint(conn, log.With(slog.String("node", b.Name)), r.Faults, &r.Traffic, r.now)
	ep.refused = func(to netip.AddrPort, err error) { r.Core.SendFailed(r.now(), to, err) }
	r.ep = ep
	go ep.read(func(in []datagram) (bool, bool) { return r.onDatagrams(ep, in) }, func() bool { return r.settle(ep) })
	return nil
}

func listenUDP(a netip.AddrPort) (udpio.Conn, error) {
	c, err := udpio.Listen(a)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// closeReleased closes the socket a refused register gave up, if no
// register took it back; with mu held. It is closed by another goroutine:
// this may be the socket's reader, in its turn, and a close waits for that
// turn to end (which it does at once: the endpoint is no longer r.ep).
// awaitCloses waits for it.
func (r *PeerRunner) closeReleased() {
	old := r.released
	if old == nil {
		return
	}
	r.released = nil
	done := make(chan struct{})
	r.closing = append(r.closing, done)
	go func() {
		old.conn.Close()
		close(done)
	}()
}

// LinesFrom reads lines from r into a channel that is closed at end of
// input (or at a read error, which ends it too) or when done is closed. A
// line ends at LF; a CR before it and the LF are removed, and a last line
// without LF counts. A line longer than MaxInputLine is handed over cut to
// its first MaxInputLine+1 bytes (the rest is read and dropped), for the
// peer to refuse, so that no line stops the input or fills the memory.
func LinesFrom(r io.Reader, done <-chan struct{}) <-chan string {
	ch := make(chan string)
	go func() {
		defer close(ch)
		lr := lineReader{br: bufio.NewReaderSize(r, 64<<10)}
		for {
			line, ok := lr.next()
			if !ok {
				return
			}
			select {
			case ch <- line:
			case <-done:
				return
			}
		}
	}()
	return ch
}

type lineReader struct {
	br  *bufio.Reader
	buf []byte
	// ended: the input ended after a last line without its line end. A
	// terminal reads on after an end of input (Ctrl-D after a partial
	// line, then again): the input still ends there, as it would from a
	// pipe or a file.
	ended bool
	// started: a line was returned; a byte-order mark (U+FEFF, which some
	// editors write first) is dropped from the first line only, as dht
	// play and the dataset loader drop it.
	started bool
}

// next returns the next line; false at the end of input.
func (l *lineReader) next() (string, bool) {
	// Room for a line of MaxInputLine bytes with its CR LF, so that the
	// peer sees whether what is kept is longer than that.
	const room = MaxInputLine + 2
	l.buf = l.buf[:0]
	if l.ended {
		return "", false
	}
	for {
		frag, err := l.br.ReadSlice('\n')
		l.buf = append(l.buf, frag[:min(len(frag), room-len(l.buf))]...)
		switch {
		case err == bufio.ErrBufferFull:
			continue
		case err != nil && len(l.buf) == 0:
			return "", false
		case err != nil:
			l.ended = true
		}
		b := bytes.TrimSuffix(l.buf, []byte("\n"))
		if !l.started {
			l.started = true
			b = bytes.TrimPrefix(b, []byte("\xef\xbb\xbf"))
		}
		return string(bytes.TrimSuffix(b, []byte("\r"))), true
	}
}

// forgetFailed is why a peer stops when its file refuses the commit of a
// deregister the server has made: the user is deregistered, and the file
// may still hold the registration.
func forgetFailed(name string, err error) error {
	if errors.Is(err, store.ErrGone) {
		return fmt.Errorf("%s is deregistered, but the file could not be cleared, stopping: %w", name, err)
	}
	return fmt.Errorf("%s is deregistered, but the file could not be cleared, stopping: %w (a peer started on the same --db registers %s anew)", name, err, name)
}

// commitFailed is why a process stops when its file refuses a commit (a
// full disk, a failing one): it stops as if it had crashed, having sent
// nothing that claims the commit, and a restart on the same file takes up
// its last whole commit; unless the file is gone from under it (deleted,
// replaced, cut short) or damaged, which the error says.
func commitFailed(what string, err error) error {
	switch {
	case errors.Is(err, store.ErrGone):
		// Nothing to resume from at that path: the error says what became
		// of the file.
		return fmt.Errorf("cannot commit the %s, stopping: %w", what, err)
	case errors.Is(err, store.ErrDamaged):
		// bbolt failed on pages it found damaged (or written by another
		// program): what was reported done may be damaged with them.
		return fmt.Errorf("cannot commit the %s, stopping: %w (dht inspect says what the file holds; a start on it refuses it if it is damaged on disk)", what, err)
	}
	return fmt.Errorf("cannot commit the %s, stopping: %w (what this process reported done is on disk; start it again on the same --db once the disk is fixed)", what, err)
}
