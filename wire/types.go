// Package wire is the only code that knows the bytes of a dht datagram.
//
// Every datagram is one message: a fixed 9-byte header followed by the body of
// the message type named in the header. All integers are big-endian.
//
//	offset size field
//	0      2    magic   0x44 0x48 ("DH")
//	2      1    version 1
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
package wire

import (
	"net/netip"
)

// Magic and Version open every datagram.
const (
	Magic   uint16 = 0x4448
	Version uint8  = 1

	HeaderLen = 9
	// MaxDatagram keeps every datagram inside one 1500-byte Ethernet frame
	// (1500 - 20 IPv4 - 8 UDP).
	MaxDatagram = 1472
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
	TypeSetID            Type = 16 // leader → member
	TypeStore            Type = 17 // left → right
	TypeFlush            Type = 18 // left → right, follows the stores
	TypeQuery            Type = 19 // querier → member, left → right
	TypeQueryResult      Type = 20 // answering node → querier
	TypeTeardown         Type = 21 // left → right
	TypeResetID          Type = 22 // left → right
	TypeResetLeft        Type = 23 // leaver → its right neighbour
	TypeResetRight       Type = 24 // leaver → its left neighbour
	TypeRebuildDHT       Type = 25 // leaver → new leader
	TypeRebuilt          Type = 26 // new leader → leaver
	TypeAck              Type = 27 // receiver → sender of any ring message
)

// Flags is the header's flag byte.
type Flags uint8

const (
	// FlagRetransmit marks a datagram that repeats an earlier one with the
	// same id. Receivers treat it like the original; it is there for traces
	// and counters.
	FlagRetransmit Flags = 1 << 0
	// FlagNoAck marks a message its sender does not retransmit: the
	// receiver neither acknowledges it nor suppresses it as a duplicate.
	// Only a query and its result may carry it (the querier retries the
	// whole query instead); on any other message it is ignored.
	FlagNoAck Flags = 1 << 1

	knownFlags = FlagRetransmit | FlagNoAck
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

// Register: name, addr.
type Register struct {
	Name string
	Addr netip.AddrPort
}

// SetupDHT: u16 n, name.
type SetupDHT struct {
	N    uint16
	Name string
}

// DHTComplete: name.
type DHTComplete struct{ Name string }

// QueryDHT: name.
type QueryDHT struct{ Name string }

// LeaveDHT: name.
type LeaveDHT struct{ Name string }

// DHTRebuilt: name, new leader's name.
type DHTRebuilt struct {
	Name      string
	NewLeader string
}

// Deregister: name.
type Deregister struct{ Name string }

// TeardownDHT: name.
type TeardownDHT struct{ Name string }

// TeardownComplete: name.
type TeardownComplete struct{ Name string }

// Reply answers a request to the server: bool ok, string reason (at most
// MaxReason bytes, empty when ok), list of members. The header id echoes the
// request's id.
type Reply struct {
	OK      bool
	Reason  string
	Members []Member
}

// SetID: u16 id, u16 ring size, left member, right member.
type SetID struct {
	ID    uint16
	N     uint16
	Left  Member
	Right Member
}

// Store: u16 ring size, list of records. A store datagram carries as many
// records as fit in MaxDatagram.
type Store struct {
	N       uint16
	Records []Record
}

// Flush follows the stores of one populate round the ring: name of the
// leader that started it, u16 ring size. A node commits its table before
// forwarding it.
type Flush struct {
	Leader string
	N      uint16
}

// Query: u32 request id (chosen by the querier), querier member, u16 hops
// so far, string long name.
type Query struct {
	ReqID    uint32
	Querier  Member
	Hops     uint16
	LongName string
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

// Teardown: name of the node that started it, bool keep neighbours (true
// when the teardown is part of a leave).
type Teardown struct {
	Origin         string
	KeepNeighbours bool
}

// ResetID: name of the leaver that started it, u16 id for the receiver,
// u16 new ring size.
type ResetID struct {
	Origin string
	ID     uint16
	N      uint16
}

// ResetLeft: the receiver's new left neighbour (member).
type ResetLeft struct{ Left Member }

// ResetRight: the receiver's new right neighbour (member).
type ResetRight struct{ Right Member }

// RebuildDHT: the leaver (member), to whom the new leader reports.
type RebuildDHT struct{ Leaver Member }

// Rebuilt: bool ok, string reason, name of the new leader.
type Rebuilt struct {
	OK        bool
	Reason    string
	NewLeader string
}

// Ack: list of u32 further ids acknowledged (at most MaxAcks); the header
// id is the first id acknowledged. A receiver acknowledges everything one
// sender's datagrams, read together, asked it to in one Ack.
type Ack struct{ More []uint32 }

func (Register) Type() Type         { return TypeRegister }
func (SetupDHT) Type() Type         { return TypeSetupDHT }
func (DHTComplete) Type() Type      { return TypeDHTComplete }
func (QueryDHT) Type() Type         { return TypeQueryDHT }
func (LeaveDHT) Type() Type         { return TypeLeaveDHT }
func (DHTRebuilt) Type() Type       { return TypeDHTRebuilt }
func (Deregister) Type() Type       { return TypeDeregister }
func (TeardownDHT) Type() Type      { return TypeTeardownDHT }
func (TeardownComplete) Type() Type { return TypeTeardownComplete }
func (Reply) Type() Type            { return TypeReply }
func (SetID) Type() Type            { return TypeSetID }
func (Store) Type() Type            { return TypeStore }
func (Flush) Type() Type            { return TypeFlush }
func (Query) Type() Type            { return TypeQuery }
func (QueryResult) Type() Type      { return TypeQueryResult }
func (Teardown) Type() Type         { return TypeTeardown }
func (ResetID) Type() Type          { return TypeResetID }
func (ResetLeft) Type() Type        { return TypeResetLeft }
func (ResetRight) Type() Type       { return TypeResetRight }
func (RebuildDHT) Type() Type       { return TypeRebuildDHT }
func (Rebuilt) Type() Type          { return TypeRebuilt }
func (Ack) Type() Type              { return TypeAck }
