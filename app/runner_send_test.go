package app

import (
	"bytes"
	"log/slog"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"dht/internal/udpio"
	"dht/wire"
)

// refusingConn refuses every datagram it is given, as a socket does behind
// a firewall that rejects them (EPERM).
type refusingConn struct{ udpio.Conn }

func (refusingConn) WriteBatch([]udpio.Message) (int, error) { return 0, syscall.EPERM }
func (refusingConn) LocalAddr() netip.AddrPort {
	return netip.MustParseAddrPort("127.0.0.1:5000")
}

// Sends the system refuses are traced as drops are: a few lines a second
// and a count, not one line each (an operator's review: 8,721 lines in 35 s
// behind a firewall's rule, one a retransmission).
func TestRefusedSendsAreSummarised(t *testing.T) {
	var trace bytes.Buffer
	log := slog.New(slog.NewTextHandler(&trace, nil))
	now := time.Unix(1_700_000_000, 0)
	e := newEndpoint(refusingConn{}, log, nil, &Traffic{}, func() time.Time { return now })
	to := netip.MustParseAddrPort("10.0.0.2:5000")
	for range 100 {
		e.queue([]byte("x"), to, wire.TypeQuery)
		e.flush()
	}
	now = now.Add(time.Second)
	e.drops.tick(log, now)
	lines := strings.Split(strings.TrimSpace(trace.String()), "\n")
	if len(lines) != dropsShown+1 {
		t.Fatalf("100 refused sends traced in %d lines, want %d and a count:\n%s", len(lines), dropsShown, trace.String())
	}
	if last := lines[len(lines)-1]; !strings.Contains(last, traceDropMore) || !strings.Contains(last, "count=95") || !strings.Contains(last, "operation not permitted") {
		t.Fatalf("the count of the rest: %s", last)
	}
}
