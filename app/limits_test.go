package app

import (
	"bytes"
	"encoding/csv"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"dht/dataset"
	"dht/wire"
)

// recordOfLen is a record that takes n bytes in a query's answer (each
// field as a 2-byte length and its bytes, and the Long Name once more: what
// dataset.MaxEncodedLen bounds) whose Long Name is longName; the padding
// goes in Short Name and Table Name.
func recordOfLen(t *testing.T, n int, longName string) dataset.Record {
	t.Helper()
	r := dataset.Record{CountryCode: "A", LongName: longName}
	size := 2 + len(longName)
	for _, f := range r.Fields() {
		size += 2 + len(f)
	}
	pad := n - size
	if pad < 0 || pad > 2*dataset.MaxField {
		t.Fatalf("no record of %d bytes with a Long Name of %d", n, len(longName))
	}
	r.ShortName, r.TableName = strings.Repeat("s", pad/2), strings.Repeat("t", pad-pad/2)
	return r
}

// loadRecord writes a dataset file holding only r and loads it.
func loadRecord(t *testing.T, r dataset.Record) error {
	t.Helper()
	var b bytes.Buffer
	w := csv.NewWriter(&b)
	f := r.Fields()
	if err := errors.Join(w.Write(dataset.Headers[:]), w.Write(f[:])); err != nil {
		t.Fatal(err)
	}
	w.Flush()
	path := filepath.Join(t.TempDir(), "one.csv")
	if err := os.WriteFile(path, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := dataset.Load(path)
	return err
}

// dataset restates wire's limits (wire imports nothing of ours): a record
// dataset.Load accepts, of MaxEncodedLen bytes, fits one datagram both in a
// store and in the largest query answer a ring can send (a node name of
// MaxNameLen letters); a byte more and Load refuses it, and the answer
// cannot be encoded.
func TestDatasetRecordLimitFitsOneDatagram(t *testing.T) {
	if dataset.MaxDatagram != wire.MaxMessage || dataset.MaxField != wire.MaxField || dataset.NumFields != wire.NumFields {
		t.Fatalf("dataset's MaxDatagram %d, MaxField %d, NumFields %d; wire's %d, %d, %d",
			dataset.MaxDatagram, dataset.MaxField, dataset.NumFields, wire.MaxMessage, wire.MaxField, wire.NumFields)
	}
	answer := func(r dataset.Record) wire.QueryResult {
		return wire.QueryResult{ReqID: 1<<32 - 1, Found: true, Node: strings.Repeat("n", MaxNameLen), NodeID: MaxRing - 1,
			Hops: 1<<16 - 1, LongName: r.LongName, Record: r.Fields()}
	}
	for _, longLen := range []int{1, 300, 600} {
		r := recordOfLen(t, dataset.MaxEncodedLen, strings.Repeat("L", longLen))
		if err := loadRecord(t, r); err != nil {
			t.Fatalf("Long Name of %d: a record of MaxEncodedLen bytes refused: %v", longLen, err)
		}
		b, err := wire.AppendSigned(nil, 1, 0, answer(r), 1, wire.Key{1})
		if err != nil || len(b) != wire.MaxDatagram {
			t.Fatalf("Long Name of %d: the answer is %d bytes, %v; want exactly %d", longLen, len(b), err, wire.MaxDatagram)
		}
		if _, err := wire.Append(nil, 1, 0, wire.Store{N: MaxRing, Records: []wire.Record{r.Fields()}}); err != nil {
			t.Fatalf("Long Name of %d: the store: %v", longLen, err)
		}
		if _, err := wire.Append(nil, 1, wire.FlagNoAck, wire.Query{ReqID: 1, Querier: wire.Member{Name: strings.Repeat("q", MaxNameLen), Addr: netip.MustParseAddrPort("10.0.0.1:5000")}, LongName: r.LongName}); err != nil {
			t.Fatalf("Long Name of %d: the query: %v", longLen, err)
		}
		over := recordOfLen(t, dataset.MaxEncodedLen+1, r.LongName)
		if err := loadRecord(t, over); !errors.Is(err, dataset.ErrRecordTooLong) {
			t.Fatalf("Long Name of %d: a record a byte over the limit: %v, want %v", longLen, err, dataset.ErrRecordTooLong)
		}
		if _, err := wire.Append(nil, 1, 0, answer(over)); !errors.Is(err, wire.ErrTooLong) {
			t.Fatalf("Long Name of %d: an answer a byte over the limit: %v, want %v", longLen, err, wire.ErrTooLong)
		}
	}
}
