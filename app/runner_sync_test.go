package app

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"dht/app/state"
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
	users   []*syncUser
	stops   map[*syncUser]context.CancelFunc
}

// syncUser is one peer process of a fakeNet and the terminal it is typed
// at.
type syncUser struct {
	Name   string
	Addr   netip.AddrPort
	Runner *PeerRunner
	// Printed is when the peer wrote the last result Do returned.
	Printed time.Time

	lines chan string
	out   resultChan
	done  chan struct{}
	err   error
}

type printedResult struct {
	r  Result
	at time.Time
}

// resultChan takes a runner's results typed (a ResultWriter), with the
// time each was written.
type resultChan chan printedResult

func (c resultChan) WriteResult(r Result) { c <- printedResult{r, time.Now()} }

func (c resultChan) Write([]byte) (int, error) {
	return 0, fmt.Errorf("results are taken typed")
}

// lastOfCommand: every result ends its command but the SUCCESS of a
// command whose ring part follows (setup-dht, leave-dht, teardown-dht).
func lastOfCommand(r Result) bool {
	switch r.Cmd {
	case CmdSetupDHT, CmdLeaveDHT, CmdTeardownDHT:
		return !r.OK
	}
	return true
}

// Do types line and returns, as text, the results up to the command's
// last.
func (u *syncUser) Do(ctx context.Context, line string) ([]string, error) {
	select {
	case u.lines <- line:
	case <-u.done:
		return nil, fmt.Errorf("%s has stopped: %v", u.Name, u.err)
	case <-ctx.Done():
		return nil, fmt.Errorf("%s: %q not read: %w", u.Name, line, context.Cause(ctx))
	}
	var got []string
	for {
		select {
		case p := <-u.out:
			got = append(got, p.r.String())
			u.Printed = p.at
			if lastOfCommand(p.r) {
				return got, nil
			}
		case <-u.done:
			return got, fmt.Errorf("%s has stopped: %v", u.Name, u.err)
		case <-ctx.Done():
			return got, fmt.Errorf("%s: %q did not finish (printed %q): %w", u.Name, line, got, context.Cause(ctx))
		}
	}
}

// Must is Do that fails unless every result says SUCCESS.
func (u *syncUser) Must(ctx context.Context, line string) ([]string, error) {
	got, err := u.Do(ctx, line)
	if err != nil {
		return got, err
	}
	for _, r := range got {
		if _, rest, _ := strings.Cut(r, " "); !strings.HasPrefix(rest, "SUCCESS") {
			return got, fmt.Errorf("%s: %q: %s", u.Name, line, r)
		}
	}
	return got, nil
}

func newFakeNet(t *testing.T) *fakeNet {
	t.Helper()
	f := &fakeNet{t: t, net: udpio.NewNet(), server: netip.MustParseAddrPort("10.0.0.1:4000"),
		data: dataset.SyntheticSource{N: 60, Seed: 1}, srvDone: make(chan error, 1), stops: map[*syncUser]context.CancelFunc{}}
	conn, err := f.net.Listen(f.server)
	if err != nil {
		t.Fatal(err)
	}
	f.ctx, f.cancel = context.WithCancel(context.Background())
	r := &ServerRunner{
		Conn:  conn,
		Core:  NewServer(ServerConfig{Rand: rand.New(rand.NewPCG(1, 2))}, state.ServerState{}, nil),
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
func (f *fakeNet) peer(i int, out io.Writer, log *slog.Logger) *syncUser {
	u := &syncUser{
		Name:  "user" + string(rune('a'+i)),
		Addr:  netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 1, byte(i + 1)}), 5000),
		lines: make(chan string),
		out:   make(resultChan, 64),
		done:  make(chan struct{}),
	}
	if out == nil {
		out = u.out
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
func (f *fakeNet) stopPeer(u *syncUser) {
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

func (f *fakeNet) must(u *syncUser, line string) []string {
	f.t.Helper()
	got, err := u.Must(f.ctx, line)
	if err != nil {
		f.t.Fatal(err)
	}
	return got
}

func (f *fakeNet) register(u *syncUser) {
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
		// A request's back-off doubles to ServerMaxRTO, above the ring's
		// MaxRTO: a server that answers nothing is down or stopped, and
		// each request would otherwise go every MaxRTO till its give-up.
		const (
			rto     = 20 * time.Millisecond
			maxRTO  = 100 * time.Millisecond
			timeout = 2 * time.Second
		)
		lines := make(chan string, 1)
		out := make(resultChan, 4)
		self := netip.MustParseAddrPort("10.0.0.2:5000")
		r := &PeerRunner{
			Core: NewPeer(PeerConfig{
				Server:         server,
				Rand:           rand.New(rand.NewPCG(1, 2)),
				Link:           LinkConfig{Retry: Retry{RTO: rto, MaxRTO: maxRTO}},
				RequestTimeout: timeout,
			}),
			Lines:     lines,
			Out:       out,
			Listen:    n.Listen,
			OpenStore: func(string) (PeerStore, error) { return store.NewMemPeer(), nil },
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- r.Run(ctx) }()
		start := time.Now()
		lines <- fmt.Sprintf("register alice %s %d", self.Addr(), self.Port())
		p := <-out
		if !strings.HasPrefix(p.r.String(), "register FAILURE: no answer from the server") {
			t.Fatalf("result %q, want a register FAILURE for want of an answer", p.r.String())
		}
		if took := p.at.Sub(start); took != timeout {
			t.Errorf("the failure came after %v, want the request timeout %v", took, timeout)
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
		// 0, 20, 60, 140, 300, 620, 1260 ms: the timeout doubles from
		// rto to ServerMaxRTO.
		if want := 7; len(got) != want {
			t.Errorf("the server got the request %d times in %v, want %d (the timeout doubling from %v to %v)", len(got), timeout, want, rto, ServerMaxRTO)
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
			if gap, want := a.at.Sub(got[i-1].at), min(rto<<(i-1), ServerMaxRTO); gap != want {
				t.Errorf("transmission %d came %v after the one before, want %v", i, gap, want)
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
		if len(got) != 2 || got[0] != "teardown-dht SUCCESS" || !strings.Contains(got[1], "teardown sent to "+b.Name+" ("+b.Addr.String()+") was not acknowledged within "+DefaultGiveUp.String()) {
			t.Fatalf("teardown with a silent neighbour printed %q, want SUCCESS, then a FAILURE that names it", got)
		}
		// The request to the server and its answer take no time here. In
		// the bubble a round trip takes no time either, so none is
		// measured: the back-off's cap is four times the initial timeout.
		capRTO := max(DefaultMaxRTO, 4*DefaultRTO)
		if took := a.Printed.Sub(start); took < DefaultGiveUp || took > DefaultGiveUp+capRTO {
			t.Errorf("gave up after %v, want GiveUp (%v)", took, DefaultGiveUp)
		}
		f.stopPeer(a)
		if st := a.Runner.Core.Stats(); st.Retransmits < uint64(DefaultGiveUp/capRTO) || st.GaveUp == 0 {
			t.Errorf("stats %+v: want a retransmission every %v at most, and a give-up", st, capRTO)
		}
		traceMu.Lock()
		defer traceMu.Unlock()
		if !strings.Contains(trace.String(), "gave up: no acknowledgement") {
			t.Errorf("the trace does not say it gave up:\n%s", trace.String())
		}
	})
}

// A peer whose stdout nobody reads (a pager left open, a full pipe) goes
// on serving its ring: for a minute after its first result could not be
// written, it takes its part in a setup, acknowledges its neighbour, and
// answers the queries that reach it. Its trace, unread too, does not stop
// it either. Before the runner wrote off its lock, the first result
// stopped the peer, and its neighbour gave up on it after GiveUp.
func TestRunnerServesWhileStdoutIsBlocked(t *testing.T) {
	// A runner that writes under its lock again would leave a goroutine
	// waiting for that lock, which stops the bubble's clock: fail in a
	// minute of real time rather than at the package's timeout.
	stuck := time.AfterFunc(time.Minute, func() {
		panic("TestRunnerServesWhileStdoutIsBlocked stuck: a runner waits for its lock, held while writing where nobody reads")
	})
	defer stuck.Stop()
	synctest.Test(t, func(t *testing.T) {
		f := newFakeNet(t)
		outR, outW := io.Pipe()
		traceR, traceW := io.Pipe()
		a := f.peer(0, nil, nil)
		b := f.peer(1, outW, slog.New(slog.NewTextHandler(traceW, nil)))
		f.register(a)
		b.lines <- fmt.Sprintf("register %s %s %d", b.Name, b.Addr.Addr(), b.Addr.Port())
		synctest.Wait() // registered, and stuck writing so
		blocked := time.Now()
		f.must(a, "setup-dht 2 "+a.Name) // b is the other member
		c := f.peer(2, nil, nil)
		f.register(c)
		answeredByB := 0
		for i := 0; time.Since(blocked) < time.Minute; i++ {
			rec := f.data.Record(i * 7 % f.data.Len())
			got := f.must(c, "query-dht "+c.Name+" "+rec.LongName)
			if strings.Contains(got[0], "found at node "+b.Name) {
				answeredByB++
			}
			time.Sleep(5 * time.Second)
		}
		if answeredByB == 0 {
			t.Errorf("no query was answered by %s", b.Name)
		}
		// Read what b could not write, and end everything.
		var out, trace bytes.Buffer
		copied := make(chan struct{}, 2)
		go func() { io.Copy(&out, outR); copied <- struct{}{} }()
		go func() { io.Copy(&trace, traceR); copied <- struct{}{} }()
		f.close()
		outW.Close()
		traceW.Close()
		<-copied
		<-copied
		if st := a.Runner.Core.Stats(); st.GaveUp != 0 {
			t.Errorf("%s gave up on its neighbour %d times", a.Name, st.GaveUp)
		}
		if out.String() != "register SUCCESS\n" {
			t.Errorf("%s printed %q, want its one result", b.Name, out.String())
		}
		if !strings.Contains(trace.String(), "msg=recv") {
			t.Errorf("%s's trace, once read, has no datagram received:\n%s", b.Name, trace.String())
		}
	})
}

// A peer that exits after deregister has written every result, however
// slow its stdout, by the time Run returns (and the process ends).
func TestRunnerWritesEverythingBeforeItExits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeNet(t)
		defer f.close()
		var out slowWriter
		u := f.peer(0, &out, nil)
		u.lines <- fmt.Sprintf("register %s %s %d", u.Name, u.Addr.Addr(), u.Addr.Port())
		u.lines <- "deregister " + u.Name
		<-u.done
		if got, want := out.String(), "register SUCCESS\nderegister SUCCESS\n"; got != want {
			t.Errorf("written when Run returned: %q, want %q", got, want)
		}
	})
}

// slowWriter takes a second to write.
type slowWriter struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (w *slowWriter) Write(b []byte) (int, error) {
	time.Sleep(time.Second)
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(b)
}

func (w *slowWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// Results that nobody reads stop the input, not the peer: past a bound of
// results waiting, the runner reads no more lines; once they are read it
// goes on, every result in order.
func TestRunnerStopsReadingWhileResultsWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeNet(t)
		defer f.close()
		outR, outW := io.Pipe()
		u := f.peer(0, outW, nil)
		const total = 3 * maxPrinted
		var mu sync.Mutex
		typed := 0
		go func() {
			for i := range total {
				u.lines <- fmt.Sprintf("nosuch%d", i)
				mu.Lock()
				typed++
				mu.Unlock()
			}
			close(u.lines)
		}()
		synctest.Wait()
		mu.Lock()
		stalled := typed
		mu.Unlock()
		// A result a line: one being written, the others waiting.
		if stalled != maxPrinted {
			t.Errorf("with no result read, the runner read %d lines, want it to stop at %d", stalled, maxPrinted)
		}
		sc := bufio.NewScanner(outR)
		for i := range total {
			if !sc.Scan() {
				t.Fatalf("result %d: %v", i, sc.Err())
			}
			if want := fmt.Sprintf("nosuch%d FAILURE: ", i); !strings.HasPrefix(sc.Text(), want) {
				t.Fatalf("result %d is %q, want it to start with %q", i, sc.Text(), want)
			}
		}
		<-u.done // input ended, unregistered: the peer exits
		outR.Close()
	})
}

// A trace that nobody reads keeps a bounded queue: what does not fit is
// dropped and counted, and once the trace is read again it says how many
// lines it dropped, after the ones it kept, in order.
func TestTraceQueueDropsAndCounts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, w := io.Pipe()
		log, flush := queueTrace(slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{
			ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
				if a.Key == slog.TimeKey {
					return slog.Attr{}
				}
				return a
			},
		})))
		const total = traceQueueLen + 100
		for i := range total {
			log.Info("line", "i", i)
		}
		go func() {
			flush(nil)
			w.Close()
		}()
		sc := bufio.NewScanner(r)
		kept, dropped := 0, -1
		for sc.Scan() {
			switch line := sc.Text(); {
			case line == fmt.Sprintf("level=INFO msg=line i=%d", kept):
				kept++
			case dropped < 0 && strings.HasPrefix(line, `level=WARN msg="trace lines dropped" count=`):
				fmt.Sscanf(line, `level=WARN msg="trace lines dropped" count=%d`, &dropped)
			default:
				t.Fatalf("after %d lines kept: %q", kept, line)
			}
		}
		if kept < traceQueueLen || kept+dropped != total {
			t.Errorf("%d lines kept and %d said dropped, want at least %d kept and %d in all", kept, dropped, traceQueueLen, total)
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

// A flood of datagrams that are not ours costs the trace a few lines a
// second, not a line each: in each second the first few of each reason,
// then one line with how many more there were and from how many sources.
func TestRunnerSummarisesAFloodOfDrops(t *testing.T) {
	alice := netip.MustParseAddrPort("10.0.0.2:5000")
	secret := wire.Key{0xa1}
	registered := state.ServerState{Users: []state.User{{Name: "alice", Addr: alice, State: state.Free, Secret: secret, Seq: 1 << 40}}}
	must := func(b []byte, err error) []byte {
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	dereg := wire.Deregister{Name: "alice"}
	for _, c := range []struct {
		name   string
		dg     []byte
		reason string
	}{
		{"junk", []byte("not a datagram of ours"), "not a datagram of ours"},
		// Well-formed requests that prove nothing: they cost no disk
		// write, change nothing, and are traced as drops, not each.
		{"unsigned request", must(wire.Append(nil, 7, 0, dereg)), "request not signed"},
		{"signed with another key", must(wire.AppendSigned(nil, 7, 0, dereg, 1<<41, wire.Key{0xee})), "request not signed with the user's secret"},
		{"replayed", must(wire.AppendSigned(nil, 7, 0, dereg, 5, secret)), "replayed request"},
		{"unsigned register", must(wire.Append(nil, 7, 0, wire.Register{Name: "bob", Addr: alice})), ""},
	} {
		t.Run(c.name, func(t *testing.T) { floodServer(t, registered, c.dg, c.reason) })
	}
}

// everyLine counts the records at every level, debug included (what
// --trace-json writes), and hands Handler those it wants.
type everyLine struct {
	slog.Handler
	n *atomic.Int64
}

func (h everyLine) Enabled(context.Context, slog.Level) bool { return true }

func (h everyLine) Handle(ctx context.Context, r slog.Record) error {
	h.n.Add(1)
	if !h.Handler.Enabled(ctx, r.Level) {
		return nil
	}
	return h.Handler.Handle(ctx, r)
}

func (h everyLine) WithAttrs(as []slog.Attr) slog.Handler {
	return everyLine{Handler: h.Handler.WithAttrs(as), n: h.n}
}

func (h everyLine) WithGroup(name string) slog.Handler {
	return everyLine{Handler: h.Handler.WithGroup(name), n: h.n}
}

// countingStore counts the server's commits.
type countingStore struct {
	ServerStore
	saves atomic.Int64
}

func (s *countingStore) Save(st state.ServerState, reply *state.CachedReply, forget ...netip.AddrPort) error {
	s.saves.Add(1)
	return s.ServerStore.Save(st, reply, forget...)
}

// floodServer sends dg to a server from 40 sources, 4000 a second for 3
// seconds: the trace shows a few drops a second for reason and a summary
// that counts every one, a second's once that second is over (reason ""; an unsigned register, which is
// challenged: a few lines a second as well), and the server writes nothing
// and ends as it began.
func floodServer(t *testing.T, st state.ServerState, dg []byte, reason string) {
	synctest.Test(t, func(t *testing.T) {
		n := udpio.NewNet()
		server := netip.MustParseAddrPort("10.0.0.1:4000")
		conn, err := n.Listen(server)
		if err != nil {
			t.Fatal(err)
		}
		var trace bytes.Buffer
		var traceMu sync.Mutex
		var all atomic.Int64 // lines at every level, as --trace-json writes them
		db := &countingStore{ServerStore: store.NewMemServer()}
		core := NewServer(ServerConfig{Rand: rand.New(rand.NewPCG(1, 2))}, st, nil)
		r := &ServerRunner{
			Conn:  conn,
			Core:  core,
			Store: db,
			Log:   slog.New(everyLine{Handler: slog.NewTextHandler(lockedWriter{&traceMu, &trace}, nil), n: &all}),
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- r.Run(ctx) }()
		const seconds, perSecond, sources = 3, 4000, 40
		var senders []udpio.Conn
		for i := range sources {
			c, err := n.Listen(netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 9, byte(i / 200), byte(i%200 + 1)}), 666))
			if err != nil {
				t.Fatal(err)
			}
			senders = append(senders, c)
		}
		junk := []udpio.Message{{Buf: dg, Addr: server}}
		for range seconds {
			for i := range perSecond {
				if _, err := senders[i%sources].WriteBatch(junk); err != nil {
					t.Fatal(err)
				}
				if i%500 == 0 {
					synctest.Wait() // let the server read
				}
			}
			synctest.Wait()
			time.Sleep(time.Second)
		}
		synctest.Wait()
		// Read before the server stops: the last second's count is traced
		// once the second is over, with no more drops to bring it out.
		traceMu.Lock()
		lines := strings.Split(strings.TrimSpace(trace.String()), "\n")
		traceMu.Unlock()
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		conn.Close()
		for _, c := range senders {
			c.Close()
		}
		// The refusals (ten a second) go untraced: an attacker's review
		// counted 36,000 lines an hour of them from 430 bytes a second.
		if max := seconds * (dropsShown + 2); len(lines) > max+2 {
			t.Errorf("%d datagrams traced in %d lines, want at most %d", seconds*perSecond, len(lines), max)
		}
		// The debug level (--trace-json) is bounded too: a window's first
		// datagrams, and their challenges, not every one (an attacker's
		// review: 111 MB in 25 s).
		if max := int64(seconds * 2 * (dropRecvs + 2)); all.Load() > max+int64(len(lines)) {
			t.Errorf("%d datagrams traced in %d lines at the debug level, want at most %d", seconds*perSecond, all.Load(), max+int64(len(lines)))
		}
		if db.saves.Load() != 0 {
			t.Errorf("the flood made %d commits", db.saves.Load())
		}
		if !srvSameState(core.Snapshot(), st) {
			t.Errorf("the flood changed the state: %+v", core.Snapshot())
		}
		if reason == "" {
			return
		}
		shown, summaries, counted := 0, 0, 0
		for _, line := range lines {
			switch {
			case strings.Contains(line, `msg="dropped: `+reason+`"`):
				shown++
			case strings.Contains(line, `msg="dropped, and more like it"`):
				summaries++
				var c int
				if _, err := fmt.Sscanf(line[strings.Index(line, "count=")+len("count="):], "%d", &c); err != nil {
					t.Fatalf("summary without a count: %s", line)
				}
				counted += c
				if !strings.Contains(line, fmt.Sprintf("sources=%d", sources)) {
					t.Errorf("summary does not count the %d sources: %s", sources, line)
				}
			}
		}
		if shown > seconds*dropsShown || summaries > seconds+1 || shown+counted != seconds*perSecond {
			t.Errorf("%d datagrams traced as %d lines and %d summaries counting %d: want at most %d lines a second, and every datagram counted",
				seconds*perSecond, shown, summaries, counted, dropsShown)
		}
	})
}

// A server stopped by a signal ends its trace with why, after the counts
// of the drops it still held (a review: the count came after the exit
// line); one stopped with no cause (dht play, demo and bench end their
// clusters so) writes no such line.
func TestServerTraceEndsWithWhyItStopped(t *testing.T) {
	dg, err := wire.Append(nil, 7, 0, wire.Deregister{Name: "alice"}) // not signed: dropped
	if err != nil {
		t.Fatal(err)
	}
	for _, cause := range []error{errors.New("terminated signal received"), nil} {
		synctest.Test(t, func(t *testing.T) {
			n := udpio.NewNet()
			server := netip.MustParseAddrPort("10.0.0.1:4000")
			conn, err := n.Listen(server)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			from, err := n.Listen(netip.MustParseAddrPort("10.9.0.1:666"))
			if err != nil {
				t.Fatal(err)
			}
			defer from.Close()
			var trace bytes.Buffer
			var traceMu sync.Mutex
			r := &ServerRunner{Conn: conn, Core: NewServer(ServerConfig{Rand: rand.New(rand.NewPCG(1, 2))}, state.ServerState{}, nil),
				Store: store.NewMemServer(), Log: slog.New(slog.NewTextHandler(lockedWriter{&traceMu, &trace}, nil))}
			ctx, cancel := context.WithCancelCause(context.Background())
			done := make(chan error, 1)
			go func() { done <- r.Run(ctx) }()
			synctest.Wait()
			for range 3 { // the first traced, the others counted
				if _, err := from.WriteBatch([]udpio.Message{{Buf: dg, Addr: server}}); err != nil {
					t.Fatal(err)
				}
			}
			synctest.Wait()
			time.Sleep(100 * time.Millisecond)
			cancel(cause)
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			traceMu.Lock()
			lines := strings.Split(strings.TrimSpace(trace.String()), "\n")
			traceMu.Unlock()
			last := lines[len(lines)-1]
			exits := strings.Count(trace.String(), "msg=exit")
			switch {
			case !strings.Contains(trace.String(), traceDropMore):
				t.Fatalf("no count of the drops held:\n%s", trace.String())
			case cause != nil && (exits != 1 || !strings.Contains(last, `msg=exit why="terminated signal received"`)):
				t.Fatalf("stopped by a signal, the trace ends %q; want the exit line last:\n%s", last, trace.String())
			case cause == nil && exits != 0:
				t.Fatalf("stopped with no cause, yet an exit line:\n%s", trace.String())
			}
		})
	}
}
