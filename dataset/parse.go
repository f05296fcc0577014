package dataset

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/gocarina/gocsv"
)

// Load reads and parses the file at path. Errors name the path.
func Load(path string) ([]Record, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("dataset: %w", err)
	}
	defer f.Close()
	recs, err := parse(f)
	if err != nil {
		return nil, fmt.Errorf("dataset: %s: %w", path, err)
	}
	return recs, nil
}

// parse reads StatsCountry.csv from r, for Load and Embedded. The first row
// must be exactly Headers; every other row is a record of NumFields fields,
// none longer than MaxField, that fits one datagram (MaxEncodedLen), with a
// non-empty Long Name that a query line can carry and that no other record
// has, and no line break in any field. There must be at least
// one record. Line ends may be LF, CRLF or bare CR, and the last line may lack
// one; apart from that every field keeps the file's bytes, valid UTF-8 or not.
// Errors name the 1-based file line they concern.
func parse(r io.Reader) ([]Record, error) {
	data, err := readAll(r)
	if errors.Is(err, ErrTooLarge) {
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("read: %w", err)
	}
	// Spreadsheet programs often save a UTF-8 byte-order mark first.
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	if i := bytes.IndexByte(data, 0); i >= 0 {
		// Said as such, rather than as a header of escaped bytes.
		line := 1 + bytes.Count(normaliseLineEnds(data[:i]), []byte("\n"))
		return nil, fmt.Errorf("line %d: %w: it holds a NUL byte (a binary file?)", line, ErrBinary)
	}
	cr := csv.NewReader(bytes.NewReader(normaliseLineEnds(data)))
	// Field counts are checked by rowReader, which names the column layout.
	cr.FieldsPerRecord = -1
	rows := &rowReader{r: cr}

	var recs []Record
	if err := gocsv.UnmarshalCSV(rows, &recs); err != nil {
		return nil, err
	}
	if len(recs) != len(rows.lines)-1 {
		// gocsv yields one record per body row; the line numbers rely on it.
		return nil, fmt.Errorf("gocsv returned %d records for %d rows", len(recs), len(rows.lines)-1)
	}

	first := make(map[string]int, len(recs)) // Long Name → line
	for i, rec := range recs {
		line := rows.lines[i+1]
		if rec.LongName == "" {
			return nil, fmt.Errorf("line %d: %w", line, ErrEmptyLongName)
		}
		if why := untypable(rec.LongName); why != "" {
			return nil, fmt.Errorf("line %d: %w: %s %s (a query takes the rest of one line, trimmed)", line, ErrUntypable, quoteShort(rec.LongName), why)
		}
		for j, f := range rec.Fields() {
			if strings.ContainsAny(f, "\n\r") {
				return nil, fmt.Errorf("line %d: %w: %q is %s (a query's answer prints each field on one line)", line, ErrLineBreak, Headers[j], quoteShort(f))
			}
		}
		if prev, ok := first[rec.LongName]; ok {
			return nil, fmt.Errorf("line %d: %w %q (first on line %d)", line, ErrDuplicate, rec.LongName, prev)
		}
		first[rec.LongName] = line
	}
	return recs, nil
}

// untypable says why no query line can carry longName, or "": the peer
// takes a query's Long Name as the rest of one input line, trimmed of white
// space, so a record whose key starts or ends with white space, or holds a
// line break, could be stored but never found.
func untypable(longName string) string {
	switch {
	case strings.ContainsAny(longName, "\n\r"):
		return "holds a line break"
	case strings.TrimSpace(longName) != longName:
		return "starts or ends with white space"
	}
	return ""
}

// normaliseLineEnds turns CRLF and then every remaining CR into LF, so that
// encoding/csv, which knows only LF and CRLF, sees the same rows whatever the
// copy's line ends. It touches no other byte and keeps the line count.
func normaliseLineEnds(data []byte) []byte {
	if bytes.IndexByte(data, '\r') < 0 {
		return data
	}
	out := make([]byte, 0, len(data))
	for i := 0; i < len(data); i++ {
		c := data[i]
		if c == '\r' {
			c = '\n'
			if i+1 < len(data) && data[i+1] == '\n' {
				i++
			}
		}
		out = append(out, c)
	}
	return out
}

// rowReader is the gocsv.CSVReader that parse hands to gocsv: it checks the
// header and every row's shape before gocsv maps columns to Record fields,
// and remembers the file line on which each row starts.
type rowReader struct {
	r     *csv.Reader
	lines []int // start line of each row returned so far, header first
}

var _ gocsv.CSVReader = (*rowReader)(nil)

// Read returns the next row, or an error naming its line if it is malformed.
func (rr *rowReader) Read() ([]string, error) {
	row, err := rr.r.Read()
	if pe := (*csv.ParseError)(nil); errors.As(err, &pe) {
		// Said as every other check says it: "line N: why".
		return nil, fmt.Errorf("line %d, column %d: %w", pe.Line, pe.Column, pe.Err)
	}
	if err != nil {
		return nil, err // io.EOF
	}
	line, _ := rr.r.FieldPos(0)
	isHeader := len(rr.lines) == 0
	rr.lines = append(rr.lines, line)
	if isHeader {
		if !isHeaderRow(row) {
			return nil, fmt.Errorf("line %d: %w: header is %s: %s",
				line, ErrHeader, quoteShort(strings.Join(row, ",")), headerMismatch(row))
		}
		return row, nil
	}
	if len(row) != NumFields {
		return nil, fmt.Errorf("line %d: %w: %d, want %d", line, ErrFieldCount, len(row), NumFields)
	}
	for i, f := range row {
		if len(f) > MaxField {
			return nil, fmt.Errorf("line %d: %w: %q is %d bytes, max %d", line, ErrFieldTooLong, Headers[i], len(f), MaxField)
		}
	}
	if n := encodedLen(row); n > MaxEncodedLen {
		return nil, fmt.Errorf("line %d: %w: it is %s bytes encoded, more than the %s that fit (a query's answer carries its %d fields and its Long Name again)",
			line, ErrRecordTooLong, thousands(n), thousands(MaxEncodedLen), NumFields)
	}
	return row, nil
}

// ReadAll reads every row; there must be a header and at least one record.
func (rr *rowReader) ReadAll() ([][]string, error) {
	var rows [][]string
	for {
		row, err := rr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		rows = append(rows, row)
	}
	switch len(rows) {
	case 0:
		return nil, fmt.Errorf("line 1: %w: the input is empty or blank", ErrNoHeader)
	case 1:
		return nil, fmt.Errorf("line %d: %w: only a header", rr.lines[0], ErrNoRecords)
	}
	return rows, nil
}

// headerMismatch says where row, not the header, departs from it.
func headerMismatch(row []string) string {
	if len(row) != NumFields {
		cols := "columns"
		if len(row) == 1 {
			cols = "column"
		}
		return fmt.Sprintf("%d %s, want the %d StatsCountry.csv headers %s", len(row), cols, NumFields, strings.Join(Headers[:], ","))
	}
	for i, h := range Headers {
		if row[i] != h {
			return fmt.Sprintf("column %d is %s, want %q", i+1, quoteShort(row[i]), h)
		}
	}
	return "the header"
}

func isHeaderRow(row []string) bool {
	if len(row) != NumFields {
		return false
	}
	for i, h := range Headers {
		if row[i] != h {
			return false
		}
	}
	return true
}

// thousands writes n with a comma between each group of three digits.
func thousands(n int) string {
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0 && s[i-1] != '-'; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// quoteShort quotes s for an error message, cut short if it is long.
func quoteShort(s string) string {
	const max = 200
	if len(s) <= max {
		return fmt.Sprintf("%q", s)
	}
	return fmt.Sprintf("%q...", s[:max])
}
