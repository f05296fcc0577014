// Package dataset turns StatsCountry.csv into typed records and hashes them.
//
// The file is a header line and one line per record, nine fields each (see
// Headers). It is real-world CSV: quoted fields with commas, empty fields,
// non-ASCII UTF-8 and even a byte that is not valid UTF-8. Load keeps every
// field's bytes exactly as they are in the file; only line ends (CRLF, LF or
// bare CR) are normalised.
//
// A record's key is its Long Name. Its slot in a peer's local table is
// Pos(longName) = (sum of the name's byte values) mod TableSize, and the peer
// that owns it in a ring of n peers is ID(pos, n) = pos mod n. Slots collide,
// so a table slot holds every record hashed to it.
package dataset

const (
	// TableSize is the number of slots in each peer's local hash table.
	TableSize = 353
	// NumFields is the number of fields of every record.
	NumFields = 9
	// MaxField is the longest field, in bytes, that Load accepts.
	MaxField = 1024
	// MaxFile is the most bytes a dataset may have (64 MiB, some 270
	// times StatsCountry.csv's records at their longest): a larger input,
	// or one that never ends (--data /dev/zero), is refused once this
	// much has been read, instead of being read until memory runs out.
	MaxFile = 64 << 20
)

// A record travels alone in two messages, and must fit one datagram in
// both: a store (header, ring size, record count, the record) and a query's
// answer, the larger, which also carries the answering node's name (a user
// name, at most 15 letters), its id and the hop count, and repeats the Long
// Name that was asked for. Package wire knows the bytes but imports nothing
// of ours, so the figures are restated here; a test in package app checks
// them against wire's encoder.
const (
	// MaxDatagram is the largest datagram without its authentication
	// trailer (wire.MaxMessage).
	MaxDatagram = 1472 - 24
	// answerOverhead is a found query answer without its record and Long
	// Name: header 9, request id 4, found 1, node name 1+15, node id 2,
	// hops 2.
	answerOverhead = 9 + 4 + 1 + 1 + 15 + 2 + 2
	// MaxEncodedLen is the most bytes a record may take in a query's
	// answer for Load to accept it: each field as a 2-byte length and its
	// bytes, and the Long Name once more in the same form.
	MaxEncodedLen = MaxDatagram - answerOverhead
)

// encodedLen is the number of bytes a record, its fields given in file
// order, takes in a query's answer (see MaxEncodedLen).
func encodedLen(fields []string) int {
	n := 2 + len(fields[3]) // the Long Name, again
	for _, f := range fields {
		n += 2 + len(f)
	}
	return n
}

// Headers are the column names of StatsCountry.csv, in file order.
var Headers = [NumFields]string{
	"Country Code",
	"Short Name",
	"Table Name",
	"Long Name",
	"2-Alpha Code",
	"Currency Unit",
	"Region",
	"WB-2 Code",
	"Latest Population Census",
}

// Record is one line of StatsCountry.csv. The csv tags are the Headers.
type Record struct {
	CountryCode string `csv:"Country Code"`
	ShortName   string `csv:"Short Name"`
	TableName   string `csv:"Table Name"`
	LongName    string `csv:"Long Name"`
	Alpha2      string `csv:"2-Alpha Code"`
	Currency    string `csv:"Currency Unit"`
	Region      string `csv:"Region"`
	WB2         string `csv:"WB-2 Code"`
	Census      string `csv:"Latest Population Census"`
}

// Fields returns the record's fields in file order.
func (r Record) Fields() [NumFields]string {
	return [NumFields]string{
		r.CountryCode, r.ShortName, r.TableName, r.LongName, r.Alpha2,
		r.Currency, r.Region, r.WB2, r.Census,
	}
}

// FromFields is the inverse of Record.Fields.
func FromFields(f [NumFields]string) Record {
	return Record{
		CountryCode: f[0], ShortName: f[1], TableName: f[2], LongName: f[3], Alpha2: f[4],
		Currency: f[5], Region: f[6], WB2: f[7], Census: f[8],
	}
}

// Source is a dataset read by index: a leader walks it to spread the
// records round the ring, and need not hold them all at once
// (SyntheticSource makes each when asked for).
type Source interface {
	Len() int
	Record(i int) Record
}

// Records is a dataset held in memory, as Load returns it.
type Records []Record

// Len is the number of records.
func (r Records) Len() int { return len(r) }

// Record returns record i.
func (r Records) Record(i int) Record { return r[i] }

// Pos returns the table slot of a Long Name: the sum of its byte values (not
// runes) mod TableSize. Pos("Aruba") is 491 mod 353 = 138.
func Pos(longName string) int {
	var sum uint64
	for i := 0; i < len(longName); i++ {
		sum += uint64(longName[i])
	}
	return int(sum % TableSize)
}

// ID returns the peer that owns slot pos in a ring of n peers: pos mod n.
// n must be at least 1.
func ID(pos, n int) int {
	if n < 1 {
		panic("dataset: ID with n < 1")
	}
	return pos % n
}

// Pos returns the table slot of the record's Long Name.
func (r Record) Pos() int { return Pos(r.LongName) }
