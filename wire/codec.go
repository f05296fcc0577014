package wire

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"strconv"
)

// Header is the fixed part that opens every datagram.
type Header struct {
	Type  Type
	ID    uint32
	Flags Flags
}

const (
	// StoreOverhead is the length of a Store datagram without its records:
	// header, u16 ring size, u16 record count. For every Store s,
	// EncodedLen(s) == StoreOverhead + the sum of RecordLen over s.Records.
	StoreOverhead = HeaderLen + 2 + 2

	addrLen      = 4 + 2
	minMemberLen = 1 + addrLen // an empty name
	minRecordLen = NumFields * 2
	maxCount     = 1<<16 - 1
)

// A name's length is one byte: MaxName must fit in it (this conversion
// does not compile otherwise).
const _ = uint8(MaxName)

// Append appends the datagram for m, with the given message id and flags,
// to b and returns the extended slice. m must be one of this package's body
// types as a value (Store, not *Store).
//
// Append checks every limit the decoder checks: it returns an *Error, and b
// unchanged, when a name, field, reason or member list is over its limit,
// an address is not a valid IPv4 address and port (an IPv4-mapped IPv6
// address is not), flags has unknown bits, a QueryResult that was not found
// carries a record, or the datagram would exceed MaxDatagram. (On error the
// spare capacity of b, past len(b), may have been written.)
func Append(b []byte, id uint32, flags Flags, m Message) ([]byte, error) {
	start := len(b)
	e := encoder{b: b}
	e.b = binary.BigEndian.AppendUint16(e.b, Magic)
	e.b = append(e.b, Version, 0) // the type byte is set below
	e.b = binary.BigEndian.AppendUint32(e.b, id)
	e.b = append(e.b, byte(flags))

	switch m := m.(type) {
	case Register:
		e.name(m.Name, "name")
		e.addr(m.Addr, "addr")
	case SetupDHT:
		e.u16(m.N)
		e.name(m.Name, "name")
	case DHTComplete:
		e.name(m.Name, "name")
	case QueryDHT:
		e.name(m.Name, "name")
	case LeaveDHT:
		e.name(m.Name, "name")
	case DHTRebuilt:
		e.name(m.Name, "name")
		e.name(m.NewLeader, "new_leader")
	case Deregister:
		e.name(m.Name, "name")
	case TeardownDHT:
		e.name(m.Name, "name")
	case TeardownComplete:
		e.name(m.Name, "name")
	case Reply:
		e.bool(m.OK)
		e.str(m.Reason, MaxReason, "reason")
		if len(m.Members) > MaxMembers {
			e.fail("members", ErrTooLong)
			break
		}
		e.u16(uint16(len(m.Members)))
		for i := range m.Members {
			if e.member(m.Members[i], "") {
				e.field = "members[" + strconv.Itoa(i) + "]." + e.field
				break
			}
		}
	case SetID:
		e.u16(m.ID)
		e.u16(m.N)
		e.member(m.Left, "left")
		e.member(m.Right, "right")
	case Store:
		e.u16(m.N)
		if len(m.Records) > maxCount {
			e.fail("records", ErrTooLong)
			break
		}
		e.u16(uint16(len(m.Records)))
		for i := range m.Records {
			if e.record(&m.Records[i]) {
				e.field = "records[" + strconv.Itoa(i) + "]." + e.field
				break
			}
			if len(e.b)-start > MaxDatagram {
				e.fail("records", ErrTooLong) // stop early: the caller sent far too many
				break
			}
		}
	case Flush:
		e.name(m.Leader, "leader")
		e.u16(m.N)
	case Query:
		e.u32(m.ReqID)
		e.member(m.Querier, "querier")
		e.u16(m.Hops)
		e.str(m.LongName, MaxField, "long_name")
	case QueryResult:
		e.u32(m.ReqID)
		e.bool(m.Found)
		e.name(m.Node, "node")
		e.u16(m.NodeID)
		e.u16(m.Hops)
		e.str(m.LongName, MaxField, "long_name")
		switch {
		case m.Found:
			if e.record(&m.Record) {
				e.field = "record." + e.field
			}
		case m.Record != Record{}:
			e.fail("record", ErrInvalid) // it would be dropped silently
		}
	case Teardown:
		e.name(m.Origin, "origin")
		e.bool(m.KeepNeighbours)
	case ResetID:
		e.name(m.Origin, "origin")
		e.u16(m.ID)
		e.u16(m.N)
	case ResetLeft:
		e.member(m.Left, "left")
	case ResetRight:
		e.member(m.Right, "right")
	case RebuildDHT:
		e.member(m.Leaver, "leaver")
	case Rebuilt:
		e.bool(m.OK)
		e.str(m.Reason, MaxReason, "reason")
		e.name(m.NewLeader, "new_leader")
	case Ack:
		if len(m.More) > MaxAcks {
			e.fail("more", ErrTooLong)
			break
		}
		e.u16(uint16(len(m.More)))
		for _, id := range m.More {
			e.u32(id)
		}
	default:
		// Not m.Type(): m may be a nil pointer.
		return b, &Error{Field: fmt.Sprintf("%T", m), Err: ErrUnknownType}
	}

	t := m.Type()
	if flags&^knownFlags != 0 {
		return b, &Error{Type: t, Field: "flags", Err: ErrFlags}
	}
	if e.err == nil && len(e.b)-start > MaxDatagram {
		e.fail("datagram", ErrTooLong)
	}
	if e.err != nil {
		return b, &Error{Type: t, Field: e.field, Err: e.err}
	}
	e.b[start+3] = byte(t)
	return e.b, nil
}

// EncodedLen returns the exact length of the datagram Append produces for m,
// header included. It does not check limits: for a message Append rejects
// it is the length the encoding would have; for a value that is not one of
// this package's body types it is 0.
func EncodedLen(m Message) int {
	n := HeaderLen
	switch m := m.(type) {
	case Register:
		n += nameLen(m.Name) + addrLen
	case SetupDHT:
		n += 2 + nameLen(m.Name)
	case DHTComplete:
		n += nameLen(m.Name)
	case QueryDHT:
		n += nameLen(m.Name)
	case LeaveDHT:
		n += nameLen(m.Name)
	case DHTRebuilt:
		n += nameLen(m.Name) + nameLen(m.NewLeader)
	case Deregister:
		n += nameLen(m.Name)
	case TeardownDHT:
		n += nameLen(m.Name)
	case TeardownComplete:
		n += nameLen(m.Name)
	case Reply:
		n += 1 + strLen(m.Reason) + 2
		for i := range m.Members {
			n += memberLen(m.Members[i])
		}
	case SetID:
		n += 2 + 2 + memberLen(m.Left) + memberLen(m.Right)
	case Store:
		n = StoreOverhead
		for i := range m.Records {
			n += RecordLen(m.Records[i])
		}
	case Flush:
		n += nameLen(m.Leader) + 2
	case Query:
		n += 4 + memberLen(m.Querier) + 2 + strLen(m.LongName)
	case QueryResult:
		n += 4 + 1 + nameLen(m.Node) + 2 + 2 + strLen(m.LongName)
		if m.Found {
			n += RecordLen(m.Record)
		}
	case Teardown:
		n += nameLen(m.Origin) + 1
	case ResetID:
		n += nameLen(m.Origin) + 2 + 2
	case ResetLeft:
		n += memberLen(m.Left)
	case ResetRight:
		n += memberLen(m.Right)
	case RebuildDHT:
		n += memberLen(m.Leaver)
	case Rebuilt:
		n += 1 + strLen(m.Reason) + nameLen(m.NewLeader)
	case Ack:
		n += 2 + 4*len(m.More)
	default:
		return 0
	}
	return n
}

// RecordLen returns the encoded length of r inside a Store body.
func RecordLen(r Record) int {
	n := 0
	for i := range r {
		n += strLen(r[i])
	}
	return n
}

func strLen(s string) int    { return 2 + len(s) }
func nameLen(s string) int   { return 1 + len(s) }
func memberLen(m Member) int { return nameLen(m.Name) + addrLen }

// DecodeHeader decodes and checks the header of datagram b without looking
// at the body. It rejects what Decode rejects in the header: a datagram
// over MaxDatagram or under HeaderLen, a wrong magic or version, an unknown
// type or unknown flags. With unknown flags the other header fields are
// returned as well.
func DecodeHeader(b []byte) (Header, error) {
	if len(b) > MaxDatagram {
		return Header{}, &Error{Field: "datagram", Err: ErrTooLong}
	}
	if len(b) < HeaderLen {
		return Header{}, &Error{Field: "header", Err: ErrShort}
	}
	if binary.BigEndian.Uint16(b) != Magic {
		return Header{}, &Error{Err: ErrMagic}
	}
	if b[2] != Version {
		return Header{}, &Error{Err: ErrVersion}
	}
	h := Header{Type: Type(b[3]), ID: binary.BigEndian.Uint32(b[4:]), Flags: Flags(b[8])}
	if !h.Type.known() {
		return Header{}, &Error{Type: h.Type, Err: ErrUnknownType}
	}
	if h.Flags&^knownFlags != 0 {
		return h, &Error{Type: h.Type, Field: "flags", Err: ErrFlags}
	}
	return h, nil
}

// Decode decodes datagram b. The message is a value of its body type
// (Store, not *Store). Decode does not keep b: the message's strings are
// copied out of it (all of them share one copy of the body), so the caller
// may reuse b at once.
//
// Errors are *Error wrapping one of the sentinels. When the header is well
// formed Decode returns it even if the body is not, so that the caller can
// log the id.
func Decode(b []byte) (Header, Message, error) {
	h, err := DecodeHeader(b)
	if err != nil {
		return h, nil, err
	}
	d := decoder{s: string(b[HeaderLen:])}
	var m Message
	switch h.Type {
	case TypeRegister:
		m = keep(&d, Register{Name: d.name("name"), Addr: d.addr("addr")})
	case TypeSetupDHT:
		m = keep(&d, SetupDHT{N: d.u16("n"), Name: d.name("name")})
	case TypeDHTComplete:
		m = keep(&d, DHTComplete{Name: d.name("name")})
	case TypeQueryDHT:
		m = keep(&d, QueryDHT{Name: d.name("name")})
	case TypeLeaveDHT:
		m = keep(&d, LeaveDHT{Name: d.name("name")})
	case TypeDHTRebuilt:
		m = keep(&d, DHTRebuilt{Name: d.name("name"), NewLeader: d.name("new_leader")})
	case TypeDeregister:
		m = keep(&d, Deregister{Name: d.name("name")})
	case TypeTeardownDHT:
		m = keep(&d, TeardownDHT{Name: d.name("name")})
	case TypeTeardownComplete:
		m = keep(&d, TeardownComplete{Name: d.name("name")})
	case TypeReply:
		m = keep(&d, d.reply())
	case TypeSetID:
		m = keep(&d, SetID{ID: d.u16("id"), N: d.u16("n"), Left: d.member("left"), Right: d.member("right")})
	case TypeStore:
		var st Store
		d.store(&st)
		m = keep(&d, st)
	case TypeFlush:
		m = keep(&d, Flush{Leader: d.name("leader"), N: d.u16("n")})
	case TypeQuery:
		m = keep(&d, Query{ReqID: d.u32("req_id"), Querier: d.member("querier"), Hops: d.u16("hops"), LongName: d.str(MaxField, "long_name")})
	case TypeQueryResult:
		m = keep(&d, d.queryResult())
	case TypeTeardown:
		m = keep(&d, Teardown{Origin: d.name("origin"), KeepNeighbours: d.bool("keep_neighbours")})
	case TypeResetID:
		m = keep(&d, ResetID{Origin: d.name("origin"), ID: d.u16("id"), N: d.u16("n")})
	case TypeResetLeft:
		m = keep(&d, ResetLeft{Left: d.member("left")})
	case TypeResetRight:
		m = keep(&d, ResetRight{Right: d.member("right")})
	case TypeRebuildDHT:
		m = keep(&d, RebuildDHT{Leaver: d.member("leaver")})
	case TypeRebuilt:
		m = keep(&d, Rebuilt{OK: d.bool("ok"), Reason: d.str(MaxReason, "reason"), NewLeader: d.name("new_leader")})
	case TypeAck:
		m = keep(&d, d.ack())
	}
	if err := d.finish(h.Type); err != nil {
		return h, nil, err
	}
	return h, m, nil
}

// keep returns v as a Message, or nil if decoding failed: boxing allocates,
// and an error should cost no more than it must.
func keep[M Message](d *decoder, v M) Message {
	if d.err != nil {
		return nil
	}
	return v
}

// encoder appends to b. The first failure sticks: later calls may still
// append, but Append then discards the bytes.
type encoder struct {
	b     []byte
	err   error
	field string
}

func (e *encoder) fail(field string, err error) {
	if e.err == nil {
		e.err, e.field = err, field
	}
}

func (e *encoder) u16(v uint16) { e.b = binary.BigEndian.AppendUint16(e.b, v) }
func (e *encoder) u32(v uint32) { e.b = binary.BigEndian.AppendUint32(e.b, v) }

func (e *encoder) bool(v bool) {
	if v {
		e.b = append(e.b, 1)
	} else {
		e.b = append(e.b, 0)
	}
}

func (e *encoder) str(s string, max int, field string) {
	if len(s) > max {
		e.fail(field, ErrTooLong)
		return
	}
	e.u16(uint16(len(s)))
	e.b = append(e.b, s...)
}

// name encodes a name: a u8 length, then the bytes.
func (e *encoder) name(s, field string) {
	if len(s) > MaxName {
		e.fail(field, ErrTooLong)
		return
	}
	e.b = append(e.b, byte(len(s)))
	e.b = append(e.b, s...)
}

func (e *encoder) addr(a netip.AddrPort, field string) {
	ip := a.Addr()
	if !ip.Is4() {
		e.fail(field, ErrInvalid)
		return
	}
	v4 := ip.As4()
	e.b = append(e.b, v4[:]...)
	e.u16(a.Port())
}

// member encodes m and reports whether it failed (rather than an earlier
// field). A failure inside is reported as field.name or field.addr, or as
// name or addr when field is empty, for the caller to prefix.
func (e *encoder) member(m Member, field string) bool {
	if e.err != nil {
		return false
	}
	e.name(m.Name, "name")
	e.addr(m.Addr, "addr")
	if e.err != nil && field != "" {
		e.field = field + "." + e.field
	}
	return e.err != nil
}

// record encodes r and reports whether it failed (rather than an earlier
// field). A failure inside is reported as field[i] for the caller to
// prefix.
func (e *encoder) record(r *Record) bool {
	if e.err != nil {
		return false
	}
	for i := range r {
		e.str(r[i], MaxField, fieldNames[i])
	}
	return e.err != nil
}

var fieldNames = [NumFields]string{
	"field[0]", "field[1]", "field[2]", "field[3]", "field[4]",
	"field[5]", "field[6]", "field[7]", "field[8]",
}

// decoder reads a body from s, a copy of it: the strings it returns are
// substrings of s, so the body is allocated once. The first failure sticks
// and every later read returns a zero value.
type decoder struct {
	s     string
	off   int
	err   error
	field string
}

func (d *decoder) fail(field string, err error) {
	if d.err == nil {
		d.err, d.field = err, field
	}
}

// finish reports the sticky error, or ErrTrailing if the body is not used
// up, as an *Error for message type t.
func (d *decoder) finish(t Type) error {
	if d.err == nil && d.off != len(d.s) {
		d.fail("", ErrTrailing)
	}
	if d.err != nil {
		return &Error{Type: t, Field: d.field, Err: d.err}
	}
	return nil
}

// take returns the next n bytes, or fails with ErrShort.
func (d *decoder) take(n int, field string) (string, bool) {
	if d.err != nil {
		return "", false
	}
	if len(d.s)-d.off < n {
		d.fail(field, ErrShort)
		return "", false
	}
	s := d.s[d.off : d.off+n]
	d.off += n
	return s, true
}

func (d *decoder) u8(field string) uint8 {
	s, ok := d.take(1, field)
	if !ok {
		return 0
	}
	return s[0]
}

func (d *decoder) u16(field string) uint16 {
	s, ok := d.take(2, field)
	if !ok {
		return 0
	}
	return uint16(s[0])<<8 | uint16(s[1])
}

func (d *decoder) u32(field string) uint32 {
	s, ok := d.take(4, field)
	if !ok {
		return 0
	}
	return uint32(s[0])<<24 | uint32(s[1])<<16 | uint32(s[2])<<8 | uint32(s[3])
}

func (d *decoder) bool(field string) bool {
	v := d.u8(field)
	if v > 1 {
		d.fail(field, ErrInvalid)
		return false
	}
	return v == 1
}

func (d *decoder) str(max int, field string) string {
	n := int(d.u16(field))
	if n > max {
		d.fail(field, ErrTooLong)
		return ""
	}
	s, _ := d.take(n, field)
	return s
}

// name decodes a name: a u8 length, then the bytes.
func (d *decoder) name(field string) string {
	n := int(d.u8(field))
	if n > MaxName {
		d.fail(field, ErrTooLong)
		return ""
	}
	s, _ := d.take(n, field)
	return s
}

func (d *decoder) addr(field string) netip.AddrPort {
	s, ok := d.take(addrLen, field)
	if !ok {
		return netip.AddrPort{}
	}
	ip := netip.AddrFrom4([4]byte{s[0], s[1], s[2], s[3]})
	return netip.AddrPortFrom(ip, uint16(s[4])<<8|uint16(s[5]))
}

// member decodes a member; see encoder.member for the field names.
func (d *decoder) member(field string) Member {
	if d.err != nil {
		return Member{}
	}
	m := Member{Name: d.name("name"), Addr: d.addr("addr")}
	if d.err != nil && field != "" {
		d.field = field + "." + d.field
	}
	return m
}

// record decodes into *r and reports whether it failed (rather than an
// earlier field); see encoder.record for the field names.
func (d *decoder) record(r *Record) bool {
	if d.err != nil {
		return false
	}
	for i := range r {
		r[i] = d.str(MaxField, fieldNames[i])
	}
	return d.err != nil
}

// count reads a list count and checks it against max and against the
// bytes left, at minLen bytes an element, before the caller allocates.
func (d *decoder) count(max, minLen int, field string) int {
	n := int(d.u16(field))
	switch {
	case d.err != nil:
		return 0
	case n > max:
		d.fail(field, ErrTooLong)
		return 0
	case n > (len(d.s)-d.off)/minLen:
		d.fail(field, ErrShort)
		return 0
	}
	return n
}

func (d *decoder) reply() Reply {
	r := Reply{OK: d.bool("ok"), Reason: d.str(MaxReason, "reason")}
	n := d.count(MaxMembers, minMemberLen, "members")
	if n == 0 {
		return r
	}
	r.Members = make([]Member, n)
	for i := range r.Members {
		if r.Members[i] = d.member(""); d.err != nil { // count() left d.err nil
			d.field = "members[" + strconv.Itoa(i) + "]." + d.field
			break
		}
	}
	return r
}

// store decodes a Store body into *st. A Store with no records has nil
// Records.
func (d *decoder) store(st *Store) {
	st.N = d.u16("n")
	n := d.count(maxCount, minRecordLen, "records")
	if n == 0 {
		return
	}
	st.Records = make([]Record, n)
	for i := range st.Records {
		if d.record(&st.Records[i]) {
			d.field = "records[" + strconv.Itoa(i) + "]." + d.field
			break
		}
	}
}

func (d *decoder) ack() Ack {
	n := d.count(MaxAcks, 4, "more")
	if n == 0 {
		return Ack{}
	}
	a := Ack{More: make([]uint32, n)}
	for i := range a.More {
		a.More[i] = d.u32("more")
	}
	return a
}

func (d *decoder) queryResult() QueryResult {
	q := QueryResult{
		ReqID:    d.u32("req_id"),
		Found:    d.bool("found"),
		Node:     d.name("node"),
		NodeID:   d.u16("node_id"),
		Hops:     d.u16("hops"),
		LongName: d.str(MaxField, "long_name"),
	}
	if q.Found && d.record(&q.Record) {
		d.field = "record." + d.field
	}
	return q
}
