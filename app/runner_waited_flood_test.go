package app

import (
	"io"
	"log/slog"
	"net/netip"
	"testing"
	"testing/synctest"
	"time"

	"dht/internal/udpio"
	"dht/wire"
)

// fullLotsConn hands its reader n full lots (a socket under a flood: no
// read ever empties its queue), gap apart; at(i) is when the socket says
// lot i's datagrams came.
type fullLotsConn struct {
	udpio.Conn
	dg  []byte
	n   int
	gap time.Duration
	at  func(i int) time.Time
}

func (c fullLotsConn) ReadBatches(ms []udpio.Message, handle func([]udpio.Message) (bool, bool)) error {
	for i := range c.n {
		if i > 0 {
			time.Sleep(c.gap)
		}
		for j := range ms {
			ms[j].N, ms[j].Addr, ms[j].At = copy(ms[j].Buf, c.dg), netip.MustParseAddrPort("10.0.0.2:5000"), c.at(i)
		}
		if ok, _ := handle(ms); !ok {
			return nil
		}
	}
	return nil
}
func (fullLotsConn) LocalAddr() netip.AddrPort { return netip.MustParseAddrPort("10.0.0.1:4000") }

// Under a flood that keeps the socket's queue full, no read empties it, and
// the bound on a datagram's wait (the read that last emptied the queue) is
// gone: the wall clock set an hour forward between two reads 50 ms apart
// (an NTP step) makes the second lot an hour old, and the server judges
// who is silent as of an hour ago (a dead Free user is online, and a
// setup-dht picks it). What came in a lot came after what came in the lot
// before, whose wait was taken at its own read.
func TestAWaitUnderAFloodIsBoundedByTheLotBefore(t *testing.T) {
	dg, err := wire.Append(nil, 7, 0, wire.QueryDHT{Name: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	synctest.Test(t, func(t *testing.T) {
		at := func(i int) time.Time {
			if i == 0 {
				return time.Now().Add(-100 * time.Millisecond) // queued 100 ms
			}
			return time.Now().Add(-time.Hour) // the wall clock an hour ahead since it came
		}
		e := newEndpoint(fullLotsConn{dg: dg, n: 2, gap: 50 * time.Millisecond, at: at}, log, nil, &Traffic{}, time.Now)
		var got []time.Duration
		e.read(func(in []datagram) (bool, bool) {
			e.take(in, nil, func(d Datagram) []Output { got = append(got, d.Waited); return nil })
			return true, false
		}, nil)
		if len(got) != 2*readBatch {
			t.Fatalf("%d datagrams, want %d", len(got), 2*readBatch)
		}
		if w := got[len(got)-1]; w > 150*time.Millisecond {
			t.Fatalf("the second lot waited %v; want no longer than the 150ms since the lot before it came", w)
		}
	})
}
