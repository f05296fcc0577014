package app_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"dht/app"
)

// waitNotes traces s from now on; each call returns the wait notes
// traced since the last.
func waitNotes(s *simNet) func() []string {
	var msgs []string
	s.SetTrace(msgTrace{&msgs})
	return func() []string {
		var out []string
		for _, m := range msgs {
			if strings.Contains(m, ": waiting for ") {
				out = append(out, m)
			}
		}
		msgs = msgs[:0]
		return out
	}
}

// A command that waits says what for, as it waits, once it has waited 2s
// and every 10s after (a new user's review: a register at a server that
// is down, or a teardown with a stopped member, showed nothing for 10s,
// then a FAILURE): the server's answer, and when the peer gives up on it;
// a ring phase, and when it fails. A command that waits for nothing says
// nothing.
func TestAWaitSaysWhatItWaitsFor(t *testing.T) {
	s := newSim(t, 7)
	users := joinUsers(t, s, 4)
	notes := waitNotes(s)

	s.mustDo(users[0], "sleep 5s", "sleep SUCCESS")
	s.mustDo(users[0], "setup-dht 3 "+users[0], "setup-dht SUCCESS")
	if got := notes(); len(got) != 0 {
		t.Fatalf("a sleep and a setup that waited for nothing long said %q", got)
	}

	member := memberWithID(s, 1)
	kill(s, member)
	leader := leaderName(s)
	out := s.do(leader, "teardown-dht "+leader)
	if len(out) != 2 || !strings.HasPrefix(out[1], "teardown-complete FAILURE") {
		t.Fatalf("teardown with %s stopped printed %q", member, out)
	}
	// It names the member that does not acknowledge, and the give-up
	// that fails the teardown 10s in, not the 2m limit of a ring phase
	// (a new user's review: the note said "it fails in 1m58s, at
	// --op-timeout 2m0s", a flag the peer does not have, and the
	// teardown failed 8s later).
	got := notes()
	if len(got) != 1 || !strings.HasPrefix(got[0], "teardown-complete: waiting for the torn-down behind the teardown to come back round the ring, and for "+member+" (") ||
		!strings.HasSuffix(got[0], ") to acknowledge the teardown sent to it (it fails in 8s, at --give-up 10s), for 2s so far") {
		t.Errorf("the teardown said %q, want it to name %s and the give-up, 8s away", got, member)
	}

	s.Down(simServer)
	free := freeUser(s)
	out = s.do(free, "deregister "+free)
	if len(out) != 1 || !strings.HasPrefix(out[0], "deregister FAILURE: no answer from the server") {
		t.Fatalf("deregister at a server that is down printed %q", out)
	}
	want := []string{"deregister: waiting for the server at " + simServer.String() + " to answer deregister (this peer gives up in 8s), for 2s so far"}
	if got := notes(); !slices.Equal(got, want) {
		t.Errorf("the deregister said %q, want %q", got, want)
	}
}

// A query typed with its Long Name (a walk) says what it waits for too:
// the server's answer to its query-dht, or the ring's answer, and how many
// more queries wait behind it (a new user's review: "query-dht carol
// Aruba" at a stopped server printed nothing for 10s).
func TestAWaitingQuerySaysWhatItWaitsFor(t *testing.T) {
	data := records(t)
	s := newSim(t, 8)
	users := joinUsers(t, s, 4)
	notes := waitNotes(s)
	s.mustDo(users[0], "setup-dht 3 "+users[0], "setup-dht SUCCESS")
	free := freeUser(s)
	var owner string
	name := data[0].LongName
	for _, n := range s.Server().Snapshot().DHT.Members {
		if found, _, _ := app.Lookup(s.Process(n).Core, name); found.LongName == name {
			owner = n
		}
	}
	kill(s, owner)
	out := s.do(free, "query-dht "+free+" "+name)
	if len(out) != 1 || !strings.HasPrefix(out[0], "query-dht FAILURE") {
		t.Fatalf("a query for a record of %s, killed, printed %q", owner, out)
	}
	got := notes()
	if len(got) != 1 || !strings.HasPrefix(got[0], "query-dht: waiting for the answer to the query for "+fmt.Sprintf("%q", name)+", asked of ") ||
		!strings.HasSuffix(got[0], "(this peer gives up in 8s, at --query-timeout 10s), for 2s so far") {
		t.Errorf("the query said %q", got)
	}

	s.Down(simServer)
	// Five queries typed a second apart: the notes of queries are one
	// stream, every 10s, not one each as each becomes the oldest, the
	// one before given up: at 2s of the first, and at 12s, of the one
	// then oldest, unless its limit has come.
	for _, r := range data[1:6] {
		s.input(free, "query-dht "+free+" "+r.LongName)
		runFor(t, s, time.Second)
	}
	runFor(t, s, 30*time.Second)
	got = notes()
	if len(got) < 1 || len(got) > 2 || !strings.HasPrefix(got[0], "query-dht: waiting for the server at "+simServer.String()+" to answer query-dht (this peer gives up in 8s); ") ||
		!strings.HasSuffix(got[0], " more queries wait behind it, for 2s so far") ||
		len(got) == 2 && !strings.HasSuffix(got[1], "for 9s so far") {
		t.Errorf("five queries at a server that is down said %q, want a note at 2s, and one at 12s at most", got)
	}
}
