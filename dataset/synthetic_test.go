package dataset

import (
	"reflect"
	"testing"
)

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
		recs := Synthetic(tt.n, tt.seed)
		if len(recs) != tt.n {
			t.Fatalf("Synthetic(%d, %d) gave %d records", tt.n, tt.seed, len(recs))
		}
		if again := Synthetic(tt.n, tt.seed); !reflect.DeepEqual(recs, again) {
			t.Errorf("Synthetic(%d, %d) is not deterministic", tt.n, tt.seed)
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
	if a, b := Synthetic(50, 1), Synthetic(50, 2); reflect.DeepEqual(a, b) {
		t.Error("seeds 1 and 2 gave the same records")
	}
	if got := Synthetic(-3, 1); len(got) != 0 {
		t.Errorf("Synthetic(-3, 1) gave %d records", len(got))
	}
}

// A synthetic record depends on its index and the seed only: made on its
// own, in any order, it is the record Synthetic lists at that index.
func TestSyntheticSourceByIndex(t *testing.T) {
	all := Synthetic(1000, 9)
	src := SyntheticSource{N: 1000, Seed: 9}
	if src.Len() != 1000 {
		t.Fatalf("Len %d", src.Len())
	}
	for _, i := range []int{999, 0, 517, 3, 517} {
		if got := src.Record(i); got != all[i] {
			t.Fatalf("Record(%d) = %+v, Synthetic lists %+v", i, got, all[i])
		}
	}
	var r Source = Records(all)
	if r.Len() != 1000 || r.Record(42) != all[42] {
		t.Fatal("Records does not serve the slice")
	}
}
