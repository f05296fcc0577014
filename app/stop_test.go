package app

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"sync"
	"testing"
	"time"

	"dht/app/state"
	"dht/internal/udpio"
	"dht/store"
)

// stuckWriter is a pipe whose reader stopped reading: its first Write says
// so on entered, and every Write blocks until release is closed.
type stuckWriter struct {
	once    sync.Once
	entered chan struct{}
	release chan struct{}
}

func newStuckWriter(t *testing.T) *stuckWriter {
	w := &stuckWriter{entered: make(chan struct{}), release: make(chan struct{})}
	t.Cleanup(func() { close(w.release) }) // the writer's goroutine ends
	return w
}

func (w *stuckWriter) Write(b []byte) (int, error) {
	w.once.Do(func() { close(w.entered) })
	<-w.release
	return len(b), nil
}

// shortGrace makes a stopped runner give its output up at once.
func shortGrace(t *testing.T) {
	old := stopGrace
	stopGrace = time.Millisecond
	t.Cleanup(func() { stopGrace = old })
}

// awaitStop fails the test unless Run ends: without the grace it never
// did (the bound is far above it, only so that a failing test ends).
func awaitStop(t *testing.T, what string, done <-chan error) {
	t.Helper()
	select {
	case <-done:
	case <-time.After(time.Minute):
		t.Fatalf("%s did not return after its context was cancelled: it waits for a reader that does not read", what)
	}
}

// A peer asked to stop (SIGTERM, SIGINT: its context cancelled) whose
// stdout is not read stops all the same (a review: with its results piped
// into a stuck reader it slept for ever, a second SIGTERM too).
func TestAPeerStopsWhenItsOutputIsNotRead(t *testing.T) {
	shortGrace(t)
	w := newStuckWriter(t)
	lines := make(chan string, 1)
	lines <- "help"
	r := &PeerRunner{Core: NewPeer(PeerConfig{Server: netip.MustParseAddrPort("10.0.0.1:4000")}), Lines: lines, Out: w}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	<-w.entered // help's text is being written, and the write blocks
	cancel()
	awaitStop(t, "PeerRunner.Run", done)
}

// The same for a server whose trace (stderr) is not read.
func TestAServerStopsWhenItsTraceIsNotRead(t *testing.T) {
	shortGrace(t)
	w := newStuckWriter(t)
	net := udpio.NewNet()
	conn, err := net.Listen(netip.MustParseAddrPort("10.0.0.1:4000"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	r := &ServerRunner{Conn: conn, Core: NewServer(ServerConfig{Rand: rand.New(rand.NewPCG(1, 2))}, state.ServerState{}, nil),
		Store: store.NewMemServer(), Log: slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	// A stranger's junk is traced.
	c, err := net.Listen(netip.MustParseAddrPort("10.0.0.2:5000"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.WriteBatch([]udpio.Message{{Buf: []byte("not a dht datagram"), Addr: conn.LocalAddr()}}); err != nil {
		t.Fatal(err)
	}
	<-w.entered
	cancel()
	awaitStop(t, "ServerRunner.Run", done)
}
