package app_test

import (
	"fmt"
	"strings"
	"testing"

	"dht/app"
	"dht/wire"
)

// A peer restarted on its file takes its ring key back before it binds
// its address; what it sends a neighbour before the rejoin's reply re-keys
// it (or, when the server no longer counts it in a ring, until it takes
// another), the acks of what its neighbours send it meanwhile, must still
// be signed from its address, which their tag check covers since wire 7.
// Signed for the receiver alone, every ack was dropped there ("ack not
// signed with the key of the message it acknowledges"), and the neighbour
// sent the same message again and again for the whole give-up (10 s,
// about a hundred copies and as many drops in its trace) and gave up on it.
// Here the leader of a teardown restarts as the teardown goes round.
func TestARestartedPeersAcksAreTakenByItsNeighbours(t *testing.T) {
	for _, seed := range seeds(t, 3) {
		s, leader := tearingDown(t, seed)
		var msgs []string
		s.SetTrace(msgTrace{&msgs})
		for i := 0; i < 4 && s.step(); i++ {
		}
		if !s.Restart(leader) {
			t.Fatalf("seed %d: nothing to restart", seed)
		}
		settle(t, s)
		s.SetTrace(nil)
		refused, gaveUp := 0, 0
		for _, m := range msgs {
			switch {
			case strings.Contains(m, "ack not signed"):
				refused++
			case strings.HasPrefix(m, "gave up"):
				gaveUp++
			}
		}
		if refused > 0 || gaveUp > 0 {
			t.Fatalf("seed %d: after %s restarted, %d of its acks were refused and %d messages to it given up on", seed, leader, refused, gaveUp)
		}
	}
}

// A token holder's unacknowledged query, sent with a member's left
// neighbour as its source (its tag covers that source: the holder signs
// for it with its own token) and the ids that neighbour sends next (which
// its answers show), is taken as the neighbour's forward; its id must not
// go into the member's record of the queries it took as one of the
// neighbour's. Kept so, the neighbour's real forwards of every other
// querier's queries with those ids were dropped at the member as copies
// ("a copy of a query already taken"), and each such query was answered
// only by its querier's retry. Another user's queries go through as ever.
func TestTokenHolderCannotDropOtherQueriersForwards(t *testing.T) {
	s, data := ringOfFour(t, 9)
	epoch := s.Server().Snapshot().DHT.KeyEpoch
	mallory := freeUser(s)
	p := s.addPeer("victor", data)
	s.mustDo("victor", fmt.Sprintf("register victor %s %d", p.Addr.Addr(), p.Addr.Port()), "register SUCCESS")
	querier := wire.Member{Name: mallory, Addr: s.Process(mallory).Addr}
	target := s.Process(memberWithID(s, 2))
	left := s.Process(app.Identity(target.Core).Left.Name)
	token := app.QueryToken(target.Core, querier.Addr)
	next := app.NextID(left.Core)
	for id := next + 1; id <= next+1000; id++ {
		m := wire.Query{ReqID: 7, Querier: querier, Hops: 1, LongName: data[0].LongName}
		b, err := wire.AppendSignedBetween(nil, id, wire.FlagNoAck, m, epoch, token, left.Addr, target.Addr)
		if err != nil {
			t.Fatal(err)
		}
		s.Inject(left.Addr, target.Addr, b)
	}
	for s.Busy() {
		s.step()
	}
	var msgs []string
	s.SetTrace(msgTrace{&msgs})
	queryAll(t, s, "victor", data, 4)
	s.SetTrace(nil)
	dropped := 0
	for _, m := range msgs {
		if strings.Contains(m, "a copy of a query already taken") {
			dropped++
		}
	}
	if dropped > 0 {
		t.Fatalf("%d of victor's queries, forwarded by %s, were dropped at %s as copies of mallory's", dropped, left.Name, target.Name)
	}
}
