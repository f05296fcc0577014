//go:build linux

package main

import (
	"fmt"
	"testing"
)

// A server on its default address, every address of the host, answers a
// peer from the address the peer was given: here 127.0.0.2 and 127.0.0.3,
// this host's as 127.0.0.1 is. Left to the system, each answer went from
// 127.0.0.1, which the peer dropped as not from its server, and its
// register failed saying no server answered (a new user's review).
func TestServerOnEveryAddressAnswersFromTheOneAsked(t *testing.T) {
	dir := t.TempDir()
	ports := freePorts(t, 3)
	sport := fmt.Sprint(ports[0])
	startProc(t, "server", dir, "server", "--quiet", "--db", "server.db", sport)
	users := []struct{ name, server string }{{"alice", "127.0.0.2"}, {"bob", "127.0.0.3"}}
	var peers []*proc
	for i, u := range users {
		p := startProc(t, u.name, dir, "peer", "--quiet", "--db", u.name+".db", u.server, sport)
		p.do(fmt.Sprintf("register %s 127.0.0.1 %d", u.name, ports[i+1]), "register SUCCESS")
		peers = append(peers, p)
	}
	peers[0].do("setup-dht 2 alice", "setup-dht SUCCESS")
	peers[0].expect("dht-complete SUCCESS")
	peers[0].do("teardown-dht alice", "teardown-dht SUCCESS")
	peers[0].expect("teardown-complete SUCCESS")
	for i, u := range users {
		peers[i].do("deregister "+u.name, "deregister SUCCESS")
		if err := peers[i].wait(); err != nil {
			t.Errorf("%s: %v", u.name, err)
		}
	}
}
