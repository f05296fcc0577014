package store

import (
	"path/filepath"
	"testing"

	"dht/app/state"
)

// BenchmarkApply241 stores a whole dataset's worth of records in one batch,
// as a leader does when it keeps its share, on a freshly cleared table.
func BenchmarkApply241(b *testing.B) { benchmarkApply(b, 241) }

// BenchmarkApply30 is one node's share of a setup of 8 (about 30 records),
// written as its stores' commit: the table cleared, the place and the
// records.
func BenchmarkApply30(b *testing.B) { benchmarkApply(b, 30) }

func benchmarkApply(b *testing.B, n int) {
	db, err := OpenPeer(filepath.Join(b.TempDir(), "peer.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	recs := synthetic(n, 1)
	id := sampleIdentity()
	b.ReportAllocs()
	for b.Loop() {
		if err := db.Apply(state.Batch{Identity: &id, Clear: true, Put: recs}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkLoad(b *testing.B) {
	db, err := OpenPeer(filepath.Join(b.TempDir(), "peer.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	id := sampleIdentity()
	if err := db.Apply(state.Batch{Identity: &id, Put: synthetic(241, 1)}); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, recs, err := db.Load(); err != nil || len(recs) != 241 {
			b.Fatal(len(recs), err)
		}
	}
}

// BenchmarkLookup is the owner's read when a query reaches it: one record
// from a file holding one node's share of 100,000 records over 16 nodes.
func BenchmarkLookup(b *testing.B) {
	db, err := OpenPeer(filepath.Join(b.TempDir(), "peer.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	recs := synthetic(6250, 1)
	id := sampleIdentity()
	if err := db.Apply(state.Batch{Identity: &id, Put: recs}); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		r := recs[i%len(recs)]
		if got, ok, err := db.Lookup(r.LongName); err != nil || !ok || got != r {
			b.Fatal(r.LongName, ok, err)
		}
		i += 7919
	}
}
