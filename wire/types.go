// Package wire is the only code that knows the bytes of a dht datagram.
//
// Every datagram is one message: a fixed 9-byte header followed by the body of
// the message type named in the header. All integers are big-endian.
//
//	offset size field
//	0      2    magic   0x44 0x48 ("DH")
//	2      1    version 8
//	3      1    type    (Type)
//	4      4    id      message id; a reply or Ack echoes the id of the message it answers
//	8      1    flags   (Flags); unknown bits are rejected
//
// Body encodings:
//
//	string  u16 length, then that many bytes (any bytes: records keep invalid UTF-8)
//	name    u8 length, then at most MaxName bytes
//	addr    4 bytes IPv4, then u16 port
//	member  name, addr
//	record  NumFields strings, each at most MaxField bytes
//	list    u16 count, then the elements
//	bool    u8, 0 or 1 (anything else is rejected)
//
// The layout of each message body is given on its type below and in
// docs/DESIGN.md. A datagram is at most MaxDatagram bytes so that it never
// fragments on a 1500-byte MTU.
//
// Each message type carries its own codec beside its declaration: bodyLen,
// appendBody and parse, and LogValue for the trace. The table messages
// gives each Type its name and its decoder; Append, EncodedLen and Decode
// name no message. Adding a message is a Type constant, its type with those
// methods and one row in messages; TestMessagesTable then asks for its
// golden and its layout sample.
package wire

import (
	"log/slog"
	"net/netip"
	"strconv"
	"strings"
)

// Magic and Version open every datagram.
const (
	Magic   uint16 = 0x4448
	Version uint8  = 8

	HeaderLen = 9
	// MaxDatagram keeps every datagram inside one 1500-byte Ethernet frame
	// (1500 - 20 IPv4 - 8 UDP).
	MaxDatagram = 1472
	// MaxMessage is the most a datagram may take without its
	// authentication trailer: every message leaves room for one.
	MaxMessage = MaxDatagram - AuthLen
	// MaxName is the longest name accepted on the wire (the protocol's user
	// names are 1-15 letters; the wire is a little more lenient so that the
	// server, not the decoder, gives the user the reason).
	MaxName = 64
	// MaxField is the longest record field.
	MaxField = 1024
	// MaxReason is the longest failure reason.
	MaxReason = 512
	// NumFields is the number of fields in a record.
	NumFields = 9
	// MaxMembers bounds a member list (a setup-dht reply lists the ring).
	MaxMembers = 64
	// MaxAcks bounds the further ids one Ack carries.
	MaxAcks = 256
	// MaxAfter bounds the ids a Flush says must come before it.
	MaxAfter = 64
)

// Type names a message. The values are part of the format: append only.
type Type uint8

const (
	TypeRegister         Type = 1  // client → server
	TypeSetupDHT         Type = 2  // client → server
	TypeDHTComplete      Type = 3  // client → server
	TypeQueryDHT         Type = 4  // client → server
	TypeLeaveDHT         Type = 5  // client → server
	TypeDHTRebuilt       Type = 6  // client → server
	TypeDeregister       Type = 7  // client → server
	TypeTeardownDHT      Type = 8  // client → server
	TypeTeardownComplete Type = 9  // client → server
	TypeReply            Type = 10 // server → client
	TypeJoinDHT          Type = 11 // client → server
	TypeAlive            Type = 12 // registered client → server, unanswered
	TypePace             Type = 13 // server → client, answers an alive with the wrong period
	TypeSetID            Type = 16 // leader → member
	TypeStore            Type = 17 // left → right
	TypeFlush            Type = 18 // left → right, follows the stores
	TypeQuery            Type = 19 // querier → member, left → right
	TypeQueryResult      Type = 20 // answering node → querier
	TypeTeardown         Type = 21 // left → right
	TypeResetID          Type = 22 // left → right
	TypeResetLeft        Type = 23 // leaver → its right neighbour
	TypeResetRight       Type = 24 // leaver → its left neighbour; join's leader → the last node
	TypeRebuildDHT       Type = 25 // leaver → new leader
	TypeRebuilt          Type = 26 // leader of the rebuild → leaver or joiner
	TypeAck              Type = 27 // receiver → sender of any ring message
	TypeJoin             Type = 28 // joiner → leader
	TypeChallenge        Type = 29 // server → client, answers a register without a valid cookie
	TypeTickets          Type = 30 // client → server: the leader asks for the rest of the tickets
	TypeHeal             Type = 40 // server → the leader of a healed ring
	TypeHealed           Type = 41 // that leader → server, once every record is placed
	TypeBroken           Type = 42 // a node that gave up on its right neighbour → the origin of what it forwarded
	TypeTornDown         Type = 50 // left → right behind the teardown, round to its origin
	TypeCommitted        Type = 51 // left → right behind the flush, round to the store round's leader
)

// messages is the one table of message types, indexed by Type: each row
// gives the type's name (Type.String) and its decoder, which decodes a body
// (a copy of it: the message keeps substrings of it). A Type without a row
// is unknown.
var messages = [...]struct {
	name   string
	decode func(t Type, body string) (Message, error)
}{
	TypeRegister:         {"register", decodeAs[Register]},
	TypeSetupDHT:         {"setup-dht", decodeAs[SetupDHT]},
	TypeDHTComplete:      {"dht-complete", decodeAs[DHTComplete]},
	TypeQueryDHT:         {"query-dht", decodeAs[QueryDHT]},
	TypeLeaveDHT:         {"leave-dht", decodeAs[LeaveDHT]},
	TypeDHTRebuilt:       {"dht-rebuilt", decodeAs[DHTRebuilt]},
	TypeDeregister:       {"deregister", decodeAs[Deregister]},
	TypeTeardownDHT:      {"teardown-dht", decodeAs[TeardownDHT]},
	TypeTeardownComplete: {"teardown-complete", decodeAs[TeardownComplete]},
	TypeReply:            {"reply", decodeAs[Reply]},
	TypeJoinDHT:          {"join-dht", decodeAs[JoinDHT]},
	TypeAlive:            {"alive", decodeAs[Alive]},
	TypePace:             {"pace", decodeAs[Pace]},
	TypeSetID:            {"set-id", decodeAs[SetID]},
	TypeStore:            {"store", decodeAs[Store]},
	TypeFlush:            {"flush", decodeAs[Flush]},
	TypeQuery:            {"query", decodeAs[Query]},
	TypeQueryResult:      {"query-result", decodeAs[QueryResult]},
	TypeTeardown:         {"teardown", decodeAs[Teardown]},
	TypeResetID:          {"reset-id", decodeAs[ResetID]},
	TypeResetLeft:        {"reset-left", decodeAs[ResetLeft]},
	TypeResetRight:       {"reset-right", decodeAs[ResetRight]},
	TypeRebuildDHT:       {"rebuild-dht", decodeAs[RebuildDHT]},
	TypeRebuilt:          {"rebuilt", decodeAs[Rebuilt]},
	TypeAck:              {"ack", decodeAs[Ack]},
	TypeJoin:             {"join", decodeAs[Join]},
	TypeChallenge:        {"challenge", decodeAs[Challenge]},
	TypeTickets:          {"tickets", decodeAs[Tickets]},
	TypeHeal:             {"heal", decodeAs[Heal]},
	TypeHealed:           {"healed", decodeAs[Healed]},
	TypeBroken:           {"broken", decodeAs[Broken]},
	TypeTornDown:         {"torn-down", decodeAs[TornDown]},
	TypeCommitted:        {"committed", decodeAs[Committed]},
}

// String returns the protocol's name of t, such as "setup-dht", or
// "type(N)" for a value that names no type.
func (t Type) String() string {
	if t.known() {
		return messages[t].name
	}
	return "type(" + strconv.Itoa(int(t)) + ")"
}

func (t Type) known() bool { return int(t) < len(messages) && messages[t].name != "" }

// Flags is the header's flag byte.
type Flags uint8

const (
	// FlagRetransmit marks a datagram that repeats an earlier one with the
	// same id. Receivers treat it like the original; it is there for traces
	// and counters.
	FlagRetransmit Flags = 1 << 0
	// FlagNoAck marks a message its sender does not retransmit: the
	// receiver does not acknowledge it, and keeps it out of the duplicate
	// filter of acknowledged messages (a query's copy is dropped by a
	// filter of its own: docs/DESIGN.md, queries). Only a query and its result (the querier retries the whole query
	// instead) and the rebuilt a leader sends once when the server's heal
	// ends its leave or join may carry it; on any other message it is
	// ignored.
	FlagNoAck Flags = 1 << 1
	// FlagAuth marks a datagram that ends with the authentication trailer
	// (auth.go): AppendSigned sets it, Verify checks it.
	FlagAuth Flags = 1 << 2

	knownFlags = FlagRetransmit | FlagNoAck | FlagAuth
)

// Member is one user as the ring knows it.
type Member struct {
	Name string
	Addr netip.AddrPort // always IPv4
}

// Record is the nine fields of one dataset record, in file order.
type Record [NumFields]string

// Message is implemented by every message body type below.
type Message interface {
	Type() Type
}

// body is what each message type implements beside Message, next to its
// declaration: the length and the encoding of its body, and the trace's
// view of it (the main fields, with the package's stable keys where one
// fits: ring for a ring size, addr for an address).
//
// These methods are called through an interface or a generic dictionary,
// where a pointer argument escapes: the encoder and the decoder go in by
// value (by pointer they and the message would each cost an allocation per
// datagram), and appendBody returns the bytes and the failure rather than
// the encoder, which made Append of a small message twice as slow.
type body interface {
	Message
	slog.LogValuer
	// bodyLen is the exact length of the body appendBody writes, limits
	// unchecked.
	bodyLen() int
	// appendBody appends the body to e.b and returns the extended slice,
	// or the first limit the body breaks as an *Error without its Type.
	appendBody(e encoder) ([]byte, *Error)
}

// codec is a body type M that also decodes itself: parse reads the body
// from d into its receiver, a zero M, and returns both.
type codec[M any] interface {
	body
	parse(d decoder) (M, decoder)
}

// decodeAs is the decoder of the body type M in messages. It boxes the
// message only when the whole body is good: an error should cost no more
// than it must.
func decodeAs[M codec[M]](t Type, body string) (Message, error) {
	var m M
	m, d := m.parse(decoder{s: body})
	if err := d.finish(t); err != nil {
		return nil, err
	}
	return m, nil
}

// Register: name, addr, u64 epoch, 16-byte cookie. A peer that resumes a
// registration from its file sends the epoch of the ring its file holds a
// place in (0 for none): the server's rejoin decision reads it. The cookie
// is zero until the server has sent a Challenge; it also keeps a register
// larger than the challenge its first copy gets.
type Register struct {
	Name   string
	Addr   netip.AddrPort
	Epoch  uint64
	Cookie Tag
}

func (Register) Type() Type     { return TypeRegister }
func (m Register) bodyLen() int { return nameLen(m.Name) + addrLen + 8 + TagLen }

func (m Register) appendBody(e encoder) ([]byte, *Error) {
	e.name(m.Name, "name")
	e.addr(m.Addr, "addr")
	e.u64(m.Epoch)
	e.b = append(e.b, m.Cookie[:]...)
	return e.b, e.err
}

func (m Register) parse(d decoder) (Register, decoder) {
	m.Name = d.name("name")
	m.Addr = d.addr("addr")
	m.Epoch = d.u64("epoch")
	m.Cookie = d.tag("cookie")
	return m, d
}

func (m Register) LogValue() slog.Value {
	attrs := []slog.Attr{slog.String("name", m.Name), slog.String("addr", m.Addr.String())}
	if m.Epoch != 0 {
		attrs = append(attrs, slog.Uint64("epoch", m.Epoch))
	}
	if m.Cookie != (Tag{}) {
		attrs = append(attrs, slog.Bool("cookie", true))
	}
	return slog.GroupValue(attrs...)
}

// SetupDHT: u16 n, name.
type SetupDHT struct {
	N    uint16
	Name string
}

func (SetupDHT) Type() Type     { return TypeSetupDHT }
func (m SetupDHT) bodyLen() int { return 2 + nameLen(m.Name) }

func (m SetupDHT) appendBody(e encoder) ([]byte, *Error) {
	e.u16(m.N)
	e.name(m.Name, "name")
	return e.b, e.err
}

func (m SetupDHT) parse(d decoder) (SetupDHT, decoder) {
	m.N = d.u16("n")
	m.Name = d.name("name")
	return m, d
}

func (m SetupDHT) LogValue() slog.Value {
	return slog.GroupValue(slog.String("name", m.Name), slog.Int("ring", int(m.N)))
}

// DHTComplete: name.
type DHTComplete struct{ Name string }

func (DHTComplete) Type() Type     { return TypeDHTComplete }
func (m DHTComplete) bodyLen() int { return nameLen(m.Name) }

func (m DHTComplete) appendBody(e encoder) ([]byte, *Error) {
	e.name(m.Name, "name")
	return e.b, e.err
}

func (m DHTComplete) parse(d decoder) (DHTComplete, decoder) {
	m.Name = d.name("name")
	return m, d
}

func (m DHTComplete) LogValue() slog.Value { return nameValue(m.Name) }

// QueryDHT: name.
type QueryDHT struct{ Name string }

func (QueryDHT) Type() Type     { return TypeQueryDHT }
func (m QueryDHT) bodyLen() int { return nameLen(m.Name) }

func (m QueryDHT) appendBody(e encoder) ([]byte, *Error) {
	e.name(m.Name, "name")
	return e.b, e.err
}

func (m QueryDHT) parse(d decoder) (QueryDHT, decoder) {
	m.Name = d.name("name")
	return m, d
}

func (m QueryDHT) LogValue() slog.Value { return nameValue(m.Name) }

// LeaveDHT: name.
type LeaveDHT struct{ Name string }

func (LeaveDHT) Type() Type     { return TypeLeaveDHT }
func (m LeaveDHT) bodyLen() int { return nameLen(m.Name) }

func (m LeaveDHT) appendBody(e encoder) ([]byte, *Error) {
	e.name(m.Name, "name")
	return e.b, e.err
}

func (m LeaveDHT) parse(d decoder) (LeaveDHT, decoder) {
	m.Name = d.name("name")
	return m, d
}

func (m LeaveDHT) LogValue() slog.Value { return nameValue(m.Name) }

// Deregister: name.
type Deregister struct{ Name string }

func (Deregister) Type() Type     { return TypeDeregister }
func (m Deregister) bodyLen() int { return nameLen(m.Name) }

func (m Deregister) appendBody(e encoder) ([]byte, *Error) {
	e.name(m.Name, "name")
	return e.b, e.err
}

func (m Deregister) parse(d decoder) (Deregister, decoder) {
	m.Name = d.name("name")
	return m, d
}

func (m Deregister) LogValue() slog.Value { return nameValue(m.Name) }

// TeardownDHT: name.
type TeardownDHT struct{ Name string }

func (TeardownDHT) Type() Type     { return TypeTeardownDHT }
func (m TeardownDHT) bodyLen() int { return nameLen(m.Name) }

func (m TeardownDHT) appendBody(e encoder) ([]byte, *Error) {
	e.name(m.Name, "name")
	return e.b, e.err
}

func (m TeardownDHT) parse(d decoder) (TeardownDHT, decoder) {
	m.Name = d.name("name")
	return m, d
}

func (m TeardownDHT) LogValue() slog.Value { return nameValue(m.Name) }

// TeardownComplete: name.
type TeardownComplete struct{ Name string }

func (TeardownComplete) Type() Type     { return TypeTeardownComplete }
func (m TeardownComplete) bodyLen() int { return nameLen(m.Name) }

func (m TeardownComplete) appendBody(e encoder) ([]byte, *Error) {
	e.name(m.Name, "name")
	return e.b, e.err
}

func (m TeardownComplete) parse(d decoder) (TeardownComplete, decoder) {
	m.Name = d.name("name")
	return m, d
}

func (m TeardownComplete) LogValue() slog.Value { return nameValue(m.Name) }

// JoinDHT: name.
type JoinDHT struct{ Name string }

func (JoinDHT) Type() Type     { return TypeJoinDHT }
func (m JoinDHT) bodyLen() int { return nameLen(m.Name) }

func (m JoinDHT) appendBody(e encoder) ([]byte, *Error) {
	e.name(m.Name, "name")
	return e.b, e.err
}

func (m JoinDHT) parse(d decoder) (JoinDHT, decoder) {
	m.Name = d.name("name")
	return m, d
}

func (m JoinDHT) LogValue() slog.Value { return nameValue(m.Name) }

// Alive is a registered user's sign of life: name, u32 the period in
// milliseconds its sender now sends one at (0: not told yet), u64 the
// epoch of the ring its sender holds a place in (0: none), then the
// operation its sender started and gave up, which the server then ends at
// once: u8 the type of the request that started it (setup-dht, leave-dht,
// join-dht, teardown-dht; 0: none) and u64 its epoch; and u64 the epoch
// of the ring key its sender last took (kept after it leaves the ring; 0:
// none), so that a server whose file is older than its peers' rings
// learns it (it dissolves the DHT it recorded and counts epochs on from
// there: a set-id of an epoch not above a peer's key epoch is refused as
// an earlier ring's). The server does not
// answer it, but with a Pace when the period is not the one it wants
// or the place is in a ring it no longer counts the user in; an Alive is
// always longer than a Pace, so the answer never amplifies a forged one.
type Alive struct {
	Name     string
	PeriodMS uint32
	Epoch    uint64
	// QuitOp and Quit: the operation given up (its request's type, or
	// TypeHeal for a heal the sender led) and its epoch. The pair names
	// one operation: a setup, a leave, a join and a heal each take a new
	// epoch, and a teardown is the only other operation at its ring's
	// epoch.
	QuitOp Type
	Quit   uint64
	// KeyEpoch: the larger of the epoch of the ring key the sender last
	// took and of the last ring it held, both kept after it leaves the
	// ring: a server on an older file takes its epochs past it.
	KeyEpoch uint64
}

func (Alive) Type() Type     { return TypeAlive }
func (m Alive) bodyLen() int { return nameLen(m.Name) + 4 + 8 + 1 + 8 + 8 }

func (m Alive) appendBody(e encoder) ([]byte, *Error) {
	e.name(m.Name, "name")
	e.u32(m.PeriodMS)
	e.u64(m.Epoch)
	e.b = append(e.b, uint8(m.QuitOp))
	e.u64(m.Quit)
	e.u64(m.KeyEpoch)
	return e.b, e.err
}

func (m Alive) parse(d decoder) (Alive, decoder) {
	m.Name = d.name("name")
	m.PeriodMS = d.u32("period")
	m.Epoch = d.u64("epoch")
	m.QuitOp = Type(d.u8("quit type"))
	m.Quit = d.u64("quit epoch")
	m.KeyEpoch = d.u64("key epoch")
	return m, d
}

func (m Alive) LogValue() slog.Value {
	attrs := []slog.Attr{slog.String("name", m.Name), slog.Uint64("period_ms", uint64(m.PeriodMS)), slog.Uint64("epoch", m.Epoch), slog.Uint64("key_epoch", m.KeyEpoch)}
	if m.QuitOp != 0 || m.Quit != 0 {
		attrs = append(attrs, slog.String("quit", m.QuitOp.String()), slog.Uint64("quit_epoch", m.Quit))
	}
	return slog.GroupValue(attrs...)
}

// Pace tells a registered user how often to send Alive: u32 period in
// milliseconds; and u64 gone: the epoch its Alive named, when the server
// counts the user in no ring of that epoch any more (it is Free, and that
// ring was healed without it, left, or dissolved), 0 otherwise.
type Pace struct {
	PeriodMS uint32
	Gone     uint64
}

func (Pace) Type() Type     { return TypePace }
func (m Pace) bodyLen() int { return 4 + 8 }

func (m Pace) appendBody(e encoder) ([]byte, *Error) {
	e.u32(m.PeriodMS)
	e.u64(m.Gone)
	return e.b, e.err
}

func (m Pace) parse(d decoder) (Pace, decoder) {
	m.PeriodMS = d.u32("period")
	m.Gone = d.u64("gone")
	return m, d
}

func (m Pace) LogValue() slog.Value {
	if m.Gone == 0 {
		return slog.GroupValue(slog.Uint64("period_ms", uint64(m.PeriodMS)))
	}
	return slog.GroupValue(slog.Uint64("period_ms", uint64(m.PeriodMS)), slog.Uint64("gone", m.Gone))
}

func nameValue(name string) slog.Value { return slog.GroupValue(slog.String("name", name)) }

// DHTRebuilt: name, new leader's name, the new leader's 16-byte proof.
type DHTRebuilt struct {
	Name      string
	NewLeader string
	// Proof is the new leader's word that the rebuild is done (Rebuilt's,
	// passed on); zero when the user typed the command.
	Proof Tag
}

func (DHTRebuilt) Type() Type     { return TypeDHTRebuilt }
func (m DHTRebuilt) bodyLen() int { return nameLen(m.Name) + nameLen(m.NewLeader) + TagLen }

func (m DHTRebuilt) appendBody(e encoder) ([]byte, *Error) {
	e.name(m.Name, "name")
	e.name(m.NewLeader, "new_leader")
	e.b = append(e.b, m.Proof[:]...)
	return e.b, e.err
}

func (m DHTRebuilt) parse(d decoder) (DHTRebuilt, decoder) {
	m.Name = d.name("name")
	m.NewLeader = d.name("new_leader")
	m.Proof = d.tag("proof")
	return m, d
}

func (m DHTRebuilt) LogValue() slog.Value {
	return slog.GroupValue(slog.String("name", m.Name), slog.String("new_leader", m.NewLeader))
}

// Reply answers a request to the server: bool ok, string reason (at most
// MaxReason bytes, empty when ok), list of members, then a tail: u8 state,
// u64 epoch, u64 key epoch, u8 key length (0 or 16) and the key, u8
// ticket count and 16 bytes each; the tail is left out when all of it is
// zero (most replies, every FAILURE but one to a request whose sequence
// number is behind, whose epoch is the last one taken). The header id
// echoes the request's id.
//
// State and Epoch answer a rejoin (a register of a registered user from
// its own address): the user's state (0 Free, 1 Leader, 2 InDHT) and, for
// a ring member, the DHT's epoch; a setup-dht's, leave-dht's and
// join-dht's reply give the epoch of the ring they make, a teardown-dht's
// that of the ring it tears down. KeyEpoch, Key and
// Tickets carry the credentials (docs/DESIGN.md §9): a register's reply
// the user's secret in Key; a setup-dht's (or tickets') the key epoch and
// the tickets of the members listed, from the first (Tickets may list
// fewer than Members: the leader asks for the rest); a join-dht's the
// joiner's ticket in Key; a query-dht's the query token in Key.
type Reply struct {
	OK       bool
	Reason   string
	Members  []Member
	State    uint8
	Epoch    uint64
	KeyEpoch uint64
	Key      Key
	Tickets  []Tag
}

// MaxTickets bounds a reply's ticket list.
const MaxTickets = MaxMembers

func (Reply) Type() Type { return TypeReply }

// tail reports whether the reply carries its tail.
func (m Reply) tail() bool {
	return m.State != 0 || m.Epoch != 0 || m.KeyEpoch != 0 || !m.Key.IsZero() || len(m.Tickets) > 0
}

func (m Reply) bodyLen() int {
	n := 1 + strLen(m.Reason) + 2
	if m.tail() {
		n += 1 + 8 + 8 + 1 + 1 + TagLen*len(m.Tickets)
		if !m.Key.IsZero() {
			n += KeyLen
		}
	}
	for i := range m.Members {
		n += memberLen(m.Members[i])
	}
	return n
}

func (m Reply) appendBody(e encoder) ([]byte, *Error) {
	e.bool(m.OK)
	e.str(m.Reason, MaxReason, "reason")
	if len(m.Members) > MaxMembers {
		e.fail("members", ErrTooLong)
		return e.b, e.err
	}
	e.u16(uint16(len(m.Members)))
	for i := range m.Members {
		if e.member(m.Members[i], "") {
			e.err.Field = "members[" + strconv.Itoa(i) + "]." + e.err.Field
			return e.b, e.err
		}
	}
	if !m.tail() {
		return e.b, e.err
	}
	e.b = append(e.b, m.State)
	e.u64(m.Epoch)
	e.u64(m.KeyEpoch)
	if m.Key.IsZero() {
		e.b = append(e.b, 0)
	} else {
		e.b = append(e.b, KeyLen)
		e.b = append(e.b, m.Key[:]...)
	}
	e.tags(m.Tickets, "tickets")
	return e.b, e.err
}

func (m Reply) parse(d decoder) (Reply, decoder) {
	m.OK = d.bool("ok")
	m.Reason = d.str(MaxReason, "reason")
	if n := d.count(MaxMembers, minMemberLen, "members"); n > 0 {
		m.Members = make([]Member, n)
		for i := range m.Members {
			if m.Members[i] = d.member(""); d.err != nil { // count() left d.err nil
				d.err.Field = "members[" + strconv.Itoa(i) + "]." + d.err.Field
				return m, d
			}
		}
	}
	if d.err != nil || d.off == len(d.s) {
		return m, d // no tail
	}
	m.State = d.u8("state")
	m.Epoch = d.u64("epoch")
	m.KeyEpoch = d.u64("key_epoch")
	switch d.u8("key") {
	case 0:
	case KeyLen:
		m.Key = Key(d.tag("key"))
		if d.err == nil && m.Key.IsZero() {
			d.fail("key", ErrInvalid) // a zero key is written as none
		}
	default:
		d.fail("key", ErrInvalid)
	}
	m.Tickets = d.tags("tickets")
	if d.err == nil && !m.tail() {
		d.fail("tail", ErrInvalid) // all zero is written as none
	}
	return m, d
}

func (m Reply) LogValue() slog.Value {
	attrs := make([]slog.Attr, 0, 3)
	attrs = append(attrs, slog.Bool("ok", m.OK))
	if m.Reason != "" {
		attrs = append(attrs, slog.String("reason", m.Reason))
	}
	if len(m.Members) > 0 {
		var sb strings.Builder
		for i := range m.Members {
			if i > 0 {
				sb.WriteByte(',')
			}
			sb.WriteString(m.Members[i].Name)
		}
		attrs = append(attrs, slog.String("members", sb.String()))
	}
	if m.Epoch != 0 {
		attrs = append(attrs, slog.Int("state", int(m.State)), slog.Uint64("epoch", m.Epoch))
	}
	if !m.Key.IsZero() {
		attrs = append(attrs, slog.Bool("key", true)) // never the key itself
	}
	if len(m.Tickets) > 0 {
		attrs = append(attrs, slog.Int("tickets", len(m.Tickets)))
	}
	return slog.GroupValue(attrs...)
}

// SetID: u16 id, u16 ring size, left member, right member, u64 the ring's
// epoch (the server's, 0 if unknown), the receiver's 16-byte ticket for
// the ring (the server's vouching, docs/DESIGN.md §9; zero for a joiner,
// which has its own from the server).
type SetID struct {
	ID     uint16
	N      uint16
	Left   Member
	Right  Member
	Epoch  uint64
	Ticket Tag
}

func (SetID) Type() Type { return TypeSetID }
func (m SetID) bodyLen() int {
	return 2 + 2 + memberLen(m.Left) + memberLen(m.Right) + 8 + TagLen
}

func (m SetID) appendBody(e encoder) ([]byte, *Error) {
	e.u16(m.ID)
	e.u16(m.N)
	e.member(m.Left, "left")
	e.member(m.Right, "right")
	e.u64(m.Epoch)
	e.b = append(e.b, m.Ticket[:]...)
	return e.b, e.err
}

func (m SetID) parse(d decoder) (SetID, decoder) {
	m.ID = d.u16("id")
	m.N = d.u16("n")
	m.Left = d.member("left")
	m.Right = d.member("right")
	m.Epoch = d.u64("epoch")
	m.Ticket = d.tag("ticket")
	return m, d
}

func (m SetID) LogValue() slog.Value {
	return slog.GroupValue(slog.Int("node_id", int(m.ID)), slog.Int("ring", int(m.N)),
		slog.String("left", m.Left.String()), slog.String("right", m.Right.String()))
}

// Store: u16 ring size, list of records. A store datagram carries as many
// records as fit in MaxDatagram.
type Store struct {
	N       uint16
	Records []Record
}

func (Store) Type() Type { return TypeStore }

func (m Store) bodyLen() int {
	n := StoreOverhead - HeaderLen
	for i := range m.Records {
		n += RecordLen(m.Records[i])
	}
	return n
}

func (m Store) appendBody(e encoder) ([]byte, *Error) {
	e.u16(m.N)
	if len(m.Records) > maxCount {
		e.fail("records", ErrTooLong)
		return e.b, e.err
	}
	e.u16(uint16(len(m.Records)))
	for i := range m.Records {
		if e.record(&m.Records[i]) {
			e.err.Field = "records[" + strconv.Itoa(i) + "]." + e.err.Field
			break
		}
		if e.datagramLen() > MaxMessage {
			e.fail("records", ErrTooLong) // stop early: the caller sent far too many
			break
		}
	}
	return e.b, e.err
}

// parse gives a Store with no records nil Records.
func (m Store) parse(d decoder) (Store, decoder) {
	m.N = d.u16("n")
	n := d.count(maxCount, minRecordLen, "records")
	if n == 0 {
		return m, d
	}
	m.Records = make([]Record, n)
	for i := range m.Records {
		if d.record(&m.Records[i]) {
			d.err.Field = "records[" + strconv.Itoa(i) + "]." + d.err.Field
			break
		}
	}
	return m, d
}

// LogValue shows the ring size, the number of records and the Long Name of
// the first record.
func (m Store) LogValue() slog.Value {
	if len(m.Records) == 0 {
		return slog.GroupValue(slog.Int("ring", int(m.N)), slog.Int("records", 0))
	}
	return slog.GroupValue(slog.Int("ring", int(m.N)), slog.Int("records", len(m.Records)),
		slog.String("first", m.Records[0][3]))
}

// Flush follows the stores of one populate round the ring: name of the
// leader that started it, u16 ring size, the leader's addr (0.0.0.0:0 if
// not given), where a node that gives up on its right neighbour says so
// (Broken), u32 the round: a number the leader draws for each round,
// which the committeds coming back carry, so that neither a late flush nor
// a late committed of an earlier round of the same leader (a setup a heal
// replaced, say) is taken for this round's; u64 the ring's epoch (0 if
// unknown), so that a node of a later ring drops a round of an earlier one
// (another leader's, which its number does not tell); and after, the ids of the
// messages its sender had sent to the receiver before it and not yet seen
// acknowledged when it sent it (at most MaxAfter): the receiver acts on the
// flush only once it has received every one of them, so the flush travels
// right behind the stores, in the same write, instead of waiting for their
// acks. A node commits its table once it has forwarded it.
type Flush struct {
	Leader     string
	N          uint16
	LeaderAddr netip.AddrPort
	Round      uint32
	Epoch      uint64
	After      []uint32
}

func (Flush) Type() Type     { return TypeFlush }
func (m Flush) bodyLen() int { return nameLen(m.Leader) + 2 + addrLen + 4 + 8 + 2 + 4*len(m.After) }

func (m Flush) appendBody(e encoder) ([]byte, *Error) {
	e.name(m.Leader, "leader")
	e.u16(m.N)
	e.optAddr(m.LeaderAddr, "leader_addr")
	e.u32(m.Round)
	e.u64(m.Epoch)
	e.ids(m.After, MaxAfter, "after")
	return e.b, e.err
}

func (m Flush) parse(d decoder) (Flush, decoder) {
	m.Leader = d.name("leader")
	m.N = d.u16("n")
	m.LeaderAddr = d.optAddr("leader_addr")
	m.Round = d.u32("round")
	m.Epoch = d.u64("epoch")
	m.After = d.ids(MaxAfter, "after")
	return m, d
}

func (m Flush) LogValue() slog.Value {
	attrs := []slog.Attr{slog.String("leader", m.Leader), slog.Int("ring", int(m.N)), slog.Uint64("round", uint64(m.Round))}
	if len(m.After) > 0 {
		attrs = append(attrs, slog.Int("after", len(m.After)))
	}
	return slog.GroupValue(attrs...)
}

// Query: u32 request id (chosen by the querier), querier member, u16 hops
// so far, string long name.
type Query struct {
	ReqID    uint32
	Querier  Member
	Hops     uint16
	LongName string
}

func (Query) Type() Type     { return TypeQuery }
func (m Query) bodyLen() int { return 4 + memberLen(m.Querier) + 2 + strLen(m.LongName) }

func (m Query) appendBody(e encoder) ([]byte, *Error) {
	e.u32(m.ReqID)
	e.member(m.Querier, "querier")
	e.u16(m.Hops)
	e.str(m.LongName, MaxField, "long_name")
	return e.b, e.err
}

func (m Query) parse(d decoder) (Query, decoder) {
	m.ReqID = d.u32("req_id")
	m.Querier = d.member("querier")
	m.Hops = d.u16("hops")
	m.LongName = d.str(MaxField, "long_name")
	return m, d
}

func (m Query) LogValue() slog.Value {
	return slog.GroupValue(slog.Uint64("req_id", uint64(m.ReqID)), slog.String("querier", m.Querier.String()),
		slog.Int("hops", int(m.Hops)), slog.String("long_name", m.LongName))
}

// QueryResult: u32 request id, bool found, answering node's name, u16 its
// id, u16 hops, string long name, then a record only when found.
type QueryResult struct {
	ReqID    uint32
	Found    bool
	Node     string
	NodeID   uint16
	Hops     uint16
	LongName string
	Record   Record
}

func (QueryResult) Type() Type { return TypeQueryResult }

func (m QueryResult) bodyLen() int {
	n := 4 + 1 + nameLen(m.Node) + 2 + 2 + strLen(m.LongName)
	if m.Found {
		n += RecordLen(m.Record)
	}
	return n
}

func (m QueryResult) appendBody(e encoder) ([]byte, *Error) {
	e.u32(m.ReqID)
	e.bool(m.Found)
	e.name(m.Node, "node")
	e.u16(m.NodeID)
	e.u16(m.Hops)
	e.str(m.LongName, MaxField, "long_name")
	switch {
	case m.Found:
		if e.record(&m.Record) {
			e.err.Field = "record." + e.err.Field
		}
	case m.Record != Record{}:
		e.fail("record", ErrInvalid) // it would be dropped silently
	}
	return e.b, e.err
}

func (m QueryResult) parse(d decoder) (QueryResult, decoder) {
	m.ReqID = d.u32("req_id")
	m.Found = d.bool("found")
	m.Node = d.name("node")
	m.NodeID = d.u16("node_id")
	m.Hops = d.u16("hops")
	m.LongName = d.str(MaxField, "long_name")
	if m.Found && d.record(&m.Record) {
		d.err.Field = "record." + d.err.Field
	}
	return m, d
}

func (m QueryResult) LogValue() slog.Value {
	return slog.GroupValue(slog.Uint64("req_id", uint64(m.ReqID)), slog.Bool("found", m.Found),
		slog.String("node", m.Node), slog.Int("node_id", int(m.NodeID)), slog.Int("hops", int(m.Hops)),
		slog.String("long_name", m.LongName))
}

// Teardown: name of the node that started it, bool keep neighbours (true
// when the teardown is part of a leave or a join), the origin's addr
// (0.0.0.0:0 if not given), for Broken, and u64 the epoch of the ring it
// tears down (the origin's; 0 if unknown): a node of a later ring drops
// it.
type Teardown struct {
	Origin         string
	KeepNeighbours bool
	OriginAddr     netip.AddrPort
	Epoch          uint64
}

func (Teardown) Type() Type     { return TypeTeardown }
func (m Teardown) bodyLen() int { return nameLen(m.Origin) + 1 + addrLen + 8 }

func (m Teardown) appendBody(e encoder) ([]byte, *Error) {
	e.name(m.Origin, "origin")
	e.bool(m.KeepNeighbours)
	e.optAddr(m.OriginAddr, "origin_addr")
	e.u64(m.Epoch)
	return e.b, e.err
}

func (m Teardown) parse(d decoder) (Teardown, decoder) {
	m.Origin = d.name("origin")
	m.KeepNeighbours = d.bool("keep_neighbours")
	m.OriginAddr = d.optAddr("origin_addr")
	m.Epoch = d.u64("epoch")
	return m, d
}

func (m Teardown) LogValue() slog.Value {
	return slog.GroupValue(slog.String("origin", m.Origin), slog.Bool("keep_neighbours", m.KeepNeighbours), slog.Uint64("epoch", m.Epoch))
}

// TornDown: name of the teardown's origin. It follows the teardown round
// the ring: a node passes it on to its right neighbour once it has come
// from its left and its own emptied table is committed, so the one that
// reaches the origin says every table is on disk.
type TornDown struct{ Origin string }

func (TornDown) Type() Type     { return TypeTornDown }
func (m TornDown) bodyLen() int { return nameLen(m.Origin) }

func (m TornDown) appendBody(e encoder) ([]byte, *Error) {
	e.name(m.Origin, "origin")
	return e.b, e.err
}

func (m TornDown) parse(d decoder) (TornDown, decoder) {
	m.Origin = d.name("origin")
	return m, d
}

func (m TornDown) LogValue() slog.Value { return slog.GroupValue(slog.String("origin", m.Origin)) }

// Committed: name of the store round's leader, u32 the round and u64 the
// ring's epoch (the flush's). It follows the flush round the ring: a node
// passes it on to its right neighbour once it has come from its left and
// the records the round brought it are committed, so the one that reaches
// the leader says every table of the round is on disk.
type Committed struct {
	Leader string
	Round  uint32
	Epoch  uint64
}

func (Committed) Type() Type     { return TypeCommitted }
func (m Committed) bodyLen() int { return nameLen(m.Leader) + 4 + 8 }

func (m Committed) appendBody(e encoder) ([]byte, *Error) {
	e.name(m.Leader, "leader")
	e.u32(m.Round)
	e.u64(m.Epoch)
	return e.b, e.err
}

func (m Committed) parse(d decoder) (Committed, decoder) {
	m.Leader = d.name("leader")
	m.Round = d.u32("round")
	m.Epoch = d.u64("epoch")
	return m, d
}

func (m Committed) LogValue() slog.Value {
	return slog.GroupValue(slog.String("leader", m.Leader), slog.Uint64("round", uint64(m.Round)))
}

// ResetID: name of the node that started it (the leaver, or the leader of
// a join), u16 id for the receiver, u16 new ring size, the origin's addr
// (0.0.0.0:0 if not given), for Broken.
//
// It ends with u64 the epoch of the renumbered ring (the server's, 0 if
// unknown).
type ResetID struct {
	Origin     string
	ID         uint16
	N          uint16
	OriginAddr netip.AddrPort
	Epoch      uint64
}

func (ResetID) Type() Type     { return TypeResetID }
func (m ResetID) bodyLen() int { return nameLen(m.Origin) + 2 + 2 + addrLen + 8 }

func (m ResetID) appendBody(e encoder) ([]byte, *Error) {
	e.name(m.Origin, "origin")
	e.u16(m.ID)
	e.u16(m.N)
	e.optAddr(m.OriginAddr, "origin_addr")
	e.u64(m.Epoch)
	return e.b, e.err
}

func (m ResetID) parse(d decoder) (ResetID, decoder) {
	m.Origin = d.name("origin")
	m.ID = d.u16("id")
	m.N = d.u16("n")
	m.OriginAddr = d.optAddr("origin_addr")
	m.Epoch = d.u64("epoch")
	return m, d
}

func (m ResetID) LogValue() slog.Value {
	return slog.GroupValue(slog.String("origin", m.Origin), slog.Int("node_id", int(m.ID)), slog.Int("ring", int(m.N)))
}

// ResetLeft: the receiver's new left neighbour (member), then u64 the
// epoch of the ring it belongs to (the server's, 0 if unknown): a node of a
// later ring drops it.
type ResetLeft struct {
	Left  Member
	Epoch uint64
}

func (ResetLeft) Type() Type     { return TypeResetLeft }
func (m ResetLeft) bodyLen() int { return memberLen(m.Left) + 8 }

func (m ResetLeft) appendBody(e encoder) ([]byte, *Error) {
	e.member(m.Left, "left")
	e.u64(m.Epoch)
	return e.b, e.err
}

func (m ResetLeft) parse(d decoder) (ResetLeft, decoder) {
	m.Left = d.member("left")
	m.Epoch = d.u64("epoch")
	return m, d
}

func (m ResetLeft) LogValue() slog.Value { return memberValue("left", m.Left) }

// ResetRight: the receiver's new right neighbour (member), then u64 the
// epoch of the ring it belongs to, as in ResetLeft.
type ResetRight struct {
	Right Member
	Epoch uint64
}

func (ResetRight) Type() Type     { return TypeResetRight }
func (m ResetRight) bodyLen() int { return memberLen(m.Right) + 8 }

func (m ResetRight) appendBody(e encoder) ([]byte, *Error) {
	e.member(m.Right, "right")
	e.u64(m.Epoch)
	return e.b, e.err
}

func (m ResetRight) parse(d decoder) (ResetRight, decoder) {
	m.Right = d.member("right")
	m.Epoch = d.u64("epoch")
	return m, d
}

func (m ResetRight) LogValue() slog.Value { return memberValue("right", m.Right) }

// RebuildDHT: the leaver (member), to whom the new leader reports.
type RebuildDHT struct{ Leaver Member }

func (RebuildDHT) Type() Type     { return TypeRebuildDHT }
func (m RebuildDHT) bodyLen() int { return memberLen(m.Leaver) }

func (m RebuildDHT) appendBody(e encoder) ([]byte, *Error) {
	e.member(m.Leaver, "leaver")
	return e.b, e.err
}

func (m RebuildDHT) parse(d decoder) (RebuildDHT, decoder) {
	m.Leaver = d.member("leaver")
	return m, d
}

func (m RebuildDHT) LogValue() slog.Value { return memberValue("leaver", m.Leaver) }

func memberValue(key string, m Member) slog.Value {
	return slog.GroupValue(slog.String(key, m.String()))
}

// Rebuilt: bool ok, string reason, name of the new leader, 16-byte proof,
// u64 epoch.
type Rebuilt struct {
	OK        bool
	Reason    string
	NewLeader string
	// Proof, when OK: a MAC with the new leader's secret, which the
	// server checks in the dht-rebuilt that passes it on; zero otherwise.
	Proof Tag
	// Epoch is that of the leave or join it ends, as its user knows it
	// from the server's answer: a rebuilt of an earlier one is no answer.
	Epoch uint64
}

func (Rebuilt) Type() Type     { return TypeRebuilt }
func (m Rebuilt) bodyLen() int { return 1 + strLen(m.Reason) + nameLen(m.NewLeader) + TagLen + 8 }

func (m Rebuilt) appendBody(e encoder) ([]byte, *Error) {
	e.bool(m.OK)
	e.str(m.Reason, MaxReason, "reason")
	e.name(m.NewLeader, "new_leader")
	e.b = append(e.b, m.Proof[:]...)
	e.u64(m.Epoch)
	return e.b, e.err
}

func (m Rebuilt) parse(d decoder) (Rebuilt, decoder) {
	m.OK = d.bool("ok")
	m.Reason = d.str(MaxReason, "reason")
	m.NewLeader = d.name("new_leader")
	m.Proof = d.tag("proof")
	m.Epoch = d.u64("epoch")
	return m, d
}

func (m Rebuilt) LogValue() slog.Value {
	if m.Reason == "" {
		return slog.GroupValue(slog.Bool("ok", m.OK), slog.String("new_leader", m.NewLeader), slog.Uint64("epoch", m.Epoch))
	}
	return slog.GroupValue(slog.Bool("ok", m.OK), slog.String("reason", m.Reason), slog.String("new_leader", m.NewLeader), slog.Uint64("epoch", m.Epoch))
}

// Join asks the leader of a ring of N to take the joiner in as node N:
// joiner member, u16 ring size before the join, u64 the epoch of the
// larger ring (from the server's answer to join-dht).
type Join struct {
	Joiner Member
	N      uint16
	Epoch  uint64
}

func (Join) Type() Type     { return TypeJoin }
func (m Join) bodyLen() int { return memberLen(m.Joiner) + 2 + 8 }

func (m Join) appendBody(e encoder) ([]byte, *Error) {
	e.member(m.Joiner, "joiner")
	e.u16(m.N)
	e.u64(m.Epoch)
	return e.b, e.err
}

func (m Join) parse(d decoder) (Join, decoder) {
	m.Joiner = d.member("joiner")
	m.N = d.u16("n")
	m.Epoch = d.u64("epoch")
	return m, d
}

func (m Join) LogValue() slog.Value {
	return slog.GroupValue(slog.String("joiner", m.Joiner.String()), slog.Int("ring", int(m.N)))
}

// Ack: list of u32 further ids acknowledged (at most MaxAcks); the header
// id is the first id acknowledged. A receiver acknowledges everything one
// sender's datagrams, read together, asked it to in one Ack.
type Ack struct{ More []uint32 }

func (Ack) Type() Type     { return TypeAck }
func (m Ack) bodyLen() int { return 2 + 4*len(m.More) }

func (m Ack) appendBody(e encoder) ([]byte, *Error) {
	e.ids(m.More, MaxAcks, "more")
	return e.b, e.err
}

func (m Ack) parse(d decoder) (Ack, decoder) {
	m.More = d.ids(MaxAcks, "more")
	return m, d
}

// LogValue is empty unless there are further ids: the header's id says
// what is acknowledged.
func (m Ack) LogValue() slog.Value {
	if len(m.More) == 0 {
		return slog.GroupValue()
	}
	return slog.GroupValue(slog.Any("more", m.More))
}

// Challenge: the 16-byte cookie a register must carry to be acted on. It
// goes to the register's source address: only a process that receives
// there can send the cookie back (return routability, docs/DESIGN.md).
type Challenge struct{ Cookie Tag }

func (Challenge) Type() Type     { return TypeChallenge }
func (m Challenge) bodyLen() int { return TagLen }

func (m Challenge) appendBody(e encoder) ([]byte, *Error) {
	e.b = append(e.b, m.Cookie[:]...)
	return e.b, e.err
}

func (m Challenge) parse(d decoder) (Challenge, decoder) {
	m.Cookie = d.tag("cookie")
	return m, d
}

func (m Challenge) LogValue() slog.Value { return slog.GroupValue() }

// Tickets: name, u16 from. The leader of a ring too large for one reply's
// tickets asks for those of the members from index From on.
type Tickets struct {
	Name string
	From uint16
}

func (Tickets) Type() Type     { return TypeTickets }
func (m Tickets) bodyLen() int { return nameLen(m.Name) + 2 }

func (m Tickets) appendBody(e encoder) ([]byte, *Error) {
	e.name(m.Name, "name")
	e.u16(m.From)
	return e.b, e.err
}

func (m Tickets) parse(d decoder) (Tickets, decoder) {
	m.Name = d.name("name")
	m.From = d.u16("from")
	return m, d
}

func (m Tickets) LogValue() slog.Value {
	return slog.GroupValue(slog.String("name", m.Name), slog.Int("from", int(m.From)))
}

// Heal tells the first live member of a ring that lost members that it
// leads the healed ring: u64 epoch (the DHT's, after the heal), list of
// members, itself first, in ring order, u64 the ring key's epoch, u8
// ticket count and the members' tickets for the ring key, from the first,
// as many as fit (docs/DESIGN.md §9: a member whose setup was cut short
// may not hold the key yet). The server sends it again on its
// own timer until the leader acknowledges it (Ack) or the heal ends; the
// leader re-runs the setup's set-id and store round over them.
type Heal struct {
	Epoch    uint64
	Members  []Member
	KeyEpoch uint64
	Tickets  []Tag
}

func (Heal) Type() Type { return TypeHeal }

func (m Heal) bodyLen() int {
	n := 8 + 2 + 8 + 1 + TagLen*len(m.Tickets)
	for i := range m.Members {
		n += memberLen(m.Members[i])
	}
	return n
}

func (m Heal) appendBody(e encoder) ([]byte, *Error) {
	e.u64(m.Epoch)
	if len(m.Members) > MaxMembers {
		e.fail("members", ErrTooLong)
		return e.b, e.err
	}
	e.u16(uint16(len(m.Members)))
	for i := range m.Members {
		if e.member(m.Members[i], "") {
			e.err.Field = "members[" + strconv.Itoa(i) + "]." + e.err.Field
			return e.b, e.err
		}
	}
	e.u64(m.KeyEpoch)
	e.tags(m.Tickets, "tickets")
	return e.b, e.err
}

func (m Heal) parse(d decoder) (Heal, decoder) {
	m.Epoch = d.u64("epoch")
	if n := d.count(MaxMembers, minMemberLen, "members"); n > 0 {
		m.Members = make([]Member, n)
		for i := range m.Members {
			if m.Members[i] = d.member(""); d.err != nil {
				d.err.Field = "members[" + strconv.Itoa(i) + "]." + d.err.Field
				return m, d
			}
		}
	}
	m.KeyEpoch = d.u64("key_epoch")
	m.Tickets = d.tags("tickets")
	return m, d
}

func (m Heal) LogValue() slog.Value {
	var sb strings.Builder
	for i := range m.Members {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString(m.Members[i].Name)
	}
	return slog.GroupValue(slog.Uint64("epoch", m.Epoch), slog.String("members", sb.String()), slog.Int("ring", len(m.Members)))
}

// Healed tells the server that the heal of epoch is done, every record
// committed at its node: name of the leader, u64 epoch. The server
// acknowledges it (Ack); the leader sends it again until it does.
type Healed struct {
	Name  string
	Epoch uint64
}

func (Healed) Type() Type     { return TypeHealed }
func (m Healed) bodyLen() int { return nameLen(m.Name) + 8 }

func (m Healed) appendBody(e encoder) ([]byte, *Error) {
	e.name(m.Name, "name")
	e.u64(m.Epoch)
	return e.b, e.err
}

func (m Healed) parse(d decoder) (Healed, decoder) {
	m.Name = d.name("name")
	m.Epoch = d.u64("epoch")
	return m, d
}

func (m Healed) LogValue() slog.Value {
	return slog.GroupValue(slog.String("name", m.Name), slog.Uint64("epoch", m.Epoch))
}

// Broken tells the node that started a ring phase (the Origin of a
// teardown or a reset-id, the leader of a flush) that it cannot finish: the
// sender gave up on its right neighbour, the member Node, which stopped
// acknowledging a message of type What. Epoch and Round are that
// message's (Round a flush's, else 0): they tie the report to the phase,
// so that a copy of one sent in an earlier phase fails no later one.
type Broken struct {
	Node  Member
	What  Type
	Epoch uint64
	Round uint32
}

func (Broken) Type() Type     { return TypeBroken }
func (m Broken) bodyLen() int { return memberLen(m.Node) + 1 + 8 + 4 }

func (m Broken) appendBody(e encoder) ([]byte, *Error) {
	e.member(m.Node, "node")
	e.b = append(e.b, uint8(m.What))
	e.u64(m.Epoch)
	e.u32(m.Round)
	return e.b, e.err
}

func (m Broken) parse(d decoder) (Broken, decoder) {
	m.Node = d.member("node")
	m.What = Type(d.u8("what"))
	m.Epoch = d.u64("epoch")
	m.Round = d.u32("round")
	return m, d
}

func (m Broken) LogValue() slog.Value {
	return slog.GroupValue(slog.String("node", m.Node.String()), slog.String("what", m.What.String()),
		slog.Uint64("epoch", m.Epoch), slog.Uint64("round", uint64(m.Round)))
}
