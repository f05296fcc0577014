package store

import (
	"errors"
	"net/netip"
	"reflect"
	"testing"

	"dht/app/state"
	"dht/wire"
)

// The epoch and the members a heal removed go after the joiner: a DHT
// without them encodes as before, one with them round-trips, an empty
// joiner is kept when they follow it, and a cut tail is damage.
func TestDHTEpochAndRemoved(t *testing.T) {
	for _, h := range []state.DHT{
		{Phase: state.PhaseReady, Leader: "a", Members: []string{"a", "b"}, Epoch: 7},
		{Phase: state.PhaseHealing, Leader: "b", Members: []string{"b"}, Since: 5, Epoch: 8, Removed: []string{"a", "c"}},
		{Phase: state.PhaseJoining, Leader: "a", Members: []string{"a"}, Joiner: "d", Since: 5, Epoch: 3},
		{Phase: state.PhaseReady, Leader: "a", Members: []string{"a", "b"}, Epoch: 9, KeyEpoch: 8, RingKey: wire.Key{1, 2}},
	} {
		b, err := encodeDHT(h)
		if err != nil {
			t.Fatal(err)
		}
		got, err := decodeDHT(b)
		if err != nil || !reflect.DeepEqual(got, h) {
			t.Fatalf("decoded %+v, %v; want %+v", got, err, h)
		}
		if _, err := decodeDHT(b[:len(b)-1]); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%+v cut by a byte decodes with %v, want ErrCorrupt", h, err)
		}
	}
	old := state.DHT{Phase: state.PhaseReady, Leader: "a", Members: []string{"a", "b"}}
	b, _ := encodeDHT(old)
	withEpoch, _ := encodeDHT(state.DHT{Phase: state.PhaseReady, Leader: "a", Members: []string{"a", "b"}, Epoch: 1})
	if len(withEpoch) != len(b)+2+8+2 {
		t.Errorf("the epoch adds %d bytes, want 12 (an empty joiner, the epoch, no removed members)", len(withEpoch)-len(b))
	}
}

// A peer's epoch goes last, only once known; a zero one read back is damage.
func TestIdentityEpoch(t *testing.T) {
	id := state.Identity{Name: "a", Addr: mustAddr("127.0.0.1:5001"), Server: mustAddr("127.0.0.1:4000"), InRing: true, N: 2,
		Left: state.Member{Name: "b", Addr: mustAddr("127.0.0.1:5002")}, Right: state.Member{Name: "b", Addr: mustAddr("127.0.0.1:5002")}}
	old, _ := encodeIdentity(id)
	id.Epoch = 9
	b, err := encodeIdentity(id)
	if err != nil || len(b) != len(old)+8 {
		t.Fatalf("encoded %d bytes (%v), want %d", len(b), err, len(old)+8)
	}
	if got, err := decodeIdentity(b); err != nil || got != id {
		t.Fatalf("decoded %+v, %v; want %+v", got, err, id)
	}
	zero := append(old, 0, 0, 0, 0, 0, 0, 0, 0)
	if _, err := decodeIdentity(zero); !errors.Is(err, ErrCorrupt) {
		t.Errorf("a zero epoch decodes with %v, want ErrCorrupt", err)
	}
}

func mustAddr(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

// A peer's identity keeps its secret and its ring key after the epoch;
// one without them encodes as before; a cut one is damage.
func TestIdentityKeys(t *testing.T) {
	a := netip.MustParseAddrPort("10.0.0.1:5000")
	for _, id := range []state.Identity{
		{Name: "a", Addr: a, Server: a, Secret: wire.Key{9}},
		{Name: "a", Addr: a, Server: a, InRing: true, ID: 1, N: 2, Left: state.Member{Name: "b", Addr: a}, Right: state.Member{Name: "b", Addr: a},
			Epoch: 4, Secret: wire.Key{9}, KeyEpoch: 3, RingKey: wire.Key{7}},
	} {
		b, err := encodeIdentity(id)
		if err != nil {
			t.Fatal(err)
		}
		got, err := decodeIdentity(b)
		if err != nil || got != id {
			t.Fatalf("decoded %+v, %v; want %+v", got, err, id)
		}
		if _, err := decodeIdentity(b[:len(b)-1]); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%+v cut by a byte decodes with %v, want ErrCorrupt", id, err)
		}
	}
}
