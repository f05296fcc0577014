package udpio

import (
	"errors"
	"net"
	"net/netip"
	"sync"
	"syscall"
)

// Net is an in-memory network of Conns, for tests. A datagram written to
// an address where a Conn of the same Net listens is queued for it, a
// copy, in order; to any other address, or to a Conn whose queue is full,
// it is lost, as UDP loses it. A Conn waits for datagrams on channels, so
// that in a testing/synctest bubble (make the Net inside it) time moves
// on whenever every goroutine waits.
type Net struct {
	mu    sync.Mutex
	conns map[netip.AddrPort]*memConn
	port  uint16 // the last port picked for a Listen at port 0
}

// memQueue is how many datagrams wait for a Conn of a Net before more are
// lost: its socket buffer.
const memQueue = 1024

// NewNet returns an empty network.
func NewNet() *Net { return &Net{conns: map[netip.AddrPort]*memConn{}, port: 49151} }

// Listen binds a Conn to addr, which must name an IPv4 host (port 0: a
// free one). An address already bound is refused as the system refuses it.
func (n *Net) Listen(addr netip.AddrPort) (Conn, error) {
	if !addr.Addr().Is4() || addr.Addr().IsUnspecified() {
		return nil, errors.New("udpio: a Net binds only a given IPv4 host")
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if addr.Port() == 0 {
		for {
			n.port = max(n.port+1, 49152)
			if a := netip.AddrPortFrom(addr.Addr(), n.port); n.conns[a] == nil {
				addr = a
				break
			}
		}
	}
	if n.conns[addr] != nil {
		return nil, &net.OpError{Op: "listen", Net: "udp4", Addr: net.UDPAddrFromAddrPort(addr), Err: syscall.EADDRINUSE}
	}
	c := &memConn{net: n, local: addr, in: make(chan Message, memQueue), closed: make(chan struct{})}
	n.conns[addr] = c
	return c, nil
}

func (n *Net) deliver(from netip.AddrPort, m Message) {
	n.mu.Lock()
	to := n.conns[m.Addr]
	n.mu.Unlock()
	if to == nil {
		return
	}
	select {
	case to.in <- Message{Buf: append([]byte(nil), m.Buf...), Addr: from}:
	default: // the queue is full: lost
	}
}

type memConn struct {
	net    *Net
	local  netip.AddrPort
	in     chan Message
	closed chan struct{}
	once   sync.Once
}

func (c *memConn) ReadBatches(ms []Message, handle func([]Message) (ok, more bool)) error {
	if len(ms) == 0 {
		panic("udpio: ReadBatches without room for a datagram")
	}
	for {
		select {
		case m := <-c.in:
			put(&ms[0], m)
		case <-c.closed:
			return net.ErrClosed
		}
		n := c.take(ms, 1)
		for {
			ok, more := handle(ms[:n])
			if !ok {
				return nil
			}
			if !more {
				break
			}
			n = c.take(ms, 0)
		}
	}
}

// take puts what is waiting into ms from ms[n] on, without waiting, and
// returns how many ms then holds.
func (c *memConn) take(ms []Message, n int) int {
	for ; n < len(ms); n++ {
		select {
		case m := <-c.in:
			put(&ms[n], m)
		default:
			return n
		}
	}
	return n
}

// put reads m into dst; what dst has no room for is lost, as a socket
// loses it.
func put(dst *Message, m Message) {
	dst.N, dst.Addr = copy(dst.Buf, m.Buf), m.Addr
}

func (c *memConn) WriteBatch(ms []Message) (int, error) {
	select {
	case <-c.closed:
		return 0, net.ErrClosed
	default:
	}
	for _, m := range ms {
		c.net.deliver(c.local, m)
	}
	return len(ms), nil
}

func (c *memConn) LocalAddr() netip.AddrPort { return c.local }

// Close frees the address at once and ends ReadBatches.
func (c *memConn) Close() error {
	err := net.ErrClosed
	c.once.Do(func() {
		err = nil
		c.net.mu.Lock()
		delete(c.net.conns, c.local)
		c.net.mu.Unlock()
		close(c.closed)
	})
	return err
}
