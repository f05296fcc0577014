//go:build unix

package main

import (
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A server that stops running for longer than --dead-after (here stopped
// with SIGSTOP; a VM paused, a starved CPU or a disk holding up its commit
// do the same) finds, once it runs again, every member silent since before
// the stall, and their alives of that time waiting unread on its socket. It
// reads them before it judges: the ring stays as it was, and queries are
// answered by the nodes the hash names for it.
func TestBinaryServerStallIsNoDeath(t *testing.T) {
	dir, recs, ports := e2eSetup(t)
	sport := strconv.Itoa(ports[0])
	server := e2eServer(t, dir, sport, "--dead-after", "2s")
	peers := e2ePeers(t, dir, sport, ports, noFlags)
	ring := ringMembers(peers["alice"].do("setup-dht 4 alice", "setup-dht SUCCESS"))
	peers["alice"].expect("dht-complete SUCCESS")
	free := e2eFree(t, ring)
	pid := server.cmd.Process.Pid
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	// The stall itself, not a wait for something: longer than --dead-after.
	time.Sleep(3 * time.Second)
	if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	// Each query goes through the server (query-dht), after whatever its
	// first Tick back judged.
	queryAll(t, peers[free], free, recs[:20], 4)
	for {
		select {
		case l := <-server.errs:
			if strings.Contains(l, "offline") {
				t.Fatalf("the server took a member for dead after its own stall: %s", l)
			}
			continue
		default:
		}
		break
	}
	peers["alice"].do("teardown-dht alice", "teardown-dht SUCCESS")
	peers["alice"].expect("teardown-complete SUCCESS")
}

// A member that stops running (SIGSTOP) for longer than --dead-after is
// healed out of the ring. Running again, it is told so by the server's
// pace: it drops its place and table and says so on stderr, and, Free
// now, may query the healed ring.
func TestBinaryStalledMemberLearnsItWasHealedOut(t *testing.T) {
	dir, recs, ports := e2eSetup(t)
	sport := strconv.Itoa(ports[0])
	e2eServer(t, dir, sport, "--dead-after", "2s")
	peers := e2ePeers(t, dir, sport, ports, noFlags)
	ring := ringMembers(peers["alice"].do("setup-dht 4 alice", "setup-dht SUCCESS"))
	peers["alice"].expect("dht-complete SUCCESS")
	stalled := peers[ring[2]]
	pid := stalled.cmd.Process.Pid
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	survivors := append(slices.Clone(ring[:2]), ring[3])
	peers["alice"].expect("heal SUCCESS: ring of 3: " + strings.Join(survivors, " "))
	if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	stalled.waitTrace(ring[2] + " is Free: the server counts it in no ring of epoch 1 (it was healed out of that ring as offline")
	queryAll(t, stalled, ring[2], recs[:20], 3)
	peers["alice"].do("teardown-dht alice", "teardown-dht SUCCESS")
	peers["alice"].expect("teardown-complete SUCCESS")
}
