package wire

import "testing"

// benchStore is a typical populate datagram: four records of
// StatsCountry.csv.
var benchStore = Store{N: 5, Records: []Record{
	{"AND", "Andorra", "Andorra", "Principality of Andorra", "AD", "Euro", "Europe & Central Asia", "AD",
		"2011. Population figures compiled from administrative registers."},
	{"ARG", "Argentina", "Argentina", "Argentine Republic", "AR", "Argentine peso", "Latin America & Caribbean", "AR", "2010"},
	{"CIV", "Côte d'Ivoire", "Côte d'Ivoire", "Republic of Côte d'Ivoire", "CI", "West African CFA franc", "Sub-Saharan Africa", "CI", "1998"},
	{"ARE", "United Arab Emirates", "United Arab Emirates", "United Arab Emirates", "AE", "U.A.E. dirham",
		"Middle East & North Africa", "AE", "2010"},
}}

func BenchmarkAppendStore(b *testing.B) {
	var m Message = benchStore // box once: the runner holds a Message already
	buf := make([]byte, 0, MaxDatagram)
	b.ReportAllocs()
	b.SetBytes(int64(EncodedLen(m)))
	for b.Loop() {
		var err error
		if buf, err = Append(buf[:0], 1, 0, m); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecode(b *testing.B) {
	d, err := Append(nil, 1, 0, benchStore)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(d)))
	for b.Loop() {
		if _, _, err := Decode(d); err != nil {
			b.Fatal(err)
		}
	}
}

// A small control message, where the per-message cost of dispatching to its
// codec shows.
var benchFlush = Flush{Leader: "alice", N: 5}

func BenchmarkAppendFlush(b *testing.B) {
	var m Message = benchFlush
	buf := make([]byte, 0, MaxDatagram)
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if buf, err = Append(buf[:0], 1, 0, m); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeFlush(b *testing.B) {
	d, err := Append(nil, 1, 0, benchFlush)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := Decode(d); err != nil {
			b.Fatal(err)
		}
	}
}

// Append allocates nothing when b has room; Decode allocates the copy of
// the body, the message's interface value and each list it holds, and
// nothing else.
func TestAllocations(t *testing.T) {
	for _, g := range goldens {
		t.Run(g.name, func(t *testing.T) {
			var m Message = g.msg // box once: the runner holds a Message already
			buf := make([]byte, 0, MaxDatagram)
			if n := testing.AllocsPerRun(100, func() { _, _ = Append(buf[:0], g.id, g.flags, m) }); n != 0 {
				t.Errorf("Append: %v allocations, want 0", n)
			}
			b := unhex(t, g.hex)
			want := 2.0 // the body and the interface value
			switch m := g.msg.(type) {
			case Reply:
				if len(m.Members) > 0 {
					want++
				}
				if len(m.Tickets) > 0 {
					want++
				}
			case Heal:
				if len(m.Members) > 0 {
					want++
				}
				if len(m.Tickets) > 0 {
					want++
				}
			case Store:
				if len(m.Records) > 0 {
					want++
				}
			case Flush:
				if len(m.After) > 0 {
					want++
				}
			case Ack:
				if len(m.More) > 0 {
					want++
				} else {
					want-- // a nil list boxes for free
				}
			}
			if n := testing.AllocsPerRun(100, func() { _, _, _ = Decode(b) }); n != want {
				t.Errorf("Decode: %v allocations, want %v", n, want)
			}
		})
	}
}

// BenchmarkVerifyManyKeys is a ring node checking queries from 16
// queriers in turn: each query signed with its querier's token.
func BenchmarkVerifyManyKeys(b *testing.B) {
	const keys = 16
	hs := make([]Header, keys)
	for i := range hs {
		d, err := AppendSigned(nil, uint32(i), FlagNoAck, Query{ReqID: 7, Querier: bob, LongName: "Republic of Albania"}, 3, Key{byte(i), 1})
		if err != nil {
			b.Fatal(err)
		}
		if hs[i], _, err = Decode(d); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if !Verify(Key{byte(i), 1}, hs[i]) {
			b.Fatal("refused")
		}
		i = (i + 1) % keys
	}
}
