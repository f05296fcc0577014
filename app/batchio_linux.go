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
// of the loop has to send. The profile of dht bench shows sendto and
// recvfrom as most of the CPU time, much of it the cost of the calls
// themselves.

// mmsghdr is struct mmsghdr; Go lays it out as C does (the trailing
// padding included).
type mmsghdr struct {
	hdr unix.Msghdr
	n   uint32
}

// batchReader reads up to len(bufs) datagrams per call. It adapts to the
// load: recvmmsg costs more than recvfrom when one datagram is waiting (it
// tries for a second), about a microsecond a hop on loopback, so it reads
// one at a time until it finds datagrams already waiting when it reads, and
// many at a time until a read returns only one.
type batchReader struct {
	rc    syscall.RawConn
	bufs  [][]byte
	names []unix.RawSockaddrAny
	iovs  []unix.Iovec
	hdrs  []mmsghdr
	many  bool
	last  int // datagrams the last read returned
}

func newBatchReader(c *net.UDPConn, n, size int) (*batchReader, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return nil, err
	}
	r := &batchReader{rc: rc, bufs: make([][]byte, n), names: make([]unix.RawSockaddrAny, n), iovs: make([]unix.Iovec, n), hdrs: make([]mmsghdr, n), many: true}
	for i := range n {
		r.bufs[i] = make([]byte, size)
		r.iovs[i].Base = &r.bufs[i][0]
		r.iovs[i].SetLen(size)
		r.hdrs[i].hdr.Iov = &r.iovs[i]
		r.hdrs[i].hdr.SetIovlen(1)
		r.hdrs[i].hdr.Name = (*byte)(unsafe.Pointer(&r.names[i]))
		r.hdrs[i].hdr.Namelen = unix.SizeofSockaddrAny
	}
	return r, nil
}

// read blocks until at least one datagram is there and returns how many it
// read; msg(i) gives each.
func (r *batchReader) read() (int, error) {
	for i := range r.last {
		r.hdrs[i].hdr.Namelen = unix.SizeofSockaddrAny
	}
	var (
		got     int
		serr    error
		waited  bool
		attempt int
	)
	err := r.rc.Read(func(fd uintptr) bool {
		if attempt++; attempt > 1 {
			waited = true
		}
		for {
			var n uintptr
			var errno syscall.Errno
			if r.many {
				n, _, errno = unix.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&r.hdrs[0])), uintptr(len(r.hdrs)), unix.MSG_DONTWAIT, 0, 0)
			} else {
				h := &r.hdrs[0]
				n, _, errno = unix.Syscall6(unix.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&r.bufs[0][0])), uintptr(len(r.bufs[0])), unix.MSG_DONTWAIT,
					uintptr(unsafe.Pointer(h.hdr.Name)), uintptr(unsafe.Pointer(&h.hdr.Namelen)))
				if errno == 0 {
					h.n, n = uint32(n), 1
				}
			}
			switch errno {
			case 0:
				got = int(n)
				return true
			case unix.EINTR:
				continue
			case unix.EAGAIN:
				return false // wait until readable
			default:
				serr = errno
				return true
			}
		}
	})
	r.last = got
	if err != nil {
		return 0, err
	}
	if serr == nil {
		// Many waiting, or one found without waiting: more may follow.
		r.many = got > 1 || !r.many && !waited
	}
	return got, serr
}

// poll reads what is waiting, many at a time, without waiting: 0 when
// nothing is.
func (r *batchReader) poll() (int, error) {
	for i := range r.last {
		r.hdrs[i].hdr.Namelen = unix.SizeofSockaddrAny
	}
	var (
		got  int
		serr error
	)
	err := r.rc.Read(func(fd uintptr) bool {
		for {
			n, _, errno := unix.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&r.hdrs[0])), uintptr(len(r.hdrs)), unix.MSG_DONTWAIT, 0, 0)
			switch errno {
			case 0:
				got = int(n)
			case unix.EINTR:
				continue
			case unix.EAGAIN:
			default:
				serr = errno
			}
			return true
		}
	})
	r.last = got
	if err != nil {
		return 0, err
	}
	return got, serr
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
}

func newBatchWriter(c *net.UDPConn, n int) (*batchWriter, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return nil, err
	}
	return &batchWriter{rc: rc, names: make([]unix.RawSockaddrInet4, n), iovs: make([]unix.Iovec, n), hdrs: make([]mmsghdr, n)}, nil
}

// write sends bufs[i] to to[i], in order, and returns how many it sent
// before the first that failed (with its error), or len(bufs). Every
// destination must be IPv4.
func (w *batchWriter) write(bufs [][]byte, to []netip.AddrPort) (int, error) {
	n := len(bufs)
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
	sent := 0
	var serr error
	err := w.rc.Write(func(fd uintptr) bool {
		for sent < n {
			var k uintptr
			var errno syscall.Errno
			if n-sent == 1 {
				// sendto costs less than sendmmsg for one.
				h := &w.hdrs[sent]
				_, _, errno = unix.Syscall6(unix.SYS_SENDTO, fd, uintptr(unsafe.Pointer(w.iovs[sent].Base)), uintptr(w.iovs[sent].Len), 0,
					uintptr(unsafe.Pointer(h.hdr.Name)), uintptr(h.hdr.Namelen))
				k = 1
			} else {
				k, _, errno = unix.Syscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&w.hdrs[sent])), uintptr(n-sent), 0, 0, 0)
			}
			switch errno {
			case 0:
				sent += int(k)
			case unix.EINTR:
			case unix.EAGAIN:
				return false // wait until writable
			default:
				serr = errno
				return true
			}
		}
		return true
	})
	if err != nil {
		return sent, err
	}
	return sent, serr
}
