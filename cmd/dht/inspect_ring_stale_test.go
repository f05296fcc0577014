package main

import (
	"strings"
	"testing"

	"dht/store"
)

// The ring drawn from the peers' files alone (no server file, or a server
// with no DHT): a stale file of a former member (id 3 of 6) names its old
// neighbours, whose own files say no ring. A chaos review: the three ids
// no file names were each marked "(leader)", and the neighbours were
// warned about as "the server counts it as member N" with no server DHT.
func TestRingFromStaleFileNamesNoUnknownLeaderNorTheServer(t *testing.T) {
	id, size := 3, 6
	peers := []*store.PeerReport{
		{Name: "carol", IP: "127.0.0.1", Port: 45203, ID: &id, RingSize: &size, Records: 39,
			Left:  &store.MemberJSON{Name: "erin", IP: "127.0.0.1", Port: 45205},
			Right: &store.MemberJSON{Name: "dave", IP: "127.0.0.1", Port: 45204}},
		{Name: "erin", IP: "127.0.0.1", Port: 45205},
		{Name: "dave", IP: "127.0.0.1", Port: 45204},
	}
	r := buildRing(nil, peers)
	for i, nd := range r.Nodes {
		if nd.Leader && nd.Name == unknownMember {
			t.Errorf("id %d, named by no file, is marked the leader", i)
		}
	}
	for _, w := range r.Warnings {
		if strings.Contains(w, "the server counts") {
			t.Errorf("warning names the server, which gave no ring: %q", w)
		}
	}
}
