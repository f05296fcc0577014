package app

import (
	"testing"
	"time"

	"dht/wire"
)

// A peer that is not registered has no table file: ring messages that
// reach it (a register in flight, or a stranger's set-id) are dropped with
// a trace line, and change nothing.
func TestUnregisteredPeerDropsRingMessages(t *testing.T) {
	p := NewPeer(PeerConfig{Server: fzServer})
	now := time.Unix(1_700_000_000, 0)
	msgs := []wire.Message{
		wire.SetID{ID: 1, N: 3, Left: fzLeft, Right: fzRight},
		wire.Store{N: 3, Records: []wire.Record{{3: "aa"}, {3: "Aruba"}}},
		wire.Flush{Leader: "alice", N: 3},
		wire.Teardown{Origin: "alice"},
		wire.ResetID{Origin: "alice", N: 2},
		wire.Query{ReqID: 1, Querier: fzRight, LongName: "Aruba"},
	}
	for i, m := range msgs {
		outs := stepSigned(p, now, fzLeft.Addr, wire.Header{Type: m.Type(), ID: uint32(i + 1)}, m)
		for _, o := range outs {
			if _, ok := o.(Event); !ok {
				t.Fatalf("%s: output %T %+v, want only a trace event", m.Type(), o, o)
			}
		}
		if len(outs) == 0 {
			t.Fatalf("%s: dropped without a trace line", m.Type())
		}
	}
	if p.inRing || p.Unsettled() {
		t.Fatalf("in a ring %v, records to commit %v", p.inRing, p.Unsettled())
	}
}
