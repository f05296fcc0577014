package udpio

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"syscall"
	"testing"
	"time"
)

var loopback = netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), 0)

// transports are the Conns every contract test runs against: a real
// socket and the in-memory network.
var transports = []struct {
	name string
	// listen returns the Listen of a new network
	listen func() func(netip.AddrPort) (Conn, error)
}{
	{"udp", func() func(netip.AddrPort) (Conn, error) {
		return func(a netip.AddrPort) (Conn, error) {
			c, err := Listen(a)
			if err != nil {
				return nil, err
			}
			return c, nil
		}
	}},
	{"mem", func() func(netip.AddrPort) (Conn, error) { return NewNet().Listen }},
}

func pair(t *testing.T, listen func(netip.AddrPort) (Conn, error)) (a, b Conn) {
	t.Helper()
	for _, c := range []*Conn{&a, &b} {
		conn, err := listen(loopback)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		*c = conn
	}
	return a, b
}

func rooms(n, size int) []Message {
	ms := make([]Message, n)
	for i := range ms {
		ms[i].Buf = make([]byte, size)
	}
	return ms
}

func send(t *testing.T, src Conn, to netip.AddrPort, from, n int) {
	t.Helper()
	for i := range n {
		if _, err := src.WriteBatch([]Message{{Buf: fmt.Appendf(nil, "d%03d", from+i), Addr: to}}); err != nil {
			t.Error(err)
		}
	}
}

// closeIfStuck closes c after a while: a datagram stranded by the reader
// would otherwise leave it waiting, and hang the package.
func closeIfStuck(t *testing.T, c Conn) {
	tm := time.AfterFunc(20*time.Second, func() { c.Close() })
	t.Cleanup(func() { tm.Stop() })
}

// The reader of a real socket waits for it to become readable without
// reading it empty first, so it must never strand a datagram: not one that
// arrives while a lot is being handled, not one left over when more were
// waiting than a read takes, and not one behind a lot that asked for
// another read.
func TestReadBatchesDeliversEverything(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			src, dst := pair(t, tr.listen())
			to := dst.LocalAddr()
			closeIfStuck(t, dst)
			// Ten waiting before the reader starts: more than one read takes.
			send(t, src, to, 0, 10)
			const total = 31
			var got []string
			zeros, lots, rest := 0, 0, false
			err := dst.ReadBatches(rooms(4, 64), func(lot []Message) (bool, bool) {
				if len(lot) == 0 {
					zeros++
					return true, false
				}
				lots++
				for _, m := range lot {
					if m.Addr != src.LocalAddr() {
						t.Errorf("a datagram from %v, want %v", m.Addr, src.LocalAddr())
					}
					got = append(got, string(m.Buf[:m.N]))
				}
				if lots == 1 {
					send(t, src, to, 10, 5) // arrive while this lot is handled
				}
				if len(got) >= 16 && !rest {
					rest = true
					send(t, src, to, 16, total-16) // just before the reader waits
				}
				if lots == 4 {
					// Ask for another read: it finds what is waiting, or
					// nothing (an empty lot).
					send(t, src, to, 15, 1)
					return true, true
				}
				return len(got) < total, false
			})
			if err != nil {
				t.Fatalf("after %d of %d datagrams: %v", len(got), total, err)
			}
			if len(got) != total {
				t.Fatalf("read %d datagrams, want %d: %q", len(got), total, got)
			}
			for i, g := range got {
				if want := fmt.Sprintf("d%03d", i); g != want {
					t.Fatalf("datagram %d is %q, want %q (order kept on one socket)", i, g, want)
				}
			}
			if zeros > 1 {
				t.Fatalf("%d reads that found nothing reported; one at most was asked for", zeros)
			}
		})
	}
}

// A lot asking for another read when nothing is waiting is told so with an
// empty lot, and serving stops when the lot says so; a closed Conn ends it
// with net.ErrClosed, and refuses writes.
func TestReadBatchesMoreAndClose(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			src, dst := pair(t, tr.listen())
			closeIfStuck(t, dst)
			send(t, src, dst.LocalAddr(), 0, 1)
			var seen []int
			err := dst.ReadBatches(rooms(4, 64), func(lot []Message) (bool, bool) {
				seen = append(seen, len(lot))
				return len(lot) != 0, len(lot) != 0
			})
			if err != nil || len(seen) != 2 || seen[0] != 1 || seen[1] != 0 {
				t.Fatalf("ReadBatches: %v, lots %v; want nil, [1 0]", err, seen)
			}
			done := make(chan error, 1)
			go func() { done <- dst.ReadBatches(rooms(4, 64), func([]Message) (bool, bool) { return true, false }) }()
			dst.Close()
			if err := <-done; !errors.Is(err, net.ErrClosed) {
				t.Fatalf("ReadBatches after close: %v, want net.ErrClosed", err)
			}
			if _, err := dst.WriteBatch([]Message{{Buf: []byte("x"), Addr: src.LocalAddr()}}); !errors.Is(err, net.ErrClosed) {
				t.Fatalf("WriteBatch after close: %v, want net.ErrClosed", err)
			}
		})
	}
}

// A datagram longer than its room is cut to it, as a socket cuts it.
func TestReadBatchesCutsToTheRoom(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			src, dst := pair(t, tr.listen())
			closeIfStuck(t, dst)
			if _, err := src.WriteBatch([]Message{{Buf: []byte("0123456789"), Addr: dst.LocalAddr()}}); err != nil {
				t.Fatal(err)
			}
			var got string
			err := dst.ReadBatches(rooms(2, 4), func(lot []Message) (bool, bool) {
				got = string(lot[0].Buf[:lot[0].N])
				return false, false
			})
			if err != nil || got != "0123" {
				t.Fatalf("read %q (%v), want %q", got, err, "0123")
			}
		})
	}
}

// Binding an address already bound is refused with EADDRINUSE, on a Net as
// by the system; once closed, the address is free again. Port 0 picks a
// free port.
func TestListenAddressInUse(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			listen := tr.listen()
			a, b := pair(t, listen)
			if a.LocalAddr() == b.LocalAddr() || a.LocalAddr().Port() == 0 {
				t.Fatalf("port 0 bound %v and %v", a.LocalAddr(), b.LocalAddr())
			}
			if _, err := listen(a.LocalAddr()); !errors.Is(err, syscall.EADDRINUSE) {
				t.Fatalf("a second bind of %v: %v, want EADDRINUSE", a.LocalAddr(), err)
			}
			a.Close()
			c, err := listen(a.LocalAddr())
			if err != nil {
				t.Fatalf("a bind after close: %v", err)
			}
			c.Close()
		})
	}
}

// A datagram to an address where nothing listens is lost, not an error.
func TestNetLosesWhatNoOneReads(t *testing.T) {
	n := NewNet()
	c, err := n.Listen(netip.MustParseAddrPort("10.0.0.1:5000"))
	if err != nil {
		t.Fatal(err)
	}
	if k, err := c.WriteBatch([]Message{{Buf: []byte("x"), Addr: netip.MustParseAddrPort("10.0.0.2:5000")}}); k != 1 || err != nil {
		t.Fatalf("WriteBatch to no one: %d, %v; want 1, nil", k, err)
	}
}

// A system call through the batch reader or writer allocates nothing (their
// state lives in their fields, not in closures that escape).
func TestBatchIONoAllocations(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the batch reader and writer are Linux's")
	}
	src, err := Listen(loopback)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := Listen(loopback)
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	out := []Message{{Buf: []byte("a"), Addr: dst.LocalAddr()}, {Buf: []byte("b"), Addr: dst.LocalAddr()}}
	in := rooms(4, 64)
	lot := func([]Message) (bool, bool) { return false, false }
	allocs := testing.AllocsPerRun(100, func() {
		if n, err := src.WriteBatch(out); n != 2 || err != nil {
			t.Fatalf("write: %d, %v", n, err)
		}
		if err := dst.ReadBatches(in, lot); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("%.1f allocations a write and read, want 0", allocs)
	}
}

// A socket sends nothing to a broadcast address: a forged source such as
// 127.255.255.255 (the loopback's, no host's, and no check of the address
// alone tells it from one), answered, reached every socket on the port, on
// a LAN every host (an attacker's review: 1,500 challenges to each
// bystander for 1,500 forged registers). A bystander on every address
// reads the unicast datagram sent after the broadcast one first.
func TestASocketSendsNothingToABroadcastAddress(t *testing.T) {
	bystander, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4zero})
	if err != nil {
		t.Fatal(err)
	}
	defer bystander.Close()
	port := uint16(bystander.LocalAddr().(*net.UDPAddr).Port)
	for _, bind := range []netip.Addr{loopback.Addr(), netip.IPv4Unspecified()} {
		c, err := Listen(netip.AddrPortFrom(bind, 0))
		if err != nil {
			t.Fatal(err)
		}
		bcast := netip.AddrPortFrom(netip.MustParseAddr("127.255.255.255"), port)
		if n, err := c.WriteBatch([]Message{{Buf: []byte("broadcast"), Addr: bcast}}); n != 0 && err == nil {
			t.Errorf("bound to %v: a write to %v sent %d datagrams, no error", bind, bcast, n)
		}
		if _, err := c.WriteBatch([]Message{{Buf: []byte("unicast"), Addr: netip.AddrPortFrom(loopback.Addr(), port)}}); err != nil {
			t.Fatal(err)
		}
		bystander.SetReadDeadline(time.Now().Add(20 * time.Second))
		buf := make([]byte, 64)
		n, _, err := bystander.ReadFromUDPAddrPort(buf)
		if err != nil {
			t.Fatal(err)
		}
		if got := string(buf[:n]); got != "unicast" {
			t.Errorf("bound to %v: the bystander read %q first; want only the unicast datagram", bind, got)
		}
		c.Close()
	}
}

// A datagram to an address that is not IPv4 is refused: the first of a
// batch with an error and nothing sent (a caller that writes the rest
// would otherwise try it again forever), a later one by ending the batch
// before it, the datagrams before it sent.
func TestAWriteToAnAddressNotIPv4IsRefused(t *testing.T) {
	c, err := Listen(loopback)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	to := c.LocalAddr()
	v6 := netip.AddrPortFrom(netip.IPv6Loopback(), to.Port())
	var ae *net.AddrError
	if n, err := c.WriteBatch([]Message{{Buf: []byte("a"), Addr: v6}, {Buf: []byte("b"), Addr: to}}); n != 0 || !errors.As(err, &ae) {
		t.Errorf("a batch whose first datagram goes to %v: sent %d, error %v; want 0 and an address error", v6, n, err)
	}
	if n, err := c.WriteBatch([]Message{{Buf: []byte("a"), Addr: to}, {Buf: []byte("b"), Addr: v6}}); n != 1 || err != nil {
		t.Errorf("a batch whose second datagram goes to %v: sent %d, error %v; want 1 and no error", v6, n, err)
	}
}
