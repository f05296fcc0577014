package app_test

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"dht/app/state"
)

// A peer started on its file with another server's address, where that
// server has since registered the user's name at another address: the
// resume fails saying the file is another server's, as when the server
// does not know the name at all, not "not signed by NAME" with an
// invitation to type a register that fails the same way every time.
func TestResumeElsewhereWhereTheNameIsTakenSaysSo(t *testing.T) {
	s := newSim(t, 3)
	users := joinUsers(t, s, 3)
	s.mustDo(users[0], "setup-dht 3 "+users[0], "setup-dht SUCCESS")
	member := users[1]
	p := s.Process(member)
	id, _, err := p.Table.Load()
	if err != nil || !id.InRing {
		t.Fatalf("%s's file: %+v, %v; want a place in the ring", member, id, err)
	}
	elsewhere := netip.MustParseAddrPort("10.9.9.9:4000")
	id.Server = elsewhere
	if err := p.Table.Apply(state.Batch{Identity: &id}); err != nil {
		t.Fatal(err)
	}
	s.RestartServerOnANewFile()
	imp := s.addPeer("imp", records(t))
	s.mustDo("imp", fmt.Sprintf("register %s %s %d", member, imp.Addr.Addr(), imp.Addr.Port()), "register SUCCESS")
	before := len(p.Printed)
	if !s.Restart(member) {
		t.Fatal("nothing to restart")
	}
	for len(s.Process(member).Printed) == before && s.step() {
	}
	out := texts(s.Process(member).Printed[before:])
	a := p.Addr
	want := fmt.Sprintf("resume FAILURE: the server at %s does not hold %s's secret, and %s's file was registered with the server at %s: nothing was changed; to resume there, start the peer with 10.9.9.9 4000 (typing 'register %s %s %d' registers %s anew with this server, and its place in a ring is discarded)", simServer, member, member, elsewhere, member, a.Addr(), a.Port(), member)
	if len(out) != 1 || out[0] != want {
		t.Fatalf("%s printed %q, want %q", member, out, want)
	}
	if got := s.do(member, fmt.Sprintf("register %s %s %d", member, a.Addr(), a.Port())); len(got) != 1 || !strings.HasPrefix(got[0], "register FAILURE: "+member+" is already registered") || strings.Contains(got[0], "try again") {
		t.Errorf("a typed register printed %q, want the rules' answer: %s is already registered", got, member)
	}
}
