package main

import (
	"fmt"
	"net"
	"strconv"
	"testing"
)

// ringOfTwo starts a server and alice's ring of two (alice, bob) on the
// first three ports, and returns the server's port.
func ringOfTwo(t *testing.T, dir string, ports []int) (sport string, peers map[string]*proc) {
	t.Helper()
	sport = strconv.Itoa(ports[0])
	server := startProc(t, "server", dir, "server", "--db", "server.db", "--addr", "127.0.0.1", sport)
	server.waitTrace("msg=listening")
	peers = map[string]*proc{}
	for i, u := range []string{"alice", "bob"} {
		p := startProc(t, u, dir, "peer", "--quiet", "--data", datasetPath(t), "--db", u+".db", "127.0.0.1", sport)
		p.do(fmt.Sprintf("register %s 127.0.0.1 %d", u, ports[i+1]), "register SUCCESS")
		peers[u] = p
	}
	peers["alice"].do("setup-dht 2 alice", "setup-dht SUCCESS: ring of 2")
	peers["alice"].expect("dht-complete SUCCESS")
	return sport, peers
}

// The leader's process is restarted on a new file: its register is
// refused, which leaves the address free; its teardown-dht and leave-dht
// are refused by the peer itself, without a crash, and the server is left
// waiting for nothing.
func TestRestartedLeaderRefusesRingCommands(t *testing.T) {
	dir, _, ports := e2eSetup(t)
	sport, peers := ringOfTwo(t, dir, ports)
	peers["alice"].kill()
	again := startProc(t, "alice again", dir, "peer", "--quiet", "--data", datasetPath(t), "--db", "alice-new.db", "127.0.0.1", sport)
	again.do(fmt.Sprintf("register alice 127.0.0.1 %d", ports[1]), "register FAILURE: alice is already registered")
	again.do("teardown-dht alice", "teardown-dht FAILURE: not registered")
	// The peer read that line once its socket was closed.
	c, err := net.ListenPacket("udp4", "127.0.0.1:"+strconv.Itoa(ports[1]))
	if err != nil {
		t.Fatalf("the address of the refused register is still held: %v", err)
	}
	c.Close()
	again.do("leave-dht alice", "leave-dht FAILURE: not registered")
	// The server waits for nothing: it takes a register.
	again.do(fmt.Sprintf("register zed 127.0.0.1 %d", ports[3]), "register SUCCESS")
	again.do("teardown-dht zed", "teardown-dht FAILURE: this peer holds no place in a ring")
	again.do("deregister zed", "deregister SUCCESS")
	if err := again.wait(); err != nil {
		t.Fatalf("the restarted peer: %v", err)
	}
}
