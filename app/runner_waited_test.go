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

// lotsConn hands its reader n lots, gap apart, of one datagram (each read
// emptied the queue) or, full, of as many as the reader has room for (a
// socket under a flood: no read ever empties its queue); at(i) is when
// the socket says lot i's datagrams came.
type lotsConn struct {
	udpio.Conn
	dg   []byte
	n    int
	gap  time.Duration
	at   func(i int) time.Time
	full bool
}

func (c lotsConn) ReadBatches(ms []udpio.Message, handle func([]udpio.Message) (bool, bool)) error {
	for i := range c.n {
		if i > 0 {
			time.Sleep(c.gap)
		}
		lot := ms[:1]
		if c.full {
			lot = ms
		}
		for j := range lot {
			lot[j].N, lot[j].Addr, lot[j].At = copy(lot[j].Buf, c.dg), netip.MustParseAddrPort("10.0.0.2:5000"), c.at(i)
		}
		if ok, _ := handle(lot); !ok {
			return nil
		}
	}
	return nil
}
func (lotsConn) LocalAddr() netip.AddrPort { return netip.MustParseAddrPort("10.0.0.1:4000") }

// How long a datagram waited is taken once the runner holds its lock, with
// the clock it steps the core with: a datagram read while a Tick held the
// lock (its commit slow) waited for it too, and judged as of the read it
// was judged as of half a second after it came (a code review). And it
// came after the read before it emptied the queue, whatever the wall clock
// says: set an hour forward meanwhile (an NTP step; a suspend, which the
// wall clock counts and the monotonic one does not), the socket's time
// made it an hour old, and the server judged everyone as of then.
func TestTheTimeADatagramWaitedIsTakenUnderTheLockAndBounded(t *testing.T) {
	dg, err := wire.Append(nil, 7, 0, wire.QueryDHT{Name: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	synctest.Test(t, func(t *testing.T) {
		came := time.Now().Add(-time.Second)
		e := newEndpoint(lotsConn{dg: dg, n: 1, at: func(int) time.Time { return came }}, log, nil, &Traffic{}, time.Now)
		var judged time.Time
		e.read(func(in []datagram) (bool, bool) {
			time.Sleep(500 * time.Millisecond) // the lock, held by a Tick's commit
			now := time.Now()
			e.take(in, nil, func(d Datagram) []Output { judged = now.Add(-d.Waited); return nil })
			return true, false
		}, nil)
		if !judged.Equal(came) {
			t.Fatalf("judged as of %v after it came, want when it came", judged.Sub(came))
		}
	})
	synctest.Test(t, func(t *testing.T) {
		at := func(i int) time.Time {
			if i == 0 {
				return time.Now()
			}
			return time.Now().Add(-time.Hour) // the wall clock an hour ahead since it came
		}
		e := newEndpoint(lotsConn{dg: dg, n: 2, gap: 50 * time.Millisecond, at: at}, log, nil, &Traffic{}, time.Now)
		var got []time.Duration
		e.read(func(in []datagram) (bool, bool) {
			e.take(in, nil, func(d Datagram) []Output { got = append(got, d.Waited); return nil })
			return true, false
		}, nil)
		if len(got) != 2 || got[1] != 50*time.Millisecond {
			t.Fatalf("Waited %v; want the second no longer than the 50ms since the read before it emptied the queue", got)
		}
	})
}

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
		e := newEndpoint(lotsConn{dg: dg, n: 2, gap: 50 * time.Millisecond, at: at, full: true}, log, nil, &Traffic{}, time.Now)
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
