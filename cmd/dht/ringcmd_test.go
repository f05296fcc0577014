package main

import (
	"fmt"
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

// The leader's process is restarted on a new file: its register is a
// rejoin (SPEC §3: same name, same address; the challenge proves the
// address), but it holds no place in the ring, so its teardown-dht and
// leave-dht are refused by the peer itself, without a crash, and the
// server still counts alice as the leader.
func TestRestartedLeaderRefusesRingCommands(t *testing.T) {
	dir, _, ports := e2eSetup(t)
	sport, peers := ringOfTwo(t, dir, ports)
	peers["alice"].kill()
	again := startProc(t, "alice again", dir, "peer", "--quiet", "--data", datasetPath(t), "--db", "alice-new.db", "127.0.0.1", sport)
	again.do(fmt.Sprintf("register alice 127.0.0.1 %d", ports[1]), "register SUCCESS")
	again.do("teardown-dht alice", "teardown-dht FAILURE: this peer holds no place in a ring")
	again.do("leave-dht alice", "leave-dht FAILURE: this peer holds no place in a ring")
	again.do("deregister alice", "deregister FAILURE: alice maintains the DHT (Leader)")
	peers["bob"].do("deregister bob", "deregister FAILURE: bob maintains the DHT (InDHT)")
}
