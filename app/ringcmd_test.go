package app

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"dht/dataset"
	"dht/store"
	"dht/wire"
)

// A peer refuses, before it sends anything, the leave-dht or teardown-dht
// of its own user when it holds no place in a ring: the server might agree
// and then wait for a ring part this peer cannot play. A process that lost
// its file and whose register was refused is not registered at all.
func TestRingCommandsWithoutARing(t *testing.T) {
	s, _ := ringOfFour(t, 5)
	free := freeUser(s)
	for _, line := range []string{"leave-dht " + free, "teardown-dht " + free} {
		sent := s.Stats().Sent
		name, _, _ := strings.Cut(line, " ")
		if got, want := s.do(free, line), []string{name + " FAILURE: this peer holds no place in a ring"}; !slices.Equal(got, want) {
			t.Fatalf("%q printed %q, want %q", line, got, want)
		}
		if s.Stats().Sent != sent {
			t.Fatalf("%q sent %d datagrams", line, s.Stats().Sent-sent)
		}
	}
	// Naming another user, the command goes to the server, which decides.
	s.mustDo(free, "teardown-dht alice", "teardown-dht FAILURE: a request for alice must come from its registered address")

	// The leader's process starts again on a new, empty file, at the
	// same address: its register is refused, and its teardown-dht too.
	leader := leaderName(s)
	addr := s.procs[leader].addr
	s.AddPeer(leader, addr, nil)
	s.mustDo(leader, fmt.Sprintf("register %s %s %d", leader, addr.Addr(), addr.Port()), "register FAILURE: "+leader+" is already registered")
	if s.procs[leader].core.bound {
		t.Fatal("still bound after a refused register")
	}
	for _, line := range []string{"teardown-dht " + leader, "leave-dht " + leader} {
		name, _, _ := strings.Cut(line, " ")
		s.mustDo(leader, line, name+" FAILURE: not registered")
	}
	if ph := s.server.Snapshot().DHT.Phase; ph != store.PhaseReady {
		t.Fatalf("server phase %v, want the ring still ready", ph)
	}
	free2 := freeUser(s)
	s.mustDo(free2, "query-dht "+free2+" Aruba", "query-dht SUCCESS")
}

// A peer that is not registered has no table file: ring messages that
// reach it (a register in flight, or a stranger's set-id) are dropped with
// a trace line, and change nothing.
func TestUnregisteredPeerDropsRingMessages(t *testing.T) {
	p := NewPeer(PeerConfig{Server: fzServer})
	now := time.Unix(1_700_000_000, 0)
	msgs := []wire.Message{
		wire.SetID{ID: 1, N: 3, Left: fzLeft, Right: fzRight},
		wire.Store{N: 3, Records: []wire.Record{{3: "aa"}, {3: "Aruba"}}},
		wire.Flush{Leader: "alice", N: 3},
		wire.Teardown{Origin: "alice"},
		wire.ResetID{Origin: "alice", N: 2},
		wire.Query{ReqID: 1, Querier: fzRight, LongName: "Aruba"},
	}
	for i, m := range msgs {
		outs := p.Step(now, fzLeft.Addr, wire.Header{Type: m.Type(), ID: uint32(i + 1)}, m)
		for _, o := range outs {
			if _, ok := o.(Event); !ok {
				t.Fatalf("%s: output %T %+v, want only a trace event", m.Type(), o, o)
			}
		}
		if len(outs) == 0 {
			t.Fatalf("%s: dropped without a trace line", m.Type())
		}
	}
	if p.inRing || p.Unsettled() {
		t.Fatalf("in a ring %v, records to commit %v", p.inRing, p.Unsettled())
	}
}

// A register refused by the server lets go of the address it bound: once
// the peer has read its next line, the port is free for anyone.
func TestRunnerRefusedRegisterFreesItsAddress(t *testing.T) {
	cl, err := StartCluster(ClusterConfig{Dir: t.TempDir(), Users: 1, Data: dataset.SyntheticSource{N: 10, Seed: 1}, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := cl.Stop(); err != nil {
			t.Error(err)
		}
	}()
	taken := cl.Users[0].Name
	ports, err := freePorts(2)
	if err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 4)
	out := make(chan printed, 16)
	dir := t.TempDir()
	r := &PeerRunner{
		Core: NewPeer(PeerConfig{
			Server:   netip.MustParseAddrPort(cl.Server.Conn.LocalAddr().String()),
			LoadData: func() (dataset.Source, error) { return dataset.SyntheticSource{N: 10, Seed: 1}, nil },
		}),
		Lines: lines,
		Out:   lineWriter(out),
		OpenStore: func(name string) (PeerStore, error) {
			return store.OpenPeer(filepath.Join(dir, "dht-peer-"+name+".db"))
		},
	}
	// Refused, and retried at the same address: typed at once, the retry
	// usually starts in the turn that handles the refusal, and takes the
	// socket back; otherwise it binds the address again.
	lines <- fmt.Sprintf("register %s 127.0.0.1 %d", taken, ports[1])
	lines <- fmt.Sprintf("register other 127.0.0.1 %d", ports[1])
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	next := func() string {
		t.Helper()
		select {
		case p := <-out:
			return p.line
		case err := <-done:
			t.Fatalf("the peer stopped: %v", err)
		case <-ctx.Done():
			t.Fatal("no result within a minute")
		}
		return ""
	}
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
	lines = make(chan string, 4)
	r = &PeerRunner{
		Core:  NewPeer(PeerConfig{Server: netip.MustParseAddrPort(cl.Server.Conn.LocalAddr().String())}),
		Lines: lines,
		Out:   lineWriter(out),
		OpenStore: func(name string) (PeerStore, error) {
			return store.OpenPeer(filepath.Join(dir, "dht-peer-"+name+".db"))
		},
	}
	done = make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	lines <- fmt.Sprintf("register %s 127.0.0.1 %d", taken, ports[0])
	if got := next(); !strings.HasPrefix(got, "register FAILURE") {
		t.Fatalf("register: %q, want a refusal (%s is taken)", got, taken)
	}
	// The peer reads this line only once the socket is closed.
	lines <- "help"
	if got := next(); !strings.HasPrefix(got, "commands (") {
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
