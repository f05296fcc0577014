package main

import (
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"dht/dataset"
)

// Members that die, with real processes: each peer keeps its file (--db);
// the server declares a silent user offline after --dead-after 3s.
//
//   - a member, then the leader, killed with kill -9 and started again on
//     their files resume (resume SUCCESS, the place and table taken back):
//     241 of 241 found, and the resumed leader tears the ring down;
//   - a member killed for good: the ring heals to n-1 (the leader says heal
//     SUCCESS), 241 found at the nodes the hash names for n-1; started again
//     later, it resumes as Free and deregisters;
//   - the leader killed for good: the next member leads the healed ring;
//   - every member killed: the DHT is dissolved, and a new setup-dht works.
func TestBinaryResumeAndHeal(t *testing.T) {
	dir, recs, ports := e2eSetup(t)
	sport := strconv.Itoa(ports[0])
	server := e2eServer(t, dir, sport, "--dead-after", "3s")
	dbOf := func(u string) string { return filepath.Join(dir, u+".db") }
	peers := e2ePeers(t, dir, sport, ports, func(i int) []string { return []string{"--db", dbOf(e2eUsers[i])} })
	start := func(u string) *proc {
		p := startProc(t, u, dir, "peer", "--db", dbOf(u), "--data", datasetPath(t), "127.0.0.1", sport)
		peers[u] = p
		return p
	}

	ring := ringMembers(peers["alice"].do("setup-dht 4 alice", "setup-dht SUCCESS"))
	peers["alice"].expect("dht-complete SUCCESS")
	// The one user setup-dht 4 left out queries; each setup picks anew.
	freeOf := func(ring []string) string { return e2eFree(t, ring) }
	free := freeOf(ring)

	// kill -9 and restart: the member, then the leader.
	for _, u := range []string{ring[2], ring[0]} {
		peers[u].kill()
		line := start(u).expect("resume SUCCESS: " + u)
		if !strings.Contains(line, "its table taken back") {
			t.Fatalf("%s resumed with %q", u, line)
		}
		if got := queryAll(t, peers[free], free, recs, 4); len(got) != 4 {
			t.Fatalf("after %s resumed, records at %v", u, got)
		}
	}
	peers["alice"].do("teardown-dht alice", "teardown-dht SUCCESS")
	peers["alice"].expect("teardown-complete SUCCESS")

	// kill -9 a member for good: the ring heals to 3.
	ring = ringMembers(peers["alice"].do("setup-dht 4 alice", "setup-dht SUCCESS"))
	peers["alice"].expect("dht-complete SUCCESS")
	free = freeOf(ring)
	victim := ring[2]
	peers[victim].kill()
	healed := ringMembers(peers["alice"].expect("heal SUCCESS: ring of 3: "))
	if slices.Contains(healed, victim) || healed[0] != "alice" {
		t.Fatalf("healed ring %v, want alice's without %s", healed, victim)
	}
	counts := queryAll(t, peers[free], free, recs, 3)
	want := map[string]int{}
	for _, r := range recs {
		want[healed[dataset.ID(r.Pos(), 3)]]++
	}
	if fmt.Sprint(counts) != fmt.Sprint(want) {
		t.Fatalf("per node %v, the hash for 3 gives %v", counts, want)
	}
	// Started again, it is Free.
	line := start(victim).expect("resume SUCCESS: " + victim)
	if !strings.Contains(line, " Free") {
		t.Fatalf("%s resumed with %q, want Free", victim, line)
	}
	peers[victim].do("deregister "+victim, "deregister SUCCESS")

	// kill -9 the leader for good: the next member leads.
	peers["alice"].kill()
	healed = ringMembers(peers[healed[1]].expect("heal SUCCESS: ring of 2: "))
	queryAll(t, peers[free], free, recs, 2)

	// Every member: the DHT is dissolved; a new one can be set up.
	for _, u := range healed {
		peers[u].kill()
	}
	server.waitTrace("no member of the DHT is live, so it was dissolved")
	peers[free].do("query-dht "+free+" Aruba", "query-dht FAILURE: no DHT exists")
	again := healed[0]
	if l := start(again).expect("resume SUCCESS: " + again); !strings.Contains(l, " Free") {
		t.Fatalf("%s resumed with %q, want Free", again, l)
	}
	peers[free].do("setup-dht 2 "+free, "setup-dht SUCCESS")
	peers[free].expect("dht-complete SUCCESS")
}

// No false removals: every process drops 20% of the datagrams it sends
// (--fault-loss), the server declares a user offline after --dead-after
// 3s, and a ring of 4 left idle for more than three times that is still the ring of
// 4 afterwards. The leader printed nothing in the meantime (a heal would
// have printed heal SUCCESS before its next result), the queries are
// answered at the nodes the hash names for 4, and the teardown covers 4.
func TestBinaryNoFalseRemovalsAtLoss(t *testing.T) {
	dir, recs, ports := e2eSetup(t)
	sport := strconv.Itoa(ports[0])
	e2eServer(t, dir, sport, "--dead-after", "3s", "--fault-loss", "0.2", "--fault-seed", "99")
	peers := e2ePeers(t, dir, sport, ports, func(i int) []string {
		return []string{"--quiet", "--fault-loss", "0.2", "--fault-seed", strconv.Itoa(i + 1)}
	})
	ring := ringMembers(peers["alice"].do("setup-dht 4 alice", "setup-dht SUCCESS"))
	peers["alice"].expect("dht-complete SUCCESS")
	free := e2eFree(t, ring)
	peers[free].do("sleep 10s", "sleep SUCCESS") // the ring idles: only alives go, a fifth of them lost
	some := recs[:80]
	counts := queryAll(t, peers[free], free, some, 4)
	want := map[string]int{}
	for _, r := range some {
		want[ring[dataset.ID(r.Pos(), 4)]]++
	}
	if fmt.Sprint(counts) != fmt.Sprint(want) {
		t.Fatalf("per node %v, the hash for the ring of 4 %v gives %v", counts, ring, want)
	}
	peers["alice"].do("teardown-dht alice", "teardown-dht SUCCESS")
	peers["alice"].expect("teardown-complete SUCCESS")
}

// A join's leader killed with kill -9 right after join-dht succeeded, and
// started again on its file: whatever step the join had reached, the
// joiner's command ends (dht-rebuilt SUCCESS, or FAILURE saying the join
// was ended), the leader resumes (and heals the ring if the join did not
// finish), and a Free user finds every record at the node the hash names.
// Found by hand: the joiner waited for its op timeout, 2 minutes, and the
// heal never finished.
func TestBinaryJoinWhoseLeaderIsKilled(t *testing.T) {
	dir, recs, ports := e2eSetup(t)
	sport := strconv.Itoa(ports[0])
	e2eServer(t, dir, sport)
	dbOf := func(u string) string { return filepath.Join(dir, u+".db") }
	peers := e2ePeers(t, dir, sport, ports, func(i int) []string { return []string{"--quiet", "--db", dbOf(e2eUsers[i])} })
	ring := ringMembers(peers["alice"].do("setup-dht 3 alice", "setup-dht SUCCESS"))
	peers["alice"].expect("dht-complete SUCCESS")
	free := e2eOutside(ring)
	joiner, querier := free[0], free[1]
	peers[joiner].do("join-dht "+joiner, "join-dht SUCCESS")
	peers["alice"].kill()
	alice := startProc(t, "alice again", dir, "peer", "--quiet", "--db", dbOf("alice"), "--data", datasetPath(t), "127.0.0.1", sport)
	alice.expect("resume SUCCESS: alice")
	n := 4
	line := peers[joiner].expect("dht-rebuilt ")
	t.Logf("%s: %s", joiner, line)
	if !strings.HasPrefix(line, "dht-rebuilt SUCCESS") {
		n = 3
		alice.expect("heal SUCCESS: ring of 3")
	}
	if got := queryAll(t, peers[querier], querier, recs, n); len(got) != n {
		t.Fatalf("records at %v, want %d nodes", got, n)
	}
	alice.do("teardown-dht alice", "teardown-dht SUCCESS")
	alice.expect("teardown-complete SUCCESS")
}
