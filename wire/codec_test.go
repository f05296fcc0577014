package wire

import (
	"bytes"
	"encoding/hex"
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

// unhex decodes hex that may be split by spaces for readability.
func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		t.Fatalf("bad hex %q: %v", s, err)
	}
	return b
}

var (
	alice = Member{Name: "alice", Addr: netip.MustParseAddrPort("10.0.0.1:5000")}
	bob   = Member{Name: "bob", Addr: netip.MustParseAddrPort("10.0.0.2:5001")}

	aruba = Record{"ABW", "Aruba", "Aruba", "Aruba", "AW", "Aruban florin", "Latin America & Caribbean", "AW", "2010"}
	// curacao has an invalid UTF-8 byte (0xAB), multi-byte UTF-8 (ç) and
	// empty fields.
	curacao = Record{"CUW", "Cura\xabao", "Curaçao", "Curaçao", "CW", "", "", "CW", "2011"}
)

// Hex pieces of the goldens. A name has a one-byte length; every other
// string (record fields, long names, reasons) a two-byte one.
const (
	hAlice     = "05 616c696365"           // "alice"
	hBob       = "03 626f62"               // "bob"
	hAliceAddr = "0a000001 1388"           // 10.0.0.1:5000
	hBobAddr   = "0a000002 1389"           // 10.0.0.2:5001
	hCuracao   = "0008 43757261 c3a7 616f" // "Curaçao"
	hAruba     = "0003 414257" +           // ABW
		" 0005 4172756261 0005 4172756261 0005 4172756261" + // Aruba ×3
		" 0002 4157" + // AW
		" 000d 417275626 16e 20 666c6f72696e" + // Aruban florin
		" 0019 4c6174696e 20 416d6572696361 20 26 20 436172696262 65616e" + // Latin America & Caribbean
		" 0002 4157 0004 32303130" // AW 2010
	hCuracaoRec = "0003 435557" + // CUW
		" 0007 43757261 ab 616f" + // Cura\xabao
		" " + hCuracao + " " + hCuracao +
		" 0002 4357 0000 0000 0002 4357 0004 32303131" // CW "" "" CW 2011
)

type golden struct {
	name  string
	id    uint32
	flags Flags
	msg   Message
	hex   string
}

var goldens = []golden{
	{"register", 1, 0, Register{Name: "alice", Addr: alice.Addr},
		"4448 08 01 00000001 00" + hAlice + hAliceAddr + "0000000000000000 00000000000000000000000000000000"},
	{"register-cookie", 1, 0, Register{Name: "alice", Addr: alice.Addr, Epoch: 3, Cookie: Tag{0: 0xc0, 15: 0x0e}},
		"4448 08 01 00000001 00" + hAlice + hAliceAddr + "0000000000000003 c000000000000000000000000000000e"},
	{"challenge", 2, 0, Challenge{Cookie: Tag{0: 0xc0, 15: 0x0e}},
		"4448 08 1d 00000002 00 c000000000000000000000000000000e"},
	{"tickets", 3, 0, Tickets{Name: "alice", From: 30},
		"4448 08 1e 00000003 00" + hAlice + "001e"},
	{"setup-dht", 2, 0, SetupDHT{N: 3, Name: "alice"},
		"4448 08 02 00000002 00 0003" + hAlice},
	{"dht-complete", 3, 0, DHTComplete{Name: "alice"},
		"4448 08 03 00000003 00" + hAlice},
	{"query-dht", 4, 0, QueryDHT{Name: "bob"},
		"4448 08 04 00000004 00" + hBob},
	{"leave-dht", 5, 0, LeaveDHT{Name: "bob"},
		"4448 08 05 00000005 00" + hBob},
	{"dht-rebuilt", 6, 0, DHTRebuilt{Name: "bob", NewLeader: "alice"},
		"4448 08 06 00000006 00" + hBob + hAlice + " 00000000000000000000000000000000"},
	{"deregister", 7, 0, Deregister{Name: "bob"},
		"4448 08 07 00000007 00" + hBob},
	{"teardown-dht", 8, 0, TeardownDHT{Name: "alice"},
		"4448 08 08 00000008 00" + hAlice},
	{"teardown-complete", 9, 0, TeardownComplete{Name: "alice"},
		"4448 08 09 00000009 00" + hAlice},
	{"reply-ok", 0x0a0b0c0d, 0, Reply{OK: true, Members: []Member{alice, bob}},
		"4448 08 0a 0a0b0c0d 00 01 0000 0002" + hAlice + hAliceAddr + hBob + hBobAddr},
	{"reply-rejoin", 0x0a0b0c0e, 0, Reply{OK: true, State: 2, Epoch: 0x0102030405060708},
		"4448 08 0a 0a0b0c0e 00 01 0000 0000 02 0102030405060708 0000000000000000 00 00"},
	{"reply-failure", 11, 0, Reply{Reason: "in use"},
		"4448 08 0a 0000000b 00 00 0006 696e20757365 0000"},
	{"reply-credentials", 12, 0, Reply{OK: true, Members: []Member{alice}, Epoch: 0x0103, KeyEpoch: 0x0102, Key: Key{0: 0x4b, 15: 0x59},
		Tickets: []Tag{{0: 0x71, 15: 0x72}}},
		"4448 08 0a 0000000c 00 01 0000 0001" + hAlice + hAliceAddr + "00 0000000000000103 0000000000000102 10 4b000000000000000000000000000059" +
			"01 71000000000000000000000000000072"},
	{"set-id", 12, 0, SetID{ID: 1, N: 2, Left: alice, Right: bob, Epoch: 3, Ticket: Tag{0: 0x71, 15: 0x72}},
		"4448 08 10 0000000c 00 0001 0002" + hAlice + hAliceAddr + hBob + hBobAddr + "0000000000000003 71000000000000000000000000000072"},
	{"store", 13, FlagRetransmit, Store{N: 2, Records: []Record{aruba, curacao}},
		"4448 08 11 0000000d 01 0002 0002 " + hAruba + " " + hCuracaoRec},
	{"store-empty", 24, 0, Store{N: 1},
		"4448 08 11 00000018 00 0001 0000"},
	{"flush", 14, 0, Flush{Leader: "alice", N: 2},
		"4448 08 12 0000000e 00" + hAlice + "0002 000000000000 00000000 0000000000000000 0000"},
	{"flush-leader-addr", 14, 0, Flush{Leader: "alice", N: 2, LeaderAddr: alice.Addr, Round: 0x01020304, Epoch: 3},
		"4448 08 12 0000000e 00" + hAlice + "0002" + hAliceAddr + "01020304 0000000000000003 0000"},
	{"flush-after", 14, 0, Flush{Leader: "alice", N: 2, Round: 7, After: []uint32{0x0a0b0c0d, 2}},
		"4448 08 12 0000000e 00" + hAlice + "0002 000000000000 00000007 0000000000000000 0002 0a0b0c0d 00000002"},
	{"query", 15, 0, Query{ReqID: 0xdeadbeef, Querier: bob, Hops: 1, LongName: "Curaçao"},
		"4448 08 13 0000000f 00 deadbeef" + hBob + hBobAddr + "0001" + hCuracao},
	{"query-result-found", 16, 0, QueryResult{ReqID: 0xdeadbeef, Found: true, Node: "alice", Hops: 2, LongName: "Curaçao", Record: curacao},
		"4448 08 14 00000010 00 deadbeef 01" + hAlice + "0000 0002" + hCuracao + " " + hCuracaoRec},
	{"query-result-not-found", 17, FlagNoAck, QueryResult{ReqID: 1, Node: "bob", NodeID: 1, Hops: 3, LongName: "Atlantis"},
		"4448 08 14 00000011 02 00000001 00" + hBob + "0001 0003 0008 41746c616e746973"},
	{"teardown", 18, 0, Teardown{Origin: "alice", KeepNeighbours: true, OriginAddr: alice.Addr, Epoch: 5},
		"4448 08 15 00000012 00" + hAlice + "01" + hAliceAddr + "0000000000000005"},
	{"torn-down", 50, 0, TornDown{Origin: "alice"},
		"4448 08 32 00000032 00" + hAlice},
	{"committed", 51, 0, Committed{Leader: "alice", Round: 7, Epoch: 9},
		"4448 08 33 00000033 00" + hAlice + "00000007 0000000000000009"},
	{"reset-id", 19, 0, ResetID{Origin: "bob", ID: 1, N: 2},
		"4448 08 16 00000013 00" + hBob + "0001 0002 000000000000 0000000000000000"},
	{"reset-left", 20, 0, ResetLeft{Left: alice, Epoch: 6},
		"4448 08 17 00000014 00" + hAlice + hAliceAddr + "0000000000000006"},
	{"reset-right", 21, 0, ResetRight{Right: bob},
		"4448 08 18 00000015 00" + hBob + hBobAddr + "0000000000000000"},
	{"rebuild-dht", 22, 0, RebuildDHT{Leaver: bob},
		"4448 08 19 00000016 00" + hBob + hBobAddr},
	{"rebuilt", 23, 0, Rebuilt{OK: true, NewLeader: "alice", Epoch: 5},
		"4448 08 1a 00000017 00 01 0000" + hAlice + " 00000000000000000000000000000000 0000000000000005"},
	{"join-dht", 25, 0, JoinDHT{Name: "bob"},
		"4448 08 0b 00000019 00" + hBob},
	{"join", 26, 0, Join{Joiner: bob, N: 2, Epoch: 4},
		"4448 08 1c 0000001a 00" + hBob + hBobAddr + "0002 0000000000000004"},
	{"alive", 27, 0, Alive{Name: "bob", PeriodMS: 5000, Epoch: 7, QuitOp: TypeLeaveDHT, Quit: 6, KeyEpoch: 5},
		"4448 08 0c 0000001b 00" + hBob + "00001388 0000000000000007 05 0000000000000006 0000000000000005"},
	{"pace", 27, 0, Pace{PeriodMS: 5000, Gone: 7},
		"4448 08 0d 0000001b 00 00001388 0000000000000007"},
	{"ack", 0xffffffff, FlagRetransmit, Ack{},
		"4448 08 1b ffffffff 01 0000"},
	{"ack-more", 7, 0, Ack{More: []uint32{8, 0x01020304}},
		"4448 08 1b 00000007 00 0002 00000008 01020304"},
	{"heal", 0x28, 0, Heal{Epoch: 5, Members: []Member{bob, alice}, KeyEpoch: 3, Tickets: []Tag{{0: 0x71, 15: 0x72}}},
		"4448 08 28 00000028 00 0000000000000005 0002" + hBob + hBobAddr + hAlice + hAliceAddr + "0000000000000003 01 71000000000000000000000000000072"},
	{"healed", 0x29, 0, Healed{Name: "bob", Epoch: 5},
		"4448 08 29 00000029 00" + hBob + "0000000000000005"},
	{"broken", 0x2a, 0, Broken{Node: alice, What: TypeFlush, Epoch: 7, Round: 0x0a0b0c0d},
		"4448 08 2a 0000002a 00" + hAlice + hAliceAddr + "12 0000000000000007 0a0b0c0d"},
}

func TestGoldenCoversEveryType(t *testing.T) {
	seen := map[Type]bool{}
	for _, g := range goldens {
		seen[g.msg.Type()] = true
	}
	for typ := range Type(255) {
		if typ.known() && !seen[typ] {
			t.Errorf("no golden for %v", typ)
		}
	}
}

func TestGolden(t *testing.T) {
	for _, g := range goldens {
		t.Run(g.name, func(t *testing.T) {
			want := unhex(t, g.hex)
			got, err := Append(nil, g.id, g.flags, g.msg)
			if err != nil {
				t.Fatalf("Append: %v", err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("Append:\n got %x\nwant %x", got, want)
			}
			if n := EncodedLen(g.msg); n != len(want) {
				t.Errorf("EncodedLen = %d, want %d", n, len(want))
			}

			// Append appends: a prefix is kept.
			prefixed, err := Append([]byte{0xee}, g.id, g.flags, g.msg)
			if err != nil || prefixed[0] != 0xee || !bytes.Equal(prefixed[1:], want) {
				t.Errorf("Append after a prefix = %x, %v", prefixed, err)
			}

			h, m, err := Decode(want)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if wantH := (Header{Type: g.msg.Type(), ID: g.id, Flags: g.flags}); h != wantH {
				t.Errorf("header = %+v, want %+v", h, wantH)
			}
			if !reflect.DeepEqual(m, g.msg) {
				t.Errorf("Decode:\n got %#v\nwant %#v", m, g.msg)
			}
		})
	}
}

// Decode must copy: the caller reuses its read buffer.
func TestDecodeCopies(t *testing.T) {
	for _, g := range goldens {
		t.Run(g.name, func(t *testing.T) {
			b := unhex(t, g.hex)
			_, m, err := Decode(b)
			if err != nil {
				t.Fatal(err)
			}
			for i := range b {
				b[i] = 0xff
			}
			if !reflect.DeepEqual(m, g.msg) {
				t.Errorf("message changed with the buffer: %#v", m)
			}
		})
	}
}

func TestRoundTrip(t *testing.T) {
	name64 := strings.Repeat("n", MaxName)
	field := func(n int) string { return strings.Repeat("f", n) }
	maxAddr := netip.MustParseAddrPort("255.255.255.255:65535")
	zeroAddr := netip.MustParseAddrPort("0.0.0.0:0")
	var members []Member
	for i := range MaxMembers {
		members = append(members, Member{Name: string(rune('a' + i%26)), Addr: netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(i)}), uint16(i))})
	}
	// Two records that fill a datagram exactly.
	full := Store{N: 65535, Records: []Record{{3: field(1000)}, {3: field(MaxMessage - StoreOverhead - 1018 - 18)}}}
	if n := EncodedLen(full); n != MaxMessage {
		t.Fatalf("full store is %d bytes", n)
	}
	var every Record
	for i := range every {
		every[i] = field(10 * i)
	}
	tests := []struct {
		name string
		msg  Message
	}{
		{"register-limits", Register{Name: name64, Addr: maxAddr}},
		{"register-zero-addr", Register{Name: "", Addr: zeroAddr}},
		{"setup-dht-max", SetupDHT{N: 65535, Name: name64}},
		{"dht-complete", DHTComplete{Name: name64}},
		{"query-dht", QueryDHT{Name: "x"}},
		{"leave-dht", LeaveDHT{}},
		{"dht-rebuilt", DHTRebuilt{Name: name64, NewLeader: name64}},
		{"deregister", Deregister{Name: "Zoë"}},
		{"teardown-dht", TeardownDHT{Name: "\xff\x00"}},
		{"teardown-complete", TeardownComplete{Name: name64}},
		{"reply-max-members", Reply{OK: true, Members: members}},
		{"reply-max-reason", Reply{Reason: strings.Repeat("r", MaxReason)}},
		{"set-id", SetID{ID: 65535, N: 65535, Left: Member{name64, maxAddr}, Right: Member{"", zeroAddr}}},
		{"store-full", full},
		{"store-field-max", Store{Records: []Record{{8: field(MaxField)}}}},
		{"store-every-field", Store{N: 7, Records: []Record{every, curacao, {}}}},
		{"flush", Flush{Leader: name64, N: 65535, Round: 0xffffffff, Epoch: 1<<64 - 1}},
		{"flush-max-after", Flush{Leader: name64, N: 65535, Round: 0xffffffff, Epoch: 1<<64 - 1, After: make([]uint32, MaxAfter)}},
		{"query-max", Query{ReqID: 0xffffffff, Querier: Member{name64, maxAddr}, Hops: 65535, LongName: field(MaxField)}},
		{"query-result-found-empty-record", QueryResult{Found: true}},
		{"query-result-found", QueryResult{ReqID: 7, Found: true, Node: name64, NodeID: 65535, Hops: 65535, LongName: field(900), Record: every}},
		{"teardown", Teardown{Origin: name64}},
		{"torn-down", TornDown{Origin: name64}},
		{"committed", Committed{Leader: name64, Round: 0xffffffff, Epoch: 1<<64 - 1}},
		{"reset-id", ResetID{Origin: name64, ID: 65535, N: 65535}},
		{"reset-left", ResetLeft{Left: Member{name64, maxAddr}}},
		{"reset-right", ResetRight{Right: Member{name64, zeroAddr}}},
		{"rebuild-dht", RebuildDHT{Leaver: Member{"bob", maxAddr}}},
		{"rebuilt-failure", Rebuilt{Reason: strings.Repeat("r", MaxReason), NewLeader: name64}},
		{"join-dht", JoinDHT{Name: name64}},
		{"alive", Alive{Name: name64, PeriodMS: 0xffffffff, Epoch: 1<<64 - 1, QuitOp: 255, Quit: 1<<64 - 1, KeyEpoch: 1<<64 - 1}},
		{"join", Join{Joiner: Member{name64, maxAddr}, N: 65535}},
		{"ack", Ack{}},
		{"ack-max", Ack{More: make([]uint32, MaxAcks)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := Append(nil, 42, FlagRetransmit, tt.msg)
			if err != nil {
				t.Fatalf("Append: %v", err)
			}
			if len(b) != EncodedLen(tt.msg) {
				t.Errorf("len = %d, EncodedLen = %d", len(b), EncodedLen(tt.msg))
			}
			h, m, err := Decode(b)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if h != (Header{Type: tt.msg.Type(), ID: 42, Flags: FlagRetransmit}) {
				t.Errorf("header = %+v", h)
			}
			if !reflect.DeepEqual(m, tt.msg) {
				t.Errorf("round trip:\n got %#v\nwant %#v", m, tt.msg)
			}
		})
	}
}

func TestStoreLen(t *testing.T) {
	st := Store{N: 3, Records: []Record{aruba, curacao, {}}}
	want := StoreOverhead
	for _, r := range st.Records {
		want += RecordLen(r)
	}
	if got := EncodedLen(st); got != want {
		t.Errorf("EncodedLen = %d, StoreOverhead + RecordLen = %d", got, want)
	}
	if got := RecordLen(Record{}); got != 18 {
		t.Errorf("RecordLen(empty) = %d, want 18", got)
	}
	if got := EncodedLen(Store{}); got != StoreOverhead {
		t.Errorf("EncodedLen(empty store) = %d, want %d", got, StoreOverhead)
	}
}

// Every proper prefix of a valid datagram is truncated (but for a reply's,
// cut just before its credentials: a reply without them).
func TestTruncated(t *testing.T) {
	for _, g := range goldens {
		t.Run(g.name, func(t *testing.T) {
			b := unhex(t, g.hex)
			bare := -1
			if r, ok := g.msg.(Reply); ok && r.tail() {
				r.State, r.Epoch, r.KeyEpoch, r.Key, r.Tickets = 0, 0, 0, Key{}, nil
				bare = EncodedLen(r)
			}
			for n := range len(b) {
				if n == bare {
					continue
				}
				_, m, err := Decode(b[:n])
				if !errors.Is(err, ErrShort) {
					t.Errorf("cut at %d: err = %v, want ErrShort", n, err)
				}
				if m != nil {
					t.Errorf("cut at %d: message %#v with the error", n, m)
				}
			}
		})
	}
}

func TestTrailing(t *testing.T) {
	for _, g := range goldens {
		t.Run(g.name, func(t *testing.T) {
			b := append(unhex(t, g.hex), 0)
			want := ErrTrailing
			if r, ok := g.msg.(Reply); ok && !r.tail() {
				want = ErrShort // a byte after the members starts the credentials
			}
			if _, _, err := Decode(b); !errors.Is(err, want) {
				t.Errorf("err = %v, want ErrTrailing", err)
			}
		})
	}
}

func TestDecodeErrors(t *testing.T) {
	record1025 := "0401" + strings.Repeat("66", 1025) + strings.Repeat(" 0000", 8)
	tests := []struct {
		name  string
		hex   string
		want  error
		field string // the *Error's Field
	}{
		{"empty", "", ErrShort, "header"},
		{"magic", "4449 01 1b 00000001 00", ErrMagic, ""},
		{"magic-swapped", "4844 01 1b 00000001 00", ErrMagic, ""},
		{"version-0", "4448 00 1b 00000001 00", ErrVersion, ""},
		{"version-1", "4448 01 1b 00000001 00", ErrVersion, ""},
		{"version-2", "4448 02 1b 00000001 00", ErrVersion, ""},
		{"version-3", "4448 03 1b 00000001 00", ErrVersion, ""},
		{"version-4", "4448 04 1b 00000001 00", ErrVersion, ""},
		{"version-5", "4448 05 1b 00000001 00", ErrVersion, ""},
		{"version-6", "4448 06 1b 00000001 00", ErrVersion, ""},
		{"version-7", "4448 07 1b 00000001 00", ErrVersion, ""},
		{"type-0", "4448 08 00 00000001 00", ErrUnknownType, ""},
		{"type-14", "4448 08 0e 00000001 00", ErrUnknownType, ""},
		{"type-15", "4448 08 0f 00000001 00", ErrUnknownType, ""},
		{"type-31", "4448 08 1f 00000001 00", ErrUnknownType, ""},
		{"type-255", "4448 08 ff 00000001 00", ErrUnknownType, ""},
		{"flags-8", "4448 08 1b 00000001 08", ErrFlags, "flags"},
		{"auth-short", "4448 08 1b 00000001 04 0000", ErrShort, "auth"},
		{"auth-short-by-one", "4448 08 1b 00000001 04" + strings.Repeat("00", AuthLen-1), ErrShort, "auth"},
		{"flags-80", "4448 08 1b 00000001 80", ErrFlags, "flags"},
		{"reply-bool", "4448 08 0a 00000001 00 02 0000 0000", ErrInvalid, "ok"},
		{"rebuilt-bool", "4448 08 1a 00000001 00 ff 0000 0000", ErrInvalid, "ok"},
		{"teardown-bool", "4448 08 15 00000001 00" + hAlice + "02", ErrInvalid, "keep_neighbours"},
		{"query-result-bool", "4448 08 14 00000001 00 00000001 03" + hBob + "0001 0003 0000", ErrInvalid, "found"},
		{"name-65", "4448 08 03 00000001 00 41" + strings.Repeat("61", 65), ErrTooLong, "name"},
		{"name-ff", "4448 08 03 00000001 00 ff 6161", ErrTooLong, "name"},
		{"name-short", "4448 08 03 00000001 00 40 6161", ErrShort, "name"},
		{"name-no-length", "4448 08 03 00000001 00", ErrShort, "name"},
		{"reason-513", "4448 08 0a 00000001 00 00 0201" + strings.Repeat("72", 513) + "0000", ErrTooLong, "reason"},
		{"members-65", "4448 08 0a 00000001 00 01 0000 0041" + strings.Repeat(hBob+hBobAddr, 65), ErrTooLong, "members"},
		{"members-ffff", "4448 08 0a 00000001 00 01 0000 ffff", ErrTooLong, "members"},
		{"members-short", "4448 08 0a 00000001 00 01 0000 0040" + hBob + hBobAddr, ErrShort, "members"},
		{"reply-key-zero", "4448 08 0a 00000001 00 01 0000 0000 01 0000000000000001 0000000000000000 10" + strings.Repeat("00", KeyLen) + "00", ErrInvalid, "key"},
		{"reply-key-length", "4448 08 0a 00000001 00 01 0000 0000 01 0000000000000001 0000000000000000 05 0102030405 00", ErrInvalid, "key"},
		{"reply-tail-zero", "4448 08 0a 00000001 00 01 0000 0000 00 0000000000000000 0000000000000000 00 00", ErrInvalid, "tail"},
		{"tickets-65", "4448 08 0a 00000001 00 01 0000 0000 01 0000000000000001 0000000000000000 00 41" + strings.Repeat(strings.Repeat("71", TagLen), 65), ErrTooLong, "tickets"},
		{"member-name", "4448 08 0a 00000001 00 01 0000 0002" + hBob + hBobAddr + "41" + strings.Repeat("61", 65) + hBobAddr, ErrTooLong, "members[1].name"},
		{"set-id-right-addr", "4448 08 10 00000001 00 0001 0002" + hAlice + hAliceAddr + hBob + "0a0000", ErrShort, "right.addr"},
		{"store-records-ffff", "4448 08 11 00000001 00 0002 ffff" + hAruba, ErrShort, "records"},
		{"store-field-1025", "4448 08 11 00000001 00 0002 0001" + record1025, ErrTooLong, "records[0].field[0]"},
		{"store-field-short", "4448 08 11 00000001 00 0002 0002" + hAruba + "0003 435557 0400", ErrShort, "records[1].field[1]"},
		{"query-long-name-1025", "4448 08 13 00000001 00 00000001" + hBob + hBobAddr + "0000 0401" + strings.Repeat("66", 1025), ErrTooLong, "long_name"},
		{"query-result-record-field", "4448 08 14 00000001 00 00000001 01" + hBob + "0001 0003 0000" + record1025, ErrTooLong, "record.field[0]"},
		{"query-result-not-found-with-record", "4448 08 14 00000001 00 00000001 00" + hBob + "0001 0003 0000" + hCuracaoRec, ErrTrailing, ""},
		{"ack-body", "4448 08 1b 00000001 00 0000 00", ErrTrailing, ""},
		{"ack-more-short", "4448 08 1b 00000001 00 0002 00000001", ErrShort, "more"},
		{"ack-more-too-many", "4448 08 1b 00000001 00 0101" + strings.Repeat("00000001", MaxAcks+1), ErrTooLong, "more"},
		{"too-long", "4448 08 1b 00000001 00" + strings.Repeat("00", MaxDatagram+1-HeaderLen), ErrTooLong, "datagram"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, m, err := Decode(unhex(t, tt.hex))
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			var we *Error
			if !errors.As(err, &we) {
				t.Fatalf("err %T is not *Error", err)
			}
			if we.Field != tt.field {
				t.Errorf("Field = %q, want %q (%v)", we.Field, tt.field, err)
			}
			if m != nil {
				t.Errorf("message %#v with the error", m)
			}
		})
	}
}

// A length or count field that claims more than the datagram holds is
// rejected before anything of that size is allocated.
func TestDecodeHugeCountsDoNotAllocate(t *testing.T) {
	for _, s := range []string{
		"4448 08 11 00000001 00 0002 ffff 0000",                                          // 65535 records
		"4448 08 0a 00000001 00 01 0000 0040" + hBob + hBobAddr,                          // 64 members
		"4448 08 13 00000001 00 00000001" + hBob + hBobAddr + "0000 0400",                // 1024-byte name
		"4448 08 0a 00000001 00 01 0000 0000 01 0000000000000001 0000000000000000 00 40", // 64 tickets
	} {
		b := unhex(t, s)
		allocs := testing.AllocsPerRun(100, func() {
			if _, _, err := Decode(b); !errors.Is(err, ErrShort) {
				t.Fatalf("Decode(%x) = %v, want ErrShort", b, err)
			}
		})
		// The body copy and the *Error.
		if allocs > 2 {
			t.Errorf("Decode(%x): %v allocations", b, allocs)
		}
	}
}

func TestDecodeMaxDatagram(t *testing.T) {
	st := Store{Records: []Record{{3: strings.Repeat("x", MaxField)}, {3: strings.Repeat("y", MaxMessage-StoreOverhead-2*18-MaxField)}}}
	b, err := AppendSigned(nil, 1, 0, st, 1, Key{})
	if err != nil || len(b) != MaxDatagram {
		t.Fatalf("Append = %d bytes, %v", len(b), err)
	}
	if _, _, err := Decode(b); err != nil {
		t.Errorf("Decode of a MaxDatagram datagram: %v", err)
	}
	b = append(b, 0)
	if _, _, err := Decode(b); !errors.Is(err, ErrTooLong) {
		t.Errorf("Decode of MaxDatagram+1 bytes: %v, want ErrTooLong", err)
	}
	if _, err := DecodeHeader(b); !errors.Is(err, ErrTooLong) {
		t.Errorf("DecodeHeader of MaxDatagram+1 bytes: %v, want ErrTooLong", err)
	}
}

func TestAppendErrors(t *testing.T) {
	long := func(n int) string { return strings.Repeat("x", n) }
	v6 := netip.MustParseAddrPort("[::1]:5000")
	mapped := netip.MustParseAddrPort("[::ffff:10.0.0.1]:5000")
	tooMany := make([]Record, 2)
	tooMany[0][0] = long(MaxField)
	tooMany[1][0] = long(MaxDatagram - StoreOverhead - 2*18 - MaxField + 1)
	manyEmpty := make([]Record, 70000)
	tests := []struct {
		name  string
		flags Flags
		msg   Message
		want  error
		field string
		text  string // the whole message, when set
	}{
		{"name", 0, Register{Name: long(MaxName + 1), Addr: alice.Addr}, ErrTooLong, "name", "wire: register: name: too long"},
		{"name-256", 0, Register{Name: long(256 + 5), Addr: alice.Addr}, ErrTooLong, "name", ""}, // not a 5-byte name
		{"addr-v6", 0, Register{Name: "a", Addr: v6}, ErrInvalid, "addr", ""},
		{"addr-4in6", 0, Register{Name: "a", Addr: mapped}, ErrInvalid, "addr", ""},
		{"addr-zero", 0, Register{Name: "a"}, ErrInvalid, "addr", ""},
		{"new-leader", 0, DHTRebuilt{Name: "a", NewLeader: long(MaxName + 1)}, ErrTooLong, "new_leader", ""},
		{"reason", 0, Reply{Reason: long(MaxReason + 1)}, ErrTooLong, "reason", ""},
		{"members", 0, Reply{OK: true, Members: make([]Member, MaxMembers+1)}, ErrTooLong, "members", ""},
		{"acks", 0, Ack{More: make([]uint32, MaxAcks+1)}, ErrTooLong, "more", "wire: ack: more: too long"},
		{"tickets", 0, Reply{OK: true, Epoch: 1, Tickets: make([]Tag, MaxTickets+1)}, ErrTooLong, "tickets", "wire: reply: tickets: too long"},
		{"heal-members", 0, Heal{Epoch: 1, Members: slicesRepeat(alice, MaxMembers+1)}, ErrTooLong, "members", ""},
		{"heal-tickets", 0, Heal{Epoch: 1, Tickets: make([]Tag, MaxTickets+1)}, ErrTooLong, "tickets", ""},
		{"member-addr", 0, Reply{OK: true, Members: []Member{alice, {Name: "x", Addr: v6}}}, ErrInvalid, "members[1].addr", "wire: reply: members[1].addr: invalid value"},
		{"reason-before-members", 0, Reply{Reason: long(MaxReason + 1), Members: []Member{{}}}, ErrTooLong, "reason", ""},
		{"reply-datagram", 0, Reply{Members: slicesRepeat(Member{long(MaxName), alice.Addr}, MaxMembers)}, ErrTooLong, "datagram", ""},
		{"set-id-right", 0, SetID{Left: alice, Right: Member{Name: long(MaxName + 1), Addr: bob.Addr}}, ErrTooLong, "right.name", ""},
		{"set-id-left", 0, SetID{Left: Member{Name: "a"}, Right: bob}, ErrInvalid, "left.addr", ""},
		{"store-field", 0, Store{Records: []Record{aruba, {2: long(MaxField + 1)}}}, ErrTooLong, "records[1].field[2]", "wire: store: records[1].field[2]: too long"},
		{"store-too-many", 0, Store{Records: tooMany}, ErrTooLong, "records", ""},
		{"store-count", 0, Store{Records: manyEmpty}, ErrTooLong, "records", ""},
		{"flush", 0, Flush{Leader: long(MaxName + 1)}, ErrTooLong, "leader", ""},
		{"flush-after", 0, Flush{Leader: "a", After: make([]uint32, MaxAfter+1)}, ErrTooLong, "after", "wire: flush: after: too long"},
		{"torn-down", 0, TornDown{Origin: long(MaxName + 1)}, ErrTooLong, "origin", ""},
		{"committed", 0, Committed{Leader: long(MaxName + 1)}, ErrTooLong, "leader", ""},
		{"query-long-name", 0, Query{Querier: bob, LongName: long(MaxField + 1)}, ErrTooLong, "long_name", ""},
		{"query-querier", 0, Query{Querier: Member{Name: "q"}}, ErrInvalid, "querier.addr", ""},
		{"query-result-record", 0, QueryResult{Found: true, Record: Record{8: long(MaxField + 1)}}, ErrTooLong, "record.field[8]", ""},
		{"query-result-node-before-record", 0, QueryResult{Found: true, Node: long(MaxName + 1), Record: Record{8: long(MaxField + 1)}}, ErrTooLong, "node", ""},
		{"query-result-stray-record", 0, QueryResult{Record: curacao}, ErrInvalid, "record", ""},
		{"teardown", 0, Teardown{Origin: long(MaxName + 1)}, ErrTooLong, "origin", ""},
		{"reset-id", 0, ResetID{Origin: long(MaxName + 1)}, ErrTooLong, "origin", ""},
		{"reset-left", 0, ResetLeft{Left: Member{Name: "a", Addr: v6}}, ErrInvalid, "left.addr", ""},
		{"reset-right", 0, ResetRight{}, ErrInvalid, "right.addr", ""},
		{"rebuild-dht", 0, RebuildDHT{Leaver: Member{Name: long(MaxName + 1)}}, ErrTooLong, "leaver.name", ""},
		{"rebuilt", 0, Rebuilt{Reason: long(MaxReason + 1)}, ErrTooLong, "reason", ""},
		{"join-dht", 0, JoinDHT{Name: long(MaxName + 1)}, ErrTooLong, "name", ""},
		{"join", 0, Join{Joiner: Member{Name: "u"}}, ErrInvalid, "joiner.addr", ""},
		{"flags", 0x82, Ack{}, ErrFlags, "flags", "wire: ack: flags: unknown flags"},
		{"pointer", 0, &Store{}, ErrUnknownType, "*wire.Store", ""},
		{"nil-pointer", 0, (*Ack)(nil), ErrUnknownType, "*wire.Ack", ""},
		{"nil", 0, nil, ErrUnknownType, "<nil>", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prefix := []byte("xy")
			b, err := Append(prefix, 1, tt.flags, tt.msg)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			var we *Error
			if !errors.As(err, &we) {
				t.Fatalf("err %T is not *Error", err)
			}
			if we.Field != tt.field {
				t.Errorf("Field = %q, want %q (%v)", we.Field, tt.field, err)
			}
			if tt.text != "" && err.Error() != tt.text {
				t.Errorf("Error() = %q, want %q", err.Error(), tt.text)
			}
			if string(b) != "xy" {
				t.Errorf("b = %q, want it unchanged", b)
			}
		})
	}
}

// Append refuses a datagram one byte over MaxMessage, whatever its type
// (Store stops early on its own), and takes one of exactly MaxMessage.
func TestAppendMaxMessage(t *testing.T) {
	// 9 header + 1 ok + 2+512 reason + 2 count + 13 × (1+64+6) = 1449.
	r := Reply{Reason: strings.Repeat("r", MaxReason), Members: slicesRepeat(Member{strings.Repeat("n", MaxName), alice.Addr}, 13)}
	if n := EncodedLen(r); n != MaxMessage+1 {
		t.Fatalf("EncodedLen = %d, want MaxMessage+1 = %d", n, MaxMessage+1)
	}
	if _, err := Append(nil, 1, 0, r); !errors.Is(err, ErrTooLong) {
		t.Errorf("Append of MaxMessage+1 bytes: %v, want ErrTooLong", err)
	}
	r.Reason = r.Reason[1:]
	if b, err := Append(nil, 1, 0, r); err != nil || len(b) != MaxMessage {
		t.Errorf("Append of MaxMessage bytes = %d bytes, %v", len(b), err)
	}
}

// A setup-dht reply for a ring of MaxMembers users with 15-letter names,
// the longest the protocol allows, fits in one datagram:
// 9 header + 1 ok + 2 reason + 2 count + 64 × (1 + 15 + 6) + 1 state +
// 8 epoch + 8 key epoch + 1 key length + 1 ticket count = 1441 bytes,
// 1465 signed. (With a two-byte name length it would be 1505 > MaxMessage.)
func TestReplyMaxRingFits(t *testing.T) {
	members := make([]Member, MaxMembers)
	for i := range members {
		name := strings.Repeat("x", 13) + string(rune('a'+i/26)) + string(rune('a'+i%26))
		members[i] = Member{Name: name, Addr: netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 1, byte(i)}), uint16(5000+i))}
	}
	if len(members[63].Name) != 15 {
		t.Fatalf("name %q is not 15 bytes", members[63].Name)
	}
	r := Reply{OK: true, Members: members, Epoch: 1, KeyEpoch: 1}
	if n := EncodedLen(r); n != 1441 {
		t.Errorf("EncodedLen = %d, want 1441", n)
	}
	b, err := AppendSigned(nil, 9, 0, r, 1, Key{1})
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
	if len(b) != 1441+AuthLen || len(b) > MaxDatagram {
		t.Fatalf("Append = %d bytes, want %d (MaxDatagram %d)", len(b), 1441+AuthLen, MaxDatagram)
	}
	h, m, err := Decode(b)
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	if h.Type != TypeReply || h.ID != 9 || h.Seq != 1 || !Verify(Key{1}, h) {
		t.Errorf("header = %+v", h)
	}
	if !reflect.DeepEqual(m, r) {
		t.Errorf("round trip:\n got %#v\nwant %#v", m, r)
	}
}

// MaxMembers members with MaxName-byte names do not fit (9 + 1 + 2 + 2 +
// 64 × (1 + 64 + 6) = 4558 bytes): Append says so and does not panic.
func TestReplyMaxNamesTooLong(t *testing.T) {
	defer func() {
		if p := recover(); p != nil {
			t.Fatalf("Append panicked: %v", p)
		}
	}()
	r := Reply{OK: true, Members: slicesRepeat(Member{strings.Repeat("n", MaxName), alice.Addr}, MaxMembers)}
	if n := EncodedLen(r); n != 4558 {
		t.Errorf("EncodedLen = %d, want 4558", n)
	}
	b, err := Append([]byte("xy"), 1, 0, r)
	if !errors.Is(err, ErrTooLong) {
		t.Fatalf("err = %v, want ErrTooLong", err)
	}
	if err.Error() != "wire: reply: datagram: too long" {
		t.Errorf("Error() = %q", err.Error())
	}
	if string(b) != "xy" {
		t.Errorf("b = %q, want it unchanged", b)
	}
}

func slicesRepeat[T any](v T, n int) []T {
	s := make([]T, n)
	for i := range s {
		s[i] = v
	}
	return s
}

func TestErrorText(t *testing.T) {
	tests := []struct {
		hex  string
		want string
	}{
		{"4448 02", "wire: header: truncated"},
		{"0000 01 1b 00000001 00", "wire: bad magic"},
		{"4448 06 1b 00000001 00", "wire: unsupported version"},
		{"4448 08 63 00000001 00", "wire: type(99): unknown type"},
		{"4448 08 1b 00000001 00 0000 00", "wire: ack: trailing bytes"},
		{"4448 08 15 00000001 00" + hAlice + "05", "wire: teardown: keep_neighbours: invalid value"},
		{"4448 08 11 00000001 00 0002 0002" + hAruba + "0003 435557 0400", "wire: store: records[1].field[1]: truncated"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			_, _, err := Decode(unhex(t, tt.hex))
			if err == nil || err.Error() != tt.want {
				t.Errorf("err = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestDecodeHeaderKeepsIDOnBadBody(t *testing.T) {
	h, _, err := Decode(unhex(t, "4448 08 15 00000007 01"+hAlice))
	if !errors.Is(err, ErrShort) {
		t.Fatalf("err = %v", err)
	}
	if h != (Header{Type: TypeTeardown, ID: 7, Flags: FlagRetransmit}) {
		t.Errorf("header = %+v", h)
	}
}

func TestDecodeHeader(t *testing.T) {
	for _, g := range goldens {
		t.Run(g.name, func(t *testing.T) {
			h, err := DecodeHeader(unhex(t, g.hex))
			if err != nil {
				t.Fatal(err)
			}
			if h != (Header{Type: g.msg.Type(), ID: g.id, Flags: g.flags}) {
				t.Errorf("header = %+v", h)
			}
		})
	}
}
