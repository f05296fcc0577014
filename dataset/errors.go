package dataset

import (
	"errors"
	"io"
)

// Errors returned by Load and Embedded, wrapped with the line they concern.
// Match them with errors.Is.
var (
	// ErrNoHeader means the input holds no line at all.
	ErrNoHeader = errors.New("no header row")
	// ErrHeader means the first row is not the nine Headers.
	ErrHeader = errors.New("wrong header")
	// ErrFieldCount means a row does not have NumFields fields.
	ErrFieldCount = errors.New("wrong number of fields")
	// ErrFieldTooLong means a field is longer than MaxField bytes.
	ErrFieldTooLong = errors.New("field too long")
	// ErrRecordTooLong means a record does not fit one datagram
	// (takes more than MaxEncodedLen bytes in a query's answer).
	ErrRecordTooLong = errors.New("record too long for one datagram")
	// ErrEmptyLongName means a record has an empty Long Name (the key).
	ErrEmptyLongName = errors.New("empty Long Name")
	// ErrUntypable means a Long Name cannot be typed as a query: it starts
	// or ends with white space, which the peer trims from a query line, or
	// holds a line break, which ends one.
	ErrUntypable = errors.New("Long Name that no query can be typed with")
	// ErrLineBreak means a field holds a line break: a query's answer
	// prints one field a line, "Header: value".
	ErrLineBreak = errors.New("field with a line break")
	// ErrDuplicate means two records share a Long Name.
	ErrDuplicate = errors.New("duplicate Long Name")
	// ErrNoRecords means the input has a header but no records.
	ErrNoRecords = errors.New("no records")
	// ErrBinary means the input holds a NUL byte, which no CSV text has:
	// a binary file, given by mistake.
	ErrBinary = errors.New("not a CSV text file")
	// ErrTooLarge means the input has more than MaxFile bytes.
	ErrTooLarge = errors.New("larger than 64 MiB, the most a dataset may have")
)

// readAll reads r to its end, or fails with ErrTooLarge once it has read
// more than MaxFile bytes.
func readAll(r io.Reader) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxFile+1))
	if err == nil && len(data) > MaxFile {
		return nil, ErrTooLarge
	}
	return data, err
}
