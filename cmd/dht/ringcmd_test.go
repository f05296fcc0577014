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

// The leader's process is restarted on a new file: its register of the
// same name from the same address is a rejoin (SUCCESS), and, its file
// holding no place, the ring heals with it (it leads the heal); then its
// teardown-dht works.
func TestRestartedLeaderRejoinsOnANewFile(t *testing.T) {
	dir, _, ports := e2eSetup(t)
	sport, peers := ringOfTwo(t, dir, ports)
	peers["alice"].kill()
	again := startProc(t, "alice again", dir, "peer", "--quiet", "--data", datasetPath(t), "--db", "alice-new.db", "127.0.0.1", sport)
	again.do(fmt.Sprintf("register alice 127.0.0.1 %d", ports[1]), "register SUCCESS")
	again.expect("heal SUCCESS: ring of 2: alice bob")
	again.do("teardown-dht alice", "teardown-dht SUCCESS")
	again.expect("teardown-complete SUCCESS")
	again.do("deregister alice", "deregister SUCCESS")
	if err := again.wait(); err != nil {
		t.Fatalf("the restarted peer: %v", err)
	}
}
