package udpio

import (
	"net"
	"net/netip"
	"testing"
	"time"
)

// A socket bound to every address (a server's default, 0.0.0.0) answers
// each remote from the address the remote wrote to: 127.0.0.2 and
// 127.0.0.3 are this host's (loopback) as 127.0.0.1 is, and a client
// writing to one of them takes only what comes from it. Left to the
// system, every answer went from 127.0.0.1, the route's address (a
// new user's review: a peer given the server's second address never
// registered). A source the host no longer has is left to the system.
func TestASocketOnEveryAddressAnswersFromTheOneWrittenTo(t *testing.T) {
	srv, err := Listen(netip.AddrPortFrom(netip.IPv4Unspecified(), 0))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	port := srv.LocalAddr().Port()
	// Echo every datagram back to its sender.
	done := make(chan error, 1)
	go func() {
		done <- srv.ReadBatches(rooms(8, 64), func(lot []Message) (bool, bool) {
			for _, m := range lot {
				if string(m.Buf[:m.N]) == "stop" {
					return false, false
				}
				if _, err := srv.WriteBatch([]Message{{Buf: m.Buf[:m.N], Addr: m.Addr}}); err != nil {
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
	ask := func(to netip.Addr) netip.Addr {
		t.Helper()
		if _, err := cl.WriteToUDPAddrPort([]byte("ping"), netip.AddrPortFrom(to, port)); err != nil {
			t.Fatal(err)
		}
		cl.SetReadDeadline(time.Now().Add(20 * time.Second))
		buf := make([]byte, 64)
		_, from, err := cl.ReadFromUDPAddrPort(buf)
		if err != nil {
			t.Fatal(err)
		}
		if from.Port() != port {
			t.Fatalf("answer from %v", from)
		}
		return from.Addr().Unmap()
	}
	for _, to := range []string{"127.0.0.2", "127.0.0.3", "127.0.0.1", "127.0.0.2"} {
		if got := ask(netip.MustParseAddr(to)); got.String() != to {
			t.Errorf("wrote to %s:%d, answered from %v", to, port, got)
		}
	}
	// The echo stops: this goroutine writes from now on (one writer).
	if _, err := cl.WriteToUDPAddrPort([]byte("stop"), netip.AddrPortFrom(loopback.Addr(), port)); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// The address the client wrote to is gone from the host: the answer
	// goes from the system's choice, rather than not at all.
	gone := netip.MustParseAddr("192.0.2.1") // TEST-NET-1, no host's
	clAddr := cl.LocalAddr().(*net.UDPAddr).AddrPort()
	srv.w.replies.mu.Lock()
	srv.w.replies.to[clAddr] = gone
	srv.w.replies.mu.Unlock()
	if _, err := srv.WriteBatch([]Message{{Buf: []byte("late"), Addr: clAddr}, {Buf: []byte("late2"), Addr: clAddr}}); err != nil {
		t.Fatalf("a write from a source the host lacks: %v", err)
	}
	for range 2 {
		cl.SetReadDeadline(time.Now().Add(20 * time.Second))
		buf := make([]byte, 64)
		if _, from, err := cl.ReadFromUDPAddrPort(buf); err != nil || from.Addr().Unmap() != loopback.Addr() {
			t.Fatalf("answer from %v, %v", from, err)
		}
	}
}

// The remotes remembered are bounded: a stream of strangers pushes out
// others, never grows the map.
func TestReplyFromIsBounded(t *testing.T) {
	r := newReplyFrom()
	for i := range 3 * maxReplyFrom {
		r.note(netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), 1), netip.MustParseAddr("127.0.0.2"))
	}
	if len(r.to) != maxReplyFrom {
		t.Fatalf("%d remotes remembered", len(r.to))
	}
}
