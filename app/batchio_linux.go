package app

import (
	"net"
	"net/netip"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// On Linux a socket is read with recvmmsg and written with sendmmsg: one
// system call moves every datagram that is waiting, or everything one turn
// of the loop has to send. On loopback the system calls are most of the
// CPU time a datagram costs, much of it the cost of the calls themselves.

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
	bufs  [][]byte
	names []unix.RawSockaddrAny
	iovs  []unix.Iovec
	hdrs  []mmsghdr
	last  int // datagrams the last read returned

	// While serving (fields, not captures: a closure that captures
	// escapes, and would cost allocations every turn).
	lot     func(n int) (ok, again bool)
	again   bool
	stopped bool
	loop    func(fd uintptr) bool
}

func newBatchReader(c *net.UDPConn, n, size int) (*batchReader, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return nil, err
	}
	r := &batchReader{rc: rc, bufs: make([][]byte, n), names: make([]unix.RawSockaddrAny, n), iovs: make([]unix.Iovec, n), hdrs: make([]mmsghdr, n)}
	for i := range n {
		r.bufs[i] = make([]byte, size)
		r.iovs[i].Base = &r.bufs[i][0]
		r.iovs[i].SetLen(size)
		r.hdrs[i].hdr.Iov = &r.iovs[i]
		r.hdrs[i].hdr.SetIovlen(1)
		r.hdrs[i].hdr.Name = (*byte)(unsafe.Pointer(&r.names[i]))
		r.hdrs[i].hdr.Namelen = unix.SizeofSockaddrAny
	}
	r.loop = r.serveFD
	return r, nil
}

// serve reads until lot reports false (serve returns nil) or the socket is
// closed (net.ErrClosed). lot gets the number of datagrams each read
// returned, msg(i) gives them; with again it asks for one more read before
// the reader waits, and when that read finds nothing lot gets 0.
func (r *batchReader) serve(lot func(n int) (ok, again bool)) error {
	r.lot, r.again, r.stopped = lot, false, false
	err := r.rc.Read(r.loop)
	r.lot = nil
	if r.stopped {
		return nil
	}
	return err
}

func (r *batchReader) serveFD(fd uintptr) bool {
	for {
		for i := range r.last {
			r.hdrs[i].hdr.Namelen = unix.SizeofSockaddrAny
		}
		r.last = 0
		n, _, errno := unix.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&r.hdrs[0])), uintptr(len(r.hdrs)), unix.MSG_DONTWAIT, 0, 0)
		switch errno {
		case 0:
		case unix.EAGAIN:
			if !r.again {
				return false // wait until readable
			}
			n = 0
		default:
			// EINTR, or an error queued by ICMP (port unreachable from
			// an earlier send): read on.
			continue
		}
		r.last = int(n)
		ok, again := r.lot(int(n))
		if !ok {
			r.stopped = true
			return true
		}
		r.again = again
		if !again && int(n) < len(r.hdrs) {
			return false // the queue was empty: wait until readable
		}
	}
}

func (r *batchReader) msg(i int) (netip.AddrPort, []byte) {
	b := r.bufs[i][:r.hdrs[i].n]
	switch sa := &r.names[i]; sa.Addr.Family {
	case unix.AF_INET:
		in := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		p := (*[2]byte)(unsafe.Pointer(&in.Port))
		return netip.AddrPortFrom(netip.AddrFrom4(in.Addr), uint16(p[0])<<8|uint16(p[1])), b
	case unix.AF_INET6:
		in := (*unix.RawSockaddrInet6)(unsafe.Pointer(sa))
		p := (*[2]byte)(unsafe.Pointer(&in.Port))
		return netip.AddrPortFrom(netip.AddrFrom16(in.Addr).Unmap(), uint16(p[0])<<8|uint16(p[1])), b
	}
	return netip.AddrPort{}, b
}

// batchWriter sends many datagrams per call.
type batchWriter struct {
	rc    syscall.RawConn
	names []unix.RawSockaddrInet4
	iovs  []unix.Iovec
	hdrs  []mmsghdr

	// One write's state, in fields for the reason batchReader's are.
	n, sent int
	err     error
	loop    func(fd uintptr) bool
}

func newBatchWriter(c *net.UDPConn, n int) (*batchWriter, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return nil, err
	}
	w := &batchWriter{rc: rc, names: make([]unix.RawSockaddrInet4, n), iovs: make([]unix.Iovec, n), hdrs: make([]mmsghdr, n)}
	w.loop = w.writeFD
	return w, nil
}

// write sends bufs[i] to to[i], in order, and returns how many it sent
// before the first that failed (with its error), or len(bufs). Every
// destination must be IPv4.
func (w *batchWriter) write(bufs [][]byte, to []netip.AddrPort) (int, error) {
	n := min(len(bufs), len(w.hdrs))
	for i := range n {
		a := to[i].Addr()
		if !a.Is4() {
			if i == 0 {
				return 0, &net.AddrError{Err: "not an IPv4 address", Addr: a.String()}
			}
			n = i
			break
		}
		w.names[i] = unix.RawSockaddrInet4{Family: unix.AF_INET, Addr: a.As4()}
		p := (*[2]byte)(unsafe.Pointer(&w.names[i].Port))
		p[0], p[1] = byte(to[i].Port()>>8), byte(to[i].Port())
		w.iovs[i].Base = unsafe.SliceData(bufs[i])
		w.iovs[i].SetLen(len(bufs[i]))
		w.hdrs[i] = mmsghdr{}
		w.hdrs[i].hdr.Name = (*byte)(unsafe.Pointer(&w.names[i]))
		w.hdrs[i].hdr.Namelen = unix.SizeofSockaddrInet4
		w.hdrs[i].hdr.Iov = &w.iovs[i]
		w.hdrs[i].hdr.SetIovlen(1)
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
		if w.n-w.sent == 1 {
			// sendto costs less than sendmmsg for one.
			h := &w.hdrs[w.sent]
			_, _, errno = unix.Syscall6(unix.SYS_SENDTO, fd, uintptr(unsafe.Pointer(w.iovs[w.sent].Base)), uintptr(w.iovs[w.sent].Len), 0,
				uintptr(unsafe.Pointer(h.hdr.Name)), uintptr(h.hdr.Namelen))
			k = 1
		} else {
			k, _, errno = unix.Syscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&w.hdrs[w.sent])), uintptr(w.n-w.sent), 0, 0, 0)
		}
		switch errno {
		case 0:
			w.sent += int(k)
		case unix.EINTR:
		case unix.EAGAIN:
			return false // wait until writable
		default:
			w.err = errno
			return true
		}
	}
	return true
}
