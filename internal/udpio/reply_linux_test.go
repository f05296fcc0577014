package udpio

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// A socket bound to every address (a server's default, 0.0.0.0) says with
// each datagram the address it was sent to, and sends a datagram from the
// address it is given: 127.0.0.2 and 127.0.0.3 are this host's (loopback)
// as 127.0.0.1 is, and a client writing to one of them takes only what
// comes from it. Left to the system, every answer went from 127.0.0.1,
// the route's address (a new user's review: a peer given the server's
// second address never registered). A source the host does not have is
// left to the system.
func TestASocketOnEveryAddressSaysWhereADatagramWentAndSendsFromThere(t *testing.T) {
	srv, err := Listen(netip.AddrPortFrom(netip.IPv4Unspecified(), 0))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	port := srv.LocalAddr().Port()
	// Echo every datagram back to its sender, from where it was sent.
	done := make(chan error, 1)
	go func() {
		done <- srv.ReadBatches(rooms(8, 64), func(lot []Message) (bool, bool) {
			for _, m := range lot {
				if string(m.Buf[:m.N]) == "stop" {
					return false, false
				}
				if _, err := srv.WriteBatch([]Message{{Buf: []byte(m.Local.String()), Addr: m.Addr, Local: m.Local}}); err != nil {
					t.Error(err)
				}
			}
			return true, false
		})
	}()
	cl, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(loopback))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	read := func() (string, netip.Addr) {
		t.Helper()
		cl.SetReadDeadline(time.Now().Add(20 * time.Second))
		buf := make([]byte, 64)
		n, from, err := cl.ReadFromUDPAddrPort(buf)
		if err != nil {
			t.Fatal(err)
		}
		if from.Port() != port {
			t.Fatalf("answer from %v", from)
		}
		return string(buf[:n]), from.Addr().Unmap()
	}
	for _, to := range []string{"127.0.0.2", "127.0.0.3", "127.0.0.1", "127.0.0.2"} {
		if _, err := cl.WriteToUDPAddrPort([]byte("ping"), netip.AddrPortFrom(netip.MustParseAddr(to), port)); err != nil {
			t.Fatal(err)
		}
		if local, from := read(); local != to || from.String() != to {
			t.Errorf("wrote to %s:%d: read as sent to %s, answered from %v", to, port, local, from)
		}
	}
	// A datagram to the loopback network's broadcast address, which no
	// check of the address alone tells from a host's: read as sent to the
	// address on the route back (127.0.0.1), answered from there; the
	// header's destination, 127.255.255.255, is no address to send from.
	rc, err := cl.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_BROADCAST, 1) }); err != nil || serr != nil {
		t.Fatal(err, serr)
	}
	if _, err := cl.WriteToUDPAddrPort([]byte("ping"), netip.AddrPortFrom(netip.MustParseAddr("127.255.255.255"), port)); err != nil {
		t.Fatal(err)
	}
	if local, from := read(); local != "127.0.0.1" || from.String() != "127.0.0.1" {
		t.Errorf("wrote to 127.255.255.255:%d: read as sent to %s, answered from %v; want 127.0.0.1, the route back's", port, local, from)
	}
	// The echo stops: this goroutine writes from now on (one writer).
	if _, err := cl.WriteToUDPAddrPort([]byte("stop"), netip.AddrPortFrom(loopback.Addr(), port)); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// A source the host does not have: the datagrams go from the
	// system's choice, rather than not at all.
	clAddr := cl.LocalAddr().(*net.UDPAddr).AddrPort()
	gone := netip.MustParseAddr("192.0.2.1") // TEST-NET-1, no host's
	if _, err := srv.WriteBatch([]Message{{Buf: []byte("a"), Addr: clAddr, Local: gone}, {Buf: []byte("b"), Addr: clAddr, Local: gone}}); err != nil {
		t.Fatalf("a write from a source the host lacks: %v", err)
	}
	for range 2 {
		if _, from := read(); from != loopback.Addr() {
			t.Fatalf("answer from %v", from)
		}
	}
}
