package app

import (
	"strings"
	"testing"
	"time"

	"dht/wire"
)

// The checks of a ring message's contents that stop a copy of it which
// passes the tag and the duplicate filter (sent again by its own sender
// to a receiver restarted since): each is exercised here directly, since
// the tag, which covers both addresses, keeps the replay tests from
// reaching them.
func TestTheContentChecksOfReplayedLeaveMessages(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	dropped := func(out []Output, why string) bool {
		for _, o := range out {
			if e, ok := o.(Event); ok && e.Drop && strings.Contains(e.Msg, why) {
				return true
			}
		}
		return false
	}
	t.Run("a reset-left naming the left neighbour held", func(t *testing.T) {
		p := fuzzPeer()
		out := stepSigned(p, now, fzLeft.Addr, wire.Header{ID: 1}, wire.ResetLeft{Left: fzLeft})
		if p.leaver.IsValid() {
			t.Errorf("taken (leaver %s); outputs %+v", p.leaver, out)
		}
	})
	t.Run("a rebuild-dht from the left neighbour", func(t *testing.T) {
		p := fuzzPeer()
		p.leaver = p.left.Addr // as a copy of the reset-left above, taken, would leave it
		out := stepSigned(p, now, fzLeft.Addr, wire.Header{ID: 2}, wire.RebuildDHT{Leaver: fzLeft})
		if !dropped(out, "not from the node that just left") {
			t.Errorf("not dropped: %+v", out)
		}
	})
	leave := func() *Peer {
		p := fuzzPeer()
		p.op = &leaveOp{stage: leaveRebuilding, left: fzLeft, right: fzRight, n: 3, epoch: 9, ringEpoch: 8}
		return p
	}
	for _, c := range []struct {
		name string
		m    wire.Rebuilt
	}{
		{"a rebuilt naming another new leader", wire.Rebuilt{Reason: "old", NewLeader: "zed", Epoch: 9}},
		{"a rebuilt of another leave", wire.Rebuilt{Reason: "old", NewLeader: fzRight.Name, Epoch: 8}},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := leave()
			if out := stepSigned(p, now, fzRight.Addr, wire.Header{ID: 3}, c.m); !dropped(out, "") || p.op == nil {
				t.Errorf("taken: %+v", out)
			}
		})
	}
	join := func() *Peer {
		p := fuzzPeer()
		p.op = &joinOp{stage: joinWaiting, leader: fzLeft, epoch: 9}
		return p
	}
	for _, c := range []struct {
		name string
		m    wire.Rebuilt
	}{
		{"a joiner's rebuilt naming another leader", wire.Rebuilt{Reason: "old", NewLeader: "zed", Epoch: 9}},
		{"a joiner's rebuilt of another join", wire.Rebuilt{Reason: "old", NewLeader: fzLeft.Name, Epoch: 8}},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := join()
			if out := stepSigned(p, now, fzLeft.Addr, wire.Header{ID: 3}, c.m); !dropped(out, "") || p.op == nil {
				t.Errorf("taken: %+v", out)
			}
		})
	}
}
