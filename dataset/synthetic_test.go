package dataset

import (
	"slices"
	"testing"
)

// records lists every record of src.
func records(src Source) []Record {
	recs := make([]Record, src.Len())
	for i := range recs {
		recs[i] = src.Record(i)
	}
	return recs
}

func TestSynthetic(t *testing.T) {
	tests := []struct {
		n    int
		seed uint64
	}{
		{0, 1},
		{1, 1},
		{241, 7},
		{10000, 42},
	}
	for _, tt := range tests {
		src := SyntheticSource{N: tt.n, Seed: tt.seed}
		if src.Len() != tt.n {
			t.Fatalf("SyntheticSource{%d, %d} has Len %d", tt.n, tt.seed, src.Len())
		}
		recs := records(src)
		if again := records(src); !slices.Equal(recs, again) {
			t.Errorf("SyntheticSource{%d, %d} is not deterministic", tt.n, tt.seed)
		}
		seen := make(map[string]bool, tt.n)
		for i, r := range recs {
			total := 0
			for j, f := range r.Fields() {
				if len(f) > MaxField {
					t.Errorf("record %d: %s is %d bytes", i, Headers[j], len(f))
				}
				total += len(f)
			}
			if total >= 600 {
				t.Errorf("record %d: fields total %d bytes, want under 600", i, total)
			}
			if r.LongName == "" || seen[r.LongName] {
				t.Errorf("record %d: Long Name %q empty or repeated", i, r.LongName)
			}
			seen[r.LongName] = true
		}
	}
	if a, b := records(SyntheticSource{N: 50, Seed: 1}), records(SyntheticSource{N: 50, Seed: 2}); slices.Equal(a, b) {
		t.Error("seeds 1 and 2 gave the same records")
	}
}

// A synthetic record depends on its index and the seed only: made on its
// own, in any order, it is the record made at that index in a walk of the
// whole source.
func TestSyntheticSourceByIndex(t *testing.T) {
	src := SyntheticSource{N: 1000, Seed: 9}
	all := records(src)
	for _, i := range []int{999, 0, 517, 3, 517} {
		if got := src.Record(i); got != all[i] {
			t.Fatalf("Record(%d) = %+v, the walk made %+v", i, got, all[i])
		}
	}
	var r Source = Records(all)
	if r.Len() != 1000 || r.Record(42) != all[42] {
		t.Fatal("Records does not serve the slice")
	}
}
