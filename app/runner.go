package app

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync/atomic"
	"time"

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
	from netip.AddrPort
	h    wire.Header
	msg  wire.Message
	size int
	err  error
}

// endpoint is one UDP socket with its reader goroutine, tracing and fault
// injection.
type endpoint struct {
	conn   *net.UDPConn
	local  netip.AddrPort
	log    *slog.Logger
	faults *Faults
	buf    []byte
	tr     *Traffic
}

// Traffic counts what a runner's socket did. It may be read while the runner
// runs.
type Traffic struct {
	Datagrams atomic.Uint64 // written to the socket
	Bytes     atomic.Uint64 // in those datagrams
	Stores    atomic.Uint64 // store datagrams among them, retransmissions included
	Lost      atomic.Uint64 // dropped on purpose by Faults instead of being written
}

func newEndpoint(conn *net.UDPConn, log *slog.Logger, faults *Faults, tr *Traffic) *endpoint {
	local, _ := netip.ParseAddrPort(conn.LocalAddr().String())
	log = log.With(slog.String("local", local.String()))
	return &endpoint{conn: conn, local: local, log: log, faults: faults, tr: tr, buf: make([]byte, 0, wire.MaxDatagram)}
}

// read runs until the socket is closed, handing decoded datagrams to out.
func (e *endpoint) read(done <-chan struct{}, out chan<- datagram) {
	buf := make([]byte, wire.MaxDatagram+1)
	for {
		n, from, err := e.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue // e.g. ICMP port unreachable reported on a later read
		}
		d := datagram{from: netip.AddrPortFrom(from.Addr().Unmap(), from.Port()), size: n}
		d.h, d.msg, d.err = wire.Decode(buf[:n])
		select {
		case out <- d:
		case <-done:
			return
		}
	}
}

func (e *endpoint) traceRecv(d datagram) {
	if d.err != nil {
		e.log.Warn("drop", slog.String("addr", d.from.String()), slog.Int("bytes", d.size), slog.String("err", d.err.Error()))
		return
	}
	if e.log.Enabled(context.Background(), slog.LevelInfo) {
		e.log.LogAttrs(context.Background(), slog.LevelInfo, "recv", traceAttrs(d.from, d.h.ID, d.h.Flags, d.msg)...)
	}
}

func traceAttrs(addr netip.AddrPort, id uint32, flags wire.Flags, m wire.Message) []slog.Attr {
	attrs := []slog.Attr{slog.String("addr", addr.String()), slog.String("type", m.Type().String()), slog.Uint64("id", uint64(id))}
	if flags&wire.FlagRetransmit != 0 {
		attrs = append(attrs, slog.Bool("retransmit", true))
	}
	if lv, ok := m.(slog.LogValuer); ok {
		attrs = append(attrs, slog.Any("msg", lv))
	}
	return attrs
}

// send encodes and writes one datagram, applying fault injection.
func (e *endpoint) send(s Send) {
	b, err := wire.Append(e.buf[:0], s.ID, s.Flags, s.Msg)
	if err != nil {
		e.log.Error("cannot encode", slog.String("addr", s.To.String()), slog.String("type", s.Msg.Type().String()), slog.String("err", err.Error()))
		return
	}
	e.buf = b[:0]
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
	if e.log.Enabled(context.Background(), slog.LevelInfo) {
		e.log.LogAttrs(context.Background(), slog.LevelInfo, "send", traceAttrs(s.To, s.ID, s.Flags, s.Msg)...)
	}
	for range copies {
		if _, err := e.conn.WriteToUDPAddrPort(b, s.To); err != nil {
			e.log.Warn("send failed", slog.String("addr", s.To.String()), slog.String("err", err.Error()))
			continue
		}
		e.tr.Datagrams.Add(1)
		e.tr.Bytes.Add(uint64(len(b)))
		if s.Msg.Type() == wire.TypeStore {
			e.tr.Stores.Add(1)
		}
	}
}

func traceEvent(log *slog.Logger, ev Event) {
	log.LogAttrs(context.Background(), slog.LevelWarn, ev.Msg, ev.Attrs...)
}

// timer wraps a reusable time.Timer set to a core's next deadline.
type timer struct {
	t *time.Timer
}

func newTimer() *timer {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return &timer{t: t}
}

func (t *timer) set(now, at time.Time, ok bool) {
	t.t.Stop()
	if ok {
		t.t.Reset(max(at.Sub(now), 0))
	}
}

// ServerStore is what the server runner persists to.
type ServerStore interface {
	Save(st store.ServerState, reply *store.CachedReply) error
}

// ServerRunner owns the server's socket and feeds its state machine.
type ServerRunner struct {
	Conn   *net.UDPConn
	Core   *Server
	Store  ServerStore
	Log    *slog.Logger // nil: discard
	Faults *Faults
	Now    func() time.Time // nil: time.Now
	// Traffic counts the datagrams the server sends.
	Traffic Traffic
}

// Run serves until ctx is done. A failure to persist ends it with an error:
// the server does not answer what it could not make durable.
func (r *ServerRunner) Run(ctx context.Context) error {
	log := orDiscard(r.Log)
	now := r.Now
	if now == nil {
		now = time.Now
	}
	ep := newEndpoint(r.Conn, log, r.Faults, &r.Traffic)
	done := make(chan struct{})
	defer close(done)
	in := make(chan datagram, 64)
	go ep.read(done, in)
	tm := newTimer()
	for {
		at, ok := r.Core.NextDeadline()
		tm.set(now(), at, ok)
		var outs []Output
		select {
		case <-ctx.Done():
			return nil
		case d := <-in:
			ep.traceRecv(d)
			if d.err != nil {
				continue
			}
			outs = r.Core.Step(now(), d.from, d.h, d.msg)
		case <-tm.t.C:
			outs = r.Core.Tick(now())
		}
		for _, o := range outs {
			switch o := o.(type) {
			case Send:
				ep.send(o)
			case PersistServer:
				if err := r.Store.Save(o.State, o.Reply); err != nil {
					return fmt.Errorf("server: persist: %w", err)
				}
				tracePersistServer(log, o.State)
			case Event:
				traceEvent(log, o)
			}
		}
	}
}

func orDiscard(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l
}

// PeerStore is what the peer runner persists its table to.
type PeerStore interface {
	Apply(b store.Batch) error
	Close() error
}

// PeerRunner owns the peer's socket, stdin and table file, and feeds its
// state machine.
type PeerRunner struct {
	Core *Peer
	// Lines delivers input lines; closed at end of input.
	Lines <-chan string
	Out   io.Writer // results
	Log   *slog.Logger
	// OpenStore opens the table file when the peer binds for register.
	OpenStore func(name string) (PeerStore, error)
	Faults    *Faults
	Now       func() time.Time
	// Ready, if set, is called with the bound address after each bind.
	Ready func(netip.AddrPort)
	// Idle, if set, is called from Run's goroutine after each input it
	// handles that leaves the core idle (no command in progress or queued),
	// with the number of lines read from Lines so far: whoever sent k lines
	// knows the k-th has finished, its result lines written to Out, once it
	// sees Idle(n) with n >= k. Drivers of scripts and prompts use it.
	Idle func(linesRead int)
	// Traffic counts the datagrams the peer sends.
	Traffic Traffic

	ep        *endpoint
	store     PeerStore
	storeName string
}

// Run runs the peer until it deregisters, ctx is done, or input ends while
// the peer holds no registration.
func (r *PeerRunner) Run(ctx context.Context) (err error) {
	log := orDiscard(r.Log)
	now := r.Now
	if now == nil {
		now = time.Now
	}
	done := make(chan struct{})
	in := make(chan datagram, 64)
	defer func() {
		close(done)
		if r.ep != nil {
			r.ep.conn.Close()
		}
		if r.store != nil {
			if cerr := r.store.Close(); cerr != nil && err == nil {
				err = cerr
			}
		}
	}()
	lines := r.Lines
	eof := false
	read := 0
	tm := newTimer()
	for {
		if eof && r.Core.Idle() && !r.Core.Registered() {
			return nil
		}
		at, ok := r.Core.NextDeadline()
		tm.set(now(), at, ok)
		var outs []Output
		select {
		case <-ctx.Done():
			return nil
		case line, ok := <-lines:
			if !ok {
				eof, lines = true, nil
				continue
			}
			read++
			traceInput(r.logger(log), line, !r.Core.Idle())
			outs = r.Core.Input(now(), line)
		case d := <-in:
			r.ep.traceRecv(d)
			if d.err != nil {
				continue
			}
			outs = r.Core.Step(now(), d.from, d.h, d.msg)
		case <-tm.t.C:
			outs = r.Core.Tick(now())
		}
		exit, err := r.exec(now, log, outs, done, in)
		if err != nil || exit {
			return err
		}
		if r.Idle != nil && r.Core.Idle() {
			r.Idle(read)
		}
	}
}

func (r *PeerRunner) exec(now func() time.Time, log *slog.Logger, outs []Output, done chan struct{}, in chan datagram) (exit bool, err error) {
	for len(outs) > 0 {
		o := outs[0]
		outs = outs[1:]
		switch o := o.(type) {
		case Send:
			r.ep.send(o)
		case Print:
			fmt.Fprintln(r.Out, o.Line)
			tracePrint(r.logger(log), o.Line)
		case Event:
			traceEvent(r.logger(log), o)
		case PersistPeer:
			if r.store == nil {
				return false, fmt.Errorf("peer: persist before the table file is open")
			}
			if err := r.store.Apply(o.Batch); err != nil {
				return false, fmt.Errorf("peer: persist: %w", err)
			}
			tracePersistPeer(r.logger(log), o.Batch)
		case Bind:
			more := r.Core.Bound(now(), o.Addr, r.bind(o, log, done, in))
			outs = append(more, outs...)
		case Exit:
			traceDebug(r.logger(log), TraceExit)
			exit = true
		}
	}
	return exit, nil
}

func (r *PeerRunner) bind(b Bind, log *slog.Logger, done chan struct{}, in chan datagram) error {
	// Bind comes only while unregistered: a register refused by the server
	// may be retried under another name or at another address.
	if r.store != nil && r.storeName != b.Name {
		if err := r.store.Close(); err != nil {
			return err
		}
		r.store = nil
	}
	if r.store == nil && r.OpenStore != nil {
		st, err := r.OpenStore(b.Name)
		if err != nil {
			return err
		}
		r.store, r.storeName = st, b.Name
	}
	if r.ep != nil && r.ep.local == b.Addr {
		r.ep.log = log.With(slog.String("node", b.Name))
		return nil
	}
	conn, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(b.Addr))
	if err != nil {
		return err
	}
	setBuffers(conn)
	if r.ep != nil {
		r.ep.conn.Close()
	}
	r.ep = newEndpoint(conn, log.With(slog.String("node", b.Name)), r.Faults, &r.Traffic)
	go r.ep.read(done, in)
	if r.Ready != nil {
		r.Ready(r.ep.local)
	}
	return nil
}

// setBuffers asks for roomy socket buffers; the window keeps us well inside
// them, this only absorbs bursts.
func setBuffers(c *net.UDPConn) {
	_ = c.SetReadBuffer(4 << 20)
	_ = c.SetWriteBuffer(4 << 20)
}

// ListenServer opens the server's socket.
func ListenServer(addr netip.AddrPort) (*net.UDPConn, error) {
	c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(addr))
	if err != nil {
		return nil, err
	}
	setBuffers(c)
	return c, nil
}

// LinesFrom reads lines from r into a channel that is closed at end of
// input or when done is closed.
func LinesFrom(r io.Reader, done <-chan struct{}) <-chan string {
	ch := make(chan string)
	go func() {
		defer close(ch)
		sc := newLineScanner(r)
		for sc.Scan() {
			select {
			case ch <- sc.Text():
			case <-done:
				return
			}
		}
	}()
	return ch
}

func newLineScanner(r io.Reader) *bufio.Scanner {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	return sc
}
