package app_test

import (
	"slices"
	"strings"
	"testing"
)

// A command that waits says what for, as it waits, once it has waited 2s
// and every 10s after (a new user's review: a register at a server that
// is down, or a teardown with a stopped member, showed nothing for 10s,
// then a FAILURE): the server's answer, and when the peer gives up on it;
// a ring phase, and when it fails. A command that waits for nothing says
// nothing.
func TestAWaitSaysWhatItWaitsFor(t *testing.T) {
	s := newSim(t, 7)
	users := joinUsers(t, s, 4)
	var msgs []string
	s.SetTrace(msgTrace{&msgs})
	notes := func() []string {
		var out []string
		for _, m := range msgs {
			if strings.Contains(m, ": waiting for ") {
				out = append(out, m)
			}
		}
		msgs = msgs[:0]
		return out
	}

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
	want := []string{"teardown-complete: waiting for the torn-down behind the teardown to come back round the ring (it fails in 1m58s, at --op-timeout 2m0s), for 2s so far"}
	if got := notes(); !slices.Equal(got, want) {
		t.Errorf("the teardown said %q, want %q", got, want)
	}

	s.Down(simServer)
	free := freeUser(s)
	out = s.do(free, "deregister "+free)
	if len(out) != 1 || !strings.HasPrefix(out[0], "deregister FAILURE: no answer from the server") {
		t.Fatalf("deregister at a server that is down printed %q", out)
	}
	want = []string{"deregister: waiting for the server at " + simServer.String() + " to answer deregister (it gives up in 8s), for 2s so far"}
	if got := notes(); !slices.Equal(got, want) {
		t.Errorf("the deregister said %q, want %q", got, want)
	}
}
