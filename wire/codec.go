package wire

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"reflect"
)

// Header is the fixed part that opens every datagram.
type Header struct {
	Type  Type
	ID    uint32
	Flags Flags
	// With FlagAuth: the trailer's seq and tag, and Signed, the bytes the
	// tag covers (header, body and seq), for Verify. Zero otherwise.
	Seq    uint64
	Tag    Tag
	Signed string
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
// carries a record, or the datagram would exceed MaxMessage (the
// authentication trailer is left room for). (On error the
// spare capacity of b, past len(b), may have been written.)
func Append(b []byte, id uint32, flags Flags, m Message) ([]byte, error) {
	bm, ok := asBody(m)
	if !ok {
		// %T, not m.Type(): m may be a nil pointer.
		return b, &Error{Field: fmt.Sprintf("%T", m), Err: ErrUnknownType}
	}
	t := bm.Type()
	if flags&^knownFlags != 0 {
		return b, &Error{Type: t, Field: "flags", Err: ErrFlags}
	}
	start := len(b)
	e := encoder{start: start}
	e.b = binary.BigEndian.AppendUint16(b, Magic)
	e.b = append(e.b, Version, byte(t))
	e.b = binary.BigEndian.AppendUint32(e.b, id)
	e.b = append(e.b, byte(flags))
	out, err := bm.appendBody(e)
	if err == nil && len(out)-start > MaxMessage {
		err = &Error{Field: "datagram", Err: ErrTooLong}
	}
	if err != nil {
		err.Type = t
		return b, err
	}
	return out, nil
}

// EncodedLen returns the exact length of the datagram Append produces for m,
// header included. It does not check limits: for a message Append rejects
// it is the length the encoding would have; for a value that is not one of
// this package's body types it is 0.
func EncodedLen(m Message) int {
	bm, ok := asBody(m)
	if !ok {
		return 0
	}
	return HeaderLen + bm.bodyLen()
}

// asBody returns m as one of this package's body types. A pointer to one
// is not: it has the methods too, but Decode gives values, and a nil one
// would panic.
func asBody(m Message) (body, bool) {
	bm, ok := m.(body)
	if !ok || reflect.TypeOf(m).Kind() == reflect.Pointer {
		return nil, false
	}
	return bm, true
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
	s := string(b) // one copy: the body's strings and Signed share it
	body := s[HeaderLen:]
	if h.Flags&FlagAuth != 0 {
		if len(body) < AuthLen {
			return h, nil, &Error{Type: h.Type, Field: "auth", Err: ErrShort}
		}
		end := len(s) - TagLen
		h.Signed = s[:end]
		h.Seq = binary.BigEndian.Uint64(b[end-SeqLen:])
		copy(h.Tag[:], b[end:])
		body = s[HeaderLen : end-SeqLen]
	}
	m, err := messages[h.Type].decode(h.Type, body)
	if err != nil {
		return h, nil, err
	}
	return h, m, nil
}

// encoder appends to b a datagram that starts at b[start]. The first
// failure sticks: later calls may still append, but Append then discards
// the bytes.
type encoder struct {
	b     []byte
	start int
	err   *Error // the first failure; Append sets its Type
}

// datagramLen is the length of the datagram so far.
func (e *encoder) datagramLen() int { return len(e.b) - e.start }

func (e *encoder) fail(field string, err error) {
	if e.err == nil {
		e.err = &Error{Field: field, Err: err}
	}
}

func (e *encoder) u16(v uint16) { e.b = binary.BigEndian.AppendUint16(e.b, v) }

// ids encodes a list of message ids: a u16 count, at most max, then a u32
// each.
func (e *encoder) ids(ids []uint32, max int, field string) {
	if len(ids) > max {
		e.fail(field, ErrTooLong)
		return
	}
	e.u16(uint16(len(ids)))
	for _, id := range ids {
		e.u32(id)
	}
}
func (e *encoder) u32(v uint32) { e.b = binary.BigEndian.AppendUint32(e.b, v) }
func (e *encoder) u64(v uint64) { e.b = binary.BigEndian.AppendUint64(e.b, v) }

// optAddr encodes an address that may be absent (the zero AddrPort) as
// 0.0.0.0:0.
func (e *encoder) optAddr(a netip.AddrPort, field string) {
	if !a.IsValid() {
		e.b = append(e.b, 0, 0, 0, 0, 0, 0)
		return
	}
	e.addr(a, field)
}

// tags encodes a u8 count and the tags, at most MaxTickets.
func (e *encoder) tags(ts []Tag, field string) {
	if len(ts) > MaxTickets {
		e.fail(field, ErrTooLong)
		return
	}
	e.b = append(e.b, byte(len(ts)))
	for _, t := range ts {
		e.b = append(e.b, t[:]...)
	}
}

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
		e.err.Field = field + "." + e.err.Field
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
	s   string
	off int
	err *Error // the first failure; finish sets its Type
}

func (d *decoder) fail(field string, err error) {
	if d.err == nil {
		d.err = &Error{Field: field, Err: err}
	}
}

// finish reports the sticky error, or ErrTrailing if the body is not used
// up, as an *Error for message type t.
func (d *decoder) finish(t Type) error {
	if d.err == nil && d.off != len(d.s) {
		d.fail("", ErrTrailing)
	}
	if d.err != nil {
		d.err.Type = t
		return d.err
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

func (d *decoder) u64(field string) uint64 {
	hi := d.u32(field)
	return uint64(hi)<<32 | uint64(d.u32(field))
}

// optAddr decodes what encoder.optAddr wrote: 0.0.0.0:0 is no address.
func (d *decoder) optAddr(field string) netip.AddrPort {
	a := d.addr(field)
	if a == netip.AddrPortFrom(netip.AddrFrom4([4]byte{}), 0) {
		return netip.AddrPort{}
	}
	return a
}

// tags decodes a u8 count and that many tags, at most MaxTickets; nil
// for none.
func (d *decoder) tags(field string) []Tag {
	n := int(d.u8(field))
	switch {
	case d.err != nil || n == 0:
		return nil
	case n > MaxTickets:
		d.fail(field, ErrTooLong)
		return nil
	case n*TagLen > len(d.s)-d.off:
		d.fail(field, ErrShort)
		return nil
	}
	ts := make([]Tag, n)
	for i := range ts {
		ts[i] = d.tag(field)
	}
	return ts
}

func (d *decoder) tag(field string) Tag {
	var t Tag
	if s, ok := d.take(TagLen, field); ok {
		copy(t[:], s)
	}
	return t
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
		d.err.Field = field + "." + d.err.Field
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

// ids decodes a list of message ids: a u16 count, at most max, then a u32
// each. None is nil.
func (d *decoder) ids(max int, field string) []uint32 {
	n := d.count(max, 4, field)
	if n == 0 {
		return nil
	}
	ids := make([]uint32, n)
	for i := range ids {
		ids[i] = d.u32(field)
	}
	return ids
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
