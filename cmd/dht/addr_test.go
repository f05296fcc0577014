//go:build linux

package main

import (
	"fmt"
	"testing"
)

// A server on its default address, every address of the host, answers a
// peer from the address the peer was given, and sends it what it starts
// itself (a heal) from there too: here 127.0.0.2 and 127.0.0.3, this
// host's as 127.0.0.1 is. Left to the system, each went from 127.0.0.1,
// which the peer dropped as not from its server, and its register failed
// saying no server answered (a new user's review).
func TestServerOnEveryAddressAnswersFromTheOneAsked(t *testing.T) {
	dir := t.TempDir()
	ports := freePorts(t, 4)
	sport := fmt.Sprint(ports[0])
	startProc(t, "server", dir, "server", "--quiet", "--dead-after", "2s", "--db", "server.db", sport)
	users := []struct{ name, server string }{{"alice", "127.0.0.2"}, {"bob", "127.0.0.3"}, {"carol", "127.0.0.1"}}
	peers := map[string]*proc{}
	for i, u := range users {
		p := startProc(t, u.name, dir, "peer", "--quiet", "--db", u.name+".db", u.server, sport)
		p.do(fmt.Sprintf("register %s 127.0.0.1 %d", u.name, ports[i+1]), "register SUCCESS")
		peers[u.name] = p
	}
	peers["alice"].do("setup-dht 3 alice", "setup-dht SUCCESS")
	peers["alice"].expect("dht-complete SUCCESS")
	// carol dies: the server heals the ring, led by alice, which hears it
	// from 127.0.0.2.
	peers["carol"].kill()
	peers["alice"].expect("heal SUCCESS: ring of 2")
	peers["alice"].do("teardown-dht alice", "teardown-dht SUCCESS")
	peers["alice"].expect("teardown-complete SUCCESS")
	for _, u := range users[:2] {
		peers[u.name].do("deregister "+u.name, "deregister SUCCESS")
		if err := peers[u.name].wait(); err != nil {
			t.Errorf("%s: %v", u.name, err)
		}
	}
}
