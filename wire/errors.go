package wire

import "errors"

// Sentinel errors. Append and Decode never return them bare: they come
// wrapped in an *Error that names the message type and the field, so match
// them with errors.Is.
var (
	// ErrShort means the datagram ends before the field is complete.
	ErrShort = errors.New("truncated")

	// ErrTooLong means a string, list or the whole datagram exceeds its
	// limit (MaxName, MaxField, MaxReason, MaxMembers, MaxDatagram, or the
	// 65535 that a u16 length or count can say).
	ErrTooLong = errors.New("too long")

	// ErrTrailing means bytes follow the end of the message body.
	ErrTrailing = errors.New("trailing bytes")

	// ErrMagic means the datagram does not start with Magic: it is not ours.
	ErrMagic = errors.New("bad magic")

	// ErrVersion means the header names a version other than Version.
	ErrVersion = errors.New("unsupported version")

	// ErrUnknownType means the header names no known Type, or Append was
	// given a Message that is not one of this package's body types (a
	// pointer, say, or nil).
	ErrUnknownType = errors.New("unknown type")

	// ErrFlags means the flags byte has bits other than the known flags.
	ErrFlags = errors.New("unknown flags")

	// ErrInvalid means a value is out of its domain: a bool other than 0 or
	// 1, an address that is not a valid IPv4 address and port, or a
	// QueryResult that carries a record although it was not found.
	ErrInvalid = errors.New("invalid value")
)

// Error is the error returned by Append, Decode and DecodeHeader.
type Error struct {
	// Type is the message type, or 0 when the header itself is at fault
	// and names no known type.
	Type Type
	// Field is the path of the offending field, such as
	// "records[3].field[2]" or "left.addr"; "header" or "datagram" when the
	// fault is not in the body; empty when the sentinel says it all.
	Field string
	// Err is one of the sentinels above.
	Err error
}

func (e *Error) Error() string {
	s := "wire: "
	if e.Type != 0 {
		s += e.Type.String() + ": "
	}
	if e.Field != "" {
		s += e.Field + ": "
	}
	if e.Err == nil {
		return s + "error"
	}
	return s + e.Err.Error()
}

func (e *Error) Unwrap() error { return e.Err }
