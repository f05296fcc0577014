package dataset

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// FuzzParse checks that Parse never panics, that what it accepts obeys the
// record rules, and that the line ends of a copy change nothing, not even an
// error message.
func FuzzParse(f *testing.F) {
	fixtures, err := filepath.Glob("testdata/*.csv")
	if err != nil || len(fixtures) == 0 {
		f.Fatalf("no fixtures: %v", err)
	}
	for _, name := range fixtures {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		recs, err := parse(bytes.NewReader(data))
		if err != nil {
			if recs != nil {
				t.Fatalf("%d records with error %v", len(recs), err)
			}
		} else {
			checkRecords(t, recs)
		}

		// With LF line ends only, converting to CRLF or CR must give the same result.
		lf := normaliseLineEnds(data)
		want, wantErr := parse(bytes.NewReader(lf))
		for _, end := range []string{"\r\n", "\r"} {
			other := bytes.ReplaceAll(lf, []byte("\n"), []byte(end))
			got, gotErr := parse(bytes.NewReader(other))
			if errString(gotErr) != errString(wantErr) || !reflect.DeepEqual(got, want) {
				t.Fatalf("line ends %q: got %q, %v; LF gave %q, %v", end, got, gotErr, want, wantErr)
			}
		}
	})
}

func checkRecords(t *testing.T, recs []Record) {
	t.Helper()
	if len(recs) == 0 {
		t.Fatal("no records and no error")
	}
	seen := make(map[string]bool, len(recs))
	for i, r := range recs {
		fields := r.Fields()
		if len(fields) != NumFields || FromFields(fields) != r {
			t.Fatalf("record %d: fields %q do not round-trip", i, fields)
		}
		for j, f := range fields {
			if len(f) > MaxField {
				t.Fatalf("record %d: %s is %d bytes", i, Headers[j], len(f))
			}
		}
		if n := encodedLen(fields[:]); n > MaxEncodedLen {
			t.Fatalf("record %d: %d bytes encoded, more than %d", i, n, MaxEncodedLen)
		}
		if r.LongName == "" {
			t.Fatalf("record %d: empty Long Name", i)
		}
		if why := untypable(r.LongName); why != "" {
			t.Fatalf("record %d: Long Name %q %s", i, r.LongName, why)
		}
		if seen[r.LongName] {
			t.Fatalf("record %d: duplicate Long Name %q", i, r.LongName)
		}
		seen[r.LongName] = true
		if p := r.Pos(); p < 0 || p >= TableSize {
			t.Fatalf("record %d: Pos %d out of range", i, p)
		}
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
