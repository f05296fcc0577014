package app

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"testing"
	"time"
)

func loopbackPair(t *testing.T) (a, b *net.UDPConn) {
	t.Helper()
	for _, c := range []**net.UDPConn{&a, &b} {
		conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		*c = conn
	}
	return a, b
}

func addrOf(c *net.UDPConn) netip.AddrPort {
	return netip.MustParseAddrPort(c.LocalAddr().String())
}

// The reader waits for the socket to become readable without reading it
// empty first, so it must never strand a datagram: not one that arrives
// while a lot is being handled, not one left over when more were waiting
// than a read takes, and not one behind a lot that asked for another read.
func TestBatchReaderDeliversEverything(t *testing.T) {
	src, dst := loopbackPair(t)
	r, err := newBatchReader(dst, 4, 64)
	if err != nil {
		t.Fatal(err)
	}
	send := func(from, n int) {
		for i := range n {
			if _, err := src.WriteToUDPAddrPort(fmt.Appendf(nil, "d%03d", from+i), addrOf(dst)); err != nil {
				t.Error(err)
			}
		}
	}
	// A stranded datagram would leave the reader waiting: fail instead of
	// hanging the package.
	if err := dst.SetReadDeadline(time.Now().Add(20 * time.Second)); err != nil {
		t.Fatal(err)
	}
	// Ten waiting before the reader starts: more than one read takes.
	send(0, 10)
	const total = 31
	var got []string
	zeros, lots, rest := 0, 0, false
	err = r.serve(func(n int) (bool, bool) {
		if n == 0 {
			zeros++
			return true, false
		}
		lots++
		for i := range n {
			_, b := r.msg(i)
			got = append(got, string(b))
		}
		if lots == 1 {
			send(10, 5) // arrive while this lot is handled
		}
		if len(got) >= 16 && !rest {
			rest = true
			send(16, total-16) // just before the reader waits
		}
		if lots == 4 {
			// Ask for another read: it finds what is waiting, or
			// nothing (n == 0).
			send(15, 1)
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
}

// A lot asking for another read when nothing is waiting is told so with 0,
// and serving stops when the lot says so; a closed socket ends it with
// net.ErrClosed.
func TestBatchReaderAgainAndClose(t *testing.T) {
	src, dst := loopbackPair(t)
	r, err := newBatchReader(dst, 4, 64)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := src.WriteToUDPAddrPort([]byte("one"), addrOf(dst)); err != nil {
		t.Fatal(err)
	}
	var seen []int
	err = r.serve(func(n int) (bool, bool) {
		seen = append(seen, n)
		return n != 0, n != 0
	})
	if err != nil || len(seen) != 2 || seen[0] != 1 || seen[1] != 0 {
		t.Fatalf("serve: %v, lots %v; want nil, [1 0]", err, seen)
	}
	done := make(chan error, 1)
	go func() { done <- r.serve(func(int) (bool, bool) { return true, false }) }()
	dst.Close()
	if err := <-done; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("serve after close: %v, want net.ErrClosed", err)
	}
}

// A system call through the batch reader or writer allocates nothing (their
// state lives in their fields, not in closures that escape).
func TestBatchIONoAllocations(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the batch reader and writer are Linux's")
	}
	src, dst := loopbackPair(t)
	w, err := newBatchWriter(src, 2)
	if err != nil {
		t.Fatal(err)
	}
	r, err := newBatchReader(dst, 4, 64)
	if err != nil {
		t.Fatal(err)
	}
	bufs := [][]byte{[]byte("a"), []byte("b")}
	to := []netip.AddrPort{addrOf(dst), addrOf(dst)}
	lot := func(n int) (bool, bool) { return false, false }
	allocs := testing.AllocsPerRun(100, func() {
		if n, err := w.write(bufs, to); n != 2 || err != nil {
			t.Fatalf("write: %d, %v", n, err)
		}
		if err := r.serve(lot); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("%.1f allocations a write and read, want 0", allocs)
	}
}
