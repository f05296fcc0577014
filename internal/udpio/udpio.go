// Package udpio is the runners' UDP transport: Conn, a socket read and
// written a batch of datagrams at a time, implemented by a real socket
// (UDP, with recvmmsg and sendmmsg on Linux) and by an in-memory network
// (Net) on which tests drive the runners under testing/synctest.
//
// A Conn is read by one goroutine, through ReadBatches, and written by
// another, through WriteBatch; Close may come from any.
package udpio

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"
)

// Message is one datagram.
type Message struct {
	// Buf, for a read, is the room for a datagram, which it fills from
	// the start; for a write, it is the datagram.
	Buf []byte
	// N, for a read, is the datagram's length: it is Buf[:N]. A write
	// ignores it.
	N int
	// Addr, for a read, is where the datagram came from; for a write,
	// where it goes.
	Addr netip.AddrPort
	// Local, on a socket bound to every address of its host (0.0.0.0)
	// where the system says (Linux), is for a read the address the
	// datagram was sent to (for one sent to a broadcast or multicast
	// address, the host's address on the route back to its sender: the
	// address to answer from), and for a write the address to send it from
	// (zero: the system's choice, the address of the route to Addr,
	// which on a host of several addresses need not be the one a remote
	// wrote to). Elsewhere a read leaves it zero and a write ignores it.
	Local netip.Addr
	// At, for a read on a socket asked to (UDP.Stamp) where the system
	// says (Linux), is when the system received the datagram, by the wall
	// clock: how long it then waited in the socket's queue for a process
	// that did not read (stopped, starved of CPU) is what the time of the
	// read cannot tell. Zero otherwise; a write ignores it. Linux turns
	// the stamping on for all sockets in a work item the first socket's
	// asking schedules: until it has run, a datagram is stamped as it is
	// read.
	At time.Time
}

// Conn is a UDP socket read and written a batch of datagrams at a time.
type Conn interface {
	// ReadBatches reads datagrams into ms and hands each lot that one read
	// returns to handle, as the first datagrams of ms, valid until handle
	// returns. It serves until handle reports false (it returns nil) or
	// the conn is closed (net.ErrClosed). With more, handle asks for one
	// more read before waiting: it gets what is waiting, or an empty lot
	// when nothing is.
	ReadBatches(ms []Message, handle func(lot []Message) (ok, more bool)) error
	// WriteBatch sends the datagrams of ms, in order, and returns how many
	// it sent: all of them, or those before the first that failed, with
	// its error (net.ErrClosed once the conn is closed). It may send
	// fewer than len(ms) without an error when that is what one system
	// call takes; the caller writes the rest.
	WriteBatch(ms []Message) (int, error)
	LocalAddr() netip.AddrPort
	Close() error
}

// UDP is a real IPv4 UDP socket.
type UDP struct {
	c     *net.UDPConn
	local netip.AddrPort
	r     batchReader
	w     batchWriter
}

// writeBatch bounds the datagrams one system call writes.
const writeBatch = 64

// Listen binds an IPv4 UDP socket to addr (port 0: one the system picks),
// with roomy buffers. Its error is net.ListenUDP's, or a NetBroadcast: the
// system binds a network's broadcast address, as a host's, but a socket
// there is no one host's.
func Listen(addr netip.AddrPort) (*UDP, error) {
	if err := NetBroadcastOf(addr.Addr()); err != nil {
		return nil, err
	}
	c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(addr))
	if err != nil {
		return nil, err
	}
	rc, err := c.SyscallConn()
	if err != nil {
		c.Close()
		return nil, err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = noBroadcast(fd) }); err != nil || serr != nil {
		c.Close()
		return nil, fmt.Errorf("udpio: SO_BROADCAST off: %w", errors.Join(err, serr))
	}
	// The runners' flow control keeps them well inside these; they only
	// absorb bursts.
	_ = c.SetReadBuffer(4 << 20)
	_ = c.SetWriteBuffer(4 << 20)
	u := &UDP{c: c}
	local := c.LocalAddr().(*net.UDPAddr).AddrPort()
	u.local = netip.AddrPortFrom(local.Addr().Unmap(), local.Port())
	if u.local.Addr().IsUnspecified() && pktinfoOK {
		if err := enablePktinfo(c); err != nil {
			c.Close()
			return nil, err
		}
		u.r.pktinfo, u.w.pktinfo = true, true
	}
	if err := u.r.init(c); err != nil {
		c.Close()
		return nil, err
	}
	if err := u.w.init(c, writeBatch); err != nil {
		c.Close()
		return nil, err
	}
	return u, nil
}

// ReadBatches is Conn's.
func (u *UDP) ReadBatches(ms []Message, handle func(lot []Message) (ok, more bool)) error {
	return u.r.serve(ms, handle)
}

// Stamp asks the system to say when each datagram arrived: reads then fill
// in Message.At, where the system says (Linux; elsewhere it does nothing).
// Call it before ReadBatches.
func (u *UDP) Stamp() error {
	if !stampsOK {
		return nil
	}
	if err := enableStamps(u.c); err != nil {
		return fmt.Errorf("udpio: SO_TIMESTAMPNS: %w", err)
	}
	u.r.stamps = true
	return nil
}

// WriteBatch is Conn's. Every destination must be IPv4.
func (u *UDP) WriteBatch(ms []Message) (int, error) { return u.w.write(ms) }

// LocalAddr is the address the socket is bound to.
func (u *UDP) LocalAddr() netip.AddrPort { return u.local }

// Close closes the socket. It waits for a read under way in ReadBatches to
// end its turn: a close from within handle must come from another
// goroutine.
func (u *UDP) Close() error { return u.c.Close() }

// NetBroadcast is the error of a bind to the broadcast address of one of
// the host's networks (127.255.255.255 on the loopback's 127.0.0.0/8):
// what is sent there goes to every socket on the port, and what a socket
// there sends goes from an address no answer comes back to.
type NetBroadcast struct {
	Addr      netip.Addr
	Interface string
	Net       netip.Prefix
}

func (e *NetBroadcast) Error() string {
	return fmt.Sprintf("%s is the broadcast address of %s's network %s, not one host's address", e.Addr, e.Interface, e.Net)
}

// NetBroadcastOf says whether ip is the broadcast address of a network of
// one of the host's interfaces, a *NetBroadcast (nil if not, or if they
// cannot be listed).
func NetBroadcastOf(ip netip.Addr) error {
	if !ip.Is4() || ip.IsUnspecified() {
		return nil
	}
	ifs, err := net.Interfaces()
	if err != nil {
		return nil
	}
	for _, ifc := range ifs {
		addrs, err := ifc.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			n, ok := a.(*net.IPNet)
			if !ok {
				continue
			}
			p, ok := netip.AddrFromSlice(n.IP.To4())
			ones, bits := n.Mask.Size()
			if !ok || bits != 32 || ones > 30 { // a /31 or /32 has no broadcast address
				continue
			}
			b := p.As4()
			for i := range b {
				b[i] |= ^n.Mask[i]
			}
			if netip.AddrFrom4(b) == ip {
				return &NetBroadcast{Addr: ip, Interface: ifc.Name, Net: netip.PrefixFrom(p, ones).Masked()}
			}
		}
	}
	return nil
}
