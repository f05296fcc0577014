package app

import (
	"io"
	"log/slog"
	"net/netip"
	"testing"
	"time"

	"dht/internal/udpio"
	"dht/wire"
)

// queuedConn hands its reader one datagram that the socket says came at
// `at`, then stops it.
type queuedConn struct {
	udpio.Conn
	dg []byte
	at time.Time
}

func (c queuedConn) ReadBatches(ms []udpio.Message, handle func([]udpio.Message) (bool, bool)) error {
	ms[0].N, ms[0].Addr, ms[0].At = copy(ms[0].Buf, c.dg), netip.MustParseAddrPort("10.0.0.2:5000"), c.at
	handle(ms[:1])
	return nil
}
func (queuedConn) LocalAddr() netip.AddrPort { return netip.MustParseAddrPort("10.0.0.1:4000") }

// How long a datagram waited in the socket's queue, where the socket says
// when it came, reaches the core with it (Datagram.Waited): the server
// judges who is silent as of then (TestServerJudgesSilenceAsOfWhenARequestCame).
func TestTheTimeADatagramWaitedReachesTheCore(t *testing.T) {
	dg, err := wire.Append(nil, 7, 0, wire.QueryDHT{Name: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		at   time.Time
		want time.Duration // at least
	}{
		{"the socket says", time.Now().Add(-3 * time.Second), 3 * time.Second},
		{"the socket does not say", time.Time{}, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			log := slog.New(slog.NewTextHandler(io.Discard, nil))
			e := newEndpoint(queuedConn{dg: dg, at: c.at}, log, nil, &Traffic{}, time.Now)
			var got []Datagram
			e.read(func(in []datagram) (bool, bool) {
				e.take(in, nil, func(d Datagram) []Output { got = append(got, d); return nil })
				return true, false
			}, nil)
			if len(got) != 1 {
				t.Fatalf("%d datagrams reached the core, want 1", len(got))
			}
			if w := got[0].Waited; w < c.want || c.want == 0 && w != 0 {
				t.Fatalf("Waited %v, want %v", w, c.want)
			}
			if got[0].Stamped == c.at.IsZero() {
				t.Fatalf("Stamped %v, with the socket's time %v", got[0].Stamped, c.at)
			}
		})
	}
}
