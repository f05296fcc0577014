package wire

import (
	"errors"
	"hash"
	"net/netip"
	"testing"
)

// A datagram signed for a peer's address verifies there only: not at
// another address (another port, another host, the same host's IPv6
// form is the same address), not unbound, and an unbound signature does
// not verify at any address.
func TestSignedForAnAddress(t *testing.T) {
	key := Key{9}
	at := netip.MustParseAddrPort("10.0.0.7:5000")
	m := ResetRight{Right: bob, Epoch: 3}
	b, err := AppendSignedTo(nil, 5, 0, m, 3, key, at)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != EncodedLen(m)+AuthLen {
		t.Fatalf("len %d, want %d: the address is not in the datagram", len(b), EncodedLen(m)+AuthLen)
	}
	h, _, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if !VerifyAt(key, h, at) || !VerifyAt(key, h, netip.MustParseAddrPort("[::ffff:10.0.0.7]:5000")) {
		t.Fatal("VerifyAt refused the address it was signed for")
	}
	for _, other := range []string{"10.0.0.7:5001", "10.0.0.8:5000", "0.0.0.0:0"} {
		if VerifyAt(key, h, netip.MustParseAddrPort(other)) {
			t.Errorf("signed for %s, it verifies at %s", at, other)
		}
	}
	if Verify(key, h) {
		t.Error("signed for an address, it verifies unbound")
	}
	if VerifyAt(Key{8}, h, at) {
		t.Error("VerifyAt took a wrong key")
	}
	u, err := AppendSigned(nil, 5, 0, m, 3, key)
	if err != nil {
		t.Fatal(err)
	}
	if h, _, _ := Decode(u); VerifyAt(key, h, at) {
		t.Error("signed unbound, it verifies at an address")
	}
}

// A datagram signed between two peers verifies only as coming from its
// sender to its receiver: not from another source, not at another
// address, not as signed for the receiver alone; and one signed for the
// receiver alone does not verify as coming from anyone.
func TestSignedBetweenTwoAddresses(t *testing.T) {
	key := Key{9}
	from := netip.MustParseAddrPort("10.0.0.6:5000")
	at := netip.MustParseAddrPort("10.0.0.7:5000")
	m := ResetLeft{Left: bob, Epoch: 3}
	b, err := AppendSignedBetween(nil, 5, 0, m, 3, key, from, at)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != EncodedLen(m)+AuthLen {
		t.Fatalf("len %d, want %d: the addresses are not in the datagram", len(b), EncodedLen(m)+AuthLen)
	}
	h, _, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if !VerifyBetween(key, h, from, at) || !VerifyBetween(key, h, netip.MustParseAddrPort("[::ffff:10.0.0.6]:5000"), at) {
		t.Fatal("VerifyBetween refused the addresses it was signed for")
	}
	for _, other := range []string{"10.0.0.6:5001", "10.0.0.8:5000", "0.0.0.0:0"} {
		if VerifyBetween(key, h, netip.MustParseAddrPort(other), at) {
			t.Errorf("signed from %s, it verifies from %s", from, other)
		}
	}
	if VerifyBetween(key, h, at, from) {
		t.Error("signed from one to the other, it verifies the other way round")
	}
	if VerifyAt(key, h, at) || Verify(key, h) {
		t.Error("signed between two addresses, it verifies for the receiver alone or unbound")
	}
	if VerifyBetween(Key{8}, h, from, at) {
		t.Error("VerifyBetween took a wrong key")
	}
	u, err := AppendSignedTo(nil, 5, 0, m, 3, key, at)
	if err != nil {
		t.Fatal(err)
	}
	if h, _, _ := Decode(u); VerifyBetween(key, h, from, at) || VerifyBetween(key, h, netip.AddrPort{}, at) {
		t.Error("signed for the receiver alone, it verifies as coming from an address")
	}
}

func TestSignedRoundTrip(t *testing.T) {
	key := Key{1, 2, 3}
	m := Query{ReqID: 7, Querier: bob, Hops: 1, LongName: "Aruba"}
	b, err := AppendSigned(nil, 42, FlagNoAck, m, 0x0102030405060708, key)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != EncodedLen(m)+AuthLen {
		t.Fatalf("len %d, want %d", len(b), EncodedLen(m)+AuthLen)
	}
	h, got, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if got != Message(m) || h.ID != 42 || h.Flags != FlagNoAck|FlagAuth || h.Seq != 0x0102030405060708 {
		t.Fatalf("decoded %+v %+v", h, got)
	}
	if !Verify(key, h) {
		t.Fatal("Verify refused the right key")
	}
	if Verify(Key{1, 2, 4}, h) {
		t.Fatal("Verify took a wrong key")
	}
	// Every single-bit change anywhere is refused (or does not decode).
	for i := range b {
		for bit := 0; bit < 8; bit++ {
			c := append([]byte(nil), b...)
			c[i] ^= 1 << bit
			h, _, err := Decode(c)
			if err == nil && Verify(key, h) {
				t.Fatalf("byte %d bit %d flipped: still verifies", i, bit)
			}
		}
	}
	// An unsigned datagram never verifies.
	u, _ := Append(nil, 42, 0, m)
	h, _, _ = Decode(u)
	if Verify(key, h) || Verify(Key{}, h) {
		t.Fatal("unsigned datagram verified")
	}
}

func TestEveryMessageLeavesRoomForTheTrailer(t *testing.T) {
	var st Store
	for EncodedLen(st) <= MaxMessage {
		st.Records = append(st.Records, Record{"a", "b", "c", "d", "e", "f", "g", "h", "i"})
	}
	if _, err := Append(nil, 1, 0, st); !errors.Is(err, ErrTooLong) {
		t.Fatalf("a store over MaxMessage: err = %v", err)
	}
	st.Records = st.Records[:len(st.Records)-1]
	b, err := AppendSigned(nil, 1, 0, st, 1, Key{})
	if err != nil || len(b) > MaxDatagram {
		t.Fatalf("the largest store signed: %d bytes, err %v", len(b), err)
	}
}

// An HMAC kept for a key gives the same tags as a new one, whichever keys
// were used between, past the number kept too.
func TestMACsOfManyKeys(t *testing.T) {
	want := map[Key]Tag{}
	for round := range 3 {
		for i := range macKeys + 8 {
			k := Key{byte(i), byte(i >> 8), 9}
			got := MAC(k, []byte("part one"), []byte("part two"))
			if round == 0 {
				want[k] = got
				continue
			}
			if got != want[k] {
				t.Fatalf("round %d, key %d: tag %x, first %x", round, i, got, want[k])
			}
		}
	}
	if MAC(Key{1}, []byte("a")) == MAC(Key{2}, []byte("a")) {
		t.Fatal("two keys, one tag")
	}
}

// A tag under a key whose HMAC is kept allocates nothing: the key is not
// moved to the heap on every call (it was, 16 bytes each, when hmac.New
// was given the argument's own bytes). One macState, not the pool, which
// the race detector empties at random.
func TestTagOfAKeptKeyDoesNotAllocate(t *testing.T) {
	s := &macState{hs: make(map[Key]hash.Hash)}
	k := Key{7, 7, 7}
	msg := []byte("a datagram's signed bytes")
	s.tag(k, msg)
	if n := testing.AllocsPerRun(100, func() { s.tag(k, msg) }); n != 0 {
		t.Fatalf("a tag under a kept key: %v allocations, want 0", n)
	}
}
