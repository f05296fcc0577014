package main

import (
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// join-dht with the real binary: a server and peers as separate processes
// on 127.0.0.1.

// TestBinaryJoin: a Free user joins a ring of three and takes id 3; every
// record is found where the hash for four names it, and each file holds
// exactly its records. The server is killed while it waits for the
// joiner's dht-rebuilt and restarted: the join completes. The joiner
// leaves (the ring is as it was), another user joins, and the first
// queries every record again.
func TestBinaryJoin(t *testing.T) {
	dir, recs, ports := e2eSetup(t)
	sport := strconv.Itoa(ports[0])
	startServer := func() *proc { return e2eServer(t, dir, sport) }
	server := startServer()
	users := e2eUsers
	peers := e2ePeers(t, dir, sport, ports, noFlags)
	peers["bob"].do("join-dht bob", "join-dht FAILURE: no DHT exists")
	ring := ringMembers(peers["alice"].do("setup-dht 3 alice", "setup-dht SUCCESS"))
	peers["alice"].expect("dht-complete SUCCESS")
	var free []string
	for _, u := range users {
		if !slices.Contains(ring, u) {
			free = append(free, u)
		}
	}
	joiner, querier := free[0], free[1]
	before := queryAll(t, peers[querier], querier, recs, 3)
	peers["alice"].do("join-dht alice", "join-dht FAILURE: alice already maintains the DHT (Leader)")

	// The join stalls at the last node, stopped; the server, waiting for
	// dht-rebuilt from the joiner, is killed and restarted.
	last := ring[len(ring)-1]
	pauseProcess(t, peers[last].cmd.Process)
	peers[joiner].do("join-dht "+joiner, "join-dht SUCCESS")
	peers[querier].do("query-dht "+querier+" Aruba", "query-dht FAILURE: server is waiting for dht-rebuilt from "+joiner+" (join-dht in progress)")
	server.kill()
	startServer()
	resumeProcess(t, peers[last].cmd.Process)
	expectJoined(t, peers[joiner], "alice")
	grown := append(slices.Clone(ring), joiner)
	checkCounts(t, queryAll(t, peers[querier], querier, recs, 4), grown, recs)

	// The joiner leaves: the ring of three holds what it held.
	peers[joiner].do("leave-dht "+joiner, "leave-dht SUCCESS")
	peers[joiner].expect("dht-rebuilt SUCCESS: new leader alice")
	after := queryAll(t, peers[joiner], joiner, recs, 3)
	if fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatalf("records per node %v before the join, %v after the joiner left", before, after)
	}

	// Another user joins; the files hold the ring of four, every record
	// once, each in its slot at its node.
	peers[querier].do("join-dht "+querier, "join-dht SUCCESS")
	expectJoined(t, peers[querier], "alice")
	grown = append(slices.Clone(ring), querier)
	checkCounts(t, queryAll(t, peers[joiner], joiner, recs, 4), grown, recs)
	for _, u := range grown {
		if err := peers[u].cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if err := peers[u].wait(); err != nil {
			t.Fatalf("%s exited with %v after SIGTERM", u, err)
		}
	}
	total := 0
	for id, u := range grown {
		total += checkPeerFile(t, filepath.Join(dir, "dht-peer-"+u+".db"), u, id, 4)
	}
	if total != len(recs) {
		t.Fatalf("the ring's files hold %d records, want %d", total, len(recs))
	}
}

// TestBinaryJoinLossy runs every process with --fault-loss 0.2
// --fault-dup 0.05: a join, every record found, the joiner's leave, a
// second join and a teardown all complete.
func TestBinaryJoinLossy(t *testing.T) {
	dir, recs, ports := e2eSetup(t)
	sport := strconv.Itoa(ports[0])
	faults := func(seed int) []string {
		return []string{"--quiet", "--fault-loss", "0.2", "--fault-dup", "0.05", "--fault-seed", strconv.Itoa(seed)}
	}
	e2eServer(t, dir, sport, faults(1)...)
	peers := e2ePeers(t, dir, sport, ports, func(i int) []string { return append([]string{"--rto", "10ms"}, faults(i+2)...) })
	ring := ringMembers(peers["alice"].do("setup-dht 3 alice", "setup-dht SUCCESS"))
	peers["alice"].expect("dht-complete SUCCESS")
	free := e2eOutside(ring)
	joiner, other := free[0], free[1]
	peers[joiner].do("join-dht "+joiner, "join-dht SUCCESS")
	expectJoined(t, peers[joiner], "alice")
	checkCounts(t, queryAll(t, peers[other], other, recs, 4), append(slices.Clone(ring), joiner), recs)
	peers[joiner].do("leave-dht "+joiner, "leave-dht SUCCESS")
	peers[joiner].expect("dht-rebuilt SUCCESS: new leader alice")
	peers[other].do("join-dht "+other, "join-dht SUCCESS")
	expectJoined(t, peers[other], "alice")
	checkCounts(t, queryAll(t, peers[joiner], joiner, recs, 4), append(slices.Clone(ring), other), recs)
	peers["alice"].do("teardown-dht alice", "teardown-dht SUCCESS")
	peers["alice"].expect("teardown-complete SUCCESS")
}

// expectJoined waits for p's line of a join done: where it joined, and the
// leader, which a join keeps.
func expectJoined(t *testing.T, p *proc, leader string) {
	t.Helper()
	if line := p.expect("dht-rebuilt SUCCESS: joined as id "); !strings.HasSuffix(line, ", led by "+leader) {
		t.Fatalf("%s: %q; want the join led by %s", p.name, line, leader)
	}
}
