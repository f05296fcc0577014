package udpio

import (
	"net/netip"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// A socket asked to (Stamp) says with each datagram when the system
// received it: the time it came, not the time it was read, however long it
// waited in the queue meanwhile (a server stopped for seconds reads a
// request sent before its stop, and judges its sender's silence as of
// then). On a socket bound to every address the time comes with the
// address the datagram was sent to; a socket not asked says nothing.
func TestAStampedSocketSaysWhenEachDatagramCame(t *testing.T) {
	for _, c := range []struct {
		name  string
		bind  netip.Addr
		stamp bool
	}{
		{"127.0.0.1", netip.AddrFrom4([4]byte{127, 0, 0, 1}), true},
		{"0.0.0.0", netip.IPv4Unspecified(), true},
		{"not asked", netip.AddrFrom4([4]byte{127, 0, 0, 1}), false},
	} {
		t.Run(c.name, func(t *testing.T) {
			dst, err := Listen(netip.AddrPortFrom(c.bind, 0))
			if err != nil {
				t.Fatal(err)
			}
			defer dst.Close()
			if c.stamp {
				if err := dst.Stamp(); err != nil {
					t.Fatal(err)
				}
			}
			src, err := Listen(loopback)
			if err != nil {
				t.Fatal(err)
			}
			defer src.Close()
			closeIfStuck(t, dst)
			to := netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), dst.LocalAddr().Port())
			if c.stamp {
				stampsOn(t, src, dst, to)
			}
			const n = 3
			sent := make([]time.Time, n)
			for i := range n {
				sent[i] = time.Now()
				send(t, src, to, i, 1)
			}
			// The first is in the queue before the read begins.
			waitReadable(t, dst)
			began := time.Now()
			var got []Message
			err = dst.ReadBatches(rooms(8, 64), func(lot []Message) (bool, bool) {
				got = append(got, lot...)
				return len(got) < n, false
			})
			if err != nil {
				t.Fatal(err)
			}
			read := time.Now()
			for i, m := range got {
				switch {
				case !c.stamp && !m.At.IsZero():
					t.Errorf("datagram %d: At %v from a socket not asked to say", i, m.At)
				case !c.stamp:
				case m.At.IsZero():
					t.Errorf("datagram %d: no time it came", i)
				case m.At.Before(sent[i]) || m.At.After(read):
					t.Errorf("datagram %d came at %v: not between its send (%v) and its read (%v)", i, m.At, sent[i], read)
				case i == 0 && !m.At.Before(began):
					t.Errorf("the first datagram, in the queue before the read began (%v), came at %v", began, m.At)
				}
				if c.bind.IsUnspecified() && m.Local != to.Addr() {
					t.Errorf("datagram %d sent to %v: Local %v", i, to.Addr(), m.Local)
				}
			}
		})
	}
}

// stampsOn waits until the system stamps datagrams as they come: Linux
// turns that on for every socket (a static key) in a work item it
// schedules when the first socket asks, and until then stamps a datagram
// when it is read.
func stampsOn(t *testing.T, src Conn, dst *UDP, to netip.AddrPort) {
	t.Helper()
	ms := rooms(1, 64)
	for range 100000 {
		send(t, src, to, 999, 1)
		waitReadable(t, dst)
		began := time.Now()
		var at time.Time
		if err := dst.ReadBatches(ms, func(lot []Message) (bool, bool) {
			at = lot[0].At
			return false, false
		}); err != nil {
			t.Fatal(err)
		}
		if at.Before(began) {
			return
		}
		runtime.Gosched() // the work item runs on a kernel thread of its own
	}
	t.Fatal("the system stamps datagrams only as they are read")
}

// waitReadable waits until something is in c's queue (loopback delivers
// within the send, or in the kernel's softirq thread just after).
func waitReadable(t *testing.T, c *UDP) {
	t.Helper()
	rc, err := c.c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var perr error
	if err := rc.Control(func(fd uintptr) {
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		for {
			n, err := unix.Poll(fds, 10_000)
			if err == unix.EINTR {
				continue
			}
			if err == nil && n == 0 {
				err = unix.ETIMEDOUT
			}
			perr = err
			return
		}
	}); err != nil {
		t.Fatal(err)
	}
	if perr != nil {
		t.Fatalf("waiting for a datagram in the queue: %v", perr)
	}
}
