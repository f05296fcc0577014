package app_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"dht/app"
	"dht/app/state"
	"dht/dataset"
	"dht/internal/cluster"
	"dht/internal/loopback"
	"dht/store"
	"dht/wire"
)

// A register refused by the server may be retried at another address. When
// the retry was typed while the first was in flight, the peer starts it as
// the refusal arrives: in the old socket's reader, in its turn. The rebind
// there must not wait for that turn to end (closing a socket waits for its
// reader), and the new socket must work.
func TestRunnerRebindsInTheOldSocketsTurn(t *testing.T) {
	server, taken := startServer(t)
	ports, err := loopback.FreePorts(2)
	if err != nil {
		t.Fatal(err)
	}
	lines, next, done := runPeer(t, server, rand.New(rand.NewPCG(1, 2)),
		// Both typed at once: the second waits in the core for the first.
		fmt.Sprintf("register %s 127.0.0.1 %d", taken, ports[0]),
		fmt.Sprintf("register newcomer 127.0.0.1 %d", ports[1]))
	if got := next(); !strings.HasPrefix(got, "register FAILURE") {
		t.Fatalf("first register: %q, want a refusal (%s is taken)", got, taken)
	}
	if got := next(); got != "register SUCCESS" {
		t.Fatalf("second register, at another port: %q", got)
	}
	// The new socket answers: the server's reply to deregister reaches
	// it, and the peer exits.
	lines <- "deregister newcomer"
	if got := next(); got != "deregister SUCCESS" {
		t.Fatalf("deregister: %q", got)
	}
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
}

// A register refused by the server lets go of the address it bound: once
// the peer has read its next line, the port is free for anyone.
func TestRunnerRefusedRegisterFreesItsAddress(t *testing.T) {
	server, taken := startServer(t)
	ports, err := loopback.FreePorts(2)
	if err != nil {
		t.Fatal(err)
	}
	// Refused, and retried at the same address: typed at once, the retry
	// usually starts in the turn that handles the refusal, and takes the
	// socket back; otherwise it binds the address again.
	lines, next, done := runPeer(t, server, nil,
		fmt.Sprintf("register %s 127.0.0.1 %d", taken, ports[1]),
		fmt.Sprintf("register other 127.0.0.1 %d", ports[1]))
	if got := next(); !strings.HasPrefix(got, "register FAILURE") {
		t.Fatalf("first register: %q, want a refusal (%s is taken)", got, taken)
	}
	if got := next(); got != "register SUCCESS" {
		t.Fatalf("a register at the same address: %q", got)
	}
	lines <- "deregister other"
	if got := next(); got != "deregister SUCCESS" {
		t.Fatalf("deregister: %q", got)
	}
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}

	// Refused, and the next line typed later: by then the port is free.
	lines, next, done = runPeer(t, server, nil)
	lines <- fmt.Sprintf("register %s 127.0.0.1 %d", taken, ports[0])
	if got := next(); !strings.HasPrefix(got, "register FAILURE") {
		t.Fatalf("register: %q, want a refusal (%s is taken)", got, taken)
	}
	// The peer reads this line only once the socket is closed.
	lines <- "help"
	if got := next(); !strings.HasPrefix(got, "help SUCCESS\ncommands (") {
		t.Fatalf("help: %q", got)
	}
	c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), ports[0])))
	if err != nil {
		t.Fatalf("the port of a refused register is still held: %v", err)
	}
	c.Close()
	close(lines)
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
}

// runPeer runs a peer (a PeerRunner, its table files in a temporary
// folder) against server, with the first lines already typed. It returns
// where further lines go, a function that returns the peer's next result
// line (failing the test if the peer stops or nothing comes within a
// minute), and Run's result.
func runPeer(t *testing.T, server netip.AddrPort, rng *rand.Rand, first ...string) (lines chan<- string, next func() string, done <-chan error) {
	t.Helper()
	return runPeerIn(t, t.TempDir(), server, rng, first...)
}

// runPeerIn is runPeer with the peer's files in dir.
func runPeerIn(t *testing.T, dir string, server netip.AddrPort, rng *rand.Rand, first ...string) (lines chan<- string, next func() string, done <-chan error) {
	t.Helper()
	in := make(chan string, len(first)+4)
	for _, l := range first {
		in <- l
	}
	out := make(chan printed, 16)
	r := &app.PeerRunner{
		Core: app.NewPeer(app.PeerConfig{
			Server:   server,
			LoadData: func() (dataset.Source, error) { return dataset.SyntheticSource{N: 10, Seed: 1}, nil },
			Rand:     rng,
		}),
		Lines: in,
		Out:   lineWriter(out),
		OpenStore: func(name string) (app.PeerStore, error) {
			return store.OpenPeer(filepath.Join(dir, "dht-peer-"+name+".db"))
		},
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	ran := make(chan error, 1)
	go func() { ran <- r.Run(ctx) }()
	next = func() string {
		t.Helper()
		select {
		case p := <-out:
			return p.line
		case err := <-ran:
			// What the peer printed is all written before Run returns.
			select {
			case p := <-out:
				ran <- err
				return p.line
			default:
			}
			t.Fatalf("the peer stopped: %v", err)
		case <-ctx.Done():
			t.Fatal("no result within a minute (a rebind stuck?)")
		}
		return ""
	}
	return in, next, ran
}

// A deregister whose file is deleted before it: the server deregisters
// the user, so the command's line says so, and then the peer stops on the
// commit that would have cleared the file, saying that the user is
// deregistered all the same.
func TestDeregisterOnAFileDeletedPrintsItsLine(t *testing.T) {
	server, _ := startServer(t)
	ports, err := loopback.FreePorts(2)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	lines, next, done := runPeerIn(t, dir, server, nil, fmt.Sprintf("register dave 127.0.0.1 %d", ports[0]))
	if got := next(); got != "register SUCCESS" {
		t.Fatalf("register: %q", got)
	}
	if err := os.Remove(filepath.Join(dir, "dht-peer-dave.db")); err != nil {
		t.Fatal(err)
	}
	lines <- "deregister dave"
	if got := next(); got != "deregister SUCCESS" {
		t.Fatalf("deregister: %q", got)
	}
	err = <-done
	if !errors.Is(err, store.ErrGone) || !strings.Contains(err.Error(), "dave is deregistered, but the file could not be cleared, stopping") {
		t.Fatalf("Run: %v; want the file gone, saying dave is deregistered", err)
	}
	// The server holds no dave any more: the name is free at another
	// address.
	_, again, _ := runPeer(t, server, nil, fmt.Sprintf("register dave 127.0.0.1 %d", ports[1]))
	if got := again(); got != "register SUCCESS" {
		t.Fatalf("register dave again elsewhere: %q", got)
	}
}

// startServer starts a server on 127.0.0.1, for a runner under test to
// talk to, and registers a user with it: taken, a name already in use.
func startServer(t *testing.T) (server netip.AddrPort, taken string) {
	t.Helper()
	data := dataset.SyntheticSource{N: 10, Seed: 1}
	cl, err := cluster.Start(cluster.Config{Dir: t.TempDir(), Data: func() (dataset.Source, error) { return data, nil }, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := cl.Stop(); err != nil {
			t.Error(err)
		}
	})
	ports, err := loopback.FreePorts(1)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	taken = "useraaa"
	if _, err := cl.Peer(taken).Must(ctx, fmt.Sprintf("register %s %s %d", taken, loopback.Addr, ports[0])); err != nil {
		t.Fatal(err)
	}
	return cl.Server(), taken
}

// printed is a line a runner wrote.
type printed struct{ line string }

// lineWriter hands each line written (one Write each) to the channel,
// without its final newline.
type lineWriter chan printed

func (w lineWriter) Write(b []byte) (int, error) {
	w <- printed{line: strings.TrimSuffix(string(b), "\n")}
	return len(b), nil
}

// A peer stopped (SIGINT, SIGTERM: its context ends) while a command is in
// progress still prints that command's line, before Run returns: here a
// sleep of an hour, and a resume whose server does not answer.
func TestStoppedPeerPrintsTheCommandInProgress(t *testing.T) {
	silent := netip.MustParseAddrPort("127.0.0.1:9") // nothing answers there
	t.Run("sleep", func(t *testing.T) {
		in := make(chan string) // unbuffered: a send returns once the runner took the line
		r := &app.PeerRunner{Core: app.NewPeer(app.PeerConfig{Server: silent}), Lines: in}
		got := stoppedAfter(t, r, func() { in <- "sleep 1h" })
		if want := []string{"sleep FAILURE: the peer was stopped before it finished"}; !slices.Equal(got, want) {
			t.Fatalf("printed %q, want %q", got, want)
		}
	})
	t.Run("resume", func(t *testing.T) {
		st, err := store.OpenPeer(filepath.Join(t.TempDir(), "p.db"))
		if err != nil {
			t.Fatal(err)
		}
		ports, err := loopback.FreePorts(1)
		if err != nil {
			t.Fatal(err)
		}
		id := state.Identity{Name: "alice", Addr: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), ports[0]), Secret: wire.Key{1}}
		r := &app.PeerRunner{Core: app.NewPeer(app.PeerConfig{Server: silent}), Lines: make(chan string), Resume: &id, Store: st}
		got := stoppedAfter(t, r, func() {})
		if want := []string{"resume FAILURE: the peer was stopped before it finished"}; !slices.Equal(got, want) {
			t.Fatalf("printed %q, want %q", got, want)
		}
	})
}

// stoppedAfter runs r, does what, stops r (its context ends), and returns
// the lines r printed by the time Run returned.
func stoppedAfter(t *testing.T, r *app.PeerRunner, what func()) []string {
	t.Helper()
	out := make(chan printed, 16)
	r.Out = lineWriter(out)
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- r.Run(ctx) }()
	what()
	cancel()
	if err := <-ran; err != nil {
		t.Fatal(err)
	}
	close(out)
	var got []string
	for p := range out {
		got = append(got, p.line)
	}
	return got
}

// A resume that cannot bind the address in its file (another process has
// it: the same user's peer started twice, a copy of its file) prints its
// FAILURE line and stops the peer with an error (status 1), as a file in
// use does: the file is this user's, and no other name or address is to be
// tried with it. It ran on with status 0 at the end of its input. Its line
// does not say to type a register, as a resume that failed otherwise does.
func TestResumeThatCannotBindStopsThePeer(t *testing.T) {
	held, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	st, err := store.OpenPeer(filepath.Join(t.TempDir(), "p.db"))
	if err != nil {
		t.Fatal(err)
	}
	id := state.Identity{Name: "alice", Addr: held.LocalAddr().(*net.UDPAddr).AddrPort(), Secret: wire.Key{1}}
	out := make(chan printed, 16)
	lines := make(chan string)
	close(lines) // no input: without the stop, the peer ends at once with status 0
	r := &app.PeerRunner{Core: app.NewPeer(app.PeerConfig{Server: netip.MustParseAddrPort("127.0.0.1:9")}),
		Lines: lines, Resume: &id, Store: st, Out: lineWriter(out)}
	err = r.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "the resume of alice failed: cannot bind "+id.Addr.String()) || !strings.Contains(err.Error(), "is a peer of alice running already?") {
		t.Fatalf("Run: %v; want the resume's failure", err)
	}
	close(out)
	var got []string
	for p := range out {
		got = append(got, p.line)
	}
	if len(got) != 1 || !strings.HasPrefix(got[0], "resume FAILURE: cannot bind "+id.Addr.String()) {
		t.Fatalf("printed %q, want the resume FAILURE line", got)
	}
	// The process stops: nothing is to be typed (a new-user review: the
	// line said to type a register at a peer that had exited).
	if strings.Contains(got[0], "type 'register") {
		t.Fatalf("printed %q: it tells the user to type into a process that stops", got)
	}
}
