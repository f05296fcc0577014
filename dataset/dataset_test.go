package dataset

import "testing"

func TestPos(t *testing.T) {
	tests := []struct {
		name, in string
		want     int
	}{
		{"Aruba", "Aruba", 138}, // 65+114+117+98+97 = 491
		{"empty", "", 0},
		{"one byte", "a", 97},
		{"wraps", string([]byte{255, 255}), 510 - TableSize},
		// Bytes, not runes: U+032B is the two bytes 0xCC 0xAB.
		{"combining mark", "C\u032bte", (67 + 0xcc + 0xab + 116 + 101) % TableSize},
		{"invalid UTF-8", "\xab", 0xab},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Pos(tt.in); got != tt.want {
				t.Errorf("Pos(%q) = %d, want %d", tt.in, got, tt.want)
			}
			if got := (Record{LongName: tt.in}).Pos(); got != tt.want {
				t.Errorf("Record.Pos() of %q = %d, want %d", tt.in, got, tt.want)
			}
		})
	}
}

func TestID(t *testing.T) {
	tests := []struct{ pos, n, want int }{
		{138, 3, 0},
		{138, 1, 0},
		{138, 5, 3},
		{0, 7, 0},
		{352, 353, 352},
		{352, 400, 352},
	}
	for _, tt := range tests {
		if got := ID(tt.pos, tt.n); got != tt.want {
			t.Errorf("ID(%d, %d) = %d, want %d", tt.pos, tt.n, got, tt.want)
		}
	}
}

func TestIDPanicsOnEmptyRing(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("ID(1, 0) did not panic")
		}
	}()
	ID(1, 0)
}

func TestFieldsRoundTrip(t *testing.T) {
	f := [NumFields]string{"a", "b", "c", "d", "e", "f", "g", "h", "i"}
	r := FromFields(f)
	want := Record{CountryCode: "a", ShortName: "b", TableName: "c", LongName: "d", Alpha2: "e",
		Currency: "f", Region: "g", WB2: "h", Census: "i"}
	if r != want {
		t.Errorf("FromFields = %+v, want %+v", r, want)
	}
	if r.Fields() != f {
		t.Errorf("Fields() = %q, want %q", r.Fields(), f)
	}
}

func BenchmarkPos(b *testing.B) {
	name := "Hong Kong Special Administrative Region of the People's Republic of China"
	b.SetBytes(int64(len(name)))
	for b.Loop() {
		Pos(name)
	}
}
