package app_test

import (
	"context"
	"net/netip"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"dht/app"
	"dht/internal/udpio"
)

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
	out := make(chan printed, 4)
	in := make(chan string, 1)
	in <- "register dave 10.0.0.2 5000"
	r := &app.PeerRunner{
		Core:  app.NewPeer(app.PeerConfig{Server: netip.MustParseAddrPort("10.0.0.1:4000"), RequestTimeout: 300 * time.Millisecond}),
		Lines: in,
		Out:   lineWriter(out),
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
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ran := make(chan error, 1)
	go func() { ran <- r.Run(ctx) }()
	select {
	case p := <-out:
		if !strings.HasPrefix(p.line, "register FAILURE: ") || strings.Contains(p.line, "refused") {
			t.Fatalf("printed %q, want the server's silence, not a refusal that later sends followed", p.line)
		}
	case err := <-ran:
		t.Fatalf("the peer stopped: %v", err)
	case <-ctx.Done():
		t.Fatal("no result within a minute")
	}
	close(in)
	if err := <-ran; err != nil {
		t.Fatalf("Run: %v", err)
	}
}
