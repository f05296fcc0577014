//go:build linux

package main

import (
	"fmt"
	"strings"
	"testing"
	"time"
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

// A user's peer started again on an empty file and given another of the
// server's addresses (a rejoin, by challenge), and a user deregistered
// whose address another user takes through a third: each register is
// answered from the address it was sent to. Answered from where the
// user's earlier requests went (a review), the new peer dropped its
// challenge and could never register there.
func TestAnAddressReusedWithAnotherServerAddressRegisters(t *testing.T) {
	dir := t.TempDir()
	ports := freePorts(t, 2)
	sport := fmt.Sprint(ports[0])
	startProc(t, "server", dir, "server", "--quiet", "--db", "server.db", sport)
	alice := startProc(t, "alice", dir, "peer", "--quiet", "--db", "alice.db", "127.0.0.2", sport)
	register := fmt.Sprintf("register alice 127.0.0.1 %d", ports[1])
	alice.do(register, "register SUCCESS")
	alice.do("query-dht alice Aruba", "query-dht FAILURE: no DHT exists") // a request: the server notes where it went
	alice.kill()
	alice = startProc(t, "alice", dir, "peer", "--quiet", "--db", "alice-new.db", "127.0.0.3", sport)
	alice.do(register, "register SUCCESS")
	alice.do("deregister alice", "deregister SUCCESS")
	if err := alice.wait(); err != nil {
		t.Errorf("alice: %v", err)
	}
	bob := startProc(t, "bob", dir, "peer", "--quiet", "--db", "bob.db", "127.0.0.4", sport)
	bob.do(fmt.Sprintf("register bob 127.0.0.1 %d", ports[1]), "register SUCCESS")
	bob.do("deregister bob", "deregister SUCCESS")
	if err := bob.wait(); err != nil {
		t.Errorf("bob: %v", err)
	}
}

// A server restarted on its file sends each user its start pace from the
// address the user's requests went to, which the file keeps: kept in
// memory only, the pace went from the system's choice, the peer dropped
// it, and a server restarted with a shorter --dead-after healed running
// members out of the ring (a review).
func TestServerRestartedPacesFromTheAddressAsked(t *testing.T) {
	dir := t.TempDir()
	ports := freePorts(t, 3)
	sport := fmt.Sprint(ports[0])
	server := startProc(t, "server", dir, "server", "--quiet", "--dead-after", "20s", "--db", "server.db", sport)
	alice := startProc(t, "alice", dir, "peer", "--db", "alice.db", "127.0.0.2", sport)
	bob := startProc(t, "bob", dir, "peer", "--quiet", "--db", "bob.db", "127.0.0.1", sport)
	alice.do(fmt.Sprintf("register alice 127.0.0.1 %d", ports[1]), "register SUCCESS")
	bob.do(fmt.Sprintf("register bob 127.0.0.1 %d", ports[2]), "register SUCCESS")
	alice.do("setup-dht 2 alice", "setup-dht SUCCESS")
	alice.expect("dht-complete SUCCESS") // its commit keeps where alice's requests went
	server.kill()
	alice.waitTrace("dht-complete") // the trace so far, read
	for len(alice.errs) > 0 {
		<-alice.errs
	}
	startProc(t, "server", dir, "server", "--quiet", "--dead-after", "2s", "--db", "server.db", sport)
	for {
		select {
		case l, ok := <-alice.errs:
			if !ok {
				t.Fatal("alice's stderr closed")
			}
			if !strings.Contains(l, "type=pace") && !strings.Contains(l, "dropped: pace") {
				continue
			}
			if !strings.Contains(l, "msg=recv") {
				t.Fatalf("the restarted server's first pace to alice: %s", l)
			}
			return
		case <-time.After(lineWait):
			t.Fatal("no pace came to alice from the restarted server")
		}
	}
}
