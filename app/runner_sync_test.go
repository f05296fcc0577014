package app

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"dht/dataset"
	"dht/internal/udpio"
	"dht/store"
	"dht/wire"
)

// The tests here run the real runners, server and peers, over an
// in-memory network (udpio.Net) with in-memory stores, inside a
// testing/synctest bubble: time is the bubble's, and it moves on only when
// every goroutine waits, so a test of timers takes no time and sees every
// deadline exactly.

// fakeNet is a server and its peers on a udpio.Net; make it inside the
// bubble, and close it before the bubble ends.
type fakeNet struct {
	t       *testing.T
	net     *udpio.Net
	server  netip.AddrPort
	data    dataset.Source
	ctx     context.Context
	cancel  context.CancelFunc
	srvDone chan error
	users   []*User
	stops   map[*User]context.CancelFunc
}

func newFakeNet(t *testing.T) *fakeNet {
	t.Helper()
	f := &fakeNet{t: t, net: udpio.NewNet(), server: netip.MustParseAddrPort("10.0.0.1:4000"),
		data: dataset.SyntheticSource{N: 60, Seed: 1}, srvDone: make(chan error, 1), stops: map[*User]context.CancelFunc{}}
	conn, err := f.net.Listen(f.server)
	if err != nil {
		t.Fatal(err)
	}
	f.ctx, f.cancel = context.WithCancel(context.Background())
	r := &ServerRunner{
		Conn:  conn,
		Core:  NewServer(ServerConfig{Rand: rand.New(rand.NewPCG(1, 2))}, store.ServerState{}, nil),
		Store: store.NewMemServer(),
	}
	go func() {
		err := r.Run(f.ctx)
		conn.Close()
		f.srvDone <- err
	}()
	return f
}

// peer starts user i's peer process (not yet registered). out, if not nil,
// is its stdout; otherwise Do reads what it prints.
func (f *fakeNet) peer(i int, out io.Writer, log *slog.Logger) *User {
	u := &User{
		Name:  UserName(i),
		Addr:  netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 1, byte(i + 1)}), 5000),
		lines: make(chan string),
		out:   make(chan printed, 64),
		done:  make(chan struct{}),
	}
	if out == nil {
		out = lineWriter(u.out)
	}
	u.Runner = &PeerRunner{
		Core: NewPeer(PeerConfig{
			Server:   f.server,
			LoadData: func() (dataset.Source, error) { return f.data, nil },
			Rand:     rand.New(rand.NewPCG(1, uint64(i)+10)),
		}),
		Lines:     u.lines,
		Out:       out,
		Log:       log,
		Listen:    f.net.Listen,
		OpenStore: func(string) (PeerStore, error) { return store.NewMemPeer(), nil },
	}
	ctx, cancel := context.WithCancel(f.ctx)
	go func() {
		u.err = u.Runner.Run(ctx)
		close(u.done)
	}()
	f.users = append(f.users, u)
	f.stops[u] = cancel
	return u
}

// stopPeer ends u's process as SIGTERM would, and waits for it.
func (f *fakeNet) stopPeer(u *User) {
	f.t.Helper()
	f.stops[u]()
	<-u.done
}

// close ends every peer and the server.
func (f *fakeNet) close() {
	f.t.Helper()
	f.cancel()
	for _, u := range f.users {
		f.stops[u]()
		<-u.done
		if u.err != nil {
			f.t.Errorf("%s: %v", u.Name, u.err)
		}
	}
	if err := <-f.srvDone; err != nil {
		f.t.Errorf("server: %v", err)
	}
}

func (f *fakeNet) must(u *User, line string) []string {
	f.t.Helper()
	got, err := u.Must(f.ctx, line)
	if err != nil {
		f.t.Fatal(err)
	}
	return got
}

func (f *fakeNet) register(u *User) {
	f.t.Helper()
	f.must(u, fmt.Sprintf("register %s %s %d", u.Name, u.Addr.Addr(), u.Addr.Port()))
}

// A request to a server that does not answer is sent again on the
// runner's timer, no sooner than the timeout and no later than the cap of
// the back-off, always with the same id, and given up when the request
// timeout has passed: the result says so at that moment, the address is
// let go of, and nothing more is sent.
func TestRunnerRetransmitsRequestsAndGivesUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := udpio.NewNet()
		server := netip.MustParseAddrPort("10.0.0.1:4000")
		deaf, err := n.Listen(server)
		if err != nil {
			t.Fatal(err)
		}
		type arrival struct {
			at    time.Time
			id    uint32
			flags wire.Flags
		}
		var (
			mu       sync.Mutex
			arrivals []arrival
		)
		deafDone := make(chan struct{})
		go func() {
			defer close(deafDone)
			ms := []udpio.Message{{Buf: make([]byte, wire.MaxDatagram+1)}}
			_ = deaf.ReadBatches(ms, func(lot []udpio.Message) (bool, bool) {
				for _, m := range lot {
					h, _, err := wire.Decode(m.Buf[:m.N])
					if err != nil {
						t.Errorf("the server got a datagram it cannot decode: %v", err)
					}
					mu.Lock()
					arrivals = append(arrivals, arrival{time.Now(), h.ID, h.Flags})
					mu.Unlock()
				}
				return true, false
			})
		}()
		// The back-off's cap is MaxRTO, or four times the timeout if that
		// is longer: not here.
		const (
			rto     = 20 * time.Millisecond
			maxRTO  = 100 * time.Millisecond
			timeout = 2 * time.Second
		)
		lines := make(chan string, 1)
		out := make(chan printed, 4)
		self := netip.MustParseAddrPort("10.0.0.2:5000")
		r := &PeerRunner{
			Core: NewPeer(PeerConfig{
				Server:         server,
				Rand:           rand.New(rand.NewPCG(1, 2)),
				Link:           LinkConfig{RTO: rto, MaxRTO: maxRTO},
				RequestTimeout: timeout,
			}),
			Lines:     lines,
			Out:       lineWriter(out),
			Listen:    n.Listen,
			OpenStore: func(string) (PeerStore, error) { return store.NewMemPeer(), nil },
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- r.Run(ctx) }()
		start := time.Now()
		lines <- fmt.Sprintf("register alice %s %d", self.Addr(), self.Port())
		p := <-out
		if !strings.HasPrefix(p.line, "register FAILURE: no answer from the server") {
			t.Fatalf("result %q, want a register FAILURE for want of an answer", p.line)
		}
		if took := p.at.Sub(start); took < timeout || took > timeout+maxRTO {
			t.Errorf("the failure came after %v, want the request timeout %v (at the next deadline from it)", took, timeout)
		}
		// Nothing more is sent, and the address is free again.
		time.Sleep(time.Minute)
		synctest.Wait()
		mu.Lock()
		got := arrivals
		mu.Unlock()
		if c, err := n.Listen(self); err != nil {
			t.Errorf("the failed register still holds %v: %v", self, err)
		} else {
			c.Close()
		}
		if len(got) < int(timeout/maxRTO) || len(got) > int(timeout/rto)+1 {
			t.Errorf("the server got the request %d times in %v, want one every %v to %v", len(got), timeout, rto, maxRTO)
		}
		for i, a := range got {
			if a.id != got[0].id {
				t.Errorf("transmission %d has id %d, want the request's %d", i, a.id, got[0].id)
			}
			if retx := a.flags&wire.FlagRetransmit != 0; retx != (i > 0) {
				t.Errorf("transmission %d: retransmit flag %v", i, retx)
			}
			if i == 0 {
				if !a.at.Equal(start) {
					t.Errorf("first sent %v after the line, want at once", a.at.Sub(start))
				}
				continue
			}
			if gap := a.at.Sub(got[i-1].at); gap < rto || gap > maxRTO {
				t.Errorf("transmission %d came %v after the one before, want %v to %v", i, gap, rto, maxRTO)
			}
		}
		if last := got[len(got)-1].at.Sub(start); last >= timeout {
			t.Errorf("a retransmission %v after the first, at or after the request timeout %v", last, timeout)
		}
		close(lines)
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		cancel()
		deaf.Close()
		<-deafDone
	})
}

// A ring member that stops acknowledging is given up on GiveUp after the
// message it does not acknowledge was first sent: the leader's teardown,
// retransmitted on the runner's timer meanwhile, fails saying so.
func TestRunnerGivesUpOnASilentNeighbour(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeNet(t)
		defer f.close()
		var trace bytes.Buffer
		var traceMu sync.Mutex
		a := f.peer(0, nil, slog.New(slog.NewTextHandler(lockedWriter{&traceMu, &trace}, nil)))
		b := f.peer(1, nil, nil)
		f.register(a)
		f.register(b)
		f.must(a, "setup-dht 2 "+a.Name)
		f.stopPeer(b)
		start := time.Now()
		got, err := a.Do(f.ctx, "teardown-dht "+a.Name)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 2 || got[0] != "teardown-dht SUCCESS" || !strings.Contains(got[1], "teardown sent to "+b.Addr.String()+" was not acknowledged within "+DefaultGiveUp.String()) {
			t.Fatalf("teardown with a silent neighbour printed %q, want SUCCESS, then a FAILURE that names it", got)
		}
		// The request to the server and its answer take no time here.
		if took := a.Printed.Sub(start); took < DefaultGiveUp || took > DefaultGiveUp+DefaultMaxRTO {
			t.Errorf("gave up after %v, want GiveUp (%v)", took, DefaultGiveUp)
		}
		f.stopPeer(a)
		if st := a.Runner.Core.Stats(); st.Retransmits < uint64(DefaultGiveUp/DefaultMaxRTO) || st.GaveUp == 0 {
			t.Errorf("stats %+v: want a retransmission every %v at most, and a give-up", st, DefaultMaxRTO)
		}
		traceMu.Lock()
		defer traceMu.Unlock()
		if !strings.Contains(trace.String(), "gave up: no acknowledgement") {
			t.Errorf("the trace does not say it gave up:\n%s", trace.String())
		}
	})
}

// lockedWriter is a writer shared by goroutines.
type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}
