package dataset

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

// realPath is the repository's copy of StatsCountry.csv, the one embedded.
const realPath = "StatsCountry.csv"

const header = "Country Code,Short Name,Table Name,Long Name,2-Alpha Code,Currency Unit,Region,WB-2 Code,Latest Population Census\n"

func readReal(t testing.TB) []byte {
	t.Helper()
	data, err := os.ReadFile(realPath)
	if err != nil {
		t.Fatalf("read the real dataset: %v", err)
	}
	return data
}

// loadReal returns the embedded dataset, so that every check on the real
// records is a check on what the binary ships.
func loadReal(t testing.TB) []Record {
	t.Helper()
	recs, err := Embedded()
	if err != nil {
		t.Fatalf("Embedded(): %v", err)
	}
	return recs
}

func findRecord(t *testing.T, recs []Record, code string) Record {
	t.Helper()
	for _, r := range recs {
		if r.CountryCode == code {
			return r
		}
	}
	t.Fatalf("no record with Country Code %q", code)
	return Record{}
}

func TestLoadReal(t *testing.T) {
	recs := loadReal(t)
	if len(recs) != 241 {
		t.Fatalf("got %d records, want 241", len(recs))
	}
	if got, want := recs[0], (Record{"ABW", "Aruba", "Aruba", "Aruba", "AW", "Aruban florin",
		"Latin America & Caribbean", "AW", "2010"}); got != want {
		t.Errorf("first record = %+v, want %+v", got, want)
	}

	// Spot checks, byte for byte: quoted commas, empty fields, non-ASCII.
	tests := []struct {
		code  string
		field int
		want  string
	}{
		{"BHS", 2, "Bahamas, The"},
		{"HKG", 1, "Hong Kong SAR, China"},
		{"HKG", 8, "2011. The population censuses for 1986 and 1996 were based on a one-in-seven sample of the population, while that for 2006 was based on a one-in-ten sample of the population."},
		{"ARB", 5, ""},
		{"ARB", 6, ""},
		{"ARB", 8, ""},
		{"CHI", 4, ""},
		{"CUW", 3, "Cura\xcc\xa4ao"},
		{"CUW", 8, ""},
		{"CIV", 1, "Co\xabte d'Ivoire"},
		{"CIV", 2, "Co\xabte d'Ivoire"},
		{"CIV", 3, "Republic of C\xcc\xabte d'Ivoire"},
	}
	for _, tt := range tests {
		got := findRecord(t, recs, tt.code).Fields()[tt.field]
		if got != tt.want {
			t.Errorf("%s %s = %q, want %q", tt.code, Headers[tt.field], got, tt.want)
		}
	}

	civ := findRecord(t, recs, "CIV")
	if !strings.Contains(civ.ShortName, "\xab") || utf8.ValidString(civ.ShortName) {
		t.Errorf("CIV Short Name %q lost its lone 0xAB byte", civ.ShortName)
	}

	var invalidLong, nonASCIILong, invalidFields int
	for _, r := range recs {
		if !utf8.ValidString(r.LongName) {
			invalidLong++
		}
		if utf8.RuneCountInString(r.LongName) != len(r.LongName) {
			nonASCIILong++
		}
		for _, f := range r.Fields() {
			if !utf8.ValidString(f) {
				invalidFields++
			}
		}
	}
	if invalidLong != 0 || nonASCIILong != 4 {
		t.Errorf("Long Names: %d invalid UTF-8, %d non-ASCII; want 0 and 4", invalidLong, nonASCIILong)
	}
	if invalidFields != 2 {
		t.Errorf("%d fields are not valid UTF-8, want 2 (CIV Short and Table Name)", invalidFields)
	}
}

// TestRealBytesExact rebuilds each line of the file from the parsed fields,
// quoting as the file does, and checks it is the file's line byte for byte.
func TestRealBytesExact(t *testing.T) {
	data := readReal(t)
	recs := loadReal(t)
	lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	if len(lines) != len(recs)+1 {
		t.Fatalf("%d lines for %d records", len(lines), len(recs))
	}
	if lines[0] != strings.Join(Headers[:], ",") {
		t.Errorf("header line = %q", lines[0])
	}
	for i, r := range recs {
		var b strings.Builder
		for j, f := range r.Fields() {
			if j > 0 {
				b.WriteByte(',')
			}
			if strings.ContainsAny(f, ",\"\n") {
				b.WriteString(`"` + strings.ReplaceAll(f, `"`, `""`) + `"`)
			} else {
				b.WriteString(f)
			}
		}
		if got := b.String(); got != lines[i+1] {
			t.Errorf("line %d:\n got %q\nwant %q", i+2, got, lines[i+1])
		}
	}
}

func TestLineEndVariants(t *testing.T) {
	lf := readReal(t)
	if bytes.IndexByte(lf, '\r') >= 0 || !bytes.HasSuffix(lf, []byte("\n")) {
		t.Fatal("the real file is expected to use LF line ends and end with one")
	}
	want, err := parse(bytes.NewReader(lf))
	if err != nil {
		t.Fatal(err)
	}
	noFinal := bytes.TrimSuffix(lf, []byte("\n"))
	crlf := bytes.ReplaceAll(lf, []byte("\n"), []byte("\r\n"))
	cr := bytes.ReplaceAll(lf, []byte("\n"), []byte("\r"))
	tests := []struct {
		name string
		data []byte
	}{
		{"LF", lf},
		{"LF no final newline", noFinal},
		{"CRLF", crlf},
		{"CRLF no final newline", bytes.TrimSuffix(crlf, []byte("\r\n"))},
		{"CR", cr},
		{"CR no final newline", bytes.TrimSuffix(cr, []byte("\r"))},
		{"mixed", bytes.Replace(bytes.Replace(lf, []byte("\n"), []byte("\r"), 50), []byte("\n"), []byte("\r\n"), 50)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parse(bytes.NewReader(tt.data))
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 241 || !reflect.DeepEqual(got, want) {
				t.Errorf("%d records, not equal to the LF load", len(got))
			}
		})
	}
}

func TestNormaliseLineEnds(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"a\nb", "a\nb"},
		{"a\r\nb\r\n", "a\nb\n"},
		{"a\rb\r", "a\nb\n"},
		{"a\r\r\nb", "a\n\nb"},
		{"\r\n\r", "\n\n"},
		{"\xab\r\xcc\xab", "\xab\n\xcc\xab"},
	}
	for _, tt := range tests {
		if got := string(normaliseLineEnds([]byte(tt.in))); got != tt.want {
			t.Errorf("normaliseLineEnds(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestSlotHistogram(t *testing.T) {
	recs := loadReal(t)
	var depth [TableSize]int
	for _, r := range recs {
		depth[r.Pos()]++
	}
	shared, deepest := 0, 0
	for _, d := range depth {
		if d > 1 {
			shared++
		}
		deepest = max(deepest, d)
	}
	if shared != 49 || deepest != 5 {
		t.Errorf("%d slots hold more than one record, max depth %d; want 49 and 5", shared, deepest)
	}
}

func TestLoadFixtures(t *testing.T) {
	tests := []struct {
		file    string
		n       int    // records, when valid
		wantErr error  // sentinel, when invalid
		msg     string // part of the error message
	}{
		{file: "valid.csv", n: 4},
		{file: "wrong_header.csv", wantErr: ErrHeader, msg: `testdata/wrong_header.csv: line 1: wrong header: header is "Name,Age,City"`},
		{file: "short_row.csv", wantErr: ErrFieldCount, msg: "line 3: wrong number of fields: 8, want 9"},
		{file: "duplicate_long_name.csv", wantErr: ErrDuplicate, msg: `line 4: duplicate Long Name "Aruba" (first on line 2)`},
		{file: "empty.csv", wantErr: ErrNoHeader, msg: "no header row"},
		{file: "header_only.csv", wantErr: ErrNoRecords, msg: "no records"},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			recs, err := Load(filepath.Join("testdata", tt.file))
			if tt.wantErr == nil {
				if err != nil {
					t.Fatal(err)
				}
				if len(recs) != tt.n {
					t.Errorf("got %d records, want %d", len(recs), tt.n)
				}
				return
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if !strings.HasPrefix(err.Error(), "dataset: ") || !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("err = %q, want it to contain %q", err, tt.msg)
			}
			if recs != nil {
				t.Errorf("got %d records with an error", len(recs))
			}
		})
	}
}

func TestValidFixture(t *testing.T) {
	recs, err := Load("testdata/valid.csv")
	if err != nil {
		t.Fatal(err)
	}
	want := []Record{
		{"ABW", "Aruba", "Aruba", "Aruba", "AW", "Aruban florin", "Latin America & Caribbean", "AW", "2010"},
		{"ARB", "Arab World", "Arab World", "Arab World", "1A", "", "", "1A", ""},
		{"BHS", "The Bahamas", "Bahamas, The", "Commonwealth of The Bahamas", "BS", "Bahamian dollar", "Latin America & Caribbean", "BS", "2010"},
		{"CHI", "Channel Islands", "Channel Islands", "Channel Islands", "", "Pound sterling", "Europe & Central Asia", "JG", "Guernsey: 2009; Jersey: 2011."},
	}
	if !reflect.DeepEqual(recs, want) {
		t.Errorf("got  %q\nwant %q", recs, want)
	}
}

func TestParseErrors(t *testing.T) {
	row := func(long string) string {
		return "AAA,Short,Table," + long + ",AA,Money,Region,AA,2000\n"
	}
	tests := []struct {
		name    string
		in      string
		wantErr error // sentinel, or nil if only the message is checked
		msg     string
	}{
		{"header with a tenth column", strings.TrimSuffix(header, "\n") + ",Extra\n" + row("X"), ErrHeader, "line 1: wrong header"},
		{"a binary file", "\x7fELF\x02\x01\x01\x00\x00", ErrBinary, "line 1: not a CSV text file: it holds a NUL byte (a binary file?)"},
		{"a NUL first", "\x00" + header + row("X"), ErrBinary, "line 1: not a CSV text file: it holds a NUL byte"},
		{"a NUL after a byte-order mark", "\xef\xbb\xbf\x00" + header + row("X"), ErrBinary, "line 1: not a CSV text file: it holds a NUL byte"},
		{"a NUL in a record", header + row("X") + "A\x00B," + strings.TrimPrefix(row("Y"), "Y,"), ErrBinary, "line 3: not a CSV text file: it holds a NUL byte"},
		{"header of one column, said", "Country Code\n" + row("X"), ErrHeader, "1 column, want the 9 StatsCountry.csv headers Country Code,Short Name,"},
		{"header with a tenth column, said", strings.TrimSuffix(header, "\n") + ",Extra\n" + row("X"), ErrHeader, "10 columns, want the 9 StatsCountry.csv headers Country Code,Short Name,"},
		{"header in another order", "Short Name,Country Code,Table Name,Long Name,2-Alpha Code,Currency Unit,Region,WB-2 Code,Latest Population Census\n" + row("X"), ErrHeader, `line 1: wrong header: header is "Short Name,Country Code,`},
		{"header in another order, said", "Short Name,Country Code,Table Name,Long Name,2-Alpha Code,Currency Unit,Region,WB-2 Code,Latest Population Census\n" + row("X"), ErrHeader, `column 1 is "Short Name", want "Country Code"`},
		{"header in lower case", strings.ToLower(header) + row("X"), ErrHeader, `column 1 is "country code", want "Country Code"`},
		{"header with trailing space", strings.Replace(header, "Census", "Census ", 1) + row("X"), ErrHeader, `column 9 is "Latest Population Census ", want "Latest Population Census"`},
		{"long row", header + row("X") + "A,B,C,D,E,F,G,H,I,J\n", ErrFieldCount, "line 3: wrong number of fields: 10, want 9"},
		{"one-field row", header + row("X") + "lonely\n", ErrFieldCount, "line 3: wrong number of fields: 1"},
		{"empty Long Name", header + row("X") + row(""), ErrEmptyLongName, "line 3: empty Long Name"},
		// A query line is trimmed and ends at a line break: such a record
		// could be stored and never found.
		{"Long Name with a trailing space", header + row("X") + row("Aruba "), ErrUntypable, `line 3: Long Name that no query can be typed with: "Aruba " starts or ends with white space (a query takes the rest of one line, trimmed)`},
		{"Long Name with a leading tab", header + row("\tAruba"), ErrUntypable, `line 2: Long Name that no query can be typed with: "\tAruba" starts or ends with white space (a query takes the rest of one line, trimmed)`},
		{"Long Name on two lines", header + row("X") + "A,B,T,\"two\nlines\",AA,M,R,AA,1\n", ErrUntypable, `line 3: Long Name that no query can be typed with: "two\nlines" holds a line break (a query takes the rest of one line, trimmed)`},
		// A query's answer prints a field a line (SPEC §5): one on two
		// lines would print a line that is neither a result nor a field (a
		// new-user review), and CRLF in it came out as LF.
		{"Short Name on two lines", header + row("X") + "A,\"multi\nline\",T,L,AA,M,R,AA,1\n", ErrLineBreak, `line 3: field with a line break: "Short Name" is "multi\nline" (a query's answer prints each field on one line)`},
		{"Region with CRLF", header + "A,B,T,L,AA,M,\"x\r\ny\",AA,1\r\n", ErrLineBreak, `line 2: field with a line break: "Region" is "x\ny"`},
		{"Census with a bare CR", header + "A,B,T,L,AA,M,R,AA,\"19\r90\"\n", ErrLineBreak, `"Latest Population Census" is "19\n90"`},
		{"field too long", header + row(strings.Repeat("x", MaxField+1)), ErrFieldTooLong, `line 2: field too long: "Long Name" is 1025 bytes, max 1024`},
		// Nine fields of 200 bytes each pass the field check; encoded, with
		// the Long Name again, they are 9*202 + 202 = 2,020 bytes.
		{"record that cannot fit one datagram", header + row("X") + strings.Repeat(strings.Repeat("f", 200)+",", NumFields-1) + strings.Repeat("L", 200) + "\n",
			ErrRecordTooLong, "line 3: record too long for one datagram: it is 2,020 bytes encoded, more than the 1,414 that fit"},
		{"record one byte over", header + rowOfLen(MaxEncodedLen+1).line,
			ErrRecordTooLong, "line 2: record too long for one datagram: it is 1,415 bytes encoded, more than the 1,414"},
		{"a field on two lines before a duplicate", header + row("X") + "A,\"two\nlines\",T,Y,AA,M,R,AA,1\n" + row("Y") + row("Y"), ErrLineBreak, `line 3: field with a line break: "Short Name"`},
		{"duplicate in a CR file", strings.ReplaceAll(header+row("X")+row("Z")+row("X"), "\n", "\r"), ErrDuplicate, "line 4: duplicate Long Name \"X\" (first on line 2)"},
		{"duplicate in a CRLF file", strings.ReplaceAll(header+row("X")+row("X"), "\n", "\r\n"), ErrDuplicate, "line 3: duplicate Long Name \"X\" (first on line 2)"},
		// Said as every other check says it (it was encoding/csv's "parse
		// error on line 3, column 4: …").
		{"bare quote", header + row("X") + "A,B\"C,T,L,AA,M,R,AA,1\n", nil, `line 3, column 4: bare " in non-quoted-field`},
		{"unterminated quote", header + row("X") + "A,\"B,T,L,AA,M,R,AA,1\n", nil, "line 3, column "},
		{"only blank lines", "\n\n\r\n", ErrNoHeader, "no header row: the input is empty or blank"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			recs, err := parse(strings.NewReader(tt.in))
			if err == nil {
				t.Fatalf("no error, %d records", len(recs))
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("err = %v, want %v", err, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.msg) || strings.Contains(err.Error(), "parse error") {
				t.Errorf("err = %q, want it to contain %q, as a check of ours says it", err, tt.msg)
			}
		})
	}
}

// rowOfLen is a CSV line, and its record, of n bytes encoded (n at least
// 29, at most 29+2*MaxField): the padding goes in Short Name and Region.
func rowOfLen(n int) (r struct {
	line string
	rec  Record
}) {
	f := Record{"A", "", "C", "L", "AA", "M", "", "AA", "1"}.Fields()
	pad := n - encodedLen(f[:])
	r.rec = Record{"A", strings.Repeat("s", pad/2), "C", "L", "AA", "M", strings.Repeat("r", pad-pad/2), "AA", "1"}
	f = r.rec.Fields()
	r.line = strings.Join(f[:], ",") + "\n"
	return r
}

func TestParseAccepts(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want Record
	}{
		{"field of exactly MaxField bytes", header + "A," + strings.Repeat("S", MaxField) + ",C,L,AA,M,R,AA,1\n",
			Record{"A", strings.Repeat("S", MaxField), "C", "L", "AA", "M", "R", "AA", "1"}},
		{"record of exactly MaxEncodedLen bytes", header + rowOfLen(MaxEncodedLen).line, rowOfLen(MaxEncodedLen).rec},
		{"quoted field with quotes and a comma", header + "A,\"say \"\"hi\"\", there\",C,L,AA,M,R,AA,1\n",
			Record{"A", "say \"hi\", there", "C", "L", "AA", "M", "R", "AA", "1"}},
		{"leading spaces and invalid UTF-8 kept", header + " A,\xff\xfe, C ,\xabL\xab,AA,M,R,AA, 1 \n",
			Record{" A", "\xff\xfe", " C ", "\xabL\xab", "AA", "M", "R", "AA", " 1 "}},
		{"blank lines skipped", "\n" + header + "\nA,B,C,L,AA,M,R,AA,1\n\n",
			Record{"A", "B", "C", "L", "AA", "M", "R", "AA", "1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			recs, err := parse(strings.NewReader(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			if len(recs) != 1 || recs[0] != tt.want {
				t.Errorf("got %q, want [%q]", recs, tt.want)
			}
		})
	}
}

func TestLoadMissing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nope.csv")
	_, err := Load(path)
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("err = %v, want fs.ErrNotExist", err)
	}
	if want := "dataset: open " + path + ": "; !strings.HasPrefix(err.Error(), want) {
		t.Errorf("err = %q, want prefix %q", err, want)
	}
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errors.New("disk on fire") }

func TestParseReadError(t *testing.T) {
	_, err := parse(failingReader{})
	if err == nil || !strings.Contains(err.Error(), "read: disk on fire") {
		t.Errorf("err = %v", err)
	}
}

func BenchmarkParse(b *testing.B) {
	data := readReal(b)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := parse(bytes.NewReader(data)); err != nil {
			b.Fatal(err)
		}
	}
}

// A copy saved with a UTF-8 byte-order mark loads like the original.
func TestParseByteOrderMark(t *testing.T) {
	raw, err := os.ReadFile(realPath)
	if err != nil {
		t.Fatal(err)
	}
	want, err := parse(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	got, err := parse(bytes.NewReader(append([]byte("\xef\xbb\xbf"), raw...)))
	if err != nil {
		t.Fatalf("with a BOM: %v", err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatal("a BOM changed the records")
	}
}

// A Loader reads its file every time but parses only bytes it has not
// parsed: the same file gives the same records (the same slice, not parsed
// again), a changed file its new records, a broken one its error, and the
// embedded dataset is parsed once.
func TestLoaderParsesOnlyChangedBytes(t *testing.T) {
	raw, err := os.ReadFile(realPath)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "data.csv")
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	l := &Loader{Path: path}
	first, name, err := l.Load()
	if err != nil || len(first) != 241 || name != path {
		t.Fatalf("first load: %d records, %q, %v", len(first), name, err)
	}
	again, _, err := l.Load()
	if err != nil || &again[0] != &first[0] {
		t.Fatalf("the same file was parsed again (%v)", err)
	}
	changed := bytes.Replace(raw, []byte("Aruba"), []byte("Arubb"), 1)
	if err := os.WriteFile(path, changed, 0o600); err != nil {
		t.Fatal(err)
	}
	recs, _, err := l.Load()
	if err != nil || &recs[0] == &first[0] || !slices.ContainsFunc(recs, func(r Record) bool { return r.ShortName == "Arubb" }) {
		t.Fatalf("a changed file did not give its new records (%v)", err)
	}
	if err := os.WriteFile(path, []byte("not,a,dataset\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := l.Load(); err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("a broken file loaded: %v", err)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if _, _, err := l.Load(); err == nil {
		t.Fatal("a missing file loaded")
	}
	var e Loader
	a, name, err := e.Load()
	b, _, err2 := e.Load()
	if err != nil || err2 != nil || name != EmbeddedName || len(a) != 241 || &a[0] != &b[0] {
		t.Fatalf("embedded: %d records, %q, %v %v; parsed once: %v", len(a), name, err, err2, len(b) > 0 && &a[0] == &b[0])
	}
}

// zeros is an input that never ends, as --data /dev/zero.
type zeros struct{ n int64 }

func (z *zeros) Read(b []byte) (int, error) {
	clear(b)
	z.n += int64(len(b))
	return len(b), nil
}

// An input larger than MaxFile, or one that never ends, is refused once
// MaxFile bytes are read, by every way a dataset is loaded; one of
// MaxFile bytes is read (and refused for what it holds).
func TestDatasetTooLarge(t *testing.T) {
	z := &zeros{}
	if _, err := parse(z); !errors.Is(err, ErrTooLarge) {
		t.Errorf("parse of an endless input: %v, want ErrTooLarge", err)
	}
	if z.n > 2*MaxFile {
		t.Errorf("parse read %d bytes of an endless input", z.n)
	}
	dir := t.TempDir()
	big, atMost := filepath.Join(dir, "big.csv"), filepath.Join(dir, "atmost.csv")
	if err := os.WriteFile(big, make([]byte, MaxFile+1), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(atMost, make([]byte, MaxFile), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(big); !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), big) {
		t.Errorf("Load: %v, want ErrTooLarge naming the file", err)
	}
	if _, _, err := (&Loader{Path: big}).Load(); !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), big) {
		t.Errorf("Loader.Load: %v, want ErrTooLarge naming the file", err)
	}
	if _, err := Load(atMost); err == nil || errors.Is(err, ErrTooLarge) {
		t.Errorf("Load of %d zero bytes: %v, want a refusal of what it holds", MaxFile, err)
	}
}
