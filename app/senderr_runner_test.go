package app_test

import (
	"context"
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"dht/app"
	"dht/internal/loopback"
	"dht/internal/udpio"
	"dht/store"
)

// registerResult runs a peer (r, its Lines and Out set here) that types
// line, and returns the result line it prints; the peer is then stopped by
// the end of its input.
func registerResult(t *testing.T, r *app.PeerRunner, line string) string {
	t.Helper()
	out := make(chan printed, 4)
	in := make(chan string, 1)
	in <- line
	r.Lines, r.Out = in, lineWriter(out)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ran := make(chan error, 1)
	go func() { ran <- r.Run(ctx) }()
	var got string
	select {
	case p := <-out:
		got = p.line
	case err := <-ran:
		t.Fatalf("the peer stopped: %v", err)
	case <-ctx.Done():
		t.Fatal("no result within a minute")
	}
	close(in)
	if err := <-ran; err != nil {
		t.Fatalf("Run: %v", err)
	}
	return got
}

// A register from a loopback address to a server on another host: the
// host refuses every send (a socket bound to a loopback address sends to
// loopback addresses only: no datagram leaves the host), and the
// register's FAILURE says so, with what to register with, instead of
// asking whether a server runs there. The server's address is one of
// TEST-NET-1's (RFC 5737).
func TestRunnerRegisterWhoseSendsTheHostRefusesSaysSo(t *testing.T) {
	ports, err := loopback.FreePorts(1)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	r := &app.PeerRunner{
		Core: app.NewPeer(app.PeerConfig{Server: netip.MustParseAddrPort("192.0.2.1:4000"), RequestTimeout: 300 * time.Millisecond}),
		OpenStore: func(name string) (app.PeerStore, error) {
			return store.OpenPeer(filepath.Join(dir, "dht-peer-"+name+".db"))
		},
	}
	got := registerResult(t, r, fmt.Sprintf("register dave 127.0.0.1 %d", ports[0]))
	if !strings.HasPrefix(got, "register FAILURE: no answer from the server at 192.0.2.1:4000 within 300ms (this host refused to send there: ") ||
		!strings.HasSuffix(got, "; 127.0.0.1 is a loopback address, which reaches this host only: register with an address of this host that 192.0.2.1 reaches)") {
		t.Fatalf("printed %q", got)
	}
}

// refusingConn refuses the first n writes, as a host whose route came back.
type refusingConn struct {
	udpio.Conn
	n atomic.Int32
}

func (c *refusingConn) WriteBatch(ms []udpio.Message) (int, error) {
	if c.n.Add(-1) >= 0 {
		return 0, syscall.ENETUNREACH
	}
	return c.Conn.WriteBatch(ms)
}

// A send the host refused, followed by ones it took (the route came back),
// is not what a later failure says: the register's sends went, and the
// server's silence is the cause.
func TestARefusalFollowedBySendsIsNotTheCause(t *testing.T) {
	mem := udpio.NewNet()
	r := &app.PeerRunner{
		Core: app.NewPeer(app.PeerConfig{Server: netip.MustParseAddrPort("10.0.0.1:4000"), RequestTimeout: 300 * time.Millisecond}),
		Listen: func(a netip.AddrPort) (udpio.Conn, error) {
			c, err := mem.Listen(a)
			if err != nil {
				return nil, err
			}
			rc := &refusingConn{Conn: c}
			rc.n.Store(2) // the first send and its first retransmission
			return rc, nil
		},
	}
	got := registerResult(t, r, "register dave 10.0.0.2 5000")
	if !strings.HasPrefix(got, "register FAILURE: ") || strings.Contains(got, "refused") {
		t.Fatalf("printed %q, want the server's silence, not a refusal that later sends followed", got)
	}
}
