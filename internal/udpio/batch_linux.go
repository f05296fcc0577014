package udpio

import (
	"net"
	"net/netip"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// On Linux a socket is read with recvmmsg and written with sendmmsg: one
// system call moves every datagram that is waiting, or everything one turn
// of a runner has to send. On loopback the system calls are most of the
// CPU time a datagram costs, much of it the cost of the calls themselves.
//
// golang.org/x/net/ipv4's ReadBatch and WriteBatch make the same system
// calls, but measured on loopback (2 CPUs, medians of 7) they cost more: a
// token passed round a ring of 8 sockets takes 8.3 µs a hop against 5.9,
// bursts of 8 datagrams bounced between two sockets cost 14% more a
// datagram (bursts of 64 about the same), and every datagram read
// allocates its net.Addr. Most of the difference on the ring is the read:
// each ReadBatch is a RawConn.Read of its own, which forgets that the
// socket became readable, so it must read once more before it may wait, a
// system call a wake-up. Our reader read that way (a call a lot, not
// ReadBatches' one RawConn.Read for as long as it serves) takes 7.1 µs.
//
// The calls are made with RawSyscall6, not Syscall6: the socket is
// non-blocking (and recvmmsg is given MSG_DONTWAIT), so a call never
// blocks, and Syscall6's entersyscall wakes the runtime's sysmon thread
// whenever it sleeps, which it does each time the process goes idle: a
// futex wake-up and two more context switches for every datagram that
// wakes an idle process. With a dht process each per node, that was a
// sixth of a query's CPU (perf, 25 processes).

// mmsghdr is struct mmsghdr; Go lays it out as C does (the trailing
// padding included).
type mmsghdr struct {
	hdr unix.Msghdr
	n   uint32
}

// batchReader reads a socket with recvmmsg, inside one RawConn.Read for
// as long as it serves. A read that returns fewer datagrams than it has
// room for has emptied the queue; whatever arrives after it marks the
// socket readable again. So after handing a lot over, the reader waits for
// that mark instead of reading once more to find nothing: one system call
// fewer a wake-up (a read that finds nothing, then the poller's wait, is
// what a blocking read costs).
type batchReader struct {
	rc    syscall.RawConn
	names []unix.RawSockaddrAny
	iovs  []unix.Iovec
	hdrs  []mmsghdr
	// With pktinfo (a socket bound to every address): room for each
	// datagram's IP_PKTINFO, which says the address it was sent to; with
	// stamps (Stamp), for its SO_TIMESTAMPNS, which says when it came.
	// space is the room a datagram's control messages take.
	pktinfo bool
	stamps  bool
	ctrl    []byte
	space   int

	// While serving (fields, not captures: a closure that captures
	// escapes, and would cost allocations every turn).
	ms      []Message
	handle  func([]Message) (ok, more bool)
	more    bool
	stopped bool
	loop    func(fd uintptr) bool
}

func (r *batchReader) init(c *net.UDPConn) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	r.rc = rc
	r.loop = r.serveFD
	return nil
}

// serve is ReadBatches.
func (r *batchReader) serve(ms []Message, handle func([]Message) (ok, more bool)) error {
	if len(ms) == 0 {
		panic("udpio: ReadBatches without room for a datagram")
	}
	if len(ms) > len(r.hdrs) {
		r.names = make([]unix.RawSockaddrAny, len(ms))
		r.iovs = make([]unix.Iovec, len(ms))
		r.hdrs = make([]mmsghdr, len(ms))
	}
	r.space = 0
	if r.pktinfo {
		r.space += pktinfoSpace
	}
	if r.stamps {
		r.space += stampSpace
	}
	if len(r.ctrl) < len(ms)*r.space {
		r.ctrl = make([]byte, len(ms)*r.space)
	}
	for i := range ms {
		if len(ms[i].Buf) == 0 {
			panic("udpio: ReadBatches with an empty buffer")
		}
		r.iovs[i].Base = &ms[i].Buf[0]
		r.iovs[i].SetLen(len(ms[i].Buf))
		r.hdrs[i] = mmsghdr{}
		r.hdrs[i].hdr.Iov = &r.iovs[i]
		r.hdrs[i].hdr.SetIovlen(1)
		r.hdrs[i].hdr.Name = (*byte)(unsafe.Pointer(&r.names[i]))
	}
	r.ms, r.handle, r.more, r.stopped = ms, handle, false, false
	err := r.rc.Read(r.loop)
	r.ms, r.handle = nil, nil
	if r.stopped {
		return nil
	}
	return err
}

func (r *batchReader) serveFD(fd uintptr) bool {
	ms := r.ms
	for {
		for i := range ms {
			r.hdrs[i].hdr.Namelen = unix.SizeofSockaddrAny
			if r.space > 0 {
				r.hdrs[i].hdr.Control = &r.ctrl[i*r.space]
				r.hdrs[i].hdr.SetControllen(r.space)
			}
		}
		n, _, errno := unix.RawSyscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&r.hdrs[0])), uintptr(len(ms)), unix.MSG_DONTWAIT, 0, 0)
		switch errno {
		case 0:
		case unix.EAGAIN:
			if !r.more {
				return false // wait until readable
			}
			n = 0
		default:
			// EINTR, or an error queued by ICMP (port unreachable from
			// an earlier send): read on.
			continue
		}
		for i := range int(n) {
			ms[i].N = int(r.hdrs[i].n)
			ms[i].Addr = r.from(i)
			if r.space > 0 {
				ms[i].Local, ms[i].At = controls(&r.hdrs[i].hdr, r.ctrl[i*r.space:(i+1)*r.space])
			}
		}
		ok, more := r.handle(ms[:n])
		if !ok {
			r.stopped = true
			return true
		}
		r.more = more
		if !more && int(n) < len(ms) {
			return false // the queue was empty: wait until readable
		}
	}
}

func (r *batchReader) from(i int) netip.AddrPort {
	switch sa := &r.names[i]; sa.Addr.Family {
	case unix.AF_INET:
		in := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		p := (*[2]byte)(unsafe.Pointer(&in.Port))
		return netip.AddrPortFrom(netip.AddrFrom4(in.Addr), uint16(p[0])<<8|uint16(p[1]))
	case unix.AF_INET6:
		in := (*unix.RawSockaddrInet6)(unsafe.Pointer(sa))
		p := (*[2]byte)(unsafe.Pointer(&in.Port))
		return netip.AddrPortFrom(netip.AddrFrom16(in.Addr).Unmap(), uint16(p[0])<<8|uint16(p[1]))
	}
	return netip.AddrPort{}
}

// controls reads the control messages read with h: the address to answer
// from that an IP_PKTINFO says (ipi_spec_dst), and the time an
// SO_TIMESTAMPNS says the datagram came (zero where there is none). For a
// datagram sent to one of the host's addresses, the address to answer from
// is that address (ipi_addr, the header's destination); for one sent to a
// broadcast (255.255.255.255, or a network's, as 127.255.255.255, which no
// check of the address alone can tell from a host's) or to a multicast
// group, the host's address on the route back to the sender, where
// ipi_addr would be the broadcast or the group, which no datagram can be
// sent from.
func controls(h *unix.Msghdr, ctrl []byte) (local netip.Addr, at time.Time) {
	n := min(int(h.Controllen), len(ctrl))
	for off := 0; off+unix.SizeofCmsghdr <= n; {
		c := (*unix.Cmsghdr)(unsafe.Pointer(&ctrl[off]))
		l := int(c.Len)
		if l < unix.SizeofCmsghdr || off+l > n {
			break
		}
		switch {
		case c.Level == unix.IPPROTO_IP && c.Type == unix.IP_PKTINFO && l >= unix.CmsgLen(unix.SizeofInet4Pktinfo):
			info := (*unix.Inet4Pktinfo)(unsafe.Pointer(&ctrl[off+unix.CmsgLen(0)]))
			local = netip.AddrFrom4(info.Spec_dst)
		case c.Level == unix.SOL_SOCKET && c.Type == unix.SCM_TIMESTAMPNS && l >= unix.CmsgLen(int(unsafe.Sizeof(unix.Timespec{}))):
			ts := (*unix.Timespec)(unsafe.Pointer(&ctrl[off+unix.CmsgLen(0)]))
			at = time.Unix(ts.Unix())
		}
		off += unix.CmsgSpace(l - unix.CmsgLen(0))
	}
	return local, at
}

// pktinfoSpace and stampSpace are the room one IP_PKTINFO and one
// SO_TIMESTAMPNS control message take.
var (
	pktinfoSpace = unix.CmsgSpace(unix.SizeofInet4Pktinfo)
	stampSpace   = unix.CmsgSpace(int(unsafe.Sizeof(unix.Timespec{})))
)

// enableStamps asks the socket to say with each datagram when the system
// received it (SO_TIMESTAMPNS); reads then fill in Message.At.
func enableStamps(c *net.UDPConn) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1)
	}); err != nil {
		return err
	}
	return serr
}

// enablePktinfo asks the socket, bound to every address, to say with each
// datagram the address it was sent to (IP_PKTINFO); reads then fill in
// Message.Local, and writes send from it.
func enablePktinfo(c *net.UDPConn) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_PKTINFO, 1)
	}); err != nil {
		return err
	}
	return serr
}

// pktinfoOK and stampsOK: this system can say where a datagram was sent,
// and when it came.
const (
	pktinfoOK = true
	stampsOK  = true
)

// batchWriter sends many datagrams per call.
type batchWriter struct {
	rc    syscall.RawConn
	names []unix.RawSockaddrInet4
	iovs  []unix.Iovec
	hdrs  []mmsghdr
	// With pktinfo: each datagram's IP_PKTINFO, naming the address to
	// send it from.
	pktinfo bool
	ctrl    []byte

	// One write's state, in fields for the reason batchReader's are.
	n, sent int
	err     error
	loop    func(fd uintptr) bool
}

func (w *batchWriter) init(c *net.UDPConn, n int) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	w.rc, w.names, w.iovs, w.hdrs = rc, make([]unix.RawSockaddrInet4, n), make([]unix.Iovec, n), make([]mmsghdr, n)
	if w.pktinfo {
		w.ctrl = make([]byte, n*pktinfoSpace)
	}
	w.loop = w.writeFD
	return nil
}

// setSource gives datagram i an IP_PKTINFO naming the address to send it
// from (ipi_spec_dst).
func (w *batchWriter) setSource(i int, from netip.Addr) {
	ctrl := w.ctrl[i*pktinfoSpace : (i+1)*pktinfoSpace]
	clear(ctrl)
	c := (*unix.Cmsghdr)(unsafe.Pointer(&ctrl[0]))
	c.Level, c.Type = unix.IPPROTO_IP, unix.IP_PKTINFO
	c.SetLen(unix.CmsgLen(unix.SizeofInet4Pktinfo))
	info := (*unix.Inet4Pktinfo)(unsafe.Pointer(&ctrl[unix.CmsgLen(0)]))
	info.Spec_dst = from.As4()
	w.hdrs[i].hdr.Control = &ctrl[0]
	w.hdrs[i].hdr.SetControllen(pktinfoSpace)
}

// write is WriteBatch: at most len(w.hdrs) datagrams a call.
func (w *batchWriter) write(ms []Message) (int, error) {
	n := min(len(ms), len(w.hdrs))
	for i := range n {
		a := ms[i].Addr.Addr()
		if !a.Is4() {
			if i == 0 {
				return 0, &net.AddrError{Err: "not an IPv4 address", Addr: a.String()}
			}
			n = i
			break
		}
		w.names[i] = unix.RawSockaddrInet4{Family: unix.AF_INET, Addr: a.As4()}
		p := (*[2]byte)(unsafe.Pointer(&w.names[i].Port))
		p[0], p[1] = byte(ms[i].Addr.Port()>>8), byte(ms[i].Addr.Port())
		w.iovs[i].Base = unsafe.SliceData(ms[i].Buf)
		w.iovs[i].SetLen(len(ms[i].Buf))
		w.hdrs[i] = mmsghdr{}
		w.hdrs[i].hdr.Name = (*byte)(unsafe.Pointer(&w.names[i]))
		w.hdrs[i].hdr.Namelen = unix.SizeofSockaddrInet4
		w.hdrs[i].hdr.Iov = &w.iovs[i]
		w.hdrs[i].hdr.SetIovlen(1)
	}
	if w.pktinfo {
		for i := range n {
			if ms[i].Local.Is4() {
				w.setSource(i, ms[i].Local)
			}
		}
	}
	w.n, w.sent, w.err = n, 0, nil
	err := w.rc.Write(w.loop)
	if err != nil {
		return w.sent, err
	}
	return w.sent, w.err
}

func (w *batchWriter) writeFD(fd uintptr) bool {
	for w.sent < w.n {
		var k uintptr
		var errno syscall.Errno
		if w.n-w.sent == 1 && w.hdrs[w.sent].hdr.Controllen == 0 {
			// sendto costs less than sendmmsg for one.
			h := &w.hdrs[w.sent]
			_, _, errno = unix.RawSyscall6(unix.SYS_SENDTO, fd, uintptr(unsafe.Pointer(w.iovs[w.sent].Base)), uintptr(w.iovs[w.sent].Len), 0,
				uintptr(unsafe.Pointer(h.hdr.Name)), uintptr(h.hdr.Namelen))
			k = 1
		} else {
			k, _, errno = unix.RawSyscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&w.hdrs[w.sent])), uintptr(w.n-w.sent), 0, 0, 0)
		}
		switch errno {
		case 0:
			w.sent += int(k)
		case unix.EINTR:
		case unix.EAGAIN:
			return false // wait until writable
		default:
			if h := &w.hdrs[w.sent].hdr; h.Controllen != 0 {
				// The address its sender wrote to is no longer this
				// host's: the system chooses one.
				h.Control, h.Controllen = nil, 0
				continue
			}
			w.err = errno
			return true
		}
	}
	return true
}
