package app

import (
	"bytes"
	"fmt"
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
func (refusingConn) Close() error                            { return nil }
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
		e.queue([]byte("x"), to, netip.Addr{}, wire.TypeQuery)
		e.flush()
	}
	now = now.Add(time.Second)
	e.drops.tick(log, now)
	lines := strings.Split(strings.TrimSpace(trace.String()), "\n")
	if len(lines) != dropsShown+1 {
		t.Fatalf("100 refused sends traced in %d lines, want %d and a count:\n%s", len(lines), dropsShown, trace.String())
	}
	if last := lines[len(lines)-1]; !strings.Contains(last, traceDropMore) || !strings.Contains(last, fmt.Sprintf("count=%d", 100-dropsShown)) || !strings.Contains(last, "operation not permitted") {
		t.Fatalf("the count of the rest: %s", last)
	}
}

// The drops counted at a socket a refused register closes are traced as
// it closes (a review: the counts of the window under way were lost).
func TestDropsCountedAtAClosedSocketAreTraced(t *testing.T) {
	var trace bytes.Buffer
	log := slog.New(slog.NewTextHandler(&trace, nil))
	now := time.Unix(1_700_000_000, 0)
	r := &PeerRunner{Core: ringNode(t), now: func() time.Time { return now }}
	defer r.start()(nil)
	r.ep = newEndpoint(refusingConn{}, log, nil, &Traffic{}, r.now)
	for range 10 {
		r.ep.traceDrop(log, dropped("junk", netip.MustParseAddrPort("10.9.0.1:666")))
	}
	r.mu.Lock()
	_, err := r.exec([]Output{Unbind{}})
	r.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("count=%d", 10-dropsShown); !strings.Contains(trace.String(), traceDropMore) || !strings.Contains(trace.String(), want) {
		t.Fatalf("the trace as the socket closed:\n%s\nwant the count of the drops not traced (%s)", trace.String(), want)
	}
}

// The endpoint traces a quiet send as quietLines says: two challenges in a
// second, one line (and none only at the debug level).
func TestAQuietSendIsTracedOnceAWindow(t *testing.T) {
	var trace bytes.Buffer
	log := slog.New(slog.NewTextHandler(&trace, nil))
	now := time.Unix(1_700_000_000, 0)
	n := udpio.NewNet()
	conn, err := n.Listen(netip.MustParseAddrPort("10.0.0.1:4000"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	e := newEndpoint(conn, log, nil, &Traffic{}, func() time.Time { return now })
	to := netip.MustParseAddrPort("10.0.0.2:5000")
	for id := range uint32(2) {
		e.send(Send{To: to, ID: 7 + id, Msg: wire.Challenge{Cookie: wire.Tag{1}}, Quiet: true})
	}
	e.flush()
	if got := strings.Count(trace.String(), "msg=send"); got != 1 {
		t.Fatalf("two quiet sends within a second traced %d times:\n%s", got, trace.String())
	}
}
