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

func BenchmarkDecodeStore(b *testing.B) {
	d, err := Append(nil, 1, 0, benchStore)
	if err != nil {
		b.Fatal(err)
	}
	var st Store
	b.ReportAllocs()
	b.SetBytes(int64(len(d)))
	for b.Loop() {
		if err := DecodeStore(d, &st); err != nil {
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
